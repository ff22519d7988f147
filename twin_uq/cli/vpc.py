"""``twin-uq vpc``: a visual predictive check of a fit by simulating new patients."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from twin_uq.cli._console import out_console, spinner
from twin_uq.cli._errors import CLIError, handle_errors
from twin_uq.cli._io import ensure_parent, load_fit
from twin_uq.cli._options import FitFile, FitModel, Interval, Seed, Verbose, check_suffix


def _bins(text: str | None) -> str | int | list[float]:
    if text is None or text == "auto":
        return "auto"
    try:
        values = [float(x) for x in text.split(",")]
    except ValueError:
        raise CLIError(
            f"--bins {text}: expected 'auto', a number of bins or edges 0,1,2,..."
        ) from None
    return int(values[0]) if len(values) == 1 else values


@handle_errors
def vpc(
    fit_file: FitFile,
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Write .html (page with table) or .png / .svg.")
    ],
    by: Annotated[
        str | None, typer.Option("--by", help="Stratify by this covariate or group column.")
    ] = None,
    pc: Annotated[bool, typer.Option("--pc", help="Prediction-corrected VPC.")] = False,
    x: Annotated[
        str, typer.Option("--x", help="x axis: time, or tad (time after the most recent dose).")
    ] = "time",
    bins: Annotated[
        str | None,
        typer.Option(help="auto, a number of quantile bins, or edges such as 0,1,2,4,8,24."),
    ] = None,
    nsim: Annotated[int, typer.Option("--nsim", help="Simulated cohorts.")] = 500,
    interval: Interval = 0.9,
    seed: Seed = 0,
    model: FitModel = None,
    verbose: Verbose = False,
) -> None:
    """Visual predictive check: new patients simulated from the population posterior."""
    suffix = check_suffix(out, (".html", ".png", ".svg"))
    if x not in ("time", "tad"):
        raise CLIError(f"--x must be time or tad, got {x!r}.")
    post = load_fit(fit_file, model)
    from twin_uq.checks import vpc as run_vpc

    with spinner(f"Simulating {nsim} cohorts of the observed design"):
        result = run_vpc(
            post, x=x, pc=pc, by=by, bins=_bins(bins), nsim=nsim, interval=interval, seed=seed
        )
    ensure_parent(out)
    if suffix == ".html":
        from twin_uq.report.vpc_page import vpc_page

        vpc_page(post, result, out)
    else:
        import matplotlib.pyplot as plt

        fig = result.plot()
        fig.savefig(out, dpi=150)
        plt.close(fig)
    s = result.summary()
    label = " (approximate posterior)" if result.approximate else ""
    out_console.print(
        f"{int(s['outside'].sum())} of {int(s['compared'].sum())} observed percentiles outside "
        f"their simulated {100 * interval:g}% intervals{label}.",
        markup=False,
    )
    out_console.print(f"VPC written to {out}")
