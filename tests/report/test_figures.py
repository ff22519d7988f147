import re

import pytest

from twin_uq.report.figures import figure, svg_from_figure
from twin_uq.report.render import BADGE, render

HOSTILE = "<script>alert(1)</script>"


def _svg(key="demo", label="concentration"):
    with figure() as (fig, ax):
        ax.plot([0, 1], [0, 1], label=label)
        ax.set_title(label)
        ax.legend()
    return str(svg_from_figure(fig, key, f"Title {HOSTILE}", f"Desc {HOSTILE}"))


def test_svg_is_inline_accessible_and_escaped():
    svg = _svg(label=HOSTILE)
    assert svg.startswith("<svg ") and "<?xml" not in svg and "DOCTYPE" not in svg
    assert 'role="img"' in svg and 'aria-labelledby="demo-title demo-desc"' in svg
    assert "<script" not in svg.lower()
    assert "&lt;script&gt;" in svg  # the title, description and the figure's own text
    assert "http://" not in svg.replace("http://www.w3.org/", "")


def test_svg_ids_are_unique_per_figure():
    a, b = _svg("a"), _svg("b")
    ids_a = set(re.findall(r'id="([^"]+)"', a))
    ids_b = set(re.findall(r'id="([^"]+)"', b))
    assert ids_a and not ids_a & ids_b
    # Every internal reference points to an id of the same figure.
    for ref in re.findall(r"url\(#([^)]+)\)", a):
        assert ref in ids_a
    with pytest.raises(ValueError, match="figure key"):
        _svg("bad key")


def _luminance(hex_colour):
    rgb = [int(hex_colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    lin = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in rgb]
    return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]


@pytest.mark.parametrize("status", sorted(BADGE))
def test_badges_meet_wcag_aa_contrast(status):
    fg, bg = _luminance(BADGE[status]["fg"]), _luminance(BADGE[status]["bg"])
    ratio = (max(fg, bg) + 0.05) / (min(fg, bg) + 0.05)
    assert ratio >= 4.5, f"{status}: contrast {ratio:.2f}"


def test_templates_autoescape():
    html = render(
        "base.html",
        title=HOSTILE,
        generated="now",
    )
    assert HOSTILE not in html and "&lt;script&gt;" in html
    assert "Content-Security-Policy" in html
