"""Data and priors shared by the peers of ``fit_benchmark.py`` (no JAX import here).

Priors are twin_uq's defaults for the same models, copied as numbers so that the peers do
not import twin_uq: ``mu ~ Normal(mu_loc, mu_scale)`` (log typical values),
``omega ~ HalfNormal(omega_scale)``, residual SDs ``HalfNormal(...)``, allometric weight
exponents for the oral model.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

# twin_uq defaults (models/one_compartment_oral.py, models/bergman_minimal.py).
ORAL = dict(
    names=("ka", "CL", "V"),
    mu_loc=np.log([1.0, 5.0, 50.0]),
    mu_scale=np.array([0.7, 0.7, 0.7]),
    omega_scale=np.array([0.5, 0.4, 0.3]),
    allo_exp=np.array([0.0, 0.75, 1.0]),  # exponents on WT/70
    sigma_add_scale=0.05,
    sigma_prop_scale=0.2,
)
BERGMAN = dict(
    names=("SG", "p2", "SI", "Gb", "G0"),
    mu_loc=np.log([0.025, 0.025, 5e-4, 90.0, 280.0]),
    mu_scale=np.array([0.7, 0.8, 1.0, 0.3, 0.3]),
    omega_scale=np.array([0.5, 0.5, 0.7, 0.2, 0.2]),
    sigma_prop_scale=0.05,
)


def log_offsets(kind: str, d: dict) -> np.ndarray | float:
    """Covariate offsets of the log parameters (P, K): allometric weight scaling for the
    oral model, none (0) for Bergman. ``log theta = mu + offset + omega * eta``."""
    if kind != "oral":
        return 0.0
    return np.log(d["wt"] / 70.0)[:, None] * ORAL["allo_exp"][None, :]


def _obs_arrays(df: pd.DataFrame):
    """Observations per patient as padded (P, T) arrays with a mask."""
    obs = df[df["evid"] == 0]
    ids = list(dict.fromkeys(df["id"]))
    groups = [obs[obs["id"] == i] for i in ids]
    n_t = max(len(g) for g in groups)
    times = np.zeros((len(ids), n_t))
    y = np.zeros((len(ids), n_t))
    mask = np.zeros((len(ids), n_t), bool)
    for i, g in enumerate(groups):
        t = g["time"].to_numpy(float)
        times[i, : t.size], times[i, t.size :] = t, t[-1]
        y[i, : t.size] = g["dv"].to_numpy(float)
        mask[i, : t.size] = True
    return ids, times, y, mask


def load_oral(csv):
    """Observations, weights and doses. ``dose`` is each patient's total; ``dose_times`` and
    ``dose_amts`` (P, D) the individual oral doses, sorted, for the multiple-dose problems
    (every patient must have the same number of doses, the first at time 0, and no
    observation at a dose time, so that each dose starts an integration segment)."""
    df = pd.read_csv(csv)
    ids, times, y, mask = _obs_arrays(df)
    dose_rows = df[df["evid"] == 1].sort_values(["time"], kind="stable")
    doses = dose_rows.groupby("id", sort=False)["amt"].sum().reindex(ids).to_numpy(float)
    per = [dose_rows[dose_rows["id"] == i] for i in ids]
    counts = {len(g) for g in per}
    if len(counts) != 1:
        raise ValueError(f"{csv}: patients have different numbers of doses {sorted(counts)}")
    dose_times = np.stack([g["time"].to_numpy(float) for g in per])
    dose_amts = np.stack([g["amt"].to_numpy(float) for g in per])
    if np.any(dose_times[:, 0] != 0.0):
        raise ValueError(f"{csv}: the first dose of every patient must be at time 0")
    if np.any(np.isin(times[mask], dose_times)):
        raise ValueError(f"{csv}: an observation falls on a dose time")
    wt = df.groupby("id", sort=False)["WT"].first().reindex(ids).to_numpy(float)
    return dict(ids=ids, times=times, y=y, mask=mask, dose=doses, wt=wt, dose_times=dose_times,
                dose_amts=dose_amts)  # fmt: skip


def load_bergman(csv):
    df = pd.read_csv(csv)
    ids, times, y, mask = _obs_arrays(df)
    sig = df[df["evid"] == 2]
    knots = np.stack([sig[sig["id"] == i]["time"].to_numpy(float) for i in ids])
    ins = np.stack([sig[sig["id"] == i]["insulin"].to_numpy(float) for i in ids])
    ib = (
        df.groupby("id", sort=False)["Ib"].first().reindex(ids).to_numpy(float)
        if "Ib" in df
        else np.full(len(ids), 10.0)
    )
    return dict(ids=ids, times=times, y=y, mask=mask, knots=knots, insulin=ins, ib=ib)
