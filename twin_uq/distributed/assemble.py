"""Gathering a two-stage fit: stage-2 batches and stage-1 draws into one posterior."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping

import numpy as np
import xarray as xr

from twin_uq.errors import TwinUQError
from twin_uq.inference.backends import BackendResult
from twin_uq.inference.idata import build_idata
from twin_uq.inference.postprocess import DrawQuantities
from twin_uq.inference.solver_check import check_fit_draws
from twin_uq.model.scales import to_unconstrained
from twin_uq.posterior import CohortPosterior

__all__ = ["IncompleteResultError", "assemble", "check_complete", "patient_means"]


class IncompleteResultError(TwinUQError, RuntimeError):
    """Some patients are missing from (or duplicated in) a distributed result."""

    def __init__(self, message: str, missing: list[str], failures: dict[str, str]):
        super().__init__(message)
        self.missing = missing
        self.failures = failures


def patient_means(draws: Mapping[str, np.ndarray], data, index: np.ndarray) -> np.ndarray:
    """``(B, S, K)`` population mean of log theta for patients ``index`` at every draw."""
    allo = np.asarray(data.allometric)[index]  # (B, K)
    mean = allo[:, None, :] + draws["mu"][None, :, :]
    if "beta" in draws:
        design = np.asarray(data.design)[index][:, np.asarray(data.effect_term)]  # (B, E)
        onehot = np.eye(draws["mu"].shape[1])[np.asarray(data.effect_param)]  # (E, K)
        mean = mean + np.einsum("be,se,ek->bsk", design, draws["beta"], onehot)
    return mean


def check_complete(ids: list[str], done: dict, failed: dict, batches: list[list[int]]) -> None:
    """Raise :class:`IncompleteResultError` unless every patient came back exactly once.

    ``failed`` maps a batch that failed to its error; a batch that came back may name
    patients whose update did not sample (its ``failed``: patient id -> message), and
    these are missing with their own reason.
    """
    got = Counter(pid for r in done.values() for pid in r["ids"])
    missing = [p for p in ids if got[p] == 0]
    twice = sorted(p for p, n in got.items() if n > 1)
    unknown = sorted(set(got) - set(ids))
    failures = {ids[i]: failed[b] for b, idx in enumerate(batches) if b in failed for i in idx}
    for r in done.values():
        failures |= r.get("failed", {})
    if missing or twice or unknown:
        parts = []
        if missing:
            reasons = sorted({failures[p] for p in missing if p in failures})
            parts.append(
                f"{len(missing)} of {len(ids)} patients missing (e.g. {missing[:5]}); "
                f"errors: {reasons[:3]}"
            )
        if twice:
            parts.append(f"patients returned more than once: {twice[:5]}")
        if unknown:
            parts.append(f"unknown patients returned: {unknown[:5]}")
        raise IncompleteResultError("Distributed stage 2 incomplete: " + "; ".join(parts),
                                    missing, failures)  # fmt: skip


def assemble(model, cohort, prepared, stage1, flat, keep, done, failed, batches, ids, *,
              chains, draws, warmup, sub_ids, seed, population_method, batch_size, n_workers,
              timings, population_draws_used):  # fmt: skip
    """One CohortPosterior from stage-1 draws and the gathered stage-2 batches."""
    check_complete(ids, done, failed, batches)
    P, K, C, D = len(ids), len(model.parameters), chains, draws
    arrays = prepared.data.arrays
    mask = np.asarray(arrays.obs_mask)
    N = mask.shape[1]
    pos = {p: i for i, p in enumerate(ids)}
    theta = np.empty((C, D, P, K))
    f = np.full((C, D, P, N), np.nan)
    y_rep = np.full((C, D, P, N), np.nan)
    ll = np.zeros((C, D, P, N))
    ok = np.zeros((C, D, P), bool)
    pop_draw = np.empty((C, D, P), np.int64)
    diag = {k: np.empty(P) for k in ("r_hat", "ess_bulk", "divergences", "seconds")}
    worker = np.empty(P, np.int64)
    for r in done.values():
        for j, pid in enumerate(r["ids"]):
            i = pos[pid]
            theta[:, :, i] = r["theta"][j]
            pop_draw[:, :, i] = keep[r["draw_index"][j]].reshape(C, D)
            f[:, :, i] = r["f"][j].reshape(C, D, N)
            y_rep[:, :, i] = r["y_rep"][j].reshape(C, D, N)
            ll[:, :, i] = r["loglik"][j].reshape(C, D, N)
            ok[:, :, i] = r["ok"][j].reshape(C, D)
            for k in diag:
                diag[k][i] = r[k][j]
            worker[i] = r["pid"]
    # Population variables at output draw d: stage-1 draws evenly spread over C*D.
    S1 = flat["mu"].shape[0]
    at = np.linspace(0, S1 - 1, C * D).round().astype(int)
    samples = {k: v[at].reshape(C, D, *v.shape[1:]) for k, v in flat.items() if k != "corr"}
    if "corr" in flat:
        samples["corr_chol"] = np.linalg.cholesky(flat["corr"][at]).reshape(C, D, K, K)
    # eta against each draw's own (paired) population draw.
    eta = np.empty_like(theta)
    for i in range(P):
        m_i = patient_means(flat, prepared.data, np.asarray([i]))[0]  # (S1, K)
        s = pop_draw[:, :, i]
        eta[:, :, i] = (to_unconstrained(model, theta[:, :, i]) - m_i[s]) / flat["omega"][s]
    derived = DrawQuantities(theta=theta, eta=eta, loglik_obs=ll, y_rep=y_rep, f=f, solver_ok=ok)
    settings = {
        "method": "two-stage", "seed": seed, "population_method": population_method,
        "subsample": len(sub_ids), "chains": chains, "warmup": warmup, "draws": draws,
        "population_draws": population_draws_used, "batch_size": batch_size,
        "stage1_settings": json.loads(stage1.idata.attrs.get("settings", "{}")),
    }  # fmt: skip
    result = BackendResult(
        samples=samples,
        timings=timings,
        info={"n_workers": n_workers, "n_batches": len(batches), "failed_batches": len(failed)},
    )
    tree = build_idata(prepared, result, derived, settings_json=json.dumps(settings))
    # A fixed-step model is checked against the adaptive reference as a joint fit is. The
    # residual SDs that express the error come from the evenly spread stage-1 draws, not
    # each patient's paired one: they only set the unit, and stage 1 pins them down.
    check = check_fit_draws(prepared, samples, derived)
    if check is not None:
        tree.attrs["fixed_step_check"] = json.dumps(check)
    tree.attrs["approximate"] = "true"
    tree.attrs["stage1_data_hash"] = stage1.idata.attrs.get("data_hash", "")
    tree.attrs["stage1_method"] = population_method
    two = xr.Dataset(
        {
            "pop_draw": (("chain", "draw", "patient"), pop_draw),
            "r_hat": ("patient", diag["r_hat"]),
            "ess_bulk": ("patient", diag["ess_bulk"]),
            "divergences": ("patient", diag["divergences"].astype(np.int64)),
            "seconds": ("patient", diag["seconds"]),
            "worker_pid": ("patient", worker),
            "in_subsample": ("patient", np.isin(ids, sub_ids)),
        },
        coords={"chain": np.arange(C), "draw": np.arange(D), "patient": ids},
        attrs={"pop_draw": "index into the stage-1 posterior's flattened (chain, draw) axis"},
    )
    tree["two_stage"] = xr.DataTree(two)
    return CohortPosterior(idata=tree, model=model, cohort=cohort, prepared=prepared)
