"""The audit as a self-contained HTML page and forest plots (matplotlib → inline SVG).

Every text that comes from data (group labels, findings) goes through jinja2's
autoescaping; figures are embedded as base64 ``data:`` URIs, so a label such as
``<script>`` can never become markup. No file or network access is needed to view it.
"""

from __future__ import annotations

import base64
import io
import math

import jinja2
import numpy as np

__all__ = ["forest_svg", "render_html"]


def _present_metrics(result, grouping: str) -> list:
    t = result.table[result.table["grouping"] == grouping]
    out = []
    for m in result.metric_defs:
        if m.key and np.isfinite(t.loc[t["metric"] == m.name, "estimate"].to_numpy(float)).any():
            out.append(m)
    return out


def _scale(m) -> float:
    return 100.0 if m.unit == "proportion" else 1.0


def _unit_text(m) -> str:
    return "%" if m.unit == "proportion" else m.unit


def forest_svg(result, grouping: str) -> tuple[str, str]:
    """Forest plot of the key metrics of one grouping; returns ``(svg text, alt text)``."""
    import matplotlib
    from matplotlib.figure import Figure

    t = result.table[result.table["grouping"] == grouping]
    groups = list(dict.fromkeys(t["group"]))
    metrics = _present_metrics(result, grouping)
    level = result.settings.get("level", 0.95)
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "twin-uq-audit"}):
        fig = Figure(figsize=(2.2 + 2.6 * max(len(metrics), 1), 0.9 + 0.42 * len(groups)))
        axes = fig.subplots(1, max(len(metrics), 1), sharey=True, squeeze=False)[0]
        ypos = np.arange(len(groups))[::-1]
        for ax, m in zip(axes, metrics, strict=False):
            s = _scale(m)
            for y, g in zip(ypos, groups, strict=True):
                r = t[(t["group"] == g) & (t["metric"] == m.name)].iloc[0]
                small = bool(r["small"])
                colour = "#888888" if small else ("#1b4f72" if r["reference"] else "#c0392b")
                if np.isfinite(r["lower"]):
                    ax.plot([s * r["lower"], s * r["upper"]], [y, y], color=colour, lw=2)
                ax.plot(
                    [s * r["estimate"]],
                    [y],
                    "o",
                    color=colour,
                    markerfacecolor="white" if small else colour,
                )
                if r["reference"] and np.isfinite(r["estimate"]):
                    ax.axvline(s * r["estimate"], color="#1b4f72", ls=":", lw=1)
            ax.set_title(m.label, fontsize=9)
            ax.set_xlabel(_unit_text(m), fontsize=8)
            ax.tick_params(labelsize=8)
            ax.grid(axis="x", alpha=0.3)
        n_of = dict(
            zip(
                t.loc[t["metric"] == "patients", "group"],
                t.loc[t["metric"] == "patients", "n"],
                strict=True,
            )
        )
        axes[0].set_yticks(
            ypos,
            [
                f"{g} (n={int(n_of[g])}{', small' if n_of[g] < result.settings.get('min_group_size', 5) else ''})"
                for g in groups
            ],
        )
        fig.suptitle(
            f"By {grouping}: estimates with {100 * level:g}% intervals "
            "(blue: reference, grey hollow: too small to judge)",
            fontsize=9,
        )
        fig.tight_layout()
        buf = io.StringIO()
        fig.savefig(buf, format="svg", metadata={"Date": None})
    alt = (
        f"Forest plot by {grouping}: for each of {len(groups)} groups, the estimate and "
        f"{100 * level:g}% interval of "
        + ", ".join(m.label for m in metrics)
        + ". The same numbers are in the table below."
    )
    return buf.getvalue(), alt


def _fmt(x: float, m_unit: str) -> str:
    if x is None or not math.isfinite(x):
        return "–"
    if m_unit == "proportion":
        return f"{100 * x:.0f}%"
    return f"{x:.3g}"


def _cell(r) -> str:
    if r["metric"] == "patients":
        return f"{int(r['estimate'])}"
    if r["metric"] == "obs_per_patient":
        return f"{r['estimate']:g} ({r['lower']:g}–{r['upper']:g})"
    est = _fmt(r["estimate"], r["unit"])
    if not math.isfinite(r["lower"]):
        return est
    return f"{est} [{_fmt(r['lower'], r['unit'])}, {_fmt(r['upper'], r['unit'])}]"


def _diff(r) -> str:
    if not math.isfinite(r["difference"]):
        return "–"
    if r["unit"] == "proportion":
        return f"{100 * r['difference']:+.0f} pp [{100 * r['lower']:+.0f}, {100 * r['upper']:+.0f}]"
    return f"{r['difference']:+.3g} [{r['lower']:+.3g}, {r['upper']:+.3g}] {r['unit']}"


_CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;max-width:70rem;margin:2rem auto;
padding:0 1rem;color:#1a1a1a;line-height:1.45}
h1{font-size:1.6rem}h2{font-size:1.25rem;margin-top:2rem;border-bottom:1px solid #ccc}
h3{font-size:1.05rem}
table{border-collapse:collapse;margin:0.5rem 0 1rem;font-size:0.9rem}
th,td{border:1px solid #bbb;padding:0.25rem 0.5rem;text-align:left;vertical-align:top}
th{background:#eef2f5}caption{text-align:left;font-weight:600;padding:0.3rem 0}
.small{background:#f4f4f4;color:#555}.detected{font-weight:600;color:#8b1a1a}
.note{color:#444;font-size:0.9rem}img{max-width:100%;height:auto}
"""

_TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ title }}</title>
<style>{{ css | safe }}</style>
</head>
<body>
<main>
<h1>{{ title }}</h1>
<p class="note">Model {{ s.model }} · fit method {{ s.method }} · {{ s.patients }} patients ·
held-out data: {{ s.holdout }} · predictive interval {{ pi }}% · uncertainty: {{ lvl }}%
Bayesian-bootstrap intervals over patients · groups with fewer than {{ s.min_group_size }}
patients are reported as too small to judge.</p>

<section aria-labelledby="findings">
<h2 id="findings">Findings</h2>
<ul>
{% for f in findings %}<li>{{ f }}</li>
{% else %}<li>No comparison could be made.</li>{% endfor %}
</ul>
</section>

{% for g in groupings %}
<section aria-labelledby="g{{ loop.index }}">
<h2 id="g{{ loop.index }}">By {{ g.name }}</h2>
<figure>
<img src="data:image/svg+xml;base64,{{ g.svg }}" alt="{{ g.alt }}">
<figcaption>{{ g.alt }}</figcaption>
</figure>
<table>
<caption>Groups by {{ g.name }}: estimate [{{ lvl }}% interval]</caption>
<thead><tr><th scope="col">Group</th>{% for h in g.headers %}<th scope="col">{{ h }}</th>{% endfor %}<th scope="col">Note</th></tr></thead>
<tbody>
{% for row in g.rows %}<tr{% if row.small %} class="small"{% endif %}><th scope="row">{{ row.group }}</th>{% for c in row.cells %}<td>{{ c }}</td>{% endfor %}<td>{{ row.note }}</td></tr>
{% endfor %}</tbody>
</table>
{% if g.diffs %}
<table>
<caption>Differences from the reference group {{ g.reference }} (group − reference) [{{ lvl }}% interval]</caption>
<thead><tr><th scope="col">Group</th><th scope="col">Metric</th><th scope="col">Difference</th><th scope="col">Detected</th><th scope="col">Finding</th></tr></thead>
<tbody>
{% for d in g.diffs %}<tr{% if d.detected %} class="detected"{% endif %}><th scope="row">{{ d.group }}</th><td>{{ d.metric }}</td><td>{{ d.diff }}</td><td>{{ "yes" if d.detected else ("too small" if d.small else "no") }}</td><td>{{ d.finding }}</td></tr>
{% endfor %}</tbody>
</table>
{% endif %}
</section>
{% endfor %}

{% if sampling %}
<section aria-labelledby="sampling">
<h2 id="sampling">Sampling that would close the data gap</h2>
<p>For each group whose twins are more often partly or un-informed by their own data than the reference group's: the single extra measurement that each data-poor patient's twin expects to narrow its least-informed parameter most, from the twin's own posterior (a forecast, not a measurement).</p>
<table>
<caption>Best next measurement per data-poor patient (expected narrowing of the parameter's 90% interval, with its Monte Carlo error; contraction now and predicted after)</caption>
<thead><tr><th scope="col">Group</th><th scope="col">Patient</th><th scope="col">Parameter</th><th scope="col">Sample at</th><th scope="col">Narrowing</th><th scope="col">Contraction now → after</th></tr></thead>
<tbody>
{% for r in sampling %}<tr><th scope="row">{{ r.group }}</th><td>{{ r.patient }}</td><td>{{ r.parameter }}</td><td>t = {{ r.time }}</td><td>{{ r.narrowing }}</td><td>{{ r.contraction }}</td></tr>
{% endfor %}</tbody>
</table>
</section>
{% endif %}

<section aria-labelledby="limits">
<h2 id="limits">What this audit cannot tell</h2>
<ul>{% for l in limitations %}<li>{{ l }}</li>{% endfor %}</ul>
</section>

<section aria-labelledby="methods">
<h2 id="methods">How the numbers are made</h2>
<ul>
<li><strong>Flagged</strong>: share of patients whose twin's trust status is limited, insufficient or unreliable.</li>
<li><strong>Partly or un-informed by own data</strong>: share of patients whose data verdict is not "informed" (too little narrowing of the parameters, too few or bunched measurements, misfit, covariates outside the cohort). It is judged apart from the fit's convergence and approximation, so it still compares groups when a global fit problem flags every patient.</li>
<li><strong>Interval width</strong>: per patient, the mean width of the {{ pi }}% posterior-predictive interval at the held-out times (or, without held-out data, at a common grid of the cohort's observation times); the group value is the median over patients.</li>
<li><strong>Coverage</strong>: per patient, the fraction of held-out observations inside the {{ pi }}% interval; group mean over patients.</li>
<li><strong>Error</strong>: per patient, the mean absolute difference between held-out observations and the posterior-median prediction; group mean over patients.</li>
<li><strong>Uncertainty</strong>: Bayesian bootstrap over patients ({{ s.n_boot }} Dirichlet-weighted replicates, groups independent; shares use a Jeffreys half-patient at 0 and at 1). A difference is <em>detected</em> when its {{ lvl }}% interval excludes zero.</li>
</ul>
</section>
</main>
</body>
</html>
"""

_ENV = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)


def _sampling_rows(sampling) -> list[dict]:
    if sampling is None:
        return []
    return [
        dict(
            group=r.group,
            patient=r.patient,
            parameter=r.parameter,
            time=f"{r.best_time:.3g}",
            narrowing=f"{r.narrowing:.0%} (± {r.mcse:.0%})",
            contraction=f"{r.contraction_now:.2f} → {r.contraction_after:.2f}",
        )
        for r in sampling.itertuples()
    ]


def render_html(result, title: str = "Fairness audit") -> str:
    """The HTML report of an :class:`~twin_uq.audit.result.AuditResult` (a string)."""
    t, d = result.table, result.disparities
    names = {m.name: m for m in result.metric_defs}
    figs = result.figures()
    groupings = []
    for g in dict.fromkeys(t["grouping"]):
        tg = t[t["grouping"] == g]
        metric_order = [m for m in dict.fromkeys(tg["metric"])]
        shown = [
            m
            for m in metric_order
            if m in ("patients", "obs_per_patient")
            or (np.isfinite(tg.loc[tg["metric"] == m, "estimate"].to_numpy(float)).any())
        ]
        headers = [
            "Patients"
            if m == "patients"
            else "Observations per patient, median (range)"
            if m == "obs_per_patient"
            else f"{names[m].label} ({'%' if names[m].unit == 'proportion' else names[m].unit})"
            for m in shown
        ]
        rows = []
        for grp in dict.fromkeys(tg["group"]):
            sub = tg[tg["group"] == grp].set_index("metric")
            n = int(sub.loc["patients", "estimate"])
            small = n < result.settings.get("min_group_size", 5)
            note = (
                "too small to judge" if small else ("reference" if sub["reference"].iloc[0] else "")
            )
            rows.append(
                dict(
                    group=grp,
                    small=small,
                    note=note,
                    cells=[_cell(sub.loc[m].to_dict() | {"metric": m}) for m in shown],
                )
            )
        dg = d[
            (d["grouping"] == g) & d["metric"].isin([m.name for m in result.metric_defs if m.key])
        ]
        dg = dg[np.isfinite(dg["difference"].to_numpy(float))]
        diffs = [
            dict(
                group=r["group"],
                metric=names[r["metric"]].label,
                diff=_diff(r),
                detected=bool(r["detected"]),
                small=bool(r["small"]),
                finding=r["finding"],
            )
            for _, r in dg.iterrows()
        ]
        ref = tg.loc[tg["reference"], "group"]
        svg, alt = figs[g]
        groupings.append(
            dict(
                name=g,
                headers=headers,
                rows=rows,
                diffs=diffs,
                reference=ref.iloc[0] if len(ref) else "(none)",
                svg=base64.b64encode(svg.encode("utf-8")).decode("ascii"),
                alt=alt,
            )
        )
    s = (
        dict(
            model="?",
            method="?",
            patients=len(result.patient_metrics),
            holdout="?",
            n_boot="?",
            min_group_size=5,
        )
        | result.settings
    )
    return _ENV.from_string(_TEMPLATE).render(
        title=title,
        css=_CSS,
        s=s,
        findings=result.findings,
        limitations=result.limitations,
        groupings=groupings,
        sampling=_sampling_rows(result.sampling),
        pi=f"{100 * s.get('interval', 0.9):g}",
        lvl=f"{100 * s.get('level', 0.95):g}",
    )
