"""``twin-uq demo``: the whole workflow on a built-in synthetic cohort, end to end.

Each step is one function (simulate, fit, trust, twins, reports, audit) so that the demo
stays a readable script of the public API.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import typer

from twin_uq._csv import write_csv
from twin_uq.cli._cache import enable_compilation_cache
from twin_uq.cli._console import out_console, spinner
from twin_uq.cli._errors import handle_errors
from twin_uq.cli._options import Verbose

MODEL = "one_compartment_oral"
TIMES = (0.5, 1.0, 2.0, 4.0, 6.0, 8.0, 12.0, 24.0)
SPARSE_TIMES = (2.0, 24.0)


@dataclass
class DemoRun:
    """What the demo produced: files by label, numbers for the summary, step timings."""

    out: Path
    files: dict[str, Path] = field(default_factory=dict)
    notes: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)


def design():
    """A one-compartment oral cohort with an older, data-poor subgroup (2 samples each)."""
    import twin_uq as tq

    return tq.Design(
        times=TIMES,
        doses=[tq.Bolus(0.0, 100.0, 1)],
        sparse_fraction=0.3,
        sparse_times=SPARSE_TIMES,
        covariates={
            "WT": ("lognormal", 70.0, 0.2),
            "AGE": ("uniform", 25.0, 65.0),
            "SEX": ("categorical", ("F", "M"), (0.5, 0.5)),
        },
        sparse_covariate_shift={"AGE": 15.0},
    )


def step_simulate(run: DemoRun, n_patients: int, seed: int):
    """Simulate the cohort (with known truth) and write it as a CSV table."""
    import twin_uq as tq

    sim = tq.simulate_cohort(MODEL, n_patients, design(), seed=seed, id_prefix="P")
    table = sim.table.copy()
    table["age_band"] = (table["AGE"] >= 60).map({True: "60+", False: "<60"})
    path = run.out / "cohort.csv"
    table.to_csv(path, index=False)
    run.files["cohort table"] = path
    sparse = sorted(table.loc[table["sampling"] == "sparse", "id"].unique())
    run.notes["sparse"] = sparse
    run.notes["n_patients"] = n_patients
    # The demo simulated it in the model's unit: declared, not assumed.
    return tq.read_cohort(path, time_unit=tq.load_model(MODEL).card.time_unit)


def step_fit(run: DemoRun, cohort, *, chains: int, warmup: int, draws: int, seed: int):
    """Fit the hierarchical model by NUTS and save the posterior to fit.nc."""
    import twin_uq as tq

    post = tq.fit(
        MODEL, cohort, chains=chains, warmup=warmup, draws=draws, seed=seed, progress=False
    )
    path = post.save(run.out / "fit.nc")
    run.files["fit (netCDF)"] = path
    run.notes["diagnostics"] = post.diagnostics()
    return post


def step_trust(run: DemoRun, post):
    """Assess every twin's trust status and write trust.csv."""
    report = post.trust()
    path = run.out / "trust.csv"
    write_csv(report.table, path)
    run.files["trust table"] = path
    run.notes["trust"] = report
    return report


def pick_patients(run: DemoRun, report) -> tuple[str, str]:
    """A well-observed trustworthy patient and a data-poor one (the most flagged)."""
    sparse = set(run.notes["sparse"])
    severity = {"trustworthy": 0, "limited": 1, "insufficient": 2, "unreliable": 3}
    ranked = sorted(report, key=lambda a: severity.get(a.status.value, 9))
    rich = [a.patient_id for a in ranked if a.patient_id not in sparse]
    poor = [a.patient_id for a in reversed(ranked) if a.patient_id in sparse]
    return rich[0], (poor[0] if poor else ranked[-1].patient_id)


def step_twins(run: DemoRun, post, patients: tuple[str, ...]) -> None:
    """Each chosen patient's twin: predictions to 48 h with 90% intervals (CSV)."""
    import numpy as np

    from twin_uq.cli.predict import prediction_table

    for pid in patients:
        ds = post.twin(pid).predict(np.linspace(0.0, 48.0, 97), interval=0.9)
        path = run.out / f"prediction_{pid}.csv"
        write_csv(prediction_table(ds), path, index=False)
        run.files[f"prediction, patient {pid}"] = path


def step_reports(run: DemoRun, post, patients: tuple[str, ...]) -> None:
    """Clinician reports of the chosen patients and the cohort report (HTML)."""
    from twin_uq import report as rep

    for pid in patients:
        path = rep.patient(post, pid, run.out / f"report_{pid}.html")
        run.files[f"clinician report, patient {pid}"] = Path(path)
    run.files["cohort report"] = Path(rep.cohort(post, run.out / "cohort_report.html"))


def step_audit(run: DemoRun, post) -> None:
    """Fairness audit by sampling density and age band (HTML + CSV)."""
    import twin_uq as tq

    result = tq.audit(post, by=["sampling", "AGE"], bins={"AGE": [0.0, 60.0, 120.0]})
    path = run.out / "audit.html"
    result.to_html(path)
    run.files["fairness audit"] = path
    run.files["audit table"] = result.to_csv(run.out / "audit.csv")
    run.notes["audit"] = list(result.findings)


def run_demo(
    out: Path,
    *,
    n_patients: int = 24,
    chains: int = 4,
    warmup: int = 500,
    draws: int = 500,
    seed: int = 0,
    cache: bool = True,
) -> DemoRun:
    """Run every demo step and return what was written."""
    if cache:
        enable_compilation_cache()
    run = DemoRun(out=Path(out))
    run.out.mkdir(parents=True, exist_ok=True)

    def timed(label: str, func, *args, **kwargs):
        start = time.perf_counter()
        with spinner(label):
            value = func(*args, **kwargs)
        run.timings[label] = time.perf_counter() - start
        return value

    cohort = timed(
        f"Simulating {n_patients} patients ({MODEL}, 30% data-poor)",
        step_simulate, run, n_patients, seed,
    )
    post = timed(
        f"Fitting by NUTS ({chains} chains x {draws} draws)",
        step_fit, run, cohort, chains=chains, warmup=warmup, draws=draws, seed=seed,
    )
    report = timed("Assessing trust", step_trust, run, post)
    chosen = pick_patients(run, report)
    run.notes["chosen"] = chosen
    timed("Building twins and predicting", step_twins, run, post, chosen)
    timed("Writing reports", step_reports, run, post, chosen)
    timed("Auditing fairness by sampling and age band", step_audit, run, post)
    return run


def print_summary(run: DemoRun, seconds: float) -> None:
    """Diagnostics verdict, trust counts, audit findings and the files to open."""
    diag = run.notes["diagnostics"]
    report = run.notes["trust"]
    verdict = "[green]converged[/green]" if diag.converged else "[yellow]needs attention[/yellow]"
    out_console.rule("twin-uq demo")
    out_console.print(
        f"Fit: {verdict} (max R-hat {diag.max_rhat:.3f}, min bulk ESS {diag.min_ess_bulk:.0f}, "
        f"{diag.divergences} divergences)"
    )
    for reason in diag.reasons:
        out_console.print(f"  - {reason}", markup=False)
    counts = ", ".join(f"{k} {v}" for k, v in report.counts().items())
    n_sparse = len(run.notes["sparse"])
    out_console.print(f"Trust: {counts}  ({n_sparse} of {run.notes['n_patients']} patients are data-poor)")
    flagged_sparse = len(set(report.flagged()) & set(run.notes["sparse"]))
    out_console.print(
        f"  flagged: {len(report.flagged())} patients, {flagged_sparse} of them data-poor"
    )
    rich, poor = run.notes["chosen"]
    out_console.print(
        f"Twins: well-observed {rich} ({report[rich].status.value}), "
        f"data-poor {poor} ({report[poor].status.value})"
    )
    out_console.print("Audit findings:")
    for finding in run.notes["audit"][:6]:
        out_console.print(f"  - {finding}", markup=False)
    out_console.print(f"Files in {run.out}:")
    for label, path in run.files.items():
        out_console.print(f"  {label:<34} {path}", markup=False)
    out_console.print(f"Done in {seconds:.0f} s.")


@handle_errors
def demo(
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for every file the demo writes.")] = Path(
        "twin_uq_demo"
    ),
    patients: Annotated[int, typer.Option(hidden=True)] = 24,
    chains: Annotated[int, typer.Option(hidden=True)] = 4,
    warmup: Annotated[int, typer.Option(hidden=True)] = 500,
    draws: Annotated[int, typer.Option(hidden=True)] = 500,
    seed: Annotated[int, typer.Option(hidden=True)] = 0,
    cache: Annotated[bool, typer.Option("--cache/--no-cache", hidden=True)] = True,
    verbose: Verbose = False,
) -> None:
    """Run the whole workflow on a built-in synthetic cohort and write every output to a folder.

    Simulates 24 patients (one-compartment oral PK, 30% data-poor and older), fits them by
    NUTS, builds twins, assesses trust, writes clinician reports for a well-observed and a
    data-poor patient, the cohort report and a fairness audit.
    """
    start = time.perf_counter()
    run = run_demo(
        out, n_patients=patients, chains=chains, warmup=warmup, draws=draws, seed=seed, cache=cache
    )
    print_summary(run, time.perf_counter() - start)
