"""Every benchmark script in benchmarks/ runs end to end at its smallest settings (slow set).

A smoke run: each script is started as a subprocess, the way benchmarks/README.md runs it,
with tiny problems, one or two short chains and few repeats, and must exit with status 0
and write its output. The numbers it produces mean nothing at these sizes and are not
checked; what is checked is that a change in twin_uq did not break a script that the
published results (benchmarks/RESULTS*.md, docs) depend on.

The scripts write next to themselves (RESULTS_*.md, benchmarks/out/) and audit_study.py
rewrites a section of docs/audit.md, so each run works on a copy of benchmarks/ (and
docs/audit.md) in a temporary folder: the repository is never modified. Peers that need
an optional dependency (PyStan, PyMC) go through tests/optional_deps.py.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from optional_deps import require

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "benchmarks"

#: Seconds one script may run on a busy 2-core machine before the smoke run fails.
TIMEOUT_S = 1800

FIT = "--problems p1_oral_10 --warmup 20 --draws 20 --timeout 1200 --tag smoke"
FIT_OUT = "out/fit_benchmark_smoke.json"

#: Script -> cases (id, arguments, optional modules, outputs relative to benchmarks/ of the
#: copy). Run from the copy's root, as benchmarks/README.md runs them from the repository's.
#: A script missing here fails test_every_benchmark_script_is_covered.
CASES: dict[str, list[tuple[str, str, list[str], list[str]]]] = {
    "fit_benchmark.py": [
        ("twin_uq-handwritten", f"{FIT} --tools twin_uq handwritten --fits 1", [], [FIT_OUT]),
        ("pymc", f"{FIT} --tools pymc", ["pymc"], [FIT_OUT]),
        ("stan", f"{FIT} --tools stan", ["stan"], [FIT_OUT]),
    ],
    "check_peer_models.py": [
        ("handwritten", "p1_oral_12 --peers handwritten", [], []),
        ("pymc", "p1_oral_12 --peers pymc", ["pymc"], []),
        ("stan", "p1_oral_12 --peers stan", ["stan"], []),
    ],
    "dosing_cost.py": [("p4", "--patients 4", [], [])],
    "glucose_default_fit.py": [
        (
            "tiny",
            "--patients 3 --chains 1 --warmup 20 --draws 20 --no-progress "
            "--out benchmarks/out/glucose_default_fit.json",
            [],
            ["out/glucose_default_fit.json"],
        )
    ],
    "next_sample_study.py": [
        ("tiny", "--patients 6 --chains 1 --warmup 30 --draws 30 --brute 2", [], [])
    ],
    "recovery_time_varying.py": [
        (
            "tiny",
            "--patients 6 --chains 1 --warmup 10 --draws 10 --out benchmarks/out/recovery_time_varying.json",
            [],
            ["out/recovery_time_varying.json"],
        )
    ],
    "recovery_iov.py": [
        (
            "tiny",
            "--patients 6 --chains 1 --warmup 10 --draws 10 --out benchmarks/out/recovery_iov.json",
            [],
            ["out/recovery_iov.json"],
        )
    ],
    "sbc_lag.py": [
        (
            "tiny",
            "--replicates 2 --patients 4 --warmup 10 --draws 10 --rank-draws 9 --out benchmarks/out/sbc_lag.json",
            [],
            ["out/sbc_lag.json"],
        )
    ],
    "heart_restitution.py": [
        (
            "tiny",
            "--patients 6 --sparse 2 --chains 1 --warmup 10 --draws 10 "
            "--out benchmarks/out/heart_restitution.json",
            [],
            ["out/heart_restitution.json"],
        )
    ],
    "heart_pressure.py": [
        (
            "tiny",
            "--patients 2 --chains 1 --warmup 10 --draws 10 --whatif-draws 3 "
            "--out benchmarks/out/heart_pressure.json",
            [],
            ["out/heart_pressure.json"],
        )
    ],
    "heart_gradient.py": [
        (
            "tiny",
            "--patients 2 --repeats 1 --out benchmarks/out/heart_gradient.json",
            [],
            ["out/heart_gradient.json"],
        )
    ],
    "compile_probe.py": [("p1_oral_10", "--problem p1_oral_10 --warmup 5 --draws 5", [], [])],
    "gradient_cost.py": [("p1_oral_10", "p1_oral_10", [], ["out/gradient_cost.json"])],
    "leapfrog_overhead.py": [
        (
            "p1_oral_10",
            "--problem p1_oral_10 --draws 5 --steps 10 --repeats 1",
            [],
            ["out/leapfrog_overhead.json"],
        )
    ],
    "simulate_vs_scipy.py": [("fixed", "", [], ["RESULTS_simulate.md"])],
    "twin_timing.py": [("one-repeat", "--repeats 1", [], ["RESULTS_twin.md"])],
    "pymc_comparison.py": [("smoke", "--smoke", ["pymc"], ["RESULTS_pymc.md"])],
    "audit_study.py": [
        (
            "tiny",
            "--n 24 --chains 2 --draws 50 --null-reps 2",
            [],
            ["out/audit_study.html", "../docs/audit.md"],
        )
    ],
    "trust_validation.py": [
        (
            "tiny",
            "--n 12 --chains 1 --warmup 50 --draws 50 --out benchmarks/trust",
            [],
            ["trust/trust_validation.md"],
        )
    ],
    "trust_score_study.py": [
        (
            "quick",
            "--quick --out benchmarks/out/trust_score",
            [],
            ["out/trust_score/trust_score_study.md"],
        )
    ],
    "dask_throughput.py": [
        (
            "tiny",
            "--patients 8 --throughput-patients 2 --out benchmarks/out/dask_throughput.json",
            ["distributed"],
            ["out/dask_throughput.json"],
        )
    ],
    "stan_peer.py": [("p1_oral_10", "p1_oral_10", ["stan"], [])],
    "vpc_power.py": [
        (
            "tiny",
            "--replicates 1 --patients 6 --nsim 50 --steps 200 --draws 100 "
            "--out benchmarks/out/vpc_power",
            [],
            ["out/vpc_power/vpc_power.md"],
        )
    ],
    "loo_model_choice.py": [
        (
            "tiny",
            "--replicates 1 --patients 4 --sizes 4 --stack-replicates 1 --draws 200 "
            "--out benchmarks/out/loo_model_choice.json",
            [],
            ["out/loo_model_choice.json"],
        )
    ],
    "stacking_vs_size.py": [
        (
            "tiny",
            "--replicates 1 --sizes 4 --steps 200 --draws 100 --n-inner 32 "
            "--out benchmarks/out/stacking_vs_size",
            [],
            ["out/stacking_vs_size/summary.md"],
        )
    ],
    "cgm_autocorrelation.py": [
        (
            "tiny",
            "--patients 4 --hours 8 --train 300 --method svi --steps 300 "
            "--out benchmarks/out/cgm_autocorrelation.json",
            [],
            ["out/cgm_autocorrelation.json"],
        )
    ],
    "cgm_stream.py": [
        (
            "tiny",
            "--readings 2 --readings-uncached 2 --population-draws 16 "
            "--out benchmarks/out/cgm_stream.json",
            [],
            ["out/cgm_stream.json"],
        )
    ],
    "dallaman_validation.py": [
        (
            "tiny",
            "--per-group 1 --days 1 --train 720 --method svi --sparse-method svi --steps 300 "
            "--origin-step 240 --draws-forecast 50 --n-boot 50 "
            "--out benchmarks/out/dallaman_validation.json",
            [],
            ["out/dallaman_validation.json", "out/dallaman_validation_reliability_cgm.png"],
        )
    ],
    "recovery_steady_state.py": [
        (
            "tiny",
            "--patients 6 --chains 1 --warmup 10 --draws 10 "
            "--out benchmarks/out/recovery_steady_state.json",
            [],
            ["out/recovery_steady_state.json", "out/recovery_steady_state.csv"],
        )
    ],
    "shape_buckets_check.py": [
        (
            "tiny",
            "equivalence --problem p1_oral_100 --patients 6 --warmup 20 --draws 20",
            [],
            [],
        )
    ],
    "recovery_lag_f.py": [
        (
            "tiny",
            "--patients 6 --chains 1 --warmup 10 --draws 10 --out benchmarks/out/recovery_lag_f.json",
            [],
            ["out/recovery_lag_f.json", "out/recovery_lag_f.csv"],
        )
    ],
}

#: Modules other scripts import, and the GPU driver (which only calls fit_benchmark.py with
#: GPU-sized problems): not run on their own.
NOT_RUN = {
    "handwritten_numpyro.py": "a peer module of fit_benchmark.py / check_peer_models.py",
    "pymc_peer.py": "a peer module of fit_benchmark.py / check_peer_models.py",
    "peer_data.py": "data helpers of the peers",
    "gpu_scaling.sh": "runs fit_benchmark.py (smoke-run above) with GPU-sized problems",
}


def test_every_benchmark_script_is_covered():
    found = {p.name for p in BENCH.iterdir() if p.suffix in (".py", ".sh")}
    assert found, "no benchmark scripts found"
    assert found == set(CASES) | set(NOT_RUN), (
        f"not covered: {sorted(found - set(CASES) - set(NOT_RUN))}; "
        f"listed but gone: {sorted((set(CASES) | set(NOT_RUN)) - found)}"
    )


def _copy(tmp_path: Path) -> Path:
    """A throw-away copy of benchmarks/ (without earlier outputs) and docs/audit.md."""
    root = tmp_path / "repo"
    shutil.copytree(
        BENCH,
        root / "benchmarks",
        ignore=shutil.ignore_patterns("out", "_work", "results", "__pycache__"),
    )
    (root / "docs").mkdir()
    shutil.copy2(ROOT / "docs" / "audit.md", root / "docs" / "audit.md")
    return root


@pytest.mark.slow
@pytest.mark.parametrize(
    ("script", "args", "needs", "outputs"),
    [
        pytest.param(script, args, needs, outputs, id=f"{script.removesuffix('.py')}-{case}")
        for script, cases in CASES.items()
        for case, args, needs, outputs in cases
    ],
)
def test_benchmark_script_runs(script, args, needs, outputs, tmp_path):
    for module in needs:
        require(module)
    root = _copy(tmp_path)
    bench = root / "benchmarks"
    before = {o: (bench / o).read_bytes() if (bench / o).exists() else None for o in outputs}
    env = dict(os.environ, TWIN_UQ_BENCH_OUT=str(bench / "out"), PYTHONUNBUFFERED="1")
    proc = subprocess.run(
        [sys.executable, str(bench / script), *args.split()],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )
    assert proc.returncode == 0, (
        f"exit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    )
    for out in outputs:
        path = bench / out
        assert path.exists(), f"{script} did not write {out}"
        assert path.read_bytes() != before[out], f"{script} did not rewrite {out}"
    if script == "fit_benchmark.py":  # a crashed or timed-out tool is a row, not an exit status
        rows = json.loads((bench / "out" / "fit_benchmark_smoke.json").read_text())["results"]
        assert rows and all("error" not in r for r in rows), rows
