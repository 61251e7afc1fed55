"""DESIGN.md §2: imports point only downward; no module over 500 lines."""
import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "src" / "instructgpt"
EVERYTHING = {"config", "utils", "tasks", "tokenizer", "data", "models", "generation", "objectives",
              "checkpoint", "train", "stages", "inference", "eval", "serve"}
ALLOWED = {
    "config": set(),
    "utils": {"config"},
    "tasks": {"config", "utils"},
    "tokenizer": {"config", "utils"},
    "data": {"config", "utils", "tasks", "tokenizer"},
    "models": {"config", "utils"},
    "generation": {"config", "utils", "models"},
    "objectives": {"utils"},
    "checkpoint": {"config", "utils", "tokenizer", "models"},
    "train": {"config", "utils", "checkpoint"},
    "stages": {"config", "utils", "tasks", "tokenizer", "data", "models", "generation", "objectives",
               "checkpoint", "train"},
    "inference": {"config", "utils", "tokenizer", "models", "generation", "checkpoint"},
    "eval": EVERYTHING - {"train", "stages", "eval", "serve"},
    "serve": {"config", "utils", "inference"},
}
TOP = {"pipeline", "cli", "bench", "__init__", "__main__"}  # layer 8: may import everything


def our_imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        for name in names:
            parts = name.split(".")
            if parts[0] == "instructgpt" and len(parts) > 1:
                found.add(parts[1])
    return found


def test_every_module_belongs_to_a_layer():
    for path in PKG.rglob("*.py"):
        rel = path.relative_to(PKG)
        top = rel.parts[0].removesuffix(".py")
        assert top in ALLOWED or top in TOP, f"{rel}: not in DESIGN.md §2's table"


def test_imports_point_down():
    bad = []
    for path in PKG.rglob("*.py"):
        layer = path.relative_to(PKG).parts[0].removesuffix(".py")
        if layer in TOP:
            continue
        for imported in our_imports(path) - {layer} - ALLOWED[layer]:
            bad.append(f"{path.relative_to(PKG)} imports instructgpt.{imported}")
    assert not bad, "\n".join(bad)


def test_layering_check_catches_an_upward_import(tmp_path):
    f = tmp_path / "m.py"
    f.write_text("from instructgpt.stages import pretrain\nimport instructgpt.train.loop\n")
    assert our_imports(f) == {"stages", "train"}


def test_no_module_over_500_lines():
    big = [f"{p.relative_to(PKG)}: {n}" for p in PKG.rglob("*.py")
           if (n := len(p.read_text().splitlines())) > 500]
    assert not big, big
