"""Figures for reports: matplotlib (Agg) drawn to inline, accessible SVG.

Every figure becomes an ``<svg role="img">`` element with a ``<title>`` and a ``<desc>``
(escaped text) so that screen readers announce it, with ids made unique per figure so
that several figures can share one HTML page. Text is kept as SVG ``<text>`` (smaller
files, selectable, printable); matplotlib escapes it. Patient identifiers are never drawn
into figures: they appear only in HTML text, escaped by the template engine.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from contextlib import contextmanager

import matplotlib

matplotlib.use("Agg", force=False)

import matplotlib.pyplot as plt
from markupsafe import Markup, escape

__all__ = ["figure", "svg_from_figure"]

#: Colour-blind safe palette (Okabe & Ito 2008).
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000")

_STYLE = {
    "svg.fonttype": "none",  # text as <text>, not glyph paths
    "svg.hashsalt": "twin_uq",  # deterministic ids
    "font.family": "sans-serif",
    "font.size": 9.0,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.prop_cycle": matplotlib.cycler(color=PALETTE),
    "legend.frameon": False,
}


@contextmanager
def figure(*args, **kwargs) -> Iterator[tuple[plt.Figure, object]]:
    """``plt.subplots`` under the report style; the figure is always closed afterwards."""
    with plt.rc_context(_STYLE):
        fig, ax = plt.subplots(*args, layout="constrained", **kwargs)
        try:
            yield fig, ax
        finally:
            plt.close(fig)


def svg_from_figure(fig: plt.Figure, key: str, title: str, desc: str) -> Markup:
    """The figure as an inline ``<svg>`` with ``<title>``/``<desc>``, safe to embed.

    Parameters
    ----------
    fig
        A matplotlib figure (drawn under :func:`figure`).
    key
        Name of the figure, unique within its page (letters, digits, ``-``): prefixes
        every id of the SVG so that figures sharing a page do not collide.
    title
        Short accessible name (plain text; escaped here).
    desc
        Longer text alternative describing what the figure shows (plain text; escaped).
    """
    buf = io.StringIO()
    with plt.rc_context(_STYLE):
        fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None})
    svg = buf.getvalue()
    # Inline SVG needs neither the XML declaration nor the DOCTYPE (whose DTD URL a
    # validator might try to fetch).
    svg = svg[svg.index("<svg") :]
    svg = re.sub(r"<metadata>.*?</metadata>", "", svg, flags=re.S)
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9-]*", key):
        raise ValueError(f"figure key must be letters, digits and '-', got {key!r}.")
    prefix = f"{key}-"
    svg = re.sub(r'\bid="', f'id="{prefix}', svg)
    svg = re.sub(r"url\(#", f"url(#{prefix}", svg)
    svg = re.sub(r'href="#', f'href="#{prefix}', svg)
    tid, did = f"{prefix}title", f"{prefix}desc"
    head = svg[: svg.index(">") + 1]
    rest = svg[svg.index(">") + 1 :]
    # Scale with the page: keep the viewBox, drop the fixed size in points.
    head = re.sub(r'\s(width|height)="[^"]*"', "", head)
    head = head.replace(
        "<svg",
        f'<svg role="img" aria-labelledby="{tid} {did}" class="figure" '
        'preserveAspectRatio="xMidYMid meet"',
        1,
    )
    accessible = f'<title id="{tid}">{escape(title)}</title><desc id="{did}">{escape(desc)}</desc>'
    return Markup(head + accessible + rest)
