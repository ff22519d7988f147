"""Shared test configuration: float64, fixed seeds, shared compiled fixtures.

Fitting compiles a sampler (tens of seconds on 2 cores); the fixtures below fit each
reference problem once per test session and every test module reuses them.
"""

import os

import jax
import pytest

import twin_uq as tq

# float64 and 4+ CPU devices for parallel chains, before any test starts JAX (importing
# twin_uq sets nothing). Test processes started from this one inherit the settings. No
# persistent compilation cache unless the developer sets TWIN_UQ_CACHE to a folder: every
# run compiles what it tests.
os.environ.setdefault("TWIN_UQ_CACHE", "off")
tq.configure()


def pytest_xdist_auto_num_workers(config):
    """Workers for ``-n auto`` (set in pyproject's addopts): one per core, at most 4.

    Most test time is single-threaded XLA compilation, so two workers on a 2-core machine
    nearly halve the default run. Each worker computes the session fixtures it needs
    (a shared fit costs its compile once per worker), and test files stay whole on one
    worker (``--dist=loadfile``) so module fixtures are computed once. More than four
    workers would repeat the session fits more often than they save. ``-n 0`` runs in
    one process (e.g. to debug one test).
    """
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(cores or 1, 4))


def pytest_configure(config):
    # A cohort without a declared time unit is taken in the model's unit with a warning at
    # fit time (a user-facing announcement, like CovariateDefaultWarning in pyproject.toml);
    # tests that check it use pytest.warns, the rest fit tables without a unit.
    config.addinivalue_line(
        "filterwarnings", "ignore::twin_uq.data.problems.TimeUnitAssumedWarning"
    )


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_programs():
    """Drop JAX's compiled programs between test modules once the process holds many.

    Every XLA CPU executable keeps its machine code in memory mappings of its own; the
    default run compiles thousands of distinct programs (every solve path, dose kind and
    NONMEM scenario), and one process holding them all reached the kernel's limit of
    65 530 mappings per process (vm.max_map_count) and aborted inside an XLA compile.
    Fixtures keep their results (posteriors, arrays). The programs are dropped only once
    the process holds more than half of that limit, so that later modules reuse what
    earlier ones compiled (the shared fits' predictions, reports and checks) instead of
    compiling it again after every module.
    """
    yield
    if _memory_mappings() > _MAPPINGS_BEFORE_RELEASE:
        jax.clear_caches()


def _max_map_count(default: int = 65530) -> int:
    try:
        with open("/proc/sys/vm/max_map_count") as fh:
            return int(fh.read())
    except (OSError, ValueError):
        return default


_MAPPINGS_BEFORE_RELEASE = _max_map_count() // 2


def _memory_mappings() -> int:
    """Memory mappings of this process (lines of /proc/self/maps); huge where unknown."""
    try:
        with open("/proc/self/maps", "rb") as fh:
            return fh.read().count(b"\n")
    except OSError:  # no procfs (macOS): release after every module, as before
        return 1 << 62


ORAL_DESIGN = tq.Design(
    times=[0.5, 1.0, 2.0, 4.0, 6.0, 8.0, 12.0, 24.0],
    doses=[tq.Bolus(0.0, 100.0, 1)],
    sparse_fraction=0.25,
    sparse_times=[2.0, 24.0],
    covariates={
        "WT": ("lognormal", 70.0, 0.2),
        "AGE": ("uniform", 20.0, 85.0),
        "SEX": ("categorical", ("F", "M"), (0.5, 0.5)),
    },
)


@pytest.fixture(scope="session")
def oral_sim():
    """A 16-patient one-compartment oral cohort with known truth (4 data-poor patients)."""
    return tq.simulate_cohort("one_compartment_oral", 16, ORAL_DESIGN, seed=11)


@pytest.fixture(scope="session")
def oral_fit(oral_sim):
    """NUTS fit of ``oral_sim`` (4 chains x 500 draws), shared by all test modules."""
    return tq.fit(
        "one_compartment_oral",
        oral_sim.cohort,
        chains=4,
        warmup=500,
        draws=500,
        seed=0,
        progress=False,
    )


@pytest.fixture(scope="session")
def oral_trust(oral_fit):
    """``assess_cohort(oral_fit, SHORT_RUN)``: the trust report the trust and audit tests read.

    Computed once per session (it solves the model at every patient's draws); tests read it
    and never change it.
    """
    from short_run import SHORT_RUN

    return tq.assess_cohort(oral_fit, SHORT_RUN)


@pytest.fixture(scope="session")
def oral_laplace(oral_sim):
    """Laplace fit of ``oral_sim`` (2000 steps, 1000 draws): an approximate fit of the same cohort.

    Shared by tests/inference/test_approximate.py (agreement with ``oral_fit``) and
    tests/compare (the second fit compared with ``oral_fit``): one Laplace fit per session.
    """
    return tq.fit(
        "one_compartment_oral",
        oral_sim.cohort,
        method=tq.Laplace(steps=2000, learning_rate=0.02, draws=1000),
        seed=3,
        progress=False,
    )


@pytest.fixture
def cli():
    """Invoke the typer app in-process; returns a function ``cli(*args) -> Result``."""
    from typer.testing import CliRunner

    from twin_uq.cli import app

    runner = CliRunner()

    def invoke(*args):
        return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)

    return invoke


@pytest.fixture(scope="session")
def student_t_fit():
    """Short NUTS fit (1 chain x 200 draws) of six IV patients with Student-t residual error.

    Shared by the tests that each consumer of the residual model (posterior predictive,
    twin predictions, held-out validation, Dask workers) draws Student-t replicates. The
    data have Student-t noise (4 degrees of freedom), so the posterior of ``nu`` is small
    enough for Student-t replicates to be told apart from Normal ones.
    """
    times = [0.25, 0.5, 1.0, 2.0, 4.0, 6.0, 8.0, 12.0, 16.0, 24.0]
    design = tq.Design(times=times, doses=[tq.Bolus(0.0, 100.0, 1)])
    sim = tq.simulate_cohort(
        "one_compartment_iv", 8, design, seed=5, error={"concentration": "student_t"}
    )
    return tq.fit(
        "one_compartment_iv",
        sim.cohort,
        error={"concentration": "student_t"},
        chains=1,
        warmup=150,
        draws=200,
        seed=1,
        progress=False,
    )
