"""Virtual people with type 1 diabetes from the Dalla Man et al. (2007) meal model: test data.

A simulator structurally different from (and more detailed than) the models twin_uq fits
(``glucose_meal``: 6 states, linear insulin action, two-compartment gut), for validating
fits, forecasts and risk numbers against a known truth. It follows the equations of

* Dalla Man C, Rizza RA, Cobelli C. Meal simulation model of the glucose-insulin system.
  IEEE Trans Biomed Eng. 2007;54(10):1740-1749 (glucose and insulin subsystems,
  endogenous glucose production, nonlinear gastric emptying, utilisation, renal
  excretion; "normal" parameter values of its Table 1 where a value is not varied);
* for type 1 diabetes, as in the UVA/Padova simulator (Kovatchev BP et al. J Diabetes Sci
  Technol. 2009;3(1):44-55; Dalla Man C et al. J Diabetes Sci Technol. 2014;8(1):26-34):
  no endogenous insulin secretion (and so no portal insulin term in EGP), subcutaneous
  insulin in two compartments ``Isc1``, ``Isc2`` (rates ``kd``, ``ka1``, ``ka2``), and a
  continuous glucose sensor that reads interstitial glucose after a first-order delay
  (time constant ``Ts`` ~ 10 min; Facchinetti A et al. IEEE Trans Biomed Eng.
  2014;61(3):620-627) with autocorrelated error (AR(1) as in Breton M, Kovatchev B.
  J Diabetes Sci Technol. 2008;2(5):853-862).

States (per kg of body weight where the paper has them so): ``Gp``, ``Gt`` glucose in
plasma and tissue (mg/kg); ``Il``, ``Ip`` insulin in liver and plasma (pmol/kg); ``Isc1``,
``Isc2`` subcutaneous insulin (pmol/kg); ``Qsto1``, ``Qsto2``, ``Qgut`` glucose in the
stomach (solid, liquid) and gut (mg); ``X`` remote insulin action (pmol/L); ``I1``, ``Id``
delayed insulin for EGP (pmol/L); ``Gs`` sensor (interstitial) glucose (mg/dL). Time in
minutes, glucose ``G = Gp/VG`` in mg/dL. 1 U of insulin = 6000 pmol.

Each person starts in the fasting steady state of their basal insulin rate: ``kp1`` and
``Vm0`` are set so that glucose rests at the person's basal glucose ``Gb`` (as the
UVA/Padova simulator does). Meal boluses follow the person's carb ratio, with a correction
for the last glucose value recorded before the meal above 120 mg/dL (the correction
factor); ratio and factor are matched to the person's model by a mass balance
(:func:`matched_therapy`) and then mistuned by a random factor, as real therapy is.

The age-group distributions (:data:`AGE_GROUPS`) are **illustrative**: their medians and
spreads were chosen to resemble the ranges of the published adult / adolescent / child
UVA/Padova virtual-patient parameter sets (body weight, insulin action ``Vmx``, ``kp3``,
``p2U``, absorption rates, subcutaneous insulin kinetics), with children's insulin
sensitivity the most variable. They are not fitted to any data and must not be read as
clinical facts.

Integrated with SciPy's LSODA (this is test data; no gradients are needed).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.integrate import solve_ivp

__all__ = [
    "AGE_GROUPS",
    "NORMAL",
    "PMOL_PER_UNIT",
    "STATE_NAMES",
    "AgeGroup",
    "T1DCohort",
    "basal_state",
    "dalla_man_rhs",
    "matched_therapy",
    "sample_virtual_patients",
    "simulate_person",
    "simulate_t1d_cohort",
]

PMOL_PER_UNIT = 6000.0
STATE_NAMES = (
    "Gp", "Gt", "Il", "Ip", "Isc1", "Isc2", "Qsto1", "Qsto2", "Qgut", "X", "I1", "Id", "Gs",
)  # fmt: skip
_GP, _GT, _IL, _IP, _ISC1, _ISC2, _QSTO1, _QSTO2, _QGUT, _X, _I1, _ID, _GS = range(13)

#: Dalla Man et al. 2007, Table 1 ("normal" column), and the UVA/Padova subcutaneous
#: insulin and sensor constants: the values of every parameter an age group does not vary.
NORMAL: dict[str, float] = {
    "VG": 1.88,  # dL/kg
    "k1": 0.065, "k2": 0.079,  # 1/min
    "VI": 0.05,  # L/kg
    "m1": 0.190, "m2": 0.484, "m4": 0.194, "m30": 0.285,  # 1/min (m30 from HEb = 0.6)
    "kmax": 0.0558, "kmin": 0.0080, "kabs": 0.057, "kgri": 0.0558,  # 1/min
    "f": 0.90, "b": 0.82, "c": 0.010,
    "kp2": 0.0021,  # 1/min
    "kp3": 0.009,  # mg/kg/min per pmol/L
    "ki": 0.0079,  # 1/min
    "Fsnc": 1.0,  # mg/kg/min
    "Vmx": 0.047,  # mg/kg/min per pmol/L
    "Km0": 225.59,  # mg/kg
    "p2U": 0.0331,  # 1/min
    "ke1": 0.0005,  # 1/min
    "ke2": 339.0,  # mg/kg
    "kd": 0.0164, "ka1": 0.0018, "ka2": 0.0182,  # 1/min, subcutaneous insulin
    "Ts": 10.0,  # min, sensor delay
    "EGPb": 1.92,  # mg/kg/min, basal endogenous production
    "Gb": 140.0,  # mg/dL, fasting glucose on the basal rate
}  # fmt: skip


@dataclass(frozen=True)
class AgeGroup:
    """Distribution of virtual people of one age group (illustrative values).

    ``weight``: (median kg, log-SD); ``basal``: (median basal insulin in U/kg/h, log-SD);
    ``parameters``: name -> (median, log-SD) of log-normal parameters, the rest from
    :data:`NORMAL`; ``carbs``: (low, high) g of a main meal, uniform.
    """

    name: str
    weight: tuple[float, float]
    basal: tuple[float, float]
    parameters: Mapping[str, tuple[float, float]]
    carbs: tuple[float, float]


AGE_GROUPS: dict[str, AgeGroup] = {
    "adult": AgeGroup(
        "adult", weight=(78.0, 0.15), basal=(0.014, 0.25), carbs=(40.0, 90.0),
        parameters={
            "Gb": (140.0, 0.06), "EGPb": (1.9, 0.15), "Vmx": (0.047, 0.45),
            "kp3": (0.009, 0.4), "p2U": (0.033, 0.3), "kabs": (0.08, 0.5),
            "kmax": (0.045, 0.3), "kmin": (0.008, 0.4), "ki": (0.008, 0.3),
            "k2": (0.08, 0.3), "kd": (0.0164, 0.15), "ka1": (0.0025, 0.3),
            "ka2": (0.016, 0.3), "m4": (0.194, 0.2), "VG": (1.88, 0.08),
        },
    ),
    "adolescent": AgeGroup(
        "adolescent", weight=(50.0, 0.18), basal=(0.018, 0.3), carbs=(40.0, 80.0),
        parameters={
            "Gb": (145.0, 0.06), "EGPb": (2.2, 0.18), "Vmx": (0.055, 0.5),
            "kp3": (0.011, 0.5), "p2U": (0.035, 0.35), "kabs": (0.09, 0.6),
            "kmax": (0.04, 0.35), "kmin": (0.009, 0.45), "ki": (0.009, 0.35),
            "k2": (0.1, 0.35), "kd": (0.0165, 0.15), "ka1": (0.0035, 0.3),
            "ka2": (0.017, 0.3), "m4": (0.2, 0.2), "VG": (1.85, 0.08),
        },
    ),
    "child": AgeGroup(
        "child", weight=(32.0, 0.22), basal=(0.012, 0.35), carbs=(25.0, 60.0),
        parameters={
            "Gb": (140.0, 0.07), "EGPb": (2.6, 0.2), "Vmx": (0.07, 0.7),
            "kp3": (0.012, 0.6), "p2U": (0.04, 0.45), "kabs": (0.1, 0.7),
            "kmax": (0.045, 0.4), "kmin": (0.01, 0.5), "ki": (0.009, 0.4),
            "k2": (0.1, 0.4), "kd": (0.017, 0.15), "ka1": (0.004, 0.35),
            "ka2": (0.02, 0.35), "m4": (0.15, 0.25), "VG": (1.8, 0.1),
        },
    ),
}  # fmt: skip


def basal_state(p: Mapping[str, float], basal_pmol_kg_min: float) -> tuple[np.ndarray, dict]:
    """Fasting steady state on a constant basal insulin rate, and the derived parameters.

    Returns the state vector (13,) and ``p`` completed with ``Ib`` (pmol/L), ``kp1``
    (mg/kg/min) and ``Vm0`` (mg/kg/min), chosen so that glucose rests at ``p["Gb"]``.
    """
    q = dict(p)
    u = basal_pmol_kg_min
    isc1 = u / (q["kd"] + q["ka1"])
    isc2 = q["kd"] * isc1 / q["ka2"]
    # Plasma insulin at rest: everything absorbed (u) is cleared by liver (m30 of Il) and
    # periphery (m4 of Ip); Il = m2 Ip / (m1 + m30).
    ip = u / (q["m2"] + q["m4"] - q["m1"] * q["m2"] / (q["m1"] + q["m30"]))
    il = q["m2"] * ip / (q["m1"] + q["m30"])
    ib = ip / q["VI"]
    gpb = q["Gb"] * q["VG"]
    renal = q["ke1"] * max(gpb - q["ke2"], 0.0)
    uid_b = q["EGPb"] - q["Fsnc"] - renal  # insulin-dependent utilisation at rest
    if uid_b <= 0:
        raise ValueError(
            f"basal EGP {q['EGPb']:.3g} mg/kg/min does not exceed brain use plus renal "
            f"excretion ({q['Fsnc'] + renal:.3g}): no steady state at Gb = {q['Gb']:.3g} mg/dL."
        )
    gtb = (q["k1"] * gpb - uid_b) / q["k2"]
    q.update(
        Ib=ib,
        kp1=q["EGPb"] + q["kp2"] * gpb + q["kp3"] * ib,
        Vm0=uid_b * (q["Km0"] + gtb) / gtb,
    )
    x = np.array([gpb, gtb, il, ip, isc1, isc2, 0.0, 0.0, 0.0, 0.0, ib, ib, q["Gb"]])
    return x, q


def _k_empt(q_sto: float, dose: float, p: Mapping[str, float]) -> float:
    """Gastric emptying rate (1/min): fast when the stomach is full or nearly empty."""
    if dose <= 0.0:
        return p["kmax"]
    alpha = 5.0 / (2.0 * dose * (1.0 - p["b"]))
    beta = 5.0 / (2.0 * dose * p["c"])
    return p["kmin"] + (p["kmax"] - p["kmin"]) / 2.0 * (
        np.tanh(alpha * (q_sto - p["b"] * dose)) - np.tanh(beta * (q_sto - p["c"] * dose)) + 2.0
    )


def dalla_man_rhs(
    t: float, x: np.ndarray, p: Mapping[str, float], basal: float, meal_mg: float
) -> np.ndarray:
    """Time derivative of the 13 states (see the module docstring for units).

    ``p``: parameters completed by :func:`basal_state` (with ``BW`` in kg); ``basal``:
    subcutaneous insulin infusion (pmol/kg/min); ``meal_mg``: carbohydrate of the last meal
    (mg), which sets the shape of the gastric emptying curve.
    """
    gp, gt, il, ip, isc1, isc2, qs1, qs2, qgut, xa, i1, id_, gs = x
    g = gp / p["VG"]
    insulin = ip / p["VI"]
    k_empt = _k_empt(qs1 + qs2, meal_mg, p)
    ra = p["f"] * p["kabs"] * qgut / p["BW"]  # mg/kg/min
    egp = max(p["kp1"] - p["kp2"] * gp - p["kp3"] * id_, 0.0)
    uid = (p["Vm0"] + p["Vmx"] * xa) * gt / (p["Km0"] + gt)
    renal = p["ke1"] * max(gp - p["ke2"], 0.0)
    return np.array(
        [
            egp + ra - p["Fsnc"] - renal - p["k1"] * gp + p["k2"] * gt,
            -uid + p["k1"] * gp - p["k2"] * gt,
            -(p["m1"] + p["m30"]) * il + p["m2"] * ip,
            -(p["m2"] + p["m4"]) * ip + p["m1"] * il + p["ka1"] * isc1 + p["ka2"] * isc2,
            -(p["kd"] + p["ka1"]) * isc1 + basal,
            p["kd"] * isc1 - p["ka2"] * isc2,
            -p["kgri"] * qs1,
            -k_empt * qs2 + p["kgri"] * qs1,
            -p["kabs"] * qgut + k_empt * qs2,
            -p["p2U"] * xa + p["p2U"] * (insulin - p["Ib"]),
            -p["ki"] * (i1 - insulin),
            -p["ki"] * (id_ - i1),
            (g - gs) / p["Ts"],
        ]
    )


def matched_therapy(p: Mapping[str, float], bw: float) -> tuple[float, float]:
    """Carb ratio (g/U) and correction factor (mg/dL per U) matched to a person's model.

    A mass balance at the basal state: one unit of insulin (6000/BW pmol/kg) raises the
    time integral of plasma insulin by ``6000 / (BW·VI·c)`` pmol/L·min (``c`` the net
    clearance rate of :func:`basal_state`), and each pmol/L·min removes ``Vmx·Gtb/(Km0 +
    Gtb)`` mg/kg of glucose through utilisation plus ``kp3`` through suppressed production
    (``X`` and ``Id`` integrate to the same area as ``I - Ib``). One gram of carbohydrate
    brings ``1000·f/BW`` mg/kg. Glucose effectiveness and the saturation of utilisation are
    ignored, so these are a clinician's well-tuned starting values, not exact.
    """
    c = p["m2"] + p["m4"] - p["m1"] * p["m2"] / (p["m1"] + p["m30"])
    gpb = p["Gb"] * p["VG"]
    uid_b = p["EGPb"] - p["Fsnc"] - p["ke1"] * max(gpb - p["ke2"], 0.0)
    gtb = (p["k1"] * gpb - uid_b) / p["k2"]
    per_area = p["Vmx"] * gtb / (p["Km0"] + gtb) + p["kp3"]  # mg/kg per pmol/L·min
    removed = per_area * PMOL_PER_UNIT / (bw * p["VI"] * c)  # mg/kg per U
    return removed / (1000.0 * p["f"] / bw), removed / p["VG"]


def sample_virtual_patients(
    groups: Mapping[str, int],
    seed: int = 0,
    *,
    therapy_sd: float = 0.15,
    age_groups: Mapping[str, AgeGroup] = AGE_GROUPS,
) -> pd.DataFrame:
    """Draw virtual people: one row per person (index ``ID``) with every model parameter.

    ``groups``: age-group name -> number of people (e.g. ``{"child": 10, "adult": 10}``).
    Columns: ``group``, ``BW`` (kg), ``basal_u_per_h`` (U/h, the steady-state basal rate),
    ``carb_ratio`` (g/U), ``correction_factor`` (mg/dL per U): :func:`matched_therapy`
    times a log-normal mismatch of log-SD ``therapy_sd`` each, and the model parameters
    (:data:`NORMAL` names, plus ``Ib``, ``kp1``, ``Vm0`` from :func:`basal_state`).
    """
    rng = np.random.default_rng(seed)
    rows = []
    for name, n in groups.items():
        if name not in age_groups:
            raise KeyError(f"unknown age group {name!r}; known: {sorted(age_groups)}")
        grp = age_groups[name]
        for _ in range(int(n)):
            p = dict(NORMAL)
            for k, (median, sd) in grp.parameters.items():
                p[k] = float(median * np.exp(sd * rng.standard_normal()))
            bw = float(grp.weight[0] * np.exp(grp.weight[1] * rng.standard_normal()))
            basal_u_kg_h = float(grp.basal[0] * np.exp(grp.basal[1] * rng.standard_normal()))
            basal_u_h = round(basal_u_kg_h * bw, 2)  # pumps deliver 0.01 U/h steps
            _, p = basal_state(p, basal_u_h * PMOL_PER_UNIT / 60.0 / bw)
            cr, cf = matched_therapy(p, bw)
            mismatch = np.exp(therapy_sd * rng.standard_normal(2))
            rows.append(
                {"ID": f"{name}-{len(rows) + 1:03d}", "group": name, "BW": bw,
                 "basal_u_per_h": basal_u_h, "carb_ratio": float(cr * mismatch[0]),
                 "correction_factor": float(cf * mismatch[1]), **p}
            )  # fmt: skip
    return pd.DataFrame(rows).set_index("ID")


@dataclass(frozen=True)
class T1DCohort:
    """A simulated cohort: the table to fit and the truth behind it.

    Attributes
    ----------
    table
        Long NONMEM-style table for :func:`twin_uq.read_cohort` (``time_unit="min"``):
        ``ID, TIME, AMT, RATE, CMT, EVID, DV, WT, BASAL, AGE_GROUP``. Doses: carbohydrate
        (g) into CMT 1, insulin boluses (U) into CMT 2, basal insulin as one infusion
        (U/min) into CMT 2 — the data contract of ``glucose_meal``. Observations
        (``EVID=0``, ``CMT=0``): CGM values of interstitial glucose or fingerstick values
        of plasma glucose (mg/dL).
    truth
        Noise-free trajectory on a 1-minute grid: ``ID, TIME, G`` (plasma glucose,
        mg/dL), ``Gs`` (interstitial / sensor glucose before noise), ``I`` (plasma
        insulin, pmol/L), ``Ra`` (glucose appearance, mg/kg/min).
    observed_truth
        The noise-free value behind every ``DV`` (``ID, TIME, f``), row-aligned with the
        observation rows of ``table``.
    patients
        :func:`sample_virtual_patients`'s table for these people.
    sampling
        ``"cgm"`` or ``"fingerstick"``.
    """

    table: pd.DataFrame
    truth: pd.DataFrame
    observed_truth: pd.DataFrame
    patients: pd.DataFrame
    sampling: str


@dataclass(frozen=True)
class _Design:
    days: int
    sampling: str
    cgm_interval: float
    fingerstick_times: tuple[float, ...]
    meal_times: tuple[float, ...]
    meal_jitter: float
    cgm_sd: float
    cgm_ar: float
    meter_add: float
    meter_prop: float
    target: float = 120.0


def _observation_times(d: _Design) -> np.ndarray:
    horizon = 1440.0 * d.days
    if d.sampling == "cgm":
        return np.arange(d.cgm_interval, horizon + 1e-9, d.cgm_interval)
    return np.array([1440.0 * k + t for k in range(d.days) for t in d.fingerstick_times])


def _noise(
    rng: np.random.Generator, times: np.ndarray, d: _Design
) -> tuple[np.ndarray, np.ndarray]:
    """Additive sensor error (AR(1) per CGM interval) or meter z-scores."""
    z = rng.standard_normal(times.shape)
    if d.sampling != "cgm":
        return np.zeros_like(times), z
    e = np.empty_like(times)
    e[0] = d.cgm_sd * z[0]
    for k in range(1, len(times)):
        phi = d.cgm_ar ** ((times[k] - times[k - 1]) / d.cgm_interval)
        e[k] = phi * e[k - 1] + np.sqrt(1.0 - phi**2) * d.cgm_sd * z[k]
    return e, z


def simulate_person(
    p: Mapping[str, float],
    meals: Sequence[tuple[float, float]],
    obs_times: np.ndarray,
    *,
    measure: Callable[[int, float], float] | None = None,
    boluses: Sequence[tuple[float, float]] = (),
    carb_ratio: float | None = None,
    correction_factor: float | None = None,
    target: float = 120.0,
    horizon: float | None = None,
) -> dict:
    """Integrate one person over ``[0, horizon]`` (min) with meals and insulin.

    ``p``: a row of :func:`sample_virtual_patients` (model parameters with ``BW`` in kg
    and ``basal_u_per_h``, the basal rate given all along); ``obs_times`` (N,) in min.
    ``meals``: (time min, carbohydrate g); ``boluses``: extra insulin (time, U). With
    ``carb_ratio`` each meal gets a bolus ``carbs / carb_ratio`` plus, with
    ``correction_factor``, ``(g - target) / correction_factor`` where ``g`` is the last
    measured value at or before the meal (``measure(k, f)``: the recorded value of
    observation ``k`` given its noise-free value ``f``; default: ``f``), rounded to 0.1 U.
    Returns ``{"grid", "states" (T, 13), "f_obs" (plasma or sensor glucose at obs_times,
    noise-free), "y_obs", "boluses" [(time, U)]}``; which state is observed is
    ``p["observe"]`` (``"G"`` plasma or ``"Gs"`` sensor, default ``"G"``).
    """
    measure = measure or (lambda k, f: f)
    horizon = float(horizon if horizon is not None else max(obs_times.max(), 1.0))
    basal = p["basal_u_per_h"] * PMOL_PER_UNIT / 60.0 / p["BW"]
    x, _ = basal_state(p, basal)
    events = sorted({0.0, horizon, *[t for t, _ in meals], *[t for t, _ in boluses]})
    grid = np.arange(0.0, horizon + 1e-9, 1.0)
    observe = _GS if p.get("observe", "G") == "Gs" else _GP
    scale = 1.0 if observe == _GS else 1.0 / p["VG"]
    f_obs = np.full(obs_times.shape, np.nan)
    y_obs = np.full(obs_times.shape, np.nan)
    states = np.empty((grid.size, 13))
    given: list[tuple[float, float]] = []
    last_meal = 0.0
    for t0, t1 in itertools.pairwise(events):
        carbs = sum(c for t, c in meals if t == t0)
        units = sum(u for t, u in boluses if t == t0)
        if carbs > 0:
            x[_QSTO1] += carbs * 1000.0
            last_meal = carbs * 1000.0
            if carb_ratio is not None:
                done = obs_times <= t0
                seen = y_obs[done][-1] if done.any() else np.nan
                corr = 0.0
                if correction_factor is not None and np.isfinite(seen):
                    corr = max(seen - target, 0.0) / correction_factor
                units += round(carbs / carb_ratio + corr, 1)
        if units > 0:
            x[_ISC1] += units * PMOL_PER_UNIT / p["BW"]
            given.append((t0, units))
        inside = (grid >= t0) & (grid <= t1)
        at_obs = (obs_times > t0) & (obs_times <= t1) | ((obs_times == 0.0) & (t0 == 0.0))
        t_eval = np.union1d(grid[inside], obs_times[at_obs])
        sol = solve_ivp(
            dalla_man_rhs, (t0, t1), x, method="LSODA", t_eval=t_eval, rtol=1e-8, atol=1e-8,
            args=(p, basal, last_meal),
        )  # fmt: skip
        if not sol.success:
            raise RuntimeError(f"Dalla Man model did not integrate on [{t0}, {t1}]: {sol.message}")
        ys = sol.y.T
        states[inside] = ys[np.isin(t_eval, grid[inside])]
        for k in np.flatnonzero(at_obs):
            f_obs[k] = ys[np.searchsorted(t_eval, obs_times[k]), observe] * scale
            y_obs[k] = measure(k, f_obs[k])
        x = ys[-1].copy()
    return {"grid": grid, "states": states, "f_obs": f_obs, "y_obs": y_obs, "boluses": given}


def _meals(rng: np.random.Generator, grp: AgeGroup, d: _Design) -> list[tuple[float, float]]:
    out = []
    for day in range(d.days):
        for t in d.meal_times:
            time = 1440.0 * day + t + round(rng.uniform(-d.meal_jitter, d.meal_jitter))
            out.append((float(time), float(round(rng.uniform(*grp.carbs)))))
    return out


def simulate_t1d_cohort(
    groups: Mapping[str, int] | int = 10,
    *,
    days: int = 1,
    sampling: str = "cgm",
    seed: int = 0,
    cgm_interval: float = 5.0,
    fingerstick_times: Sequence[float] = (55.0, 180.0, 355.0, 715.0, 840.0, 960.0),
    meal_times: Sequence[float] = (60.0, 360.0, 720.0),
    meal_jitter: float = 0.0,
    cgm_sd: float = 8.0,
    cgm_ar: float = 0.7,
    meter_sd: tuple[float, float] = (4.0, 0.05),
    age_groups: Mapping[str, AgeGroup] = AGE_GROUPS,
    therapy_sd: float = 0.15,
) -> T1DCohort:
    """Simulate a cohort of people with type 1 diabetes over ``days`` days.

    Time 0 is 06:00 of the first day; ``meal_times`` and ``fingerstick_times`` are minutes
    after 06:00 of each day (defaults: meals at 07:00, 12:00, 18:00; fingersticks before
    each meal, two hours after breakfast and dinner, and at 22:00).

    Parameters
    ----------
    groups
        Age group -> number of people, or a number of people per group of
        :data:`AGE_GROUPS`.
    sampling
        ``"cgm"``: a sensor value of interstitial glucose every ``cgm_interval`` minutes,
        with additive AR(1) error (SD ``cgm_sd`` mg/dL, lag-one correlation ``cgm_ar`` per
        interval); ``"fingerstick"``: plasma glucose at ``fingerstick_times`` each day,
        independent meter error with SD ``sqrt(a² + (b·G)²)``, ``meter_sd = (a, b)``.
    meal_jitter
        Each meal moves by a whole number of minutes, uniform within ± this.
    seed
        One seed for the people, the meals and the measurement error.
    therapy_sd
        Log-SD of each person's carb-ratio and correction-factor mismatch
        (:func:`sample_virtual_patients`); larger values give more over- and under-dosed
        meals, hence more hypo- and hyperglycaemia.
    """
    if sampling not in ("cgm", "fingerstick"):
        raise ValueError(f"sampling must be 'cgm' or 'fingerstick', got {sampling!r}")
    if isinstance(groups, int):
        groups = dict.fromkeys(age_groups, groups)
    d = _Design(
        days=int(days), sampling=sampling, cgm_interval=float(cgm_interval),
        fingerstick_times=tuple(map(float, fingerstick_times)),
        meal_times=tuple(map(float, meal_times)), meal_jitter=float(meal_jitter),
        cgm_sd=float(cgm_sd), cgm_ar=float(cgm_ar),
        meter_add=float(meter_sd[0]), meter_prop=float(meter_sd[1]),
    )  # fmt: skip
    patients = sample_virtual_patients(groups, seed, therapy_sd=therapy_sd, age_groups=age_groups)
    rng = np.random.default_rng([seed, 1])
    obs_times = _observation_times(d)
    horizon = 1440.0 * d.days
    rows, truth, obs_truth = [], [], []
    for pid, person in patients.iterrows():
        meals = _meals(rng, age_groups[person["group"]], d)
        err, z = _noise(rng, obs_times, d)
        if sampling == "cgm":
            measure = lambda k, f, err=err: f + err[k]  # noqa: E731
        else:
            measure = lambda k, f, z=z: f + z[k] * np.hypot(d.meter_add, d.meter_prop * f)  # noqa: E731
        p = {**person.to_dict(), "observe": "Gs" if sampling == "cgm" else "G"}
        out = simulate_person(
            p, meals, obs_times, measure=measure, carb_ratio=person["carb_ratio"],
            correction_factor=person["correction_factor"], target=d.target, horizon=horizon,
        )  # fmt: skip
        cov = {"WT": person["BW"], "BASAL": person["basal_u_per_h"], "AGE_GROUP": person["group"]}
        rate = person["basal_u_per_h"] / 60.0
        own = [{"ID": pid, "TIME": 0.0, "AMT": rate * horizon, "RATE": rate, "CMT": 2,
                "EVID": 1, "DV": np.nan, **cov}]  # fmt: skip
        own += [{"ID": pid, "TIME": t, "AMT": c, "RATE": 0.0, "CMT": 1, "EVID": 1,
                 "DV": np.nan, **cov} for t, c in meals]  # fmt: skip
        own += [{"ID": pid, "TIME": t, "AMT": u, "RATE": 0.0, "CMT": 2, "EVID": 1,
                 "DV": np.nan, **cov} for t, u in out["boluses"]]  # fmt: skip
        own += [{"ID": pid, "TIME": t, "AMT": 0.0, "RATE": 0.0, "CMT": 0, "EVID": 0,
                 "DV": y, **cov} for t, y in zip(obs_times, out["y_obs"], strict=True)]  # fmt: skip
        # Doses before observations at equal times: twin_uq reads such an observation after
        # the dose; glucose itself does not jump at a meal or an injection, so both agree.
        own_table = pd.DataFrame(own).sort_values(
            ["TIME", "EVID"], ascending=[True, False], kind="stable"
        )
        rows.append(own_table)
        s = out["states"]
        truth.append(pd.DataFrame({
            "ID": pid, "TIME": out["grid"], "G": s[:, _GP] / person["VG"], "Gs": s[:, _GS],
            "I": s[:, _IP] / person["VI"],
            "Ra": person["f"] * person["kabs"] * s[:, _QGUT] / person["BW"],
        }))  # fmt: skip
        obs_truth.append(pd.DataFrame({"ID": pid, "TIME": obs_times, "f": out["f_obs"]}))
    table = pd.concat(rows, ignore_index=True)  # people in the order of ``patients``
    return T1DCohort(
        table=table,
        truth=pd.concat(truth, ignore_index=True),
        observed_truth=pd.concat(obs_truth, ignore_index=True),
        patients=patients,
        sampling=sampling,
    )
