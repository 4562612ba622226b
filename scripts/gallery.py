"""Copy each example's gallery figure from its run directory into docs/gallery/.

Config examples (``meanfield run examples/<name>.toml``) contribute their report's
``comparison.png``; script examples (``python examples/<name>.py``) their ``gallery.png``.
Run the examples first (``make gallery`` does both). A missing figure is an error naming
the command that makes it.

Run:  .venv/bin/python scripts/gallery.py [--runs runs] [--out docs/gallery]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def sources(runs: Path) -> dict[str, tuple[Path, str]]:
    """{example name: (its figure, the command that makes it)} for every example."""
    found = {}
    for config in sorted((ROOT / "examples").glob("*.toml")):
        output = Path(tomllib.loads(config.read_text()).get("output", runs / config.stem))
        found[config.stem] = (output / "comparison.png",
                              f"meanfield run examples/{config.name} --force")
    for script in sorted((ROOT / "examples").glob("[!_]*.py")):
        found[script.stem] = (runs / script.stem / "gallery.png",
                              f"python examples/{script.name} --force")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, default=Path("runs"))
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "gallery")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    missing = []
    for name, (figure, command) in sources(args.runs).items():
        if not figure.exists():
            missing.append(f"{name}: {figure} is missing; run `{command}`")
            continue
        shutil.copyfile(figure, args.out / f"{name}.png")
        print(f"{name}: {figure} -> {args.out / f'{name}.png'}")
    for line in missing:
        print(line, file=sys.stderr)
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
