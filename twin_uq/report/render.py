"""Template rendering, provenance and file output shared by every report.

Templates ship in the package (``twin_uq/report/templates``) and are rendered with
autoescaping on: every user-supplied string (patient ids, covariate values, regimen
names, output names) is HTML-escaped unless a template marks it safe, and only figures
built by :mod:`twin_uq.report.figures` (escaped SVG) are marked safe.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import tempfile
import warnings
from collections.abc import Mapping
from pathlib import Path

import jinja2

from twin_uq._atomic import atomic_write_text
from twin_uq.errors import InputError
from twin_uq.report.text import format_interval, format_number, percent

__all__ = ["PDFUnavailableWarning", "find_chromium", "provenance", "render", "write_pdf"]

#: Colours of trust badges: white text on a dark fill, or black on a light one; each pair
#: has WCAG contrast >= 4.5 (checked in tests). The status is always written out too.
BADGE = {
    "trustworthy": {"bg": "#1B5E20", "fg": "#FFFFFF", "icon": "\u2714", "label": "Trustworthy"},
    "limited": {"bg": "#FFC107", "fg": "#000000", "icon": "\u26a0", "label": "Limited"},
    "insufficient": {
        "bg": "#A63D00",
        "fg": "#FFFFFF",
        "icon": "\u26a0",
        "label": "Insufficient data",
    },
    "unreliable": {"bg": "#B71C1C", "fg": "#FFFFFF", "icon": "\u2716", "label": "Unreliable"},
    "converged": {"bg": "#1B5E20", "fg": "#FFFFFF", "icon": "\u2714", "label": "Converged"},
    "attention": {"bg": "#B71C1C", "fg": "#FFFFFF", "icon": "\u2716", "label": "Needs attention"},
    "approximate": {"bg": "#FFC107", "fg": "#000000", "icon": "\u26a0", "label": "Approximate"},
}


class PDFUnavailableWarning(UserWarning):
    """A PDF was requested but no Chromium/Chrome executable was found."""


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("twin_uq.report", "templates"),
        autoescape=True,  # every template, whatever its name
        undefined=jinja2.StrictUndefined,  # a typo in a template fails loudly
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["num"] = format_number
    env.filters["pct"] = percent
    env.filters["interval"] = lambda pair: " to ".join(format_interval(*pair))
    env.globals["badge_style"] = BADGE
    return env


def render(template: str, **context) -> str:
    """Render a packaged template with autoescaping."""
    return _environment().get_template(template).render(**context)


def provenance(post, **extra) -> list[tuple[str, str]]:
    """Rows (label, value) that make a report traceable to its fit and code."""
    attrs = post.idata.attrs
    versions = json.loads(attrs.get("package_versions", "{}") or "{}")
    from twin_uq import __version__

    rows = [
        ("Model", attrs.get("model_name", post.model.name)),
        ("Model source hash (SHA-256)", attrs.get("model_source_hash", "unknown")),
        ("Data", attrs.get("data_source", "unknown")),
        ("Data hash (SHA-256)", attrs.get("data_hash", "unknown")),
        ("Inference method", attrs.get("method", "unknown")),
        ("Approximate posterior", "yes" if post.approximate else "no"),
        ("Fit settings", attrs.get("settings", "")),
        ("Population model", attrs.get("population_model", "")),
        ("Fit seed", attrs.get("seed", "unknown")),
        ("Fit created", attrs.get("created_at", "unknown")),
        ("twin_uq version (fit)", attrs.get("twin_uq_version", versions.get("twin-uq", "unknown"))),
        ("twin_uq version (report)", __version__),
        (
            "Other packages (fit)",
            ", ".join(f"{k} {v}" for k, v in versions.items() if k != "twin-uq"),
        ),
        ("Report created", dt.datetime.now(dt.UTC).isoformat(timespec="seconds")),
    ]
    rows += [(k, str(v)) for k, v in extra.items()]
    return rows


def write(path: str | Path, html: str) -> Path:
    """Write ``html`` to ``path`` atomically (temporary file, then rename)."""
    path = Path(path)
    if path.suffix.lower() not in (".html", ".htm"):
        raise InputError(
            f"A report is an HTML file: give a path ending in .html, got {path.name!r}."
        )
    return atomic_write_text(path, html)


def find_chromium() -> str | None:
    """Path of a Chromium/Chrome executable (``TWIN_UQ_CHROMIUM`` first), or None."""
    env = os.environ.get("TWIN_UQ_CHROMIUM")
    if env:
        return env if Path(env).exists() else shutil.which(env)
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    return None


def write_pdf(html_path: Path, timeout: float = 120.0) -> Path | None:
    """Print ``html_path`` to a PDF beside it with headless Chromium.

    Returns the PDF path, or None (with a :class:`PDFUnavailableWarning` saying why) when
    no Chromium is installed or printing fails; the HTML report is unaffected.
    """
    exe = find_chromium()
    pdf = html_path.with_suffix(".pdf")
    if exe is None:
        warnings.warn(
            f"No PDF written for {html_path.name}: Chromium was not found (install the "
            "'chromium' package or set TWIN_UQ_CHROMIUM to a Chrome/Chromium executable). "
            "The HTML report prints to PDF from any browser too.",
            PDFUnavailableWarning,
            stacklevel=3,
        )
        return None
    with tempfile.TemporaryDirectory(prefix="twin_uq_pdf_") as profile:
        cmd = [
            exe,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={profile}",
            "--no-pdf-header-footer",
            f"--print-to-pdf={pdf}",
            html_path.resolve().as_uri(),
        ]
        try:
            res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
        except (OSError, subprocess.TimeoutExpired) as err:
            res = None
            reason = f"{type(err).__name__}: {err}"
    if res is not None and res.returncode == 0 and pdf.exists() and pdf.stat().st_size > 0:
        return pdf
    if res is not None:
        reason = f"exit code {res.returncode}: {res.stderr.strip()[-300:]}"
    warnings.warn(
        f"No PDF written for {html_path.name}: Chromium ({exe}) failed ({reason}).",
        PDFUnavailableWarning,
        stacklevel=3,
    )
    return None


def counts_text(counts: Mapping[str, int]) -> str:
    """``{"limited": 2, "trustworthy": 3}`` → "3 trustworthy, 2 limited" (non-zero only)."""
    return ", ".join(f"{v} {k}" for k, v in counts.items() if v)
