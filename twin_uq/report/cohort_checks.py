"""The population checks of the cohort report: simulated VPC, NPDE and goodness of fit.

One simulation of new cohorts with the observed design (:mod:`twin_uq.checks`) serves the
three sections. Choices made here for the reader:

* the VPC is drawn against time after dose when some patient has more than one dose (a
  VPC against absolute time mixes dosing intervals), else against time;
* it is prediction-corrected when the population prediction differs between patients at
  the same x by more than 10 % (different doses or covariates), since then the spread in a
  bin is not the model's variability alone.
"""

from __future__ import annotations

import numpy as np

from twin_uq.checks import gof, npde, simulate_design, vpc
from twin_uq.checks.plots import draw_blq, draw_gof, draw_npde, draw_vpc, vpc_panels
from twin_uq.checks.simulate import observed_design
from twin_uq.report.figures import figure, svg_from_figure
from twin_uq.report.text import format_number, percent

__all__ = ["population_checks", "vpc_figures"]

#: Simulated cohorts behind the report's checks (500: percentile intervals of a VPC and
#: the empirical distributions of the NPDE; Comets et al. suggest 1000 for the NPDE).
NSIM = 500
#: Relative spread of PRED at one x above which the VPC is prediction-corrected.
_PC_SPREAD = 0.10


def _settings(post, d: dict, sims) -> tuple[str, bool, str]:
    """``(x, pc, why)``: the VPC's x axis and prediction correction, with the reason."""
    n_doses = np.asarray(post.arrays.schedule.bolus_mask).sum(axis=1) + np.asarray(
        post.arrays.schedule.infusion_mask
    ).sum(axis=1)
    x = "tad" if int(n_doses.max(initial=0)) > 1 else "time"
    xs = d["time"] if x == "time" else d["tad"]
    spread = 0.0
    for k in np.unique(d["output"][d["mask"]]):
        sel = d["mask"] & (d["output"] == k) & np.isfinite(xs)
        key = np.round(xs[sel], 6)
        pred = sims.pred[sel]
        for v in np.unique(key):
            p = pred[key == v]
            p = p[np.isfinite(p)]
            if p.size > 1 and np.median(np.abs(p)) > 0:
                spread = max(spread, float((p.max() - p.min()) / np.median(np.abs(p))))
    pc = spread > _PC_SPREAD
    why = (
        ("against time after the most recent dose (some patients have several doses)" if x == "tad"
         else "against time (one dose per patient)")
        + (f"; prediction-corrected, since the population prediction at one time differs "
           f"between patients by up to {100 * spread:.0f}% (doses or covariates)" if pc
           else "; not prediction-corrected (patients share their population prediction)")
    )  # fmt: skip
    return x, pc, why


def vpc_figures(result) -> list:
    """One inline SVG per output: its VPC panels (one per stratum) and BLQ panels."""
    figs = []
    panels = vpc_panels(result)
    for o in dict.fromkeys(p[1] for p in panels):
        mine = [p for p in panels if p[1] == o]
        n = len(mine)
        with figure(1, n, figsize=(4.6 * n + 0.4, 3.9), squeeze=False) as (fig, axes):
            for ax, (kind, out, s) in zip(axes[0], mine, strict=True):
                (draw_vpc if kind == "vpc" else draw_blq)(ax, result, out, s)
            handles, labels = axes[0, 0].get_legend_handles_labels()
            fig.legend(handles, labels, loc="outside lower center", ncol=3, fontsize=7)
        sub = result.percentiles[result.percentiles["output"] == o]
        blq = any(k == "blq" for k, _, _ in mine)
        desc = (
            f"{'Prediction-corrected visual' if result.pc else 'Visual'} predictive check of {o} "
            f"{'against time after dose' if result.x == 'tad' else 'against time'}: the observed "
            f"{', '.join(f'{100 * q:.0f}th' for q in sorted(sub['percentile'].unique()))} "
            f"percentiles per bin (lines with dots) against the {percent(result.interval)} "
            f"intervals of the same percentiles in {result.nsim} new cohorts simulated from the "
            f"population posterior with the observed design (bands); {int(sub['outside'].sum())} "
            f"of {len(sub)} observed percentiles fall outside their interval (crosses)."
            + (" A second panel compares the fraction of observations below the limit of "
               "quantification per bin with its simulated interval." if blq else "")
        )  # fmt: skip
        key = "vpc-" + str(len(figs))
        figs.append(svg_from_figure(fig, key, f"Visual predictive check: {o}", desc))
    return figs


def _npde_section(result, interval: float) -> dict:
    tests = result.tests()
    rows = [
        dict(
            output=str(out),
            n=int(r["n"]),
            mean=format_number(r["mean"], 3),
            variance=format_number(r["variance"], 3),
            p_mean=format_number(r["p_mean"], 3),
            p_variance=format_number(r["p_variance"], 3),
            p_normality=format_number(r["p_normality"], 3),
            p_global=format_number(r["p_global"], 3),
            flag=bool(r["flag"]),
        )
        for out, r in tests.iterrows()
    ]
    with figure(1, 3, figsize=(10.5, 3.3)) as (fig, axes):
        draw_npde(axes, result)
        axes[0].legend(fontsize=7)
    t = result.table
    n_cens = int((t["censored"] != "").sum())
    desc = (
        f"Normalised prediction distribution errors of {len(t)} observations against time, against "
        "the population prediction, and their histogram with the standard normal density; "
        "dashed lines at -1.96 and 1.96 hold 95% of the values under the model."
        + (f" {n_cens} censored observations are imputed (triangles)." if n_cens else "")
    )
    return dict(
        rows=rows,
        figure=svg_from_figure(fig, "npde", "NPDE against time and prediction", desc),
        n_censored=n_cens,
        pit_coverage=format_number(100 * _pit_inside(t["pd"], interval), 3),
    )


def _pit_inside(pit, interval: float) -> float:
    """Fraction of PIT values inside the central ``interval`` (``interval`` under the model)."""
    lo = (1 - interval) / 2
    return float(((pit > lo) & (pit < 1 - lo)).mean())


def _gof_figure(table):
    with figure(1, 4, figsize=(12.0, 3.2)) as (fig, axes):
        draw_gof(axes, table)
    desc = (
        "Goodness of fit: observed values against the population prediction (PRED, typical "
        "patient with the patient's covariates) and against the individual prediction (IPRED, "
        "posterior median of the patient's own prediction), with the line of identity; "
        "individual weighted residuals (IWRES) and NPDE against time, with lines at 0 and "
        "plus or minus 1.96. Censored observations are left out."
    )
    return svg_from_figure(fig, "gof", "Goodness of fit", desc)


def population_checks(post, interval: float, seed: int = 0) -> dict:
    """Everything the report's VPC, NPDE and goodness-of-fit sections show."""
    sims = simulate_design(post, NSIM, seed=seed)
    d = observed_design(post)
    x, pc, why = _settings(post, d, sims)
    v = vpc(post, x=x, pc=pc, interval=interval, sims=sims)
    n = npde(post, sims=sims, seed=seed)
    table = gof(post, sims=sims, npde=n)
    return dict(
        vpc=vpc_figures(v),
        vpc_why=why,
        vpc_outside=f"{int(v.percentiles['outside'].sum())} of {len(v.percentiles)}",
        vpc_left_out=v.left_out,
        nsim=sims.n_replicates,
        failed=int((~sims.ok).sum()),
        npde=_npde_section(n, interval),
        gof=_gof_figure(table),
    )
