"""The Python blocks of docs/python-api.md run as written (in a temporary directory)."""

import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parent.parent / "docs" / "python-api.md"
BLOCKS = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)


def test_the_doc_has_its_two_examples():
    assert len(BLOCKS) == 2


@pytest.mark.parametrize("index", range(len(BLOCKS)), ids=["callable_unit", "compare_report"])
def test_a_python_block_of_the_docs_runs(index, tmp_path, monkeypatch, capsys):
    if index == 1:
        pytest.importorskip("dolfinx", reason="needs DOLFINx")
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(BLOCKS[index], f"{DOC.name} block {index}", "exec"), namespace)
    if index == 0:
        assert namespace["problem"].unit.param_dim == 2
    else:
        assert (tmp_path / "runs" / "api-example" / "report.md").is_file()
        assert namespace["summary"]["alpha"][0]["alpha"] > 0
        assert "'t': 0.0" in capsys.readouterr().out
