"""``twin-uq fit``: fit a model to a cohort table and save the posterior."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from twin_uq.cli._console import out_console, spinner
from twin_uq.cli._errors import CLIError, handle_errors
from twin_uq.cli._options import (
    CohortData,
    DataTimeUnit,
    ModelChoice,
    Seed,
    SortRows,
    Verbose,
    Warmup,
    check_suffix,
    existing_file,
    parse_assignments,
)


@handle_errors
def fit(
    data: CohortData,
    model: ModelChoice,
    out: Annotated[Path, typer.Option("--out", "-o", help="Fit file to write (.nc or .zarr).")],
    method: Annotated[
        str, typer.Option(help="nuts (exact MCMC), svi or laplace (approximate).")
    ] = "nuts",
    chains: Annotated[int, typer.Option(help="MCMC chains (run in parallel on CPU cores).")] = 4,
    warmup: Warmup = 1000,
    draws: Annotated[int, typer.Option(help="Posterior draws per chain.")] = 1000,
    seed: Seed = 0,
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
    iov: Annotated[
        list[str] | None,
        typer.Option(
            "--iov",
            help="A parameter with inter-occasion variability, e.g. CL (repeatable; needs "
            "an OCC column; then --centering defaults to 0).",
        ),
    ] = None,
    centering: Annotated[
        str | None,
        typer.Option(
            help="Random-effect parameterisation: auto (per patient, from the data), or one "
            "weight from 0 (non-centred) to 1 (centred) for everyone. Default: auto, or 0 "
            "with --iov.",
        ),
    ] = None,
    sort: SortRows = False,
    time_unit: DataTimeUnit = None,
    scheduler: Annotated[
        str | None,
        typer.Option(
            help="Fit in two stages on Dask: a scheduler address (tcp://host:8786), or "
            "'local' / 'local:N' for a local cluster of N worker processes (default 2).",
        ),
    ] = None,
    subsample: Annotated[
        int, typer.Option(help="With --scheduler: patients whose joint fit gives the population.")
    ] = 200,
    batch_size: Annotated[
        int, typer.Option(help="With --scheduler: patients per Dask task in stage 2.")
    ] = 32,
    verbose: Verbose = False,
) -> None:
    """Fit a hierarchical Bayesian model to every patient of a cohort at once.

    With --scheduler the fit runs in two stages (docs: Scale): the population posterior
    from a joint fit of --subsample patients, then every patient conditioned on it, in
    batches on the Dask workers.
    """
    check_suffix(out, (".nc", ".zarr"))
    existing_file(data, "Cohort file")
    effects = parse_assignments(covariate, "--covariate", split_values=True)
    errors = parse_assignments(error, "--error")
    if method not in ("nuts", "svi", "laplace"):
        raise CLIError(f"--method {method!r}: choose nuts, svi or laplace.")
    if correlation not in ("diagonal", "lkj"):
        raise CLIError(f"--correlation {correlation!r}: choose diagonal or lkj.")
    # "auto" centring does not handle occasion effects: with --iov the default is 0.
    weight = parse_centering(centering) if centering is not None else (0.0 if iov else "auto")
    if iov and scheduler is not None:
        raise CLIError(
            "--iov with --scheduler: the two-stage fit does not handle inter-occasion "
            "variability; fit in one stage (leave out --scheduler)."
        )
    local_workers = parse_scheduler(scheduler)
    if scheduler is not None and (subsample < 1 or batch_size < 1):
        raise CLIError(f"--subsample {subsample} and --batch-size {batch_size} must be >= 1.")

    import twin_uq as tq

    with spinner("Reading and validating the cohort"):
        cohort = tq.read_cohort(data, sort=sort, time_unit=time_unit)
        chosen = tq.load_model(model)
    # The load summary: how every column was read (covariates, ignored, time unit: declared,
    # or "assumed" in the model's unit, which the pre-fit check then tests against the data).
    out_console.print(str(cohort.summary(model=chosen)), markup=False)
    n_obs = int(cohort.n_obs.sum())
    label = (
        f"Fitting {chosen.name} to {cohort.n_patients} patients ({n_obs} observations), {method}"
    )
    population = dict(
        covariate_effects=effects or None,
        error=errors or None,
        correlation=correlation,
        centering=weight,
        **({"iov": list(iov)} if iov else {}),
    )
    if scheduler is None:
        with spinner(label):
            try:
                post = tq.fit(chosen, cohort, method=method, chains=chains, warmup=warmup,
                              draws=draws, seed=seed, progress=False, **population)  # fmt: skip
            except tq.FitFailedError as err:
                _keep_failed(err, out)
                raise
    else:
        where = f"a local cluster of {local_workers} workers" if local_workers else scheduler
        with spinner(f"{label}, two stages on {where}"), _cluster(scheduler, local_workers) as c:
            stage1 = dict(chains=chains, warmup=warmup, draws=draws, **population)
            post = _two_stage(chosen, cohort, c, population_method=method, seed=seed,
                              subsample=subsample, batch_size=batch_size,
                              population_kwargs=stage1)  # fmt: skip
    post.save(out)
    diag = post.diagnostics()
    out_console.print(str(diag), markup=False)
    out_console.print(f"Fit written to {out}")


def failed_fit_path(out: Path) -> Path:
    """Where ``twin-uq fit --out OUT`` keeps a fit whose sampler did not sample."""
    return out.with_name(f"{out.stem}.failed{out.suffix}")


def _keep_failed(err, out: Path) -> None:
    """Save the failed fit beside ``out`` (never as ``out``) and say where, for inspection."""
    path = failed_fit_path(out)
    err.posterior.save(path)
    out_console.print(str(err.posterior.diagnostics()), markup=False)
    out_console.print(
        f"The failed fit is written to {path} for finding the cause (twin-uq refuses to "
        f"summarise, predict from or report it); no fit was written to {out}.",
        markup=False,
    )


def parse_centering(value: str) -> float | str:
    """``--centering``: ``auto`` or a weight in [0, 1]."""
    if value == "auto":
        return value
    try:
        weight = float(value)
    except ValueError:
        weight = float("nan")
    if not 0.0 <= weight <= 1.0:
        raise CLIError(f"--centering {value!r}: choose auto or a number from 0 to 1.")
    return weight


def parse_scheduler(scheduler: str | None) -> int | None:
    """Workers of a local cluster for ``local`` / ``local:N`` (None for an address).

    Raises
    ------
    CLIError
        ``local:N`` with N not a positive integer, or an address without ``host:port``.
    """
    if scheduler is None:
        return None
    name, _, count = scheduler.partition(":")
    if name == "local":
        if not count:
            return 2
        if not count.isdigit() or int(count) < 1:
            raise CLIError(f"--scheduler {scheduler!r}: write local:N with N >= 1 workers.")
        return int(count)
    if "://" not in scheduler and ":" not in scheduler:
        raise CLIError(
            f"--scheduler {scheduler!r}: give a scheduler address such as tcp://host:8786, "
            "or 'local' for a local cluster."
        )
    return None


def _cluster(scheduler: str, local_workers: int | None):
    """A context manager yielding what ``cluster=`` accepts: a LocalCluster or the address."""
    import contextlib

    if local_workers is None:
        return contextlib.nullcontext(scheduler)
    try:
        from distributed import LocalCluster
    except ImportError as err:
        raise CLIError("--scheduler needs Dask: pip install 'twin-uq[dask]'.") from err
    return LocalCluster(n_workers=local_workers, threads_per_worker=1, processes=True,
                        dashboard_address=":0")  # fmt: skip


def _two_stage(model, cohort, cluster, **kwargs):
    try:
        from twin_uq.distributed import fit_two_stage
    except ImportError as err:
        raise CLIError("--scheduler needs Dask: pip install 'twin-uq[dask]'.") from err
    try:
        return fit_two_stage(model, cohort, cluster=cluster, **kwargs)
    except OSError as err:  # distributed raises OSError when no scheduler answers
        raise CLIError(f"--scheduler: could not use the Dask scheduler: {err}") from err
