"""``PosteriorTwin``: one patient's slice of a cohort posterior, and what it can answer.

A twin holds the patient's posterior draws of the individual parameters (each with the
residual error parameters of its draw), the patient's covariates, dosing history and
observations, and the population posterior needed to update it with new data. It is
immutable: :meth:`PosteriorTwin.update` returns a new twin.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import arviz_stats as azs
import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import xarray as xr

from twin_uq.data import Cohort, read_cohort
from twin_uq.model.base import Model, SolverSettings
from twin_uq.simulate.schedule import Bolus, Infusion, Schedule, Signal
from twin_uq.simulate.status import SolveStatus, describe_failures
from twin_uq.twin.criteria import Criterion, Event, event_grid
from twin_uq.twin.engine import _bucket, bucket_schedule, predict_draws
from twin_uq.twin.population import (
    PopulationDraws,
    _frozen,
    model_covariates,
    patient_population,
    population_for_covariates,
)
from twin_uq.twin.results import (
    DoseRecommendation,
    ProbabilityResult,
    UpdateRecord,
    WhatIfResult,
    beta_interval,
)
from twin_uq.twin.update import UpdateData, patient_arrays, run_importance, run_update

if TYPE_CHECKING:
    from twin_uq.inference.posterior import CohortPosterior

__all__ = ["PosteriorTwin", "UnknownPatientError", "simulate_patient"]

ScheduleLike = Schedule | Sequence[Bolus | Infusion]


class UnknownPatientError(KeyError):
    """A patient id that the fit does not contain (the message lists close matches)."""

    def __str__(self) -> str:
        return str(self.args[0])


def _check_interval(interval: float) -> float:
    interval = float(interval)
    if not 0.0 < interval < 1.0:
        raise ValueError(f"interval must lie strictly between 0 and 1, got {interval}.")
    return interval


def _check_times(times: object) -> np.ndarray:
    t = np.asarray(times, dtype=float).reshape(-1) if np.ndim(times) <= 1 else None
    if t is None or t.size == 0:
        raise ValueError(f"times must be a non-empty 1-D sequence of times >= 0; got {times!r}.")
    if not np.all(np.isfinite(t)):
        raise ValueError("times must be finite (found NaN or inf).")
    if np.any(t < 0):
        raise ValueError(
            f"times must be >= 0 (simulation starts at t = 0); got {t[t < 0][:3].tolist()}."
        )
    return t


def _observations(arrays, index: int, model: Model) -> pd.DataFrame:
    mask = np.asarray(arrays.obs_mask[index])
    out = np.asarray(arrays.obs_output[index])[mask]
    return pd.DataFrame(
        {
            "time": np.asarray(arrays.obs_time[index])[mask],
            "output": [model.output_names[k] for k in out],
            "value": np.asarray(arrays.obs_value[index])[mask],
            "censored": np.asarray(arrays.obs_censored[index])[mask],
            "lloq": np.asarray(arrays.obs_lloq[index])[mask],
        }
    )


@dataclass(frozen=True, eq=False)
class PosteriorTwin:
    """One patient's posterior twin. Build it with ``post.twin(patient_id)``.

    Attributes
    ----------
    patient_id
        The patient.
    model, settings
        The physiological model and its solver settings.
    theta
        ``(S, K)`` posterior draws of the individual parameters (natural scale,
        ``model.parameter_names`` order), chains concatenated.
    add, prop, nu
        ``(S, O)``, ``(S, O)``, ``(S,)`` residual error parameters of each draw.
    n_chains
        Number of chains the ``S`` draws come from (for effective sample sizes).
    covariates
        ``(C,)`` the model's covariates (``model.covariates`` order).
    baseline
        All baseline covariates of the patient (name → value).
    schedule
        The patient's dosing history (and measured signals).
    observations
        DataFrame ``time, output, value, censored, lloq``.
    table
        The patient's rows of the cohort table (the data this twin is conditioned on).
    population
        The population posterior seen by this patient (for :meth:`update`).
    error_code
        ``(O,)`` residual error model code per output.
    approximate
        Whether the underlying fit is approximate (SVI / Laplace).
    population_only
        True for a new patient without data (pure population prediction).
    history
        Updates applied since the cohort fit.
    """

    patient_id: str
    model: Model
    settings: SolverSettings
    theta: np.ndarray
    add: np.ndarray
    prop: np.ndarray
    nu: np.ndarray
    n_chains: int
    covariates: np.ndarray
    baseline: Mapping[str, object]
    schedule: Schedule
    observations: pd.DataFrame
    table: pd.DataFrame
    population: PopulationDraws = field(repr=False)
    error_code: np.ndarray = field(repr=False)
    approximate: bool = False
    population_only: bool = False
    history: tuple[UpdateRecord, ...] = ()

    # ---- construction ------------------------------------------------------------------
    @classmethod
    def from_posterior(cls, post: CohortPosterior, patient_id: object) -> PosteriorTwin:
        """The twin of a fitted patient.

        Raises
        ------
        UnknownPatientError
            (a ``KeyError``) for an id not in the fit, naming close matches.
        """
        pid = str(patient_id)
        ids = tuple(post.patient_ids)
        if pid not in ids:
            close = difflib.get_close_matches(pid, ids, n=3, cutoff=0.5)
            hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
            raise UnknownPatientError(
                f"No patient {pid!r} in this fit ({len(ids)} patients, e.g. "
                f"{', '.join(map(repr, ids[:5]))}).{hint}"
            )
        i = ids.index(pid)
        model = post.model
        ds = post.posterior
        th = ds["theta"].sel(patient=pid, parameter=list(model.parameter_names))
        th = th.transpose("chain", "draw", "parameter").values
        pop = patient_population(post, i)
        arrays = post.prepared.data.arrays
        cov = post.cohort.covariates
        return cls(
            patient_id=pid,
            model=model,
            settings=post.prepared.structure.settings,
            theta=_frozen(th.reshape(-1, th.shape[-1])),
            add=pop.add,
            prop=pop.prop,
            nu=pop.nu,
            n_chains=int(ds.sizes["chain"]),
            covariates=_frozen(np.asarray(arrays.covariates[i])),
            baseline=dict(cov.loc[pid]) if pid in cov.index else {},
            schedule=post.cohort.schedule(pid, signals=model.signals),
            observations=_observations(arrays, i, model),
            table=post.cohort.table[post.cohort.table["id"] == pid].copy(),
            population=pop,
            error_code=_frozen(np.asarray(post.prepared.data.error_code)),
            approximate=post.approximate,
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
        interval = _check_interval(interval)
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
            items = list(schedule)
            bad = [x for x in items if not isinstance(x, Bolus | Infusion)]
            if bad:
                raise TypeError(
                    f"schedule must be a Schedule or a list of Bolus/Infusion; got {type(bad[0]).__name__}."
                )
            try:
                sched = Schedule.build(
                    [x for x in items if isinstance(x, Bolus)],
                    [x for x in items if isinstance(x, Infusion)],
                    self._signals(),
                    signal_names=list(self.model.signals),
                )
            except ValueError as err:
                raise ValueError(f"{label}: {err}") from None
        if sched.bolus_time.ndim != 1:
            raise ValueError("A twin takes one patient's (unbatched) Schedule.")
        if schedule is not None:
            _check_doses(sched, self.model, label)
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
            raise ValueError(f"draws must be a positive number, got {draws}.")
        return np.unique(np.linspace(0, S - 1, int(draws)).round().astype(int))

    def _simulate(
        self, times: np.ndarray, schedule: Schedule, idx: np.ndarray, seed: int
    ) -> tuple[np.ndarray, np.ndarray, SolveStatus]:
        # Pad times and draws to power-of-two sizes (repeating the last one) so that a few
        # compiled shapes serve every request; the padding is sliced off again.
        T, D = times.size, idx.size
        t_pad = np.concatenate([times, np.full(_bucket(T, 16) - T, times[-1])])
        i_pad = np.concatenate([idx, np.full(_bucket(D, 16) - D, idx[-1])])
        f, y, status = predict_draws(
            self.model,
            self.settings.covering(t_pad),
            jnp.asarray(self.theta[i_pad]),
            jnp.asarray(self.covariates),
            schedule,
            jnp.asarray(t_pad),
            jnp.asarray(self.error_code),
            jnp.asarray(self.add[i_pad]),
            jnp.asarray(self.prop[i_pad]),
            jnp.asarray(self.nu[i_pad]),
            jax.random.key(seed),
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
        interval = _check_interval(interval)
        t = _check_times(times)
        sched = self._as_schedule(schedule)
        idx = self._draw_index(draws)
        f, y, status = self._simulate(t, sched, idx, seed)
        return self._dataset(t, f, y, status, idx, interval, seed)

    def _dataset(self, t, f, y, status, idx, interval, seed) -> xr.Dataset:
        ok = np.asarray(status == SolveStatus.successful)
        n_failed = int((~ok).sum())
        failures = describe_failures(status, "posterior draw")
        if not ok.any():
            raise RuntimeError(
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
            },
        )

    def _output_values(self, ds: xr.Dataset, output: str, include_noise: bool) -> np.ndarray:
        if output not in self.model.output_names:
            close = difflib.get_close_matches(output, self.model.output_names, n=3)
            hint = f" (did you mean {', '.join(map(repr, close))}?)" if close else ""
            raise ValueError(
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
        p = float(hit.mean())
        ess = (
            self._ess(hit.astype(float), idx) if int(ds.attrs["n_failed_draws"]) == 0 else float(n)
        )
        lo, hi = beta_interval(hit.sum(), n, 0.9)
        return ProbabilityResult(
            event=event,
            probability=p,
            mcse=float(np.sqrt(p * (1 - p) / ess)),
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
            t = _check_times(times)
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
            raise ValueError("Give at least one regimen.")
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
            raise RuntimeError(
                f"Patient {self.patient_id}: the ODE solver failed at every draw. {why}"
            )
        preds = {}
        for name, (f, y, status) in raw.items():
            ds = self._dataset(times, f, y, status, idx, interval, seed)
            preds[name] = ds.sel(draw=idx[ok_all])
            preds[name].attrs["n_failed_draws"] = int((~ok_all).sum())
            preds[name].attrs["n_draws"] = int(ok_all.sum())
        return preds, idx[ok_all]

    def what_if(
        self,
        regimens: Mapping[str, ScheduleLike | None],
        times: Sequence[float] | np.ndarray | None = None,
        criterion: Criterion | None = None,
        *,
        interval: float = 0.9,
        include_noise: bool = False,
        draws: int | None = None,
        seed: int = 0,
        n_grid: int = 201,
    ) -> WhatIfResult:
        """Compare regimens side by side, and the probability that each is best.

        Every regimen is simulated on the same posterior draws (a paired comparison); at
        each draw the regimen with the best criterion value wins (ties share the win), and
        P(best) is the fraction of draws won.

        Parameters
        ----------
        regimens
            Name → schedule (``None``: the patient's own history).
        times
            Evaluation times; default: a grid over the criterion's window.
        criterion
            What "best" means; default: highest mean of the first output over ``times``.
        include_noise
            Evaluate the criterion on noisy predictions instead of the noise-free trajectory.
        """
        interval = _check_interval(interval)
        if criterion is None:
            if times is None:
                raise ValueError("what_if needs times= or a criterion with a window.")
            criterion = Criterion(self.model.output_names[0], "mean")
        t = self._criterion_times(criterion, times, n_grid)
        preds, _ = self._predict_many(regimens, t, interval, draws, seed)
        values = {
            name: criterion.evaluate(t, self._output_values(ds, criterion.output, include_noise))
            for name, ds in preds.items()
        }
        names = list(values)
        scores = np.stack([criterion.score(values[n]) for n in names])  # (R, D)
        best = scores >= scores.max(axis=0, keepdims=True) - 1e-12 * (1 + np.abs(scores).max())
        share = best / best.sum(axis=0, keepdims=True)
        p_best = share.mean(axis=1)
        a = (1 - interval) / 2
        rows = []
        for r, n in enumerate(names):
            v = values[n]
            rows.append(
                dict(
                    regimen=n,
                    criterion=criterion.describe(),
                    median=float(np.median(v)),
                    lower=float(np.quantile(v, a)),
                    upper=float(np.quantile(v, 1 - a)),
                    p_best=float(p_best[r]),
                    p_best_mcse=float(np.sqrt(max(share[r].var(), 0.0) / share.shape[1])),
                )
            )
        table = pd.DataFrame(rows)
        table.attrs["interval"] = interval
        return WhatIfResult(
            table=table,
            predictions=preds,
            criterion=criterion,
            values=values,
            patient_id=self.patient_id,
            interval=interval,
        )

    def recommend_dose(
        self,
        target: Event | Criterion,
        candidates: Mapping[str, ScheduleLike] | Sequence[float],
        *,
        template: ScheduleLike | None = None,
        include_noise: bool = False,
        draws: int | None = None,
        seed: int = 0,
        n_grid: int = 201,
    ) -> DoseRecommendation:
        """Probability of target attainment for each candidate regimen.

        Parameters
        ----------
        target
            An :class:`Event` (attained when it happens, e.g. ``Event("concentration",
            above=1, below=3, at=24)``: trough in range at 24 h) or a :class:`Criterion`
            with ``target=(low, high)`` (attained when its value is in range, e.g. time in
            range >= ... via ``statistic="mean"``).
        candidates
            Name → schedule, or a list of amounts: each amount replaces the amount of every
            dose of ``template`` (infusions keep their duration).
        template
            Regimen the amounts apply to; default the patient's own history.
        """
        if isinstance(candidates, Mapping):
            regimens = dict(candidates)
        else:
            base = self._as_schedule(template)
            for a in candidates:
                if not (np.isfinite(float(a)) and float(a) > 0):
                    raise ValueError(
                        f"regimen '{float(a):g}': dose amount must be finite and > 0, got {float(a):g}."
                    )
            regimens = {f"{float(a):g}": _scaled(base, float(a)) for a in candidates}
        if not regimens:
            raise ValueError("recommend_dose needs at least one candidate.")
        if isinstance(target, Event):
            t = event_grid(target.within, target.at, n_grid)
        elif isinstance(target, Criterion):
            if target.target is None:
                raise ValueError("A Criterion used as a dosing target needs target=(low, high).")
            t = self._criterion_times(target, None, n_grid)
        else:
            raise TypeError("target must be an Event or a Criterion.")
        preds, idx = self._predict_many(regimens, t, 0.9, draws, seed)
        rows = []
        for name, ds in preds.items():
            v = self._output_values(ds, target.output, include_noise)
            hit = (
                target.occurs(t, v)
                if isinstance(target, Event)
                else target.attained(target.evaluate(t, v))
            )
            n, k = hit.size, int(hit.sum())
            p = k / n
            ess = self._ess(hit.astype(float), idx)
            lo, hi = beta_interval(k, n, 0.9)
            rows.append(
                dict(
                    candidate=name,
                    p_target=p,
                    mcse=float(np.sqrt(p * (1 - p) / ess)),
                    lower=lo,
                    upper=hi,
                    n_draws=n,
                )
            )
        table = pd.DataFrame(rows)
        best = str(table.loc[table["p_target"].idxmax(), "candidate"])
        return DoseRecommendation(
            table=table, best=best, target=target, predictions=preds, patient_id=self.patient_id
        )

    # ---- learning ----------------------------------------------------------------------
    def update(
        self,
        new_rows: pd.DataFrame | Cohort,
        *,
        chains: int = 4,
        warmup: int = 400,
        draws: int = 500,
        population_draws: int = 256,
        method: str = "auto",
        seed: int = 0,
    ) -> PosteriorTwin:
        """Condition on new observations of this patient; returns a new twin.

        The population posterior of the cohort fit is the prior (see
        :mod:`twin_uq.twin.update`); the cohort is not refitted. The sampler is compiled
        once per (model, settings, shapes) and reused by later updates.

        Parameters
        ----------
        new_rows
            Rows in the cohort table format (``id`` optional; if present it must be this
            patient), or a :class:`Cohort` holding only this patient. Doses are allowed too.
        chains, warmup, draws, seed
            NUTS settings (chains run vectorised; ``chains x draws`` draws are kept).
        method
            ``"auto"`` (default): importance sampling from a proposal built on the current
            posterior, accepted when its Pareto k-hat < 0.7 and its effective sample size
            >= 400, otherwise NUTS; ``"nuts"``; ``"importance"`` (error when unreliable).
        population_draws
            How many population posterior draws (evenly thinned) represent the population
            prior; the update's cost grows linearly with it.
        """
        if self.population_only:
            raise ValueError(
                "This twin is a population-only prediction for a new patient; fit or update "
                "requires a fitted patient (use post.twin(id))."
            )
        new = _new_table(new_rows, self.patient_id, self.model)
        combined = pd.concat([self.table, new], ignore_index=True)
        if "output" in combined and len(self.model.outputs) == 1:
            # One side may name the single output and the other leave it implicit.
            combined["output"] = combined["output"].fillna(self.model.output_names[0])
        combined = combined.sort_values("time", kind="stable").reset_index(drop=True)
        cohort = read_cohort(combined, name=f"patient {self.patient_id} (updated)")
        arrays = cohort.for_model(self.model)
        obs = {
            "time": np.asarray(arrays.obs_time[0])[np.asarray(arrays.obs_mask[0])],
            "value": np.asarray(arrays.obs_value[0])[np.asarray(arrays.obs_mask[0])],
            "output": np.asarray(arrays.obs_output[0])[np.asarray(arrays.obs_mask[0])],
            "censored": np.asarray(arrays.obs_censored[0])[np.asarray(arrays.obs_mask[0])],
            "lloq": np.asarray(arrays.obs_lloq[0])[np.asarray(arrays.obs_mask[0])],
        }
        schedule = bucket_schedule(cohort.schedule(self.patient_id, signals=self.model.signals))
        pop = self.population
        if population_draws < 1:
            raise ValueError(f"population_draws must be >= 1, got {population_draws}.")
        # Evenly thinned population draws (all chains) represent the population posterior.
        keep = np.unique(
            np.linspace(0, pop.n_draws - 1, min(population_draws, pop.n_draws)).round()
        )
        keep = keep.astype(int)
        chol = pop.chol[keep]
        update_arrays = patient_arrays(self.model, obs, schedule, self.covariates)
        settings = self.settings.covering(np.asarray(update_arrays.obs_time))
        data = UpdateData(
            arrays=update_arrays,
            error_code=jnp.asarray(self.error_code),
            mean=jnp.asarray(pop.mean[keep]),
            chol_inv=jnp.asarray(np.linalg.inv(chol)),
            logdet=jnp.asarray(np.log(np.diagonal(chol, axis1=1, axis2=2)).sum(axis=1)),
            add=jnp.asarray(pop.add[keep]),
            prop=jnp.asarray(pop.prop[keep]),
            nu=jnp.asarray(pop.nu[keep]),
        )
        if method not in ("auto", "nuts", "importance"):
            raise ValueError(f"method must be 'auto', 'nuts' or 'importance', got {method!r}.")
        log_theta = np.log(self.theta)
        res = None
        if method in ("auto", "importance"):
            res = run_importance(
                self.model,
                settings,
                data,
                np.median(log_theta, axis=0),
                draws=chains * draws,
                seed=seed,
            )
            if res is None and method == "importance":
                raise RuntimeError(
                    f"Patient {self.patient_id}: importance sampling is unreliable for these "
                    "data (Pareto k-hat >= 0.7 or too few effective draws); use method='nuts'."
                )
        if res is None:
            res = run_update(
                self.model,
                settings,
                data,
                np.median(log_theta, axis=0),
                chains=chains,
                warmup=warmup,
                draws=draws,
                seed=seed,
            )
        s = keep[res.draw_index]
        n_added = int(np.asarray(arrays.obs_mask).sum()) - len(self.observations)
        record = UpdateRecord(
            time=_dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            rows_added=n_added,
            method=res.method,
            r_hat=res.r_hat,
            ess_bulk=res.ess_bulk,
            divergences=res.divergences,
            n_draws=int(res.theta.shape[0]),
            seconds=res.seconds,
            pareto_k=res.pareto_k,
        )
        return replace(
            self,
            theta=_frozen(res.theta),
            add=_frozen(pop.add[s]),
            prop=_frozen(pop.prop[s]),
            nu=_frozen(pop.nu[s]),
            n_chains=res.n_chains,
            schedule=cohort.schedule(self.patient_id, signals=self.model.signals),
            observations=_observations(arrays, 0, self.model),
            table=cohort.table.copy(),
            history=(*self.history, record),
        )


def _check_doses(schedule: Schedule, model: Model, label: str) -> None:
    """Refuse doses a patient cannot receive: amounts, rates or times <= 0 / non-finite.

    Names the regimen (``label``), the dose and the offending value; a negative dose would
    otherwise be simulated as a removal of drug and reported as a prediction.
    """
    n_states = len(model.states)
    for k, b in enumerate(schedule.boluses(), 1):
        where = f"{label}, bolus {k} (time {b.time:g})"
        if not (np.isfinite(b.amount) and b.amount > 0):
            raise ValueError(f"{where}: dose amount must be finite and > 0, got {b.amount:g}.")
        if not (np.isfinite(b.time) and b.time >= 0):
            raise ValueError(f"{where}: dose time must be finite and >= 0, got {b.time:g}.")
        if not 0 <= b.cmt <= n_states:
            raise ValueError(f"{where}: compartment {b.cmt} outside 1..{n_states} (0 = default).")
    for k, i in enumerate(schedule.infusions(), 1):
        where = f"{label}, infusion {k} (start {i.start:g})"
        if not (np.isfinite(i.rate) and i.rate > 0):
            raise ValueError(f"{where}: infusion rate must be finite and > 0, got {i.rate:g}.")
        if not (np.isfinite(i.duration) and i.duration > 0):
            raise ValueError(f"{where}: duration must be finite and > 0, got {i.duration:g}.")
        if not (np.isfinite(i.start) and i.start >= 0):
            raise ValueError(f"{where}: start time must be finite and >= 0, got {i.start:g}.")
        if not 0 <= i.cmt <= n_states:
            raise ValueError(f"{where}: compartment {i.cmt} outside 1..{n_states} (0 = default).")


def _scaled(schedule: Schedule, amount: float) -> Schedule:
    """The schedule with every dose's amount replaced by ``amount`` (signals kept)."""
    boluses = [Bolus(b.time, amount, b.cmt) for b in schedule.boluses()]
    infusions = [
        Infusion.from_amount(i.start, amount, i.duration, i.cmt) for i in schedule.infusions()
    ]
    if not boluses and not infusions:
        raise ValueError("The dosing template has no doses to scale; pass candidates as schedules.")
    new = Schedule.build(
        boluses, infusions, n_bolus=schedule.n_bolus, n_infusion=schedule.n_infusion
    )
    return dataclasses.replace(
        new,
        signal_time=schedule.signal_time,
        signal_value=schedule.signal_value,
        signal_mask=schedule.signal_mask,
    )


def _new_table(new_rows: pd.DataFrame | Cohort, pid: str, model: Model) -> pd.DataFrame:
    if isinstance(new_rows, Cohort):
        if new_rows.ids != (pid,):
            raise ValueError(
                f"update() of patient {pid!r} needs a Cohort with only that patient; got ids {list(new_rows.ids)[:5]}."
            )
        return _known_outputs(new_rows.table, pid, model).reset_index(drop=True)
    if not isinstance(new_rows, pd.DataFrame):
        raise TypeError(
            "new_rows must be a pandas DataFrame in the cohort table format, or a Cohort."
        )
    if new_rows.empty:
        raise ValueError("update() got no rows.")
    frame = new_rows.copy()
    id_col = next((c for c in frame.columns if str(c).lower() == "id"), None)
    if id_col is None:
        frame["id"] = pid
    else:
        ids = set(frame[id_col].astype(str))
        if ids != {pid}:
            raise ValueError(
                f"update() of patient {pid!r} got rows of patient(s) {sorted(ids - {pid})[:5]}."
            )
    # Normalise through the reader so column names and defaults match the stored table.
    table = read_cohort(frame, name=f"new rows of {pid}").table
    return _known_outputs(table, pid, model).reset_index(drop=True)


def _known_outputs(table: pd.DataFrame, pid: str, model: Model) -> pd.DataFrame:
    """``table`` if every observation names an output of ``model``; else a ValueError."""
    if "output" not in table:
        return table
    obs = (table["evid"] == 0) & (table["mdv"] == 0) & table["output"].notna()
    unknown = table[obs & ~table["output"].isin(model.output_names)]
    if len(unknown):
        row, name = unknown.index[0], unknown["output"].iloc[0]
        raise ValueError(
            f"update() of patient {pid!r}: new row {row} has output {name!r}, which model "
            f"{model.name!r} does not define; its outputs are {list(model.output_names)}."
        )
    return table


def simulate_patient(
    post: CohortPosterior,
    covariates: Mapping[str, object],
    schedule: ScheduleLike,
    times: Sequence[float] | np.ndarray,
    *,
    interval: float = 0.9,
    seed: int = 0,
    patient_id: str = "new patient",
) -> xr.Dataset:
    """Population prediction for a brand-new patient with no data.

    At every posterior draw the patient's parameters are drawn from the population
    distribution given ``covariates`` (typical values, covariate effects, allometry,
    between-patient variability), so the intervals carry population, parameter and
    residual uncertainty. The Dataset has the layout of :meth:`PosteriorTwin.predict`
    with ``attrs["population_only"] = 1``.
    """
    twin = new_patient_twin(post, covariates, schedule, seed=seed, patient_id=patient_id)
    return twin.predict(times, interval=interval, seed=seed)


def new_patient_twin(
    post: CohortPosterior,
    covariates: Mapping[str, object],
    schedule: ScheduleLike,
    *,
    seed: int = 0,
    patient_id: str = "new patient",
) -> PosteriorTwin:
    """A population-only twin of a new patient (for what-if questions before any data)."""
    model = post.model
    pop = population_for_covariates(post, covariates)
    theta = np.exp(pop.sample_log_theta(seed))
    if isinstance(schedule, Schedule):
        sched = schedule
    else:
        items = list(schedule)
        sched = Schedule.build(
            [x for x in items if isinstance(x, Bolus)],
            [x for x in items if isinstance(x, Infusion)],
        )
    return PosteriorTwin(
        patient_id=patient_id,
        model=model,
        settings=post.prepared.structure.settings,
        theta=_frozen(theta),
        add=pop.add,
        prop=pop.prop,
        nu=pop.nu,
        n_chains=int(post.posterior.sizes["chain"]),
        covariates=_frozen(model_covariates(post, covariates)),
        baseline=dict(covariates),
        schedule=sched,
        observations=pd.DataFrame(columns=["time", "output", "value", "censored", "lloq"]),
        table=pd.DataFrame(),
        population=pop,
        error_code=_frozen(np.asarray(post.prepared.data.error_code)),
        approximate=post.approximate,
        population_only=True,
    )
