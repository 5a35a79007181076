"""The package layering, computed from the imports (function-level ones included): data flows one way,

    base (diagnostics, limits, lang) <- ir <- ops <- parser <- frontend <- passes, codegen <- pipeline <- cli

and no layer reaches up. A new module is placed in a layer here, or the test fails and says so.
"""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "specc"

LAYER_OF = {  # module prefix -> layer; the longest matching prefix wins
    "specc": "base", "specc.diagnostics": "base", "specc.limits": "base", "specc.lang": "base", "specc.deps": "base",
    "specc.ir": "ir",
    "specc.ops": "ops",
    "specc.parser": "parser",
    "specc.frontend": "frontend",
    "specc.passes": "passes",
    "specc.codegen": "codegen",
    "specc.runtime": "codegen",
    "specc.compiler": "pipeline", "specc.build": "pipeline", "specc.predict": "pipeline",
    "specc.inspection": "pipeline", "specc.reference": "pipeline", "specc.op_examples": "pipeline",
    "specc.graph": "pipeline", "specc.graph_draw": "pipeline", "specc.ensemble_build": "pipeline", "specc.tta_build": "pipeline", "specc.graph_layout": "pipeline", "specc.grouping": "pipeline", "specc.train": "pipeline", "specc.bench": "pipeline", "specc.precision": "pipeline",
    "specc.cli": "cli", "specc.__main__": "cli", "specc.entry": "cli",
}

# What each layer may import (besides itself).
ALLOWED = {
    "base": set(),
    "ir": {"base"},
    "ops": {"base", "ir"},
    "parser": {"base", "ir", "ops"},
    "frontend": {"base", "ir", "ops", "parser"},
    "passes": {"base", "ir", "ops"},
    "codegen": {"base", "ir", "ops"},
    "pipeline": {"base", "ir", "ops", "parser", "frontend", "passes", "codegen", "pipeline"},
    "cli": {"base", "ir", "ops", "parser", "frontend", "passes", "codegen", "pipeline"},
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer(module: str) -> str | None:
    best = None
    for prefix in LAYER_OF:
        if module == prefix or (prefix != "specc" and module.startswith(prefix + ".")):
            if best is None or len(prefix) > len(best):
                best = prefix
    return LAYER_OF[best] if best else None


def imports(path: Path, module: str) -> set:
    found = set()
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("specc")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            if name.startswith("specc"):
                found.add(name)
                found |= {f"{name}.{a.name}" for a in node.names if layer(f"{name}.{a.name}") and name == "specc"}
    return found


def test_every_module_has_a_layer():
    unplaced = [module_name(p) for p in PACKAGE.rglob("*.py") if layer(module_name(p)) is None]
    assert not unplaced, f"place these modules in a layer in tests/test_layering.py: {unplaced}"


def test_imports_follow_the_layering():
    wrong = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = module_name(path)
        mine = layer(module)
        for imported in sorted(imports(path, module)):
            theirs = layer(imported)
            if imported == "specc" or theirs in (None, mine):
                continue
            if theirs not in ALLOWED[mine]:
                wrong.append(f"{module} ({mine}) imports {imported} ({theirs})")
    assert not wrong, "layering broken:\n" + "\n".join(wrong)


def test_the_ir_core_knows_nothing_above_it():
    for path in (PACKAGE / "ir").rglob("*.py"):
        for imported in imports(path, module_name(path)):
            assert layer(imported) in ("base", "ir"), f"{path.name} imports {imported}"
