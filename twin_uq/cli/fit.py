"""``twin-uq fit``: fit a model to a cohort table and save the posterior."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from twin_uq.cli._console import out_console, spinner
from twin_uq.cli._errors import CLIError, handle_errors
from twin_uq.cli._options import Verbose, check_suffix, existing_file, parse_assignments


@handle_errors
def fit(
    data: Annotated[Path, typer.Argument(help="Cohort table (.csv or .parquet, NONMEM-style columns).")],
    model: Annotated[str, typer.Option("--model", "-m", help="Built-in model name or a model .py file.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Fit file to write (.nc or .zarr).")],
    method: Annotated[str, typer.Option(help="nuts (exact MCMC), svi or laplace (approximate).")] = "nuts",
    chains: Annotated[int, typer.Option(help="MCMC chains (run in parallel on CPU cores).")] = 4,
    warmup: Annotated[int, typer.Option(help="Warm-up iterations per chain.")] = 1000,
    draws: Annotated[int, typer.Option(help="Posterior draws per chain.")] = 1000,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    covariate: Annotated[
        list[str] | None,
        typer.Option(
            "--covariate",
            help='Covariate effects on a parameter, e.g. "CL=AGE,SEX" (repeatable).',
        ),
    ] = None,
    error: Annotated[
        list[str] | None,
        typer.Option(
            "--error",
            help='Residual error model of an output, e.g. "conc=proportional" (repeatable): '
            "additive, proportional, combined, lognormal, student_t.",
        ),
    ] = None,
    correlation: Annotated[
        str, typer.Option(help="Between-patient correlation: diagonal or lkj.")
    ] = "diagonal",
    sort: Annotated[
        bool, typer.Option("--sort", help="Sort each patient's rows by time instead of refusing.")
    ] = False,
    verbose: Verbose = False,
) -> None:
    """Fit a hierarchical Bayesian model to every patient of a cohort at once."""
    check_suffix(out, (".nc", ".zarr"))
    existing_file(data, "Cohort file")
    effects = parse_assignments(covariate, "--covariate", split_values=True)
    errors = parse_assignments(error, "--error")
    if method not in ("nuts", "svi", "laplace"):
        raise CLIError(f"--method {method!r}: choose nuts, svi or laplace.")
    if correlation not in ("diagonal", "lkj"):
        raise CLIError(f"--correlation {correlation!r}: choose diagonal or lkj.")

    import twin_uq as tq

    with spinner("Reading and validating the cohort"):
        cohort = tq.read_cohort(data, sort=sort)
        chosen = tq.load_model(model)
    n_obs = int(cohort.n_obs.sum())
    label = f"Fitting {chosen.name} to {cohort.n_patients} patients ({n_obs} observations), {method}"
    with spinner(label):
        post = tq.fit(
            chosen,
            cohort,
            method=method,
            chains=chains,
            warmup=warmup,
            draws=draws,
            seed=seed,
            covariate_effects=effects or None,
            error=errors or None,
            correlation=correlation,
            progress=False,
        )
    post.save(out)
    diag = post.diagnostics()
    out_console.print(str(diag), markup=False)
    out_console.print(f"Fit written to {out}")
