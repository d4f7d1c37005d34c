"""Draw genprior's layers and the imports between its packages (docs/structure.png).

The import edges are read from the source (``ast``), so the picture cannot drift from the code;
``tests/test_layers.py`` checks that every edge points downwards.

    python scripts/layers_figure.py --out docs/structure.png
"""

from __future__ import annotations

import argparse
import ast
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

import genprior

LAYERS = [
    ("private helpers", ["_checks", "_random", "_serialization", "_physics", "_config", "_io",
                         "_flags"]),
    ("building blocks", ["operators", "metrics", "data", "optim"]),
    ("generative priors", ["priors"]),
    ("solvers", ["reconstruct"]),
    ("samplers and training", ["sampling", "training"]),
    ("interface", ["cli"]),
]
ROOT = Path(genprior.__file__).parent


def import_edges() -> set[tuple[str, str]]:
    """``(package, imported package)`` pairs of genprior's sub-packages and private modules."""
    known = {p for _, row in LAYERS for p in row}
    edges = set()
    for path in ROOT.rglob("*.py"):
        rel = path.relative_to(ROOT)
        pkg = rel.parts[0] if len(rel.parts) > 1 else rel.stem
        if pkg not in known:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([node.module] if isinstance(node, ast.ImportFrom) and node.module
                     else [a.name for a in node.names] if isinstance(node, ast.Import) else [])
            for name in names:
                parts = name.split(".")
                if parts[0] == "genprior" and len(parts) > 1 and parts[1] in known \
                        and parts[1] != pkg:
                    edges.add((pkg, parts[1]))
    return edges


def draw(out: Path) -> None:
    fig, ax = plt.subplots(figsize=(11, 6.5))
    pos = {}
    for level, (title, row) in enumerate(LAYERS):
        y = level * 1.2
        ax.text(-0.3, y, title, ha="right", va="center", fontsize=10, style="italic")
        for i, name in enumerate(row):
            x = (i + 0.5) * 10 / len(row)
            pos[name] = (x, y)
            private = name.startswith("_")
            ax.text(x, y, name, ha="center", va="center", fontsize=9 if private else 11,
                    bbox={"boxstyle": "round,pad=0.35", "fc": "#eeeeee" if private else "#cfe3f7",
                          "ec": "#555555"})
    for src, dst in sorted(import_edges()):
        (x0, y0), (x1, y1) = pos[src], pos[dst]
        ax.annotate("", xy=(x1, y1 + 0.18), xytext=(x0, y0 - 0.18),
                    arrowprops={"arrowstyle": "->", "color": "#888888" if dst.startswith("_")
                                else "#1f4e79", "lw": 0.6 if dst.startswith("_") else 1.2,
                                "alpha": 0.5 if dst.startswith("_") else 0.9})
    ax.set_xlim(-3.2, 10.2)
    ax.set_ylim(-0.6, len(LAYERS) * 1.2 - 0.5)
    ax.axis("off")
    ax.set_title("genprior's layers: every arrow is an import and points down "
                 "(checked by tests/test_layers.py)", fontsize=11)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default="docs/structure.png")
    args = p.parse_args(argv)
    draw(Path(args.out))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
