"""``twin-uq compare``: leave-one-out comparison of fits of the same cohort."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from twin_uq._csv import write_csv
from twin_uq.cli._console import out_console, spinner
from twin_uq.cli._errors import CLIError, handle_errors
from twin_uq.cli._io import load_fit
from twin_uq.cli._options import Seed, Verbose, check_suffix

_COLUMNS = ("rank", "elpd", "se", "elpd_diff", "dse", "p_loo", "n_high_k", "n_refits", "weight")


def format_table(table) -> str:
    """The comparison table as aligned plain text (numbers rounded for reading)."""
    shown = table[list(_COLUMNS)].copy()
    for col in ("elpd", "se", "elpd_diff", "dse", "p_loo"):
        shown[col] = shown[col].map(lambda x: f"{x:.1f}")
    shown["weight"] = shown["weight"].map(lambda x: f"{x:.3f}")
    shown["approximate"] = table["approximate"].map(lambda x: "yes" if x else "no")
    return shown.to_string()


@handle_errors
def compare(
    fit_files: Annotated[
        list[Path], typer.Argument(metavar="FIT...", help="Two or more fit files of one cohort.")
    ],
    by: Annotated[
        str,
        typer.Option("--by", help="Unit left out: 'patient' (default) or 'observation'."),
    ] = "patient",
    refit: Annotated[
        int,
        typer.Option(
            "--refit",
            help="Exact refits (at most this many per fit) of patients with Pareto k > 0.7.",
        ),
    ] = 0,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Also write the table as .csv.")
    ] = None,
    seed: Seed = 0,
    verbose: Verbose = False,
) -> None:
    """Compare fits by leave-one-out predictive accuracy (PSIS-LOO), with stacking weights."""
    import twin_uq as tq

    if len(fit_files) < 2:
        raise CLIError("compare needs at least two fit files.")
    if out is not None:
        check_suffix(out, (".csv",))
    posteriors = {}
    for path in fit_files:
        label = path.stem
        if label in posteriors:
            label = str(path)
        posteriors[label] = load_fit(path)
    with spinner(f"Leave-one-{by}-out of {len(posteriors)} fits"):
        table = tq.compare(posteriors, by=by, refit=refit > 0, max_refits=max(refit, 0), seed=seed)
    out_console.print(f"Leave-one-{by}-out comparison (best first):", markup=False)
    out_console.print(format_table(table), markup=False)
    if table.attrs["approximate"]:
        out_console.print(
            "Approximate fits (SVI/Laplace) are compared: their LOO is approximate too.",
            markup=False,
        )
    high = table[table["n_high_k"] > 0]
    for name, row in high.iterrows():
        out_console.print(
            f"{name}: {row['n_high_k']} patients with Pareto k > 0.7 — their LOO estimates "
            "are unreliable; rerun with --refit N for exact refits.",
            markup=False,
        )
    if out is not None:
        write_csv(table.reset_index(), out)
        out_console.print(f"Comparison table written to {out}")
