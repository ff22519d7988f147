"""The cohort report for a statistician: diagnostics, calibration, model checks, population, trust.

``cohort(post, "cohort.html", sbc=..., coverage=...)`` writes one self-contained HTML file
(inline CSS and SVG, no scripts, no network).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd

from twin_uq.report.cohort_checks import population_checks
from twin_uq.report.figures import PALETTE, figure, svg_from_figure
from twin_uq.report.render import provenance, render, write, write_pdf
from twin_uq.report.text import format_estimate, format_number, percent
from twin_uq.twin.inputs import check_interval

__all__ = ["cohort"]

_MAX_DIAG_ROWS = 12  # individual-parameter rows shown in the diagnostics table (worst first)


def _diagnostics(post) -> dict:
    d = post.diagnostics()
    table = d.table.copy()
    individual = table.index.astype(str).str.startswith("theta")
    pop = table[~individual]
    ind = table[individual].sort_values("r_hat", ascending=False, na_position="first")
    rows = [
        dict(
            quantity=str(q),
            r_hat=_f(r.r_hat, 3),
            ess_bulk=_f(r.ess_bulk, 0),
            ess_tail=_f(r.ess_tail, 0),
        )
        for q, r in pd.concat([pop, ind.head(_MAX_DIAG_ROWS)]).iterrows()
    ]
    return dict(
        status="approximate" if post.approximate else ("converged" if d.converged else "attention"),
        reasons=list(d.reasons),
        max_rhat=_f(d.max_rhat, 3),
        min_ess=_f(d.min_ess_bulk, 0),
        divergences=d.divergences,
        n_draws=d.n_draws,
        bfmi=", ".join(_f(b, 2) for b in np.asarray(d.bfmi).reshape(-1)) or "not available",
        solver_failures=d.solver_failures,
        rows=rows,
        n_hidden=max(len(ind) - _MAX_DIAG_ROWS, 0),
    )


def _f(x: float, decimals: int) -> str:
    x = float(x)
    return "n/a" if not np.isfinite(x) else f"{x:.{decimals}f}"


def _population_density(r) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Grid and density of a parameter's population distribution at the posterior medians.

    Log-normal (from the CV%), logit-normal (from the SD on the logit scale), or
    ``(None, None)`` for a fixed effect.
    """
    if r.get("scale", "log") == "logit":
        om = float(r["omega"])
        if not np.isfinite(om) or om <= 0:
            return None, None
        centre = np.log(r["median"]) - np.log1p(-r["median"])
        z = np.linspace(centre - 3.2 * om, centre + 3.2 * om, 200)
        grid = 1.0 / (1.0 + np.exp(-z))
        dens = np.exp(-0.5 * ((z - centre) / om) ** 2) / (
            grid * (1.0 - grid) * om * np.sqrt(2 * np.pi)
        )
        return grid, dens
    if not np.isfinite(r["cv_percent"]):
        return None, None
    om = np.log1p((r["cv_percent"] / 100) ** 2) ** 0.5
    grid = np.exp(np.linspace(np.log(r["median"]) - 3.2 * om, np.log(r["median"]) + 3.2 * om, 200))
    dens = np.exp(-0.5 * ((np.log(grid) - np.log(r["median"])) / om) ** 2) / (
        grid * om * np.sqrt(2 * np.pi)
    )
    return grid, dens


def _variability(post, interval: float) -> list[dict]:
    """Between-patient and between-occasion SDs of the parameters with occasion variability.

    Empty without inter-occasion variability (the report then shows CV% only).
    """
    summ = post.population_summary(interval)
    if "omega_occ" not in summ or summ["omega_occ"].isna().all():
        return []
    rows = []
    for q, r in summ[summ["omega_occ"].notna()].iterrows():
        om, om_iv = format_estimate(r["omega"], r["omega_lower"], r["omega_upper"])
        oc, oc_iv = format_estimate(r["omega_occ"], r["omega_occ_lower"], r["omega_occ_upper"])
        rows.append(
            dict(quantity=str(q), scale=str(r.get("scale", "log")), omega=om,
                 omega_interval=om_iv, omega_occ=oc, omega_occ_interval=oc_iv)
        )  # fmt: skip
    return rows


def _population(
    post, interval: float
) -> tuple[list[dict], list[dict], list[dict], str | None, str | None]:
    summ = post.population_summary(interval)
    params, effects, residual = [], [], []
    for q, r in summ.iterrows():
        m, iv = format_estimate(r["median"], r["lower"], r["upper"])
        row = dict(
            quantity=str(q),
            unit=str(r.get("unit", "") or ""),
            median=m,
            interval=iv,
            description=str(r.get("description", "") or "")
            if pd.notna(r.get("description"))
            else "",
        )
        if r["kind"] == "typical value":
            if r.get("scale", "log") == "log" and pd.notna(r["cv_percent"]):
                cm, civ = format_estimate(r["cv_percent"], r["cv_lower"], r["cv_upper"])
            elif pd.notna(r.get("omega", np.nan)):  # logit-normal: the SD on the logit scale
                cm, civ = format_estimate(r["omega"], r["omega_lower"], r["omega_upper"])
                cm = f"SD {cm} (logit scale)"
            else:
                cm, civ = "fixed (same for all patients)", ""
            row |= dict(cv=cm, cv_interval=civ)
            params.append(row)
        elif str(r["kind"]).startswith("covariate"):
            effects.append(row)
        else:
            row["kind"] = str(r["kind"])
            residual.append(row)
    theta = post.posterior["theta"]
    med = theta.median(("chain", "draw"))
    names = [p.name for p in post.model.parameters]
    n = len(names)
    with figure(1, n, figsize=(2.4 * n + 0.6, 2.6), squeeze=False) as (fig, axes):
        for ax, pname in zip(axes[0], names, strict=True):
            vals = np.asarray(med.sel(parameter=pname).values, float)
            r = summ.loc[pname]
            grid, dens = _population_density(r)
            ax.hist(
                vals,
                bins=min(20, max(5, vals.size // 2)),
                density=True,
                color=PALETTE[0],
                alpha=0.35,
                label="patients (posterior medians)",
            )
            if grid is not None:  # a fixed effect has no distribution between patients
                ax.plot(grid, dens, color=PALETTE[1], lw=1.5, label="population distribution")
            label = f"typical value ({percent(interval)} interval)"
            ax.axvspan(r["lower"], r["upper"], color=PALETTE[2], alpha=0.15, lw=0, label=label)
            ax.axvline(r["median"], color=PALETTE[2], lw=1.2)
            ax.set_xlabel(f"{pname} ({r['unit']})")
            ax.set_yticks([])
        axes[0, 0].set_ylabel("density")
        fig.legend(
            *axes[0, 0].get_legend_handles_labels(),
            loc="outside lower center",
            ncol=3,
            fontsize=7.5,
        )
    desc = (
        f"For each parameter ({', '.join(names)}): histogram of the patients' posterior medians, the "
        "log-normal population distribution at the posterior median typical value and between-patient "
        f"variability, and the typical value with its {percent(interval)} interval."
    )
    dist_svg = svg_from_figure(fig, "popdist", "Parameter distributions across patients", desc)
    eff_svg = None
    if effects:
        e = summ.loc[[r["quantity"] for r in effects]]
        with figure(figsize=(6.0, 0.6 + 0.45 * len(e))) as (fig, ax):
            y = np.arange(len(e))[::-1]
            ax.errorbar(
                e["median"],
                y,
                xerr=[e["median"] - e["lower"], e["upper"] - e["median"]],
                fmt="o",
                color=PALETTE[0],
                capsize=3,
            )
            ax.axvline(1.0, color="0.3", ls="--", lw=1)
            ax.set_yticks(y, [str(i) for i in e.index])
            ax.set_xlabel("multiplicative effect on the parameter (1 = none)")
            ax.grid(axis="y", visible=False)
        eff_svg = svg_from_figure(
            fig,
            "effects",
            "Covariate effects",
            f"Median and {percent(interval)} interval of each covariate effect as a ratio; the dashed line at 1 means no effect.",
        )
    return params, effects, residual, dist_svg, eff_svg


def _trust(post, thresholds) -> tuple[list[dict], dict[str, int], list[str]]:
    report = post.trust(thresholds)
    ok_rate = post.idata["constant_data"]["solver_ok_rate"].to_series()
    rows = []
    for a in report:
        m = a.metrics
        rows.append(
            dict(
                patient=a.patient_id,
                status=a.status.value,
                n_obs=int(m.get("n_obs", 0)),
                contraction=_f(m.get("contraction_median", np.nan), 2),
                solver_ok=_f(100 * float(ok_rate.get(a.patient_id, 1.0)), 1),
                reasons=list(a.reasons),
            )
        )
    # Reasons every patient shares (a fit-level problem) are stated once, above the table.
    common = set.intersection(*(set(r["reasons"]) for r in rows)) if rows else set()
    shared = [r for r in rows[0]["reasons"] if r in common] if rows else []
    for r in rows:
        r["reasons"] = [x for x in r["reasons"] if x not in common]
    return rows, {str(k): int(v) for k, v in report.counts().items()}, shared


def _sbc(sbc) -> dict | None:
    if sbc is None:
        return None
    uni = sbc.uniformity()
    ranks = sbc.ranks
    rows = [
        dict(
            quantity=str(q),
            chi2=_f(r["chi2"], 2),
            df=int(r["df"]),
            p=_f(r["p_value"], 3),
            flag=bool(r["p_value"] < 0.01),
        )
        for q, r in uni.iterrows()
    ]
    cols = list(ranks.columns)
    ncol = min(4, len(cols))
    nrow = int(np.ceil(len(cols) / ncol))
    bins = min(10, sbc.n_rank_draws + 1)
    with figure(
        nrow, ncol, figsize=(1.9 * ncol + 0.4, 1.6 * nrow + 0.4), squeeze=False, sharey=True
    ) as (fig, axes):
        expected = len(ranks) / bins
        for ax, q in zip(axes.flat, cols, strict=False):
            ax.hist(
                ranks[q].dropna(),
                bins=np.linspace(0, sbc.n_rank_draws + 1, bins + 1),
                color=PALETTE[0],
                alpha=0.6,
            )
            ax.axhline(expected, color=PALETTE[1], lw=1)
            ax.set_title(str(q), fontsize=8)
            ax.set_xticks([])
        for ax in list(axes.flat)[len(cols) :]:
            ax.set_visible(False)
    svg = svg_from_figure(
        fig,
        "sbc",
        "Simulation-based calibration rank histograms",
        f"Histograms of the rank of the true value among {sbc.n_rank_draws} posterior draws for {len(cols)} "
        f"quantities over {len(ranks)} replicates; the line marks the count expected under calibration.",
    )
    return dict(
        rows=rows,
        figure=svg,
        n_replicates=len(ranks),
        n_rank_draws=sbc.n_rank_draws,
        failed=[f"replicate {i}: {why}" for i, why in sbc.failed],
    )


def _coverage(coverage) -> dict | None:
    if coverage is None:
        return None
    frame = coverage if isinstance(coverage, pd.DataFrame) else pd.DataFrame(coverage)
    frame = frame.reset_index() if not isinstance(frame.index, pd.RangeIndex) else frame
    cols = [str(c) for c in frame.columns]
    rows = [[_cell(v) for v in r] for r in frame.itertuples(index=False)]
    svg = None
    if {"nominal", "empirical"} <= set(cols):
        group_col = next((c for c in ("group", "output", "subgroup") if c in cols), None)
        with figure(figsize=(4.2, 4.0)) as (fig, ax):
            groups = frame.groupby(group_col, sort=False) if group_col else [("all", frame)]
            for i, (_name, g) in enumerate(groups):
                g = g.sort_values("nominal")
                c = PALETTE[i % len(PALETTE)]
                if {"lower", "upper"} <= set(cols):
                    ax.fill_between(g["nominal"], g["lower"], g["upper"], color=c, alpha=0.2, lw=0)
                ax.plot(
                    g["nominal"],
                    g["empirical"],
                    "o-",
                    color=c,
                    ms=3,
                    label=f"group {i + 1}" if group_col else "empirical",
                )
            ax.plot([0, 1], [0, 1], color="0.3", ls="--", lw=1, label="ideal")
            ax.set_xlim(0, 1)
            ax.set_ylim(0, 1)
            ax.set_xlabel("nominal coverage")
            ax.set_ylabel("empirical coverage")
            ax.legend(fontsize=7.5)
        svg = svg_from_figure(
            fig,
            "coverage",
            "Forecast coverage: empirical against nominal",
            "Empirical coverage of held-out data by predictive intervals against their nominal level; "
            "points on the dashed diagonal are perfectly calibrated, below it over-confident."
            + (" Groups are numbered in the order of the table." if group_col else ""),
        )
    return dict(columns=cols, rows=rows, figure=svg)


def _cell(v: object) -> str:
    if isinstance(v, float | np.floating):
        return format_number(float(v), 3)
    return str(v)


def cohort(
    post,
    path: str | Path,
    *,
    sbc=None,
    coverage: pd.DataFrame | None = None,
    interval: float = 0.9,
    thresholds=None,
    pdf: bool = False,
) -> Path:
    """Write the cohort report (one self-contained HTML file) for a statistician.

    Parameters
    ----------
    post
        The cohort fit to describe (:class:`~twin_uq.CohortPosterior`).
    path
        Output ``.html`` file.
    sbc
        Optional :class:`~twin_uq.validate.SBCResult`: rank histograms and uniformity tests.
    coverage
        Optional DataFrame of forecast coverage with columns ``nominal`` and ``empirical``
        (optionally ``lower``/``upper`` Monte Carlo bounds and a ``group``/``output``
        column); shown as a table and a calibration plot. Any other table is shown as is.
    interval
        Central interval of population estimates and predictive bands.
    thresholds
        Trust thresholds for the per-patient table.
    pdf
        Also print a PDF beside the HTML with headless Chromium (skipped with a warning if
        Chromium is absent).

    Returns
    -------
    Path
        The HTML file.
    """
    interval = check_interval(interval)
    params, effects, residual, dist_svg, eff_svg = _population(post, interval)
    variability = _variability(post, interval)
    trust_rows, counts, shared = _trust(post, thresholds)
    ok_rate = post.idata["constant_data"]["solver_ok_rate"].to_series()
    failures = [(str(p), _f(100 * (1 - float(r)), 1)) for p, r in ok_rate.items() if r < 1.0]
    html = render(
        "cohort.html",
        title=f"Cohort report: {post.model.name}",
        model=post.model,
        n_patients=len(post.patient_ids),
        n_obs=int(np.asarray(post.idata["constant_data"]["obs_mask"].values).sum()),
        method=post.method,
        approximate=post.approximate,
        interval=interval,
        diag=_diagnostics(post),
        sbc=_sbc(sbc),
        coverage=_coverage(coverage),
        checks=population_checks(post, interval),
        params=params,
        variability=variability,
        effects=effects,
        residual=residual,
        dist_svg=dist_svg,
        eff_svg=eff_svg,
        trust=trust_rows,
        counts=counts,
        shared_reasons=shared,
        failures=failures,
        limitations=list(post.model.card.limitations),
        provenance=provenance(post),
        generated=dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    )
    out = write(path, html)
    if pdf:
        write_pdf(out)
    return out
