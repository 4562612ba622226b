"""The problem model and the config layer are numpy-only: no DOLFINx on import."""

import subprocess
import sys


def test_model_config_and_particles_do_not_import_dolfinx():
    code = (
        "import sys\n"
        "import solver.model.units, solver.model.quadrature, solver.model.functionals\n"
        "import solver.model.problem, solver.config, particle_check.particles\n"
        "import particle_check.ensemble, particle_check.compare\n"
        "heavy = ('dolfinx', 'petsc4py', 'ufl')\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in heavy)\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
