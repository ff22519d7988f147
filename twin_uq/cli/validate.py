"""``twin-uq validate``: simulation-based calibration on a small built-in problem."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from twin_uq._csv import write_csv
from twin_uq.cli._console import err_console, out_console
from twin_uq.cli._errors import handle_errors
from twin_uq.cli._options import Seed, Verbose, check_suffix
from twin_uq.errors import UnavailableError


def small_design():
    """The built-in SBC problem: one-compartment oral PK, 6 samples after one 100 mg dose."""
    import twin_uq as tq

    return tq.Design(times=[0.5, 1.0, 2.0, 4.0, 8.0, 24.0], doses=[tq.Bolus(0.0, 100.0, 1)])


@handle_errors
def validate(
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Write ranks (.csv) per replicate.")
    ] = None,
    model: Annotated[
        str, typer.Option(help="Model simulated and fitted (one absorbing dose of 100).")
    ] = "one_compartment_oral",
    replicates: Annotated[int, typer.Option(help="Simulate-fit replicates.")] = 8,
    patients: Annotated[int, typer.Option(help="Patients per simulated cohort.")] = 8,
    warmup: Annotated[int, typer.Option(help="Warm-up per fit.")] = 200,
    draws: Annotated[int, typer.Option(help="Draws per fit (ranks among 99 thinned draws).")] = 200,
    seed: Seed = 0,
    verbose: Verbose = False,
) -> None:
    """Check by simulation-based calibration that population posteriors are calibrated.

    Each replicate draws population values from the prior, simulates a cohort, fits it and
    records the rank of each true value among the posterior draws; calibrated fits give
    uniform ranks (chi-square p-values per quantity). Defaults are small (minutes); use
    more replicates for a real check.
    """
    suffix = check_suffix(out, (".csv",)) if out is not None else None
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    from twin_uq.validate import run_sbc

    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=False,
        disable=not err_console.is_terminal,
    ) as bar:
        task = bar.add_task("SBC replicates", total=replicates)
        result = run_sbc(
            model,
            small_design(),
            n_patients=patients,
            n_replicates=replicates,
            seed=seed,
            n_rank_draws=min(99, draws),
            fit_kwargs={"chains": 1, "warmup": warmup, "draws": draws},
            progress=lambda r: bar.advance(task),
        )
    if result.ranks.empty:
        reasons = "; ".join(f"replicate {r}: {why}" for r, why in result.failed[:3])
        raise UnavailableError(f"every SBC replicate failed ({reasons}).")
    table = result.uniformity(bins=min(5, max(2, replicates // 2)))
    out_console.print(
        f"SBC: {len(result.ranks)} replicates ({len(result.failed)} failed), ranks among "
        f"{result.n_rank_draws} draws; chi-square p-value per quantity (small = miscalibrated):"
    )
    for q, row in table.iterrows():
        out_console.print(f"  {q:<24} p = {row['p_value']:.3f}", markup=False)
    if suffix == ".csv":
        write_csv(result.ranks, out, index_label="replicate")
        out_console.print(f"Ranks written to {out}")
