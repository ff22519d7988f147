"""Figures of the patient report: forecast, parameters and what-if comparison (inline SVG).

Each function draws one figure under the report style
(:func:`twin_uq.report.figures.figure`) and returns it as accessible inline SVG with a text
alternative; the numbers come from :mod:`twin_uq.report.patient_sections`.
"""

from __future__ import annotations

from collections.abc import Mapping

import matplotlib.ticker
import numpy as np
import pandas as pd
import xarray as xr

from twin_uq.report.figures import PALETTE, figure, svg_from_figure
from twin_uq.report.text import format_number, percent

__all__ = ["forecast_figure", "parameter_figure", "what_if_figure"]


def forecast_figure(pred: xr.Dataset, obs: pd.DataFrame, model, interval, forecast_times) -> str:
    """Inline SVG: each output over time with its intervals, the measurements and forecasts."""
    outputs = list(model.outputs)
    last = float(pred.attrs.get("last_observation_time", np.nan))
    unit_t = model.card.time_unit
    p = percent(interval)
    with figure(len(outputs), 1, figsize=(7.0, 0.6 + 2.9 * len(outputs)), squeeze=False) as (
        fig,
        axes,
    ):
        for ax, out in zip(axes[:, 0], outputs, strict=True):
            s = pred.sel(output=out.name)
            t = pred["time"].values
            # The wider, lighter band (a new measurement, noise included) under the
            # narrower, darker one (the true level).
            for prefix, alpha, what in (
                ("", 0.18, "a measurement"),
                ("f_", 0.35, "the true level"),
            ):
                lower, upper = s[f"{prefix}lower"], s[f"{prefix}upper"]
                label = f"{p} interval of {what}"
                ax.fill_between(t, lower, upper, color=PALETTE[0], alpha=alpha, lw=0, label=label)
            ax.plot(t, s["median"], color=PALETTE[0], lw=1.6, label="median prediction")
            o = obs[obs["output"] == out.name]
            ok = o[~o["censored"].astype(bool)]
            cens = o[o["censored"].astype(bool)]
            if len(ok):
                ax.plot(ok["time"], ok["value"], "o", color=PALETTE[6], ms=4.5, label="measured")
            if len(cens):
                ax.plot(
                    cens["time"],
                    cens["lloq"],
                    "v",
                    mfc="none",
                    color=PALETTE[1],
                    ms=6,
                    label="below quantification limit",
                )
            ft = s.sel(time=forecast_times)
            ax.errorbar(
                forecast_times,
                ft["median"],
                yerr=[ft["median"] - ft["lower"], ft["upper"] - ft["median"]],
                fmt="s",
                color=PALETTE[1],
                ms=4,
                capsize=3,
                label="forecast (interval)",
            )
            if np.isfinite(last):
                ax.axvline(last, color="0.3", ls="--", lw=1)
                ax.axvspan(last, t.max(), color="0.5", alpha=0.07, lw=0)
                ax.annotate(
                    "last measurement",
                    (last, 1.0),
                    xycoords=("data", "axes fraction"),
                    xytext=(3, -10),
                    textcoords="offset points",
                    fontsize=8,
                    color="0.25",
                )
            ax.set_xlabel(f"time ({unit_t})")
            ax.set_ylabel(f"{out.name} ({out.unit})")
            ax.set_xlim(0, t.max())
            ax.set_ylim(bottom=min(0.0, float(s["lower"].min())))
        fig.legend(
            *axes[0, 0].get_legend_handles_labels(),
            loc="outside lower center",
            ncol=3,
            fontsize=7.5,
        )
    n_obs = len(obs)
    desc = (
        f"Predicted {', '.join(o.name for o in outputs)} over time with the {p} interval of a "
        f"measurement (light band) and of the true level (dark band), the median prediction "
        f"(line), the patient's {n_obs} measurement(s) (dots) and the forecasts (squares with "
        "interval bars)."
        + (
            f" The dashed line marks the last measurement at {format_number(last, 3)} {unit_t}."
            if np.isfinite(last)
            else " There are no measurements: this is a population prediction."
        )
    )
    return svg_from_figure(fig, "forecast", "Prediction over time with its interval", desc)


def parameter_figure(ratios: np.ndarray, model, interval: float) -> str:
    """Inline SVG: the ``(K, 3)`` ratios of :func:`parameter_rows` on a log axis."""
    names = [p.name for p in model.parameters]
    with figure(figsize=(6.0, 0.5 + 0.45 * len(names))) as (fig, ax):
        y = np.arange(len(names))[::-1]
        ax.errorbar(
            ratios[:, 0],
            y,
            xerr=[ratios[:, 0] - ratios[:, 1], ratios[:, 2] - ratios[:, 0]],
            fmt="o",
            color=PALETTE[0],
            capsize=3,
        )
        ax.axvline(1.0, color="0.3", ls="--", lw=1)
        ax.set_xscale("log")
        lo_, hi_ = float(ratios[:, 1].min()), float(ratios[:, 2].max())
        ticks = [
            x
            for x in (0.1, 0.2, 0.3, 0.5, 0.7, 1, 1.5, 2, 3, 5, 10)
            if 0.8 * lo_ <= x <= 1.25 * hi_
        ]
        ax.set_xticks(ticks, [f"{x:g}" for x in ticks])
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_yticks(y, names)
        ax.set_xlabel("patient / typical patient with the same covariates (ratio, log scale)")
        ax.grid(axis="y", visible=False)
    desc = (
        f"Ratio of each parameter ({', '.join(names)}) of this patient to a typical patient with "
        f"the same covariates: median and {percent(interval)} interval; 1 means no difference."
    )
    return svg_from_figure(
        fig, "parameters", "Patient's parameters compared with a typical patient", desc
    )


def what_if_figure(predictions: Mapping[str, xr.Dataset], model, interval: float, n: int) -> str:
    """Inline SVG: median and interval of the first output under each of ``n`` regimens."""
    out = model.outputs[0]
    with figure(figsize=(7.0, 3.0)) as (fig, ax):
        for i, (_name, ds) in enumerate(predictions.items()):
            s = ds.sel(output=out.name)
            c = PALETTE[i % len(PALETTE)]
            ax.fill_between(s["time"], s["lower"], s["upper"], color=c, alpha=0.15, lw=0)
            ax.plot(
                s["time"],
                s["median"],
                color=c,
                lw=1.6,
                ls=("-", "--", ":", "-.")[i % 4],
                label=f"regimen {i + 1}",
            )
        ax.set_xlabel(f"time ({model.card.time_unit})")
        ax.set_ylabel(f"{out.name} ({out.unit})")
        ax.legend(fontsize=7.5)
    desc = (
        f"Median prediction (lines) and {percent(interval)} interval (bands) of {out.name} under "
        f"each of the {n} regimens, numbered in the order of the table."
    )
    return svg_from_figure(fig, "whatif", "Comparison of regimens", desc)
