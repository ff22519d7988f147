"""matplotlib drawings of the population checks (VPC, BLQ fraction, NPDE, goodness of fit).

``draw_*`` functions draw on given axes (the cohort report draws under its own style);
``plot_*`` build a figure of their own for interactive use and the command line.
"""

from __future__ import annotations

import numpy as np

__all__ = ["draw_blq", "draw_gof", "draw_npde", "draw_vpc", "plot_npde", "plot_vpc"]

#: Colour-blind safe (Okabe & Ito 2008): blue for the outer percentiles, vermillion median.
_BLUE, _RED, _GREY = "#0072B2", "#D55E00", "0.55"


def _log_axis(axis) -> None:
    """Log scale with plain numbers on the major ticks and no minor-tick labels."""
    from matplotlib import ticker

    axis.set_major_formatter(ticker.FormatStrFormatter("%g"))
    axis.set_minor_formatter(ticker.NullFormatter())


def _x_label(result) -> str:
    what = "time after dose" if result.x == "tad" else "time"
    return f"{what} ({result.time_unit})"


def draw_vpc(ax, result, output: str, stratum: str, y_label: str | None = None) -> None:
    """One VPC panel: points, observed percentiles (lines) and simulated intervals (bands)."""
    p = result.percentiles
    p = p[(p["output"] == output) & (p["stratum"] == stratum)]
    obs = result.observations
    obs = obs[(obs["output"] == output) & (obs["stratum"] == stratum)]
    ok = ~obs["censored"].to_numpy(bool)
    ax.plot(obs["x"][ok], obs["y"][ok], ".", color=_GREY, ms=2.5, label="observations")
    pct = f"{100 * result.interval:.0f}%"
    for q, g in p.groupby("percentile"):
        c = _RED if abs(q - 0.5) < 1e-9 else _BLUE
        g = g.sort_values("x")
        ax.fill_between(g["x"], g["sim_lower"], g["sim_upper"], color=c, alpha=0.2, lw=0,
                        label=f"simulated {100 * q:.0f}th percentile ({pct} interval)")  # fmt: skip
        shown = g["observed"].where(~g["observed_blq"])
        ax.plot(g["x"], shown, color=c, lw=1.5, ls="-" if c == _RED else "--", marker="o", ms=3,
                label=f"observed {100 * q:.0f}th percentile")  # fmt: skip
        out = g[g["outside"]]
        ax.plot(out["x"], out["observed"], "x", color="black", ms=6, mew=1.5,
                label="observed outside the interval" if q == p["percentile"].min() else None)  # fmt: skip
    lim = p.drop_duplicates("bin").sort_values("x")
    if np.isfinite(lim["lloq"]).any():
        ax.plot(lim["x"], lim["lloq"], ":", color="black", lw=1, label="limit of quantification")
    ax.set_xlabel(_x_label(result))
    ax.set_ylabel(y_label or (f"prediction-corrected {output}" if result.pc else output))
    title = output if stratum == "all" else f"{output}, {stratum}"
    ax.set_title(title, fontsize=8.5)


def draw_blq(ax, result, output: str, stratum: str) -> None:
    """Fraction below the limit per bin: observed (line) against the simulated interval."""
    b = result.blq
    b = b[(b["output"] == output) & (b["stratum"] == stratum)].sort_values("x")
    ax.fill_between(b["x"], b["sim_lower"], b["sim_upper"], color=_BLUE, alpha=0.2, lw=0,
                    label=f"simulated ({100 * result.interval:.0f}% interval)")  # fmt: skip
    ax.plot(b["x"], b["sim_median"], color=_BLUE, lw=1, label="simulated median")
    ax.plot(b["x"], b["observed"], "o-", color=_RED, ms=3, lw=1.5, label="observed")
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel(_x_label(result))
    ax.set_ylabel("fraction below LLOQ")
    title = "below LLOQ" if stratum == "all" else f"below LLOQ, {stratum}"
    ax.set_title(f"{output}: {title}", fontsize=8.5)


def vpc_panels(result, output: str | None = None) -> list[tuple[str, str, str]]:
    """``(kind, output, stratum)`` of every panel, ``kind`` ``"vpc"`` or ``"blq"``."""
    panels = []
    p = result.percentiles
    for o in dict.fromkeys(p["output"]):
        if output is not None and o != output:
            continue
        for s in dict.fromkeys(p.loc[p["output"] == o, "stratum"]):
            panels.append(("vpc", o, s))
        for s in dict.fromkeys(result.blq.loc[result.blq["output"] == o, "stratum"]):
            panels.append(("blq", o, s))
    return panels


def plot_vpc(result, output: str | None = None):
    """A figure with one panel per output and stratum, and the BLQ panels."""
    import matplotlib.pyplot as plt

    panels = vpc_panels(result, output)
    ncol = min(3, len(panels))
    nrow = -(-len(panels) // ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(4.2 * ncol, 3.4 * nrow + 0.8), squeeze=False,
                             layout="constrained")  # fmt: skip
    for ax, (kind, o, s) in zip(axes.flat, panels, strict=False):
        (draw_vpc if kind == "vpc" else draw_blq)(ax, result, o, s)
    for ax in list(axes.flat)[len(panels) :]:
        ax.set_visible(False)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=3, fontsize=7)
    fig.suptitle(vpc_title(result), fontsize=9)
    return fig


def vpc_title(result) -> str:
    """One line saying what kind of VPC this is (and whether the posterior is approximate)."""
    kind = "Prediction-corrected VPC" if result.pc else "VPC"
    what = " by time after dose" if result.x == "tad" else ""
    approx = f"; APPROXIMATE posterior ({result.method})" if result.approximate else ""
    return f"{kind}{what}: {result.nsim} simulated cohorts of the observed design{approx}"


def draw_npde(axes, result) -> None:
    """NPDE against time, against the population prediction, and their histogram (3 axes)."""
    t = result.table
    cens = t["censored"].to_numpy(str) != ""
    for ax, col, label in ((axes[0], "time", "time"), (axes[1], "pred", "population prediction")):
        ax.plot(t[col][~cens], t["npde"][~cens], ".", color=_BLUE, ms=3, label="observed")
        if cens.any():
            ax.plot(t[col][cens], t["npde"][cens], "^", color=_RED, ms=3.5, mfc="none",
                    label="censored (imputed)")  # fmt: skip
        for h, ls in ((0, "-"), (-1.96, "--"), (1.96, "--")):
            ax.axhline(h, color="0.3", lw=0.8, ls=ls)
        ax.set_xlabel(label)
        ax.set_ylabel("npde")
    if (t["pred"] > 0).all():
        axes[1].set_xscale("log")
        _log_axis(axes[1].xaxis)
    x = t["npde"].to_numpy(float)
    axes[2].hist(x[np.isfinite(x)], bins=20, density=True, color=_BLUE, alpha=0.5)
    grid = np.linspace(-4, 4, 200)
    axes[2].plot(grid, np.exp(-0.5 * grid**2) / np.sqrt(2 * np.pi), color=_RED, lw=1.5)
    axes[2].set_xlabel("npde")
    axes[2].set_ylabel("density")


def plot_npde(result):
    """A figure of :func:`draw_npde`."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(11, 3.4), layout="constrained")
    draw_npde(axes, result)
    approx = f" (APPROXIMATE posterior, {result.method})" if result.approximate else ""
    fig.suptitle(f"NPDE from {result.nsim} simulated cohorts{approx}", fontsize=9)
    return fig


def draw_gof(axes, table) -> None:
    """Observed vs PRED and IPRED (log axes when positive), IWRES and npde vs time (4 axes)."""
    t = table[table["censored"] == ""]
    for ax, col, label in ((axes[0], "pred", "population prediction (PRED)"),
                           (axes[1], "ipred", "individual prediction (IPRED)")):  # fmt: skip
        ax.plot(t[col], t["value"], ".", color=_BLUE, ms=3)
        both = np.concatenate([t[col].to_numpy(float), t["value"].to_numpy(float)])
        both = both[np.isfinite(both)]
        if both.size:
            lo, hi = both.min(), both.max()
            ax.plot([lo, hi], [lo, hi], color="0.3", lw=0.8)
            if lo > 0:
                ax.set_xscale("log")
                ax.set_yscale("log")
                _log_axis(ax.xaxis)
                _log_axis(ax.yaxis)
        ax.set_xlabel(label)
        ax.set_ylabel("observed")
    for ax, col in ((axes[2], "iwres"), (axes[3], "npde")):
        if col in t:
            ax.plot(t["time"], t[col], ".", color=_BLUE, ms=3)
        for h, ls in ((0, "-"), (-1.96, "--"), (1.96, "--")):
            ax.axhline(h, color="0.3", lw=0.8, ls=ls)
        ax.set_xlabel("time")
        ax.set_ylabel(col.upper() if col == "iwres" else "npde")
