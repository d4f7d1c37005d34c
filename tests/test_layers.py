"""The package's layers: no module imports a layer above its own (docs/structure.md)."""

import ast
from pathlib import Path

import genprior

#: bottom to top; a package may import its own layer and every layer below it
LAYERS = [
    {"_checks", "_random", "_serialization", "_physics", "_config", "_io", "_flags"},
    {"operators", "metrics", "data", "optim"},
    {"priors"},
    {"reconstruct"},
    {"sampling", "training"},
    {"cli", "__init__", "__main__"},
]
ROOT = Path(genprior.__file__).parent


def _layer(name: str) -> int:
    for i, layer in enumerate(LAYERS):
        if name in layer:
            return i
    raise AssertionError(f"genprior.{name} is in no layer: add it to LAYERS and docs/structure.md")


def _imports(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = ([node.module] if isinstance(node, ast.ImportFrom) and node.module
                 else [a.name for a in node.names] if isinstance(node, ast.Import) else [])
        for name in names:
            parts = name.split(".")
            if parts[0] == "genprior" and len(parts) > 1:
                out.add(parts[1])
    return out


def _package_of(path: Path) -> str:
    rel = path.relative_to(ROOT)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def test_every_module_is_in_a_layer_and_imports_only_downwards():
    bad = []
    for path in sorted(ROOT.rglob("*.py")):
        pkg = _package_of(path)
        for target in _imports(path):
            if _layer(target) > _layer(pkg):
                bad.append(f"{path.relative_to(ROOT)} imports genprior.{target}")
    assert not bad, "imports of a higher layer:\n" + "\n".join(bad)


def test_no_argparse_below_the_cli():
    users = [str(p.relative_to(ROOT)) for p in ROOT.rglob("*.py")
             if _package_of(p) not in {"cli", "__main__"} and "argparse" in
             {n.split(".")[0] for node in ast.walk(ast.parse(p.read_text()))
              for n in ([a.name for a in node.names] if isinstance(node, ast.Import) else
                        [node.module or ""] if isinstance(node, ast.ImportFrom) else [])}]
    assert not users, f"argparse imported below genprior.cli: {users}"
