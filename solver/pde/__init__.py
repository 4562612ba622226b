"""The mean-field PDE on a parameter mesh (DOLFINx + PETSc).

Import ``dolfinx_solver`` (when installed) before dolfinx: this package does it.
"""

try:  # the binary wheel must order MPI before the compiled bindings
    import dolfinx_solver  # noqa: F401
except ImportError:  # a user's own DOLFINx (conda, spack, module)
    pass
