"""Meshes of every parameter domain: dimensions, cell counts, measure, files, MPI."""

import sys

import numpy as np
import pytest

pytest.importorskip("dolfinx", reason="needs DOLFINx")
import ufl
from dolfinx import fem
from dolfinx.io import XDMFFile
from mpi4py import MPI

from solver import mesh_files
from solver.model.domain import Box, Circle, Cylinder, Disc, Sphere
from solver.pde.meshes import build_mesh, check_mesh, load_mesh, read_mesh
from tests.ranks import assert_ranks_agree

pytestmark = pytest.mark.dolfinx


def measure(msh) -> float:
    one = fem.Constant(msh, 1.0)
    return msh.comm.allreduce(fem.assemble_scalar(fem.form(one * ufl.dx(domain=msh))), MPI.SUM)


def cell_count(msh) -> int:
    return msh.topology.index_map(msh.topology.dim).size_global


def polygon_length(n: int) -> float:
    return 2 * n * np.sin(np.pi / n)


# domain, cells, global cell count, exact measure of the (inscribed) mesh
BUILT = [
    (Box((-1.0,), (2.0,)), [6], 6, 3.0),
    (Box((0.0, -1.0), (2.0, 2.0)), (4, 3), 12, 6.0),
    (Box((0.0, 0.0, 0.0), (1.0, 2.0, 3.0)), 2, 8, 6.0),
    (Disc((1.0, -0.5), 2.0), 5, 6 * 25, 3 * 5 * 4.0 * np.sin(np.pi / 15)),
    (Circle(), 24, 24, polygon_length(24)),
    (Cylinder(-1.0, 2.0), (3, 16), 48, 3.0 * polygon_length(16)),
    (Sphere(3), 2, 320, None),
]


@pytest.mark.parametrize("domain, cells, count, area", BUILT,
                         ids=[f"{d.kind}{d.param_dim}" for d, *_ in BUILT])
def test_build_mesh_dimensions_counts_and_measure(domain, cells, count, area):
    msh = build_mesh(MPI.COMM_SELF, domain, cells)
    assert msh.topology.dim == domain.manifold_dim
    assert msh.geometry.dim == domain.embedding_dim
    assert cell_count(msh) == count
    check_mesh(msh, domain)
    if area is not None:
        assert measure(msh) == pytest.approx(area, rel=1e-12)
    # every vertex is a point of the domain (inscribed meshes of curved domains)
    theta = domain.from_mesh(msh.geometry.x[:, : domain.embedding_dim])
    assert domain.contains(theta).all()
    np.testing.assert_allclose(domain.to_mesh(theta), msh.geometry.x[:, :domain.embedding_dim],
                               atol=1e-12)


def test_icosphere_area_converges_to_4pi_at_second_order():
    errors = [4 * np.pi - measure(build_mesh(MPI.COMM_SELF, Sphere(3), level))
              for level in range(2, 6)]
    assert all(e > 0 for e in errors)  # inscribed
    ratios = np.array(errors[:-1]) / np.array(errors[1:])
    np.testing.assert_allclose(ratios, 4.0, rtol=0.02)
    assert errors[-1] < 5e-3  # level 5: 20480 cells


def test_disc_and_circle_measure_converge():
    disc = [np.pi - measure(build_mesh(MPI.COMM_SELF, Disc((0, 0), 1.0), n)) for n in (4, 8, 16)]
    assert disc[0] / disc[1] == pytest.approx(4, rel=0.01)
    assert disc[1] / disc[2] == pytest.approx(4, rel=0.01)
    assert 2 * np.pi - measure(build_mesh(MPI.COMM_SELF, Circle(), 256)) < 2e-4


@pytest.mark.parametrize("domain, cells, match", [
    (Disc((0, 0), 1.0), (4, 4), "number of rings"),
    (Circle(), 2, "edges"),
    (Cylinder(0, 1), (4, 2), "n_z >= 3"),
    (Sphere(3), -1, "level"),
    (Box((0, 0), (1, 1)), (2, 2, 2), "2 cell counts"),
])
def test_build_mesh_refuses_bad_cell_counts(domain, cells, match):
    with pytest.raises(ValueError, match=rf"pde\.cells: .*{match}"):
        build_mesh(MPI.COMM_SELF, domain, cells)


def test_no_mesh_for_a_high_dimensional_sphere():
    with pytest.raises(ValueError, match=r"pde\.mesh: the unit sphere S\^4 in R\^5 has no mesh"):
        build_mesh(MPI.COMM_SELF, Sphere(5), 2)


def test_check_mesh_names_both_dimensions_and_the_domain():
    msh = build_mesh(MPI.COMM_SELF, Circle(), 8)
    with pytest.raises(ValueError, match=r"pde\.mesh: the mesh has topological dimension 1 and "
                                         r"geometric dimension 2, but the box .* needs "
                                         r"topological dimension 2 and geometric dimension 2"):
        check_mesh(msh, Box((0, 0), (1, 1)))
    with pytest.raises(ValueError, match=r"pde\.mesh: .*disc"):
        check_mesh(build_mesh(MPI.COMM_SELF, Sphere(3), 0), Disc((0, 0), 1))


# name, domain, level-0 cell count (level L has count * growth^L), exact measure or None
NAMED = [
    ("interval", Box((1.0,), (3.0,)), 8, 2, lambda L: 2.0),
    ("rectangle", Box((0.0, -1.0), (2.0, 2.0)), 128, 4, lambda L: 6.0),
    ("box", Box((0.0, 0.0, 0.0), (1.0, 2.0, 3.0)), 384, 8, lambda L: 6.0),
    ("disc", Disc((0.5, 0.5), 2.0), 96, 4,
     lambda L: 3 * (4 * 2**L) * 4.0 * np.sin(np.pi / (3 * 4 * 2**L))),
    ("circle", Circle(), 16, 2, lambda L: polygon_length(16 * 2**L)),
    ("cylinder", Cylinder(-2.0, 3.0), 128, 4, lambda L: 5.0 * polygon_length(8 * 2**L)),
    ("sphere", Sphere(3), 20, 4, None),
]


@pytest.mark.parametrize("name, domain, count, growth, area", NAMED, ids=[n[0] for n in NAMED])
@pytest.mark.parametrize("level", [0, 1])
def test_named_meshes_load_onto_the_domain(name, domain, count, growth, area, level):
    msh = load_mesh(MPI.COMM_SELF, domain, name, level)
    assert cell_count(msh) == count * growth**level
    assert (msh.topology.dim, msh.geometry.dim) == (domain.manifold_dim, domain.embedding_dim)
    if area is not None:
        assert measure(msh) == pytest.approx(area(level), rel=1e-12)
    x = msh.geometry.x[:, : domain.embedding_dim]
    assert domain.contains(domain.from_mesh(x)).all()
    if isinstance(domain, Box):  # mapped onto the whole box
        np.testing.assert_allclose(x.min(axis=0), domain.lower)
        np.testing.assert_allclose(x.max(axis=0), domain.upper)


def test_every_shipped_level_is_listed_and_small():
    total = 0
    for name in mesh_files.REFERENCE_MESHES:
        levels = mesh_files.available_levels(name)
        assert levels[:3] == [0, 1, 2], name
        for level in levels:
            for suffix in (".xdmf", ".h5"):
                total += (mesh_files.MESH_DIR / f"{name}_{level}{suffix}").stat().st_size
    assert total < 5 * 2**20


@pytest.mark.parametrize("domain, name, match", [
    (Sphere(3), "disc", r"'disc' does not fit the unit sphere .*use 'sphere'"),
    (Box((0, 0), (1, 1)), "box", r"'box' does not fit the box .*use 'rectangle'"),
    (Sphere(4), "sphere", r"'sphere' does not fit .*no reference mesh fits"),
    (Disc((0, 0), 1), "ball", r"'ball' \(reference meshes: interval, .*\) does not fit"),
])
def test_named_mesh_that_does_not_fit_is_refused(domain, name, match):
    with pytest.raises(ValueError, match=rf"pde\.mesh: mesh {match}"):
        load_mesh(MPI.COMM_SELF, domain, name, 0)


def test_missing_level_names_the_levels_present():
    with pytest.raises(ValueError, match=r"pde\.mesh: no level 42 .*levels present: \[0, 1"):
        load_mesh(MPI.COMM_SELF, Circle(), "circle", 42)


def test_read_mesh_xdmf_with_any_grid_name(tmp_path):
    msh = build_mesh(MPI.COMM_SELF, Cylinder(0.0, 1.0), (2, 8))
    msh.name = "omega"
    path = tmp_path / "surface.xdmf"
    with XDMFFile(MPI.COMM_SELF, str(path), "w") as f:
        f.write_mesh(msh)
    back = read_mesh(MPI.COMM_SELF, path, Cylinder(0.0, 1.0))
    assert cell_count(back) == 16
    assert measure(back) == pytest.approx(measure(msh), rel=1e-14)
    with pytest.raises(ValueError, match=r"pde\.mesh_file: the mesh has topological dimension 2 "
                                         r"and geometric dimension 3, but the disc"):
        read_mesh(MPI.COMM_SELF, path, Disc((0, 0), 1.0))


def test_read_mesh_drops_zero_coordinates_of_a_flat_file():
    """The interval files store XY; a 1-D domain gets a mesh of geometric dimension 1."""
    msh = read_mesh(MPI.COMM_SELF, mesh_files.MESH_DIR / "interval_1.xdmf", Box((0.0,), (1.0,)))
    assert msh.geometry.dim == 1 and cell_count(msh) == 16
    assert measure(msh) == pytest.approx(1.0, rel=1e-14)


def test_read_mesh_errors(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match=r"pde\.mesh_file: no file"):
        read_mesh(MPI.COMM_SELF, tmp_path / "nothing.xdmf", Circle())
    other = tmp_path / "mesh.vtk"
    other.write_text("")
    with pytest.raises(ValueError, match=r"pde\.mesh_file: .* neither XDMF"):
        read_mesh(MPI.COMM_SELF, other, Circle())
    msh_file = tmp_path / "mesh.msh"
    msh_file.write_text("$MeshFormat\n4.1 0 8\n$EndMeshFormat\n$Nodes\n$EndNodes\n"
                        "$Elements\n$EndElements\n")
    monkeypatch.setitem(sys.modules, "gmsh", None)  # as if gmsh were not installed
    with pytest.raises(ValueError, match=r"pde\.mesh: .*pip install gmsh"):
        read_mesh(MPI.COMM_SELF, msh_file, Circle())


def _fingerprint(msh):
    """Global cell count, measure and an interior-facet integral (needs ghosted facets)."""
    V = fem.functionspace(msh, ("DG", 0))
    u = fem.Function(V)
    u.interpolate(lambda x: 1 + x[0] + 2 * x[1] ** 2 - x[2])
    jumps = fem.form(ufl.jump(u) ** 2 * ufl.dS + ufl.avg(u) * ufl.dS)
    facets = msh.comm.allreduce(fem.assemble_scalar(jumps), MPI.SUM)
    return cell_count(msh), measure(msh), facets


@pytest.mark.mpi
@pytest.mark.parametrize("domain, cells", [(d, c) for d, c, *_ in BUILT],
                         ids=[f"{d.kind}{d.param_dim}" for d, *_ in BUILT])
def test_built_meshes_are_the_same_on_every_rank_count(domain, cells):
    world = _fingerprint(build_mesh(MPI.COMM_WORLD, domain, cells))
    serial = _fingerprint(build_mesh(MPI.COMM_SELF, domain, cells))
    assert world[0] == serial[0]
    assert_ranks_agree(world[1], serial[1], "measure")
    assert_ranks_agree(world[2], serial[2], "facet integral")


@pytest.mark.mpi
@pytest.mark.parametrize("name, domain", [(n[0], n[1]) for n in NAMED], ids=[n[0] for n in NAMED])
def test_named_meshes_are_the_same_on_every_rank_count(name, domain):
    world = _fingerprint(load_mesh(MPI.COMM_WORLD, domain, name, 1))
    serial = _fingerprint(load_mesh(MPI.COMM_SELF, domain, name, 1))
    assert world[0] == serial[0]
    assert_ranks_agree(world[1], serial[1], "measure")
    assert_ranks_agree(world[2], serial[2], "facet integral")


@pytest.mark.parametrize("written, cells, domain, match", [
    # a sphere mesh for a cylinder solved to exit 0 with a wrong energy
    (Sphere(3), 2, Cylinder(-5.0, 5.0), r"vertices are up to 1 off the surface"),
    # a cylinder of the wrong extent ended in a misleading outflow failure
    (Cylinder(0.0, 1.0), (4, 16), Cylinder(-5.0, 5.0), r"measure 6\.\d+ but the cylinder"),
    (Box((-1.0, 0.0), (2.0, 1.0)), (6, 2), Box((0.0, 0.0), (1.0, 1.0)), r"reaches 1 beyond"),
    (Box((0.0, 0.0), (1.0, 1.0)), (4, 4), Box((0.0, 0.0), (2.0, 1.0)), r"measure 1 but"),
    (Disc((0.0, 0.0), 0.5), 6, Disc((0.0, 0.0), 1.0), r"measure 0\.7\d+ but the disc"),
    (Circle(), 64, Sphere(2), None),  # the same domain: accepted
])
def test_a_mesh_file_of_another_domain_is_refused(tmp_path, written, cells, domain, match):
    msh = build_mesh(MPI.COMM_SELF, written, cells)
    path = tmp_path / "m.xdmf"
    with XDMFFile(MPI.COMM_SELF, str(path), "w") as f:
        f.write_mesh(msh)
    if match is None:
        read_mesh(MPI.COMM_SELF, path, domain)
        return
    with pytest.raises(ValueError, match=r"pde\.mesh_file: .*" + match):
        read_mesh(MPI.COMM_SELF, path, domain)


def _damage(tmp_path, how):
    """An XDMF mesh file (with its HDF5 file) of the circle, damaged in one way."""
    msh = build_mesh(MPI.COMM_SELF, Circle(), 16)
    path = tmp_path / "m.xdmf"
    with XDMFFile(MPI.COMM_SELF, str(path), "w") as f:
        f.write_mesh(msh)
    h5 = path.with_suffix(".h5")
    if how == "garbage":
        path.write_bytes(b"\x89PNG\r\n not xml at all \xff")
    elif how == "truncated xml":
        path.write_text(path.read_text()[:200])
    elif how == "no h5":
        h5.unlink()
    elif how == "truncated h5":
        h5.write_bytes(h5.read_bytes()[: h5.stat().st_size // 2])
    elif how == "garbage h5":
        h5.write_bytes(b"garbage" * 100)
    elif how == "wrong dimensions":
        path.write_text(path.read_text().replace('Dimensions="16 2"', 'Dimensions="17 2"'))
    elif how == "no grid":
        path.write_text("<Xdmf><Domain></Domain></Xdmf>")
    elif how == "truncated msh":
        path = tmp_path / "m.msh"
        path.write_text("$MeshFormat\n4.1 0 8\n$EndMeshFormat\n$Nodes\n1 4 1 4\n")
    return path


@pytest.mark.parametrize("how, match", [
    ("garbage", "not well-formed XDMF"),
    ("truncated xml", "not well-formed XDMF"),
    ("no h5", r"m\.h5, which does not exist"),
    ("truncated h5", "cannot be read as HDF5"),
    ("garbage h5", "cannot be read as HDF5"),
    ("wrong dimensions", r"has shape \(16, 2\), the XDMF declares \(17, 2\)"),
    ("no grid", "has no mesh"),
    ("truncated msh", r"the \$Nodes section is missing or incomplete"),
])
def test_a_damaged_mesh_file_is_a_named_error_not_a_parser_crash(tmp_path, how, match):
    from solver.mesh_files import inspect_mesh_file

    path = _damage(tmp_path, how)
    with pytest.raises(ValueError, match=r"pde\.mesh_file: .*" + match):
        inspect_mesh_file(path)
    with pytest.raises(ValueError, match=r"pde\.mesh_file: .*" + match):
        read_mesh(MPI.COMM_SELF, path, Circle())
