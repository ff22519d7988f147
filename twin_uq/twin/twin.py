"""``PosteriorTwin``: one patient's slice of a cohort posterior, and what it can answer.

A twin holds the patient's posterior draws of the individual parameters (each with the
residual error parameters of its draw), the patient's covariates, dosing history and
observations, and the population posterior needed to update it with new data. It is
immutable: :meth:`PosteriorTwin.update` returns a new twin.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import arviz_stats as azs
import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import xarray as xr

from twin_uq.errors import InputError, UnavailableError
from twin_uq.posterior.patient import PatientPosterior, UnknownPatientError
from twin_uq.simulate.schedule import Schedule, Signal, as_schedule
from twin_uq.simulate.status import SolveStatus, describe_failures
from twin_uq.twin.conditioning import update_twin
from twin_uq.twin.criteria import Criterion, Event, event_grid
from twin_uq.twin.decisions import attainment, recommend_dose, what_if
from twin_uq.twin.engine import _bucket, bucket_schedule, covering_in_buckets, predict_draws
from twin_uq.twin.forecast import forecast_twin, risk_twin
from twin_uq.twin.inputs import (
    ScheduleLike,
    check_doses,
    check_interval,
    check_times,
    with_future_covariates,
)
from twin_uq.twin.next_sample import next_measurement
from twin_uq.twin.occasions import occasion_attrs, with_new_occasion
from twin_uq.twin.policy import compare_policies
from twin_uq.twin.results import (
    ProbabilityResult,
    UpdateRecord,
    hit_fraction,
)

if TYPE_CHECKING:
    from twin_uq.posterior.cohort import CohortPosterior

__all__ = ["PosteriorTwin", "ScheduleLike", "UnknownPatientError"]


@dataclass(frozen=True, eq=False)
class PosteriorTwin:
    """One patient's posterior twin. Build it with ``post.twin(patient_id)``.

    A twin is a patient's posterior (:class:`~twin_uq.posterior.PatientPosterior`: draws,
    residual parameters, observations, schedule, covariates, population prior) with the
    questions one asks of it (predict, what-if, probability, dose) and the updates applied
    since the cohort fit. Its fields are read through to the posterior: ``twin.theta`` is
    ``twin.posterior.theta``, and so on for ``patient_id``, ``model``, ``settings``,
    ``add``, ``prop``, ``nu``, ``n_chains``, ``covariates``, ``baseline``, ``schedule``,
    ``observations``, ``table``, ``population``, ``error_code``, ``approximate`` and
    ``population_only``.

    Attributes
    ----------
    posterior
        The patient's posterior the twin answers from (after any updates).
    history
        Updates applied since the cohort fit.
    """

    posterior: PatientPosterior
    history: tuple[UpdateRecord, ...] = ()

    # ---- construction ------------------------------------------------------------------
    @classmethod
    def from_posterior(
        cls,
        post: CohortPosterior,
        patient_id: object,
        future_covariates: Mapping[float, Mapping[str, object]] | None = None,
        new_occasion_at: float | None = None,
    ) -> PosteriorTwin:
        """The twin of a fitted patient (``post.twin(patient_id)``).

        ``future_covariates``: covariate values from given times after the record on
        (``{48.0: {"WT": 3.4}}``; a what-if). Without them the last recorded value of a
        time-varying covariate holds in the future. ``new_occasion_at`` (fits with
        ``iov``): forecasts from that time on are for a new occasion
        (:func:`~twin_uq.twin.occasions.with_new_occasion`); else the last occasion holds.

        Raises
        ------
        UnknownPatientError
            (a ``KeyError``) for an id not in the fit, naming close matches.
        """
        patient = post.patient(patient_id)
        if future_covariates:
            patient = with_future_covariates(post, patient, future_covariates)
        if new_occasion_at is not None:
            patient = with_new_occasion(patient, new_occasion_at)
        return cls(patient)

    # ---- the patient's posterior, read through -----------------------------------------
    patient_id = property(lambda self: self.posterior.patient_id, doc="The patient.")
    model = property(lambda self: self.posterior.model, doc="The physiological model.")
    settings = property(lambda self: self.posterior.settings, doc="ODE solver settings.")
    theta = property(lambda self: self.posterior.theta, doc="``(S, K)`` parameter draws.")
    add = property(lambda self: self.posterior.add, doc="``(S, O)`` additive residual SDs.")
    prop = property(lambda self: self.posterior.prop, doc="``(S, O)`` proportional SDs.")
    nu = property(lambda self: self.posterior.nu, doc="``(S,)`` Student-t dof.")
    tau = property(lambda self: self.posterior.tau, doc="``(S, O)`` OU correlation times.")
    n_chains = property(lambda self: self.posterior.n_chains, doc="Chains of the draws.")
    covariates = property(lambda self: self.posterior.covariates, doc="``(C,)`` covariates.")
    baseline = property(lambda self: self.posterior.baseline, doc="Baseline covariates.")
    schedule = property(lambda self: self.posterior.schedule, doc="Dosing history.")
    observations = property(lambda self: self.posterior.observations, doc="Observations.")
    table = property(lambda self: self.posterior.table, doc="The patient's table rows.")
    population = property(lambda self: self.posterior.population, doc="Population prior.")
    error_code = property(lambda self: self.posterior.error_code, doc="Error model codes.")
    approximate = property(lambda self: self.posterior.approximate, doc="Approximate fit.")
    population_only = property(
        lambda self: self.posterior.population_only, doc="A new patient without data."
    )

    # ---- facts -------------------------------------------------------------------------
    @property
    def n_draws(self) -> int:
        """Number of posterior draws ``S``."""
        return self.theta.shape[0]

    @property
    def last_observation_time(self) -> float:
        """Time of the last observation (NaN without observations)."""
        obs = self.observations
        return float(obs["time"].max()) if len(obs) else float("nan")

    def parameters(self, interval: float = 0.9) -> pd.DataFrame:
        """Posterior median and central interval of each individual parameter."""
        interval = check_interval(interval)
        a = (1 - interval) / 2
        q = np.quantile(self.theta, [0.5, a, 1 - a], axis=0)
        return pd.DataFrame(
            {
                "median": q[0],
                "lower": q[1],
                "upper": q[2],
                "unit": [p.unit for p in self.model.parameters],
            },
            index=pd.Index(self.model.parameter_names, name="parameter"),
        )

    def __repr__(self) -> str:
        kind = " (population only)" if self.population_only else ""
        return (
            f"<PosteriorTwin {self.patient_id!r}{kind}: {self.model.name}, {self.n_draws} draws, "
            f"{len(self.observations)} observations, {len(self.history)} updates>"
        )

    # ---- simulation --------------------------------------------------------------------
    def _as_schedule(self, schedule: ScheduleLike | None, label: str = "schedule") -> Schedule:
        if schedule is None:
            sched = self.schedule
        elif isinstance(schedule, Schedule):
            sched = schedule
        else:
            try:
                sched = as_schedule(
                    schedule, self._signals(), signal_names=list(self.model.signals)
                )
            except ValueError as err:
                raise InputError(f"{label}: {err}") from None
        if sched.bolus_time.ndim != 1:
            raise InputError("A twin takes one patient's (unbatched) Schedule.")
        if schedule is not None:
            check_doses(sched, self.model, label)
        return bucket_schedule(sched)

    def _signals(self) -> list[Signal]:
        # A new regimen keeps the patient's own measured input signals (e.g. insulin).
        if not self.model.signals:
            return []
        t = np.asarray(self.schedule.signal_time)
        m = np.asarray(self.schedule.signal_mask)
        v = np.asarray(self.schedule.signal_value)
        return [Signal(n, tuple(t[m]), tuple(v[m, j])) for j, n in enumerate(self.model.signals)]

    def _draw_index(self, draws: int | None) -> np.ndarray:
        S = self.n_draws
        if draws is None or int(draws) >= S:
            return np.arange(S)
        if int(draws) < 1:
            raise InputError(f"draws must be a positive number, got {draws}.")
        return np.unique(np.linspace(0, S - 1, int(draws)).round().astype(int))

    def _simulate(
        self, times: np.ndarray, schedule: Schedule, idx: np.ndarray, seed: int
    ) -> tuple[np.ndarray, np.ndarray, SolveStatus]:
        # Pad times and draws to power-of-two sizes (repeating the last one) so that a few
        # compiled shapes serve every request; the padding is sliced off again.
        T, D = times.size, idx.size
        t_pad = np.concatenate([times, np.full(_bucket(T, 16) - T, times[-1])])
        i_pad = np.concatenate([idx, np.full(_bucket(D, 16) - D, idx[-1])])
        # Time-varying covariates: each draw's parameters on every segment of the record,
        # the last segment's carried on past the last record.
        change_time = self.posterior.change_time
        theta = self.theta if change_time is None else self.posterior.theta_path
        extra = () if change_time is None else (jnp.asarray(change_time),)
        f, y, status = predict_draws(
            self.model,
            covering_in_buckets(self.settings, t_pad),
            jnp.asarray(theta[i_pad]),
            jnp.asarray(self.covariates),
            schedule,
            jnp.asarray(t_pad),
            jnp.asarray(self.error_code),
            jnp.asarray(self.add[i_pad]),
            jnp.asarray(self.prop[i_pad]),
            jnp.asarray(self.nu[i_pad]),
            jax.random.key(seed),
            *extra,
        )
        status = jax.tree.map(lambda v: np.asarray(v)[:D], status)
        return np.asarray(f)[:D, :T], np.asarray(y)[:D, :T], status

    def predict(
        self,
        times: Sequence[float] | np.ndarray,
        schedule: ScheduleLike | None = None,
        interval: float = 0.9,
        draws: int | None = None,
        seed: int = 0,
    ) -> xr.Dataset:
        """Posterior predictions of every output at ``times``.

        Parameters
        ----------
        times
            ``(T,)`` times >= 0 (model time unit), counted from the start of the schedule.
        schedule
            Default: the patient's own dosing history. Otherwise a :class:`Schedule` or a
            list of :class:`Bolus` / :class:`Infusion` (the patient's measured signals are
            kept).
        interval
            Central credible interval, in (0, 1).
        draws
            Use this many posterior draws (evenly thinned); default all.
        seed
            Seed of the residual-noise draws.

        Returns
        -------
        xarray.Dataset
            ``f`` (draw, time, output): noise-free trajectories (parameter uncertainty);
            ``y`` (draw, time, output): noisy predictions of a measurement (parameter +
            residual uncertainty); ``median``, ``lower``, ``upper`` (output, time) from
            ``y``; ``f_median``, ``f_lower``, ``f_upper`` from ``f``; ``extrapolation``
            (time): later than the last observation; ``horizon`` (time): how much later.
            Attributes: ``patient_id``, ``model_name``, ``interval``, ``approximate`` and
            ``population_only`` (0/1), ``last_observation_time``, ``n_draws``,
            ``n_failed_draws`` (draws whose solve failed: excluded, not imputed),
            ``solver_failures`` (why they failed and what to change; empty if none), ``seed``.

        Raises
        ------
        ValueError
            ``interval`` outside (0, 1); empty, non-finite or negative ``times``.
        RuntimeError
            The solver failed at every draw.
        """
        interval = check_interval(interval)
        t = check_times(times)
        sched = self._as_schedule(schedule)
        idx = self._draw_index(draws)
        f, y, status = self._simulate(t, sched, idx, seed)
        return self._dataset(t, f, y, status, idx, interval, seed)

    forecast = forecast_twin  # twin.forecast(horizons, output, level=0.9): forecast.py
    risk = risk_twin  # twin.risk(threshold, below=True, horizon=120.0, ...): forecast.py
    compare_policies = compare_policies  # twin.compare_policies({"name": policy}, ...): policy.py

    def _dataset(self, t, f, y, status, idx, interval, seed) -> xr.Dataset:
        ok = np.asarray(status == SolveStatus.successful)
        n_failed = int((~ok).sum())
        failures = describe_failures(status, "posterior draw")
        if not ok.any():
            raise UnavailableError(
                f"Patient {self.patient_id}: the ODE solver failed at all {ok.size} posterior "
                f"draws for this schedule and these times; no prediction is possible. {failures}"
            )
        f, y, idx = f[ok], y[ok], idx[ok]
        a = (1 - interval) / 2
        qy = np.quantile(y, [0.5, a, 1 - a], axis=0).transpose(0, 2, 1)  # (3, O, T)
        qf = np.quantile(f, [0.5, a, 1 - a], axis=0).transpose(0, 2, 1)
        last = self.last_observation_time
        if np.isnan(last):
            extrap = np.ones(t.size, dtype=bool)
            horizon = t.copy()
        else:
            extrap = t > last
            horizon = np.where(extrap, t - last, 0.0)
        dims3 = ("draw", "time", "output")
        dims2 = ("output", "time")
        return xr.Dataset(
            {
                "f": (dims3, f),
                "y": (dims3, y),
                "median": (dims2, qy[0]),
                "lower": (dims2, qy[1]),
                "upper": (dims2, qy[2]),
                "f_median": (dims2, qf[0]),
                "f_lower": (dims2, qf[1]),
                "f_upper": (dims2, qf[2]),
                "extrapolation": ("time", extrap),
                "horizon": ("time", horizon),
            },
            coords={"draw": idx, "time": t, "output": list(self.model.output_names)},
            attrs={
                "patient_id": self.patient_id,
                "model_name": self.model.name,
                "interval": interval,
                # 0/1, not bool: netCDF attributes cannot hold booleans, and the text
                # "false" would be truthy in Python.
                "approximate": int(bool(self.approximate)),
                "population_only": int(bool(self.population_only)),
                "last_observation_time": last,
                "n_draws": int(ok.sum()),
                "n_failed_draws": n_failed,
                "solver_failures": failures,
                "seed": int(seed),
                "n_updates": len(self.history),
                **occasion_attrs(self.posterior),
            },
        )

    def _output_values(self, ds: xr.Dataset, output: str, include_noise: bool) -> np.ndarray:
        if output not in self.model.output_names:
            close = difflib.get_close_matches(output, self.model.output_names, n=3)
            hint = f" (did you mean {', '.join(map(repr, close))}?)" if close else ""
            raise InputError(
                f"Model {self.model.name!r} has no output {output!r}{hint}; outputs: {list(self.model.output_names)}."
            )
        return ds["y" if include_noise else "f"].sel(output=output).values  # (D, T)

    def _ess(self, x: np.ndarray, idx: np.ndarray) -> float:
        """Effective sample size of a per-draw quantity (chains kept apart when possible)."""
        n = x.size
        if self.n_chains < 1 or idx.size != self.n_draws or n % self.n_chains or np.all(x == x[0]):
            return float(n)
        ess = float(azs.ess(np.asarray(x, float).reshape(self.n_chains, -1)))
        return float(n) if not np.isfinite(ess) else min(ess, float(n))

    # ---- questions ---------------------------------------------------------------------
    def probability(
        self,
        event: Event,
        schedule: ScheduleLike | None = None,
        *,
        include_noise: bool = False,
        draws: int | None = None,
        seed: int = 0,
        n_grid: int = 201,
    ) -> ProbabilityResult:
        """Posterior probability that ``event`` happens, with its Monte Carlo error.

        Counted over posterior draws of the noise-free trajectory (``include_noise=True``:
        over noisy predictions of a measurement, i.e. "would a measurement show it").
        A window is checked on ``n_grid`` evenly spaced times.
        """
        if not isinstance(event, Event):
            raise TypeError(f"event must be a twin_uq.twin.Event, got {type(event).__name__}.")
        times = event_grid(event.within, event.at, n_grid)
        ds = self.predict(times, schedule, draws=draws, seed=seed)
        values = self._output_values(ds, event.output, include_noise)
        hit = event.occurs(times, values)
        idx = ds["draw"].values
        n = hit.size
        ess = (
            self._ess(hit.astype(float), idx) if int(ds.attrs["n_failed_draws"]) == 0 else float(n)
        )
        p, mcse, lo, hi = hit_fraction(hit, ess)
        return ProbabilityResult(
            event=event,
            probability=p,
            mcse=mcse,
            n_draws=n,
            n_failed_draws=int(ds.attrs["n_failed_draws"]),
            ess=ess,
            lower=lo,
            upper=hi,
            include_noise=include_noise,
            patient_id=self.patient_id,
        )

    def _criterion_times(self, criterion: Criterion, times, n_grid: int) -> np.ndarray:
        if times is not None:
            t = check_times(times)
        elif criterion.statistic == "value_at":
            t = np.asarray([float(criterion.time)])  # type: ignore[arg-type]
        else:
            t = event_grid(criterion.window, None, n_grid)
        if criterion.statistic == "value_at" and not np.any(np.isclose(t, criterion.time)):
            t = np.sort(np.append(t, criterion.time))
        return t

    def _predict_many(
        self, regimens: Mapping[str, ScheduleLike | None], times, interval, draws, seed
    ) -> tuple[dict[str, xr.Dataset], np.ndarray]:
        """Predictions of several regimens on the same draws; draws failing anywhere dropped."""
        if not regimens:
            raise InputError("Give at least one regimen.")
        idx = self._draw_index(draws)
        raw = {}
        ok_all = np.ones(idx.size, dtype=bool)
        for name, sched in regimens.items():
            f, y, status = self._simulate(
                times, self._as_schedule(sched, f"regimen {name!r}"), idx, seed
            )
            raw[name] = (f, y, status)
            ok_all &= np.asarray(status == SolveStatus.successful)
        if not ok_all.any():
            why = " ".join(
                f"Regimen {name!r}: {describe_failures(status, 'posterior draw')}"
                for name, (_, _, status) in raw.items()
                if describe_failures(status)
            )
            raise UnavailableError(
                f"Patient {self.patient_id}: the ODE solver failed at every draw. {why}"
            )
        preds = {}
        for name, (f, y, status) in raw.items():
            ds = self._dataset(times, f, y, status, idx, interval, seed)
            preds[name] = ds.sel(draw=idx[ok_all])
            preds[name].attrs["n_failed_draws"] = int((~ok_all).sum())
            preds[name].attrs["n_draws"] = int(ok_all.sum())
        return preds, idx[ok_all]

    #: Compare regimens side by side on the same draws (:func:`twin_uq.twin.decisions.what_if`).
    what_if = what_if
    #: Probability of target attainment per candidate regimen
    #: (:func:`twin_uq.twin.decisions.recommend_dose`).
    recommend_dose = recommend_dose
    _attainment = attainment  # shared with next_measurement's DoseDecision goal

    # ---- learning ----------------------------------------------------------------------
    #: Condition on new observations of this patient; returns a new twin
    #: (:func:`twin_uq.twin.conditioning.update_twin`, called as ``twin.update(new_rows, ...)``).
    update = update_twin

    #: Expected effect of one more measurement at each candidate time
    #: (:func:`twin_uq.twin.next_sample.next_measurement`, ``twin.next_measurement(times, goal=...)``).
    next_measurement = next_measurement
