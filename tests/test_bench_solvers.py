"""scripts/bench_solvers.py on two digits: the evaluation accounting of every solver and the
files it writes."""

import csv
import sys
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


@pytest.fixture
def bench():
    sys.path.insert(0, str(SCRIPTS))
    try:
        import bench_solvers
        yield bench_solvers
    finally:
        sys.path.remove(str(SCRIPTS))


def test_bench_solvers_counts_evaluations_and_writes_table_and_figure(bench, tmp_path):
    assert bench.main(["--problem", "mnist", "--n-images", "2", "--out", str(tmp_path),
                       "--only", "gauss-newton 10x1", "lbfgs 25x10"]) == 0
    with open(tmp_path / "bench_solvers_mnist.csv") as f:
        rows = {r["setting"]: r for r in csv.DictReader(f)}
    assert list(rows) == ["adam 1000x10 (reference)", "lbfgs 25x10", "gauss-newton 10x1"]
    assert float(rows["adam 1000x10 (reference)"]["evaluations"]) == 10_000
    # Gauss-Newton: d = 20 Jacobian-vector products + 1 trial per step, 10 steps, 1 restart
    assert float(rows["gauss-newton 10x1"]["evaluations"]) == 10 * 21
    # L-BFGS: one value-and-gradient per step plus at least one line-search trial
    assert float(rows["lbfgs 25x10"]["evaluations"]) >= 2 * 25 * 10
    assert float(rows["gauss-newton 10x1"]["evaluations_ratio"]) == pytest.approx(10_000 / 210)
    table = (tmp_path / "bench_solvers_mnist.md").read_text()
    assert "| gauss-newton 10x1 |" in table and "Command:" in table
    assert (tmp_path / "bench_solvers_mnist.png").stat().st_size > 0
