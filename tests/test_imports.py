"""Data flows one way (docs/design.md): data/styles -> models/diffusion -> train;
models/diffusion -> stream -> serve; bench on top. Every import in lsd/, at the top of a
file or inside a function, is checked against that order."""

import ast
from pathlib import Path

LSD = Path(__file__).resolve().parents[1] / "lsd"
# a package must not import the packages named here (its own layer or one above it)
NEVER = {
    "data": {"models", "diffusion", "train", "stream", "serve", "bench"},
    "styles": {"data", "models", "diffusion", "train", "stream", "serve", "bench"},
    "models": {"train", "stream", "serve", "bench"},
    "diffusion": {"train", "stream", "serve", "bench"},
    "train": {"stream", "serve", "bench"},
    "stream": {"train", "serve", "bench"},
    "serve": {"train", "bench"},
}
# the modules everything uses import none of the layers
for module in ("config.py", "checkpoint.py", "precision.py", "machine.py", "metrics.py", "io.py"):
    NEVER[module] = {"data", "styles", "models", "diffusion", "train", "stream", "serve", "bench"}


def imported_packages(path: Path) -> set[str]:
    """The lsd subpackages a module imports (lsd.X or a relative import reaching X)."""
    package = path.relative_to(LSD).parts
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:  # relative: climb from the module's package
                base = list(package[:-1])[: len(package) - node.level]
                target = base + (node.module.split(".") if node.module else [])
                names = [target + [a.name] for a in node.names] if not target else [target]
            else:
                names = [node.module.split(".")] if node.module else []
                names = [n[1:] for n in names if n[0] == "lsd"]
            found |= {n[0] for n in names if n}
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[1] for a in node.names
                      if a.name.startswith("lsd.") and a.name.count(".") >= 1}
    return found


def test_no_package_imports_against_the_data_flow():
    wrong = []
    for path in sorted(LSD.rglob("*.py")):
        layer = path.relative_to(LSD).parts[0]
        for package in imported_packages(path) & NEVER.get(layer, set()):
            wrong.append(f"{path.relative_to(LSD.parent)} imports lsd.{package}")
    assert not wrong, "\n".join(wrong)


def test_the_check_sees_relative_absolute_and_function_level_imports(tmp_path):
    module = LSD / "stream" / "_probe_for_test.py"
    module.write_text("from ..train import x\nimport lsd.bench.latency\n"
                      "def f():\n    from ..serve import app\n")
    try:
        assert imported_packages(module) == {"train", "bench", "serve"}
    finally:
        module.unlink()
