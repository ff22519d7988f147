"""The demo runs end to end with tiny settings and writes every listed file."""

import pytest

EXPECTED = [
    "cohort.csv",
    "fit.nc",
    "trust.csv",
    "cohort_report.html",
    "audit.html",
    "audit.csv",
]


@pytest.mark.slow
def test_demo_writes_every_file(cli, tmp_path):
    out = tmp_path / "demo"
    result = cli("demo", "--out", out, "--patients", "8", "--chains", "2", "--warmup", "50", "--draws", "50", "--no-cache")
    assert result.exit_code == 0, result.output + result.stderr
    for name in EXPECTED:
        assert (out / name).stat().st_size > 0, name
    assert len(list(out.glob("report_*.html"))) == 2
    assert len(list(out.glob("prediction_*.csv"))) == 2
    assert "Trust:" in result.output and "Audit findings:" in result.output
