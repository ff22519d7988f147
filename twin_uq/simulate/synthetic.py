"""Synthetic cohorts with known truth: for recovery tests, calibration studies and the demo.

``simulate_cohort`` draws patients from a population distribution of the same form the fit
assumes (log-normal individual parameters around typical values, allometric and covariate
effects), simulates their observations under a sampling design with residual error and
below-limit censoring, and returns the :class:`~twin_uq.data.Cohort` together with the
true parameters.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import jax.numpy as jnp
import numpy as np
import pandas as pd

from twin_uq.data import Cohort, read_cohort
from twin_uq.data.time_units import known_time_unit
from twin_uq.errors import InputError, UnavailableError
from twin_uq.model.base import Model
from twin_uq.model.load import load_model
from twin_uq.model.scales import to_natural, to_unconstrained
from twin_uq.simulate.schedule import Bolus, Infusion, Schedule, Signal, stack_schedules
from twin_uq.simulate.solve import solve_cohort
from twin_uq.simulate.status import describe_failures

__all__ = ["Design", "SimulatedCohort", "Truth", "simulate_cohort"]


@dataclass(frozen=True)
class Design:
    """How a synthetic cohort is dosed, sampled and described.

    Parameters
    ----------
    times
        Observation times of a well-sampled patient (model time unit).
    doses
        Dosing regimen given to every patient (boluses and infusions).
    outputs
        Outputs observed at each time (default: the model's first output).
    sparse_fraction
        Fraction of patients in a data-poor subgroup ("sparse" in column ``sampling``).
    sparse_times
        Observation times of the data-poor subgroup; default: the first and the last
        of ``times``. An empty tuple gives patients with doses but no observations.
    jitter
        Irregular sampling: each time moves by a uniform fraction (±``jitter``) of the gap
        to its neighbours.
    lloq
        Lower limit of quantification per output (``None``: no censoring).
    covariates
        Distributions of baseline covariates: ``("lognormal", median, sd_log)``,
        ``("normal", mean, sd)``, ``("uniform", low, high)``, ``("categorical", levels,
        probabilities)``.
    effects
        True covariate effects on log parameters: ``{"CL": {"AGE": -0.01}}`` adds
        ``-0.01 · (AGE − median AGE)`` to ``log CL``.
    signals
        Measured input signals shared by all patients: ``{"insulin": (times, values)}``.
    signal_scale_sd
        Between-patient log-SD of a multiplicative scale of the signals' excursion from
        their first value.
    sparse_covariate_shift
        Added to each continuous covariate of the data-poor subgroup (e.g. older patients).
    """

    times: Sequence[float]
    doses: Sequence[Bolus | Infusion] = ()
    outputs: Sequence[str] | None = None
    sparse_fraction: float = 0.0
    sparse_times: Sequence[float] | None = None
    jitter: float = 0.0
    lloq: Mapping[str, float] = field(default_factory=dict)
    covariates: Mapping[str, tuple] = field(default_factory=dict)
    effects: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    signals: Mapping[str, tuple[Sequence[float], Sequence[float]]] = field(default_factory=dict)
    signal_scale_sd: float = 0.0
    sparse_covariate_shift: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Truth:
    """The true values behind a synthetic cohort.

    Attributes
    ----------
    typical, omega
        Population typical values (natural scale, at reference covariates) and
        between-patient SDs of the parameters on their latent scale (``log``, or ``logit``
        for a logit-normal parameter; 0 for a fixed effect), by parameter name.
    sigma_add, sigma_prop
        Residual error parameters by output name.
    theta
        DataFrame (patient × parameter) of individual parameters.
    error
        Residual error model by output name.
    """

    typical: dict[str, float]
    omega: dict[str, float]
    sigma_add: dict[str, float]
    sigma_prop: dict[str, float]
    theta: pd.DataFrame
    error: dict[str, str]


@dataclass(frozen=True)
class SimulatedCohort:
    """A synthetic cohort and its truth; ``noise_free`` holds predictions without error."""

    cohort: Cohort
    truth: Truth
    table: pd.DataFrame


def _draw_covariate(rng: np.random.Generator, spec: tuple, n: int) -> np.ndarray:
    kind = spec[0]
    if kind == "lognormal":
        return spec[1] * np.exp(spec[2] * rng.standard_normal(n))
    if kind == "normal":
        return spec[1] + spec[2] * rng.standard_normal(n)
    if kind == "uniform":
        return rng.uniform(spec[1], spec[2], n)
    if kind == "categorical":
        return rng.choice(np.asarray(spec[1], dtype=object), size=n, p=spec[2])
    raise InputError(f"Unknown covariate distribution {kind!r}.")


def simulate_cohort(
    model: str | Model,
    n_patients: int,
    design: Design,
    seed: int = 0,
    *,
    typical: Mapping[str, float] | None = None,
    omega: Mapping[str, float] | float = 0.3,
    sigma_add: Mapping[str, float] | None = None,
    sigma_prop: Mapping[str, float] | None = None,
    error: Mapping[str, str] | None = None,
    id_prefix: str = "P",
) -> SimulatedCohort:
    """Draw a synthetic cohort from a population distribution, with its true parameters.

    Parameters
    ----------
    model
        Model name, file or instance.
    n_patients
        Number of patients.
    design
        Dosing, sampling and covariate design.
    seed
        Seed of every random choice (patients, covariates, noise).
    typical, omega, sigma_add, sigma_prop
        True population values; defaults: the model's typical values, 0.3, half the
        prior scale of the additive SD and 0.1 proportional SD.
    error
        Residual error model by output (default: each output's own).

    Returns
    -------
    SimulatedCohort
    """
    model = load_model(model)
    if n_patients < 1:
        raise InputError(f"n_patients must be >= 1, got {n_patients}.")
    rng = np.random.default_rng(seed)
    names = model.parameter_names
    typ = {p.name: p.typical for p in model.parameters} | dict(typical or {})
    om = (
        {n: float(omega) for n in names}
        if not isinstance(omega, Mapping)
        else {n: float(omega.get(n, 0.3)) for n in names}
    )
    errs = {o.name: (error or {}).get(o.name, o.error) for o in model.outputs}
    s_add = {o.name: 0.5 * o.sigma_prior_scale[0] for o in model.outputs} | dict(sigma_add or {})
    s_prop = {o.name: 0.1 for o in model.outputs} | dict(sigma_prop or {})
    outputs = list(design.outputs or [model.output_names[0]])
    for o in outputs:
        model.output_index(o)
    ids = [f"{id_prefix}{i + 1:0{max(2, len(str(n_patients)))}d}" for i in range(n_patients)]
    n_sparse = round(design.sparse_fraction * n_patients)
    sparse = np.zeros(n_patients, dtype=bool)
    sparse[rng.choice(n_patients, n_sparse, replace=False)] = True

    cov = pd.DataFrame(index=ids)
    for name, spec in design.covariates.items():
        values = _draw_covariate(rng, spec, n_patients)
        if spec[0] != "categorical" and name in design.sparse_covariate_shift:
            values = values + design.sparse_covariate_shift[name] * sparse
        cov[name] = values
    for p in model.parameters:
        if not p.bsv:
            if isinstance(omega, Mapping) and float(omega.get(p.name, 0.0)) != 0.0:
                raise InputError(
                    f"omega given for {p.name!r}, which model {model.name!r} declares a fixed "
                    "effect (bsv=False): it has no between-patient variability."
                )
            om[p.name] = 0.0
        if p.scale == "logit" and not 0.0 < float(typ[p.name]) < 1.0:
            raise InputError(
                f"typical value of {p.name!r} must lie strictly between 0 and 1 (a logit-normal "
                f"parameter), got {typ[p.name]}."
            )
    # Latent scale: log, or logit for a logit-normal parameter (twin_uq.model.scales).
    log_theta = to_unconstrained(model, np.array([typ[n] for n in names], dtype=float))[
        None, :
    ] + rng.standard_normal((n_patients, len(names))) * np.array([om[n] for n in names])
    for allo in model.allometric:
        k = names.index(allo.parameter)
        x = (
            cov[allo.covariate].to_numpy(float)
            if allo.covariate in cov
            else np.full(n_patients, model.covariate_defaults.get(allo.covariate, allo.reference))
        )
        log_theta[:, k] += allo.exponent * np.log(x / allo.reference)
    for par, effs in design.effects.items():
        k = names.index(par)
        for c, coef in effs.items():
            x = cov[c].to_numpy(float)
            log_theta[:, k] += coef * (x - np.median(x))
    theta = to_natural(model, log_theta)

    times_per_patient = []
    base = np.asarray(design.times, dtype=float)
    for i in range(n_patients):
        t = (
            base
            if not sparse[i]
            else np.asarray(
                design.sparse_times if design.sparse_times is not None else base[[0, -1]],
                dtype=float,
            )
        )
        if design.jitter and t.size > 1:
            gaps = np.diff(np.concatenate([[0.0], t]))
            t = np.sort(np.maximum(t + design.jitter * gaps * rng.uniform(-0.5, 0.5, t.size), 1e-3))
        times_per_patient.append(t)

    signal_values = {}
    for sname, (st, sv) in design.signals.items():
        sv = np.asarray(sv, dtype=float)
        scale = np.exp(design.signal_scale_sd * rng.standard_normal(n_patients))
        signal_values[sname] = (
            np.asarray(st, dtype=float),
            sv[0] + (sv - sv[0])[None, :] * scale[:, None],
        )
    boluses = [d for d in design.doses if isinstance(d, Bolus)]
    infusions = [d for d in design.doses if isinstance(d, Infusion)]
    schedules = []
    for i in range(n_patients):
        sigs = [Signal(n, st, vals[i]) for n, (st, vals) in signal_values.items()]
        schedules.append(Schedule.build(boluses, infusions, sigs, signal_names=list(model.signals)))
    batched = stack_schedules(schedules)
    n_t = max(max((t.size for t in times_per_patient), default=1), 1)
    tgrid = np.zeros((n_patients, n_t))
    for i, t in enumerate(times_per_patient):
        tgrid[i, : t.size] = t
        tgrid[i, t.size :] = t[-1] if t.size else 0.0
    cov_mat = np.zeros((n_patients, len(model.covariates)))
    for j, c in enumerate(model.covariates):
        cov_mat[:, j] = cov[c].to_numpy(float) if c in cov else model.covariate_defaults[c]
    # Known truth comes from an adaptive solve even when the model fits on a fixed grid.
    traj = solve_cohort(
        model,
        jnp.asarray(theta),
        jnp.asarray(cov_mat),
        batched,
        jnp.asarray(tgrid),
        model.solver.adaptive_reference(),
    )
    outs, ok = np.asarray(traj.outputs), np.asarray(traj.ok)
    if not np.all(ok):
        bad = [ids[i] for i in np.flatnonzero(~ok)]
        raise UnavailableError(
            f"Simulation failed for true parameters of patients {bad[:5]}; adjust the design. "
            + describe_failures(traj.status, "patient")
        )

    rows: list[dict] = []
    for i, pid in enumerate(ids):
        base_cov = {c: cov.loc[pid, c] for c in cov.columns}
        start = len(rows)
        for d in design.doses:
            if isinstance(d, Bolus):
                rows.append(
                    dict(
                        id=pid,
                        time=d.time,
                        dv=np.nan,
                        amt=d.amount,
                        evid=1,
                        cmt=d.cmt or model.default_dose_cmt,
                        rate=0.0,
                    )
                )
            else:
                rows.append(
                    dict(
                        id=pid,
                        time=d.start,
                        dv=np.nan,
                        amt=d.rate * d.duration,
                        evid=1,
                        cmt=d.cmt or model.default_dose_cmt,
                        rate=d.rate,
                    )
                )
        for sname, (st, vals) in signal_values.items():
            for t, v in zip(st, vals[i], strict=True):
                rows.append(dict(id=pid, time=float(t), evid=2, **{sname: float(v)}))
        t = times_per_patient[i]
        for o in outputs:
            k = model.output_index(o)
            f = outs[i, : t.size, k]
            y = _noisy(rng, f, errs[o], s_add[o], s_prop[o])
            lloq = design.lloq.get(o)
            for tt, yy in zip(t, y, strict=True):
                row = dict(id=pid, time=float(tt), dv=float(yy), amt=0.0, evid=0, cmt=0, rate=0.0)
                if len(model.outputs) > 1:
                    row["output"] = o
                if lloq is not None:
                    row["lloq"] = lloq
                    if yy < lloq:
                        row["dv"] = np.nan
                rows.append(row)
        for r in rows[start:]:
            r.update(base_cov)
            r["sampling"] = "sparse" if sparse[i] else "rich"
    table = pd.DataFrame(rows)
    order = {"1": 0, "2": 1, "0": 2}
    table["_o"] = table["evid"].astype(int).astype(str).map(order)
    table = (
        table.sort_values(["id", "time", "_o"], kind="stable")
        .drop(columns="_o")
        .reset_index(drop=True)
    )
    for c in ("amt", "rate", "cmt"):
        table[c] = table[c].fillna(0.0)
    # Simulated in the model's unit: declared, so nothing is assumed when it is fitted.
    cohort = read_cohort(
        table,
        name=f"simulated {model.name} (seed {seed})",
        time_unit=known_time_unit(model.card.time_unit),
    )
    truth = Truth(
        typical=typ,
        omega=om,
        sigma_add=s_add,
        sigma_prop=s_prop,
        theta=pd.DataFrame(theta, index=pd.Index(ids, name="patient"), columns=list(names)),
        error=errs,
    )
    return SimulatedCohort(cohort=cohort, truth=truth, table=table)


def _noisy(rng: np.random.Generator, f: np.ndarray, kind: str, a: float, b: float) -> np.ndarray:
    z = rng.standard_normal(f.shape)
    if kind == "additive":
        return f + a * z
    if kind == "proportional":
        return f + b * np.abs(f) * z
    if kind == "lognormal":
        return np.maximum(f, 1e-12) * np.exp(b * z)
    sd = np.sqrt(a**2 + (b * f) ** 2)
    if kind == "student_t":
        return f + sd * rng.standard_t(4.0, f.shape)
    return f + sd * z
