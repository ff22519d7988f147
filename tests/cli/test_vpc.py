"""``twin-uq vpc``: HTML and PNG outputs, options, errors (the shared fit, no refit)."""

import pytest


def test_vpc_help(cli):
    result = cli("vpc", "--help")
    assert result.exit_code == 0
    for option in ("--out", "--by", "--pc", "--x", "--bins", "--nsim", "--verbose"):
        assert option in result.output


def test_vpc_html_and_png(cli, fit_file, tmp_path):
    html = tmp_path / "vpc.html"
    result = cli("vpc", fit_file, "--by", "SEX", "--pc", "--x", "tad", "--nsim", 100, "--out", html)
    assert result.exit_code == 0, result.output
    assert "observed percentiles outside" in result.output
    page = html.read_text()
    assert "Prediction-corrected VPC by time after dose" in page
    assert "SEX = F" in page and "SEX = M" in page and "<script" not in page.lower()
    assert page.count("<svg ") == 1  # one output: one figure with a panel per stratum
    png = tmp_path / "sub" / "vpc.png"
    result = cli("vpc", fit_file, "--bins", "0,2,6,24", "--nsim", 100, "--out", png)
    assert result.exit_code == 0, result.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--x", "dose"), "--x must be time or tad"),
        (("--by", "HEIGHT"), "no covariate or column 'HEIGHT'"),
        (("--bins", "a,b"), "--bins a,b"),
    ],
)
def test_vpc_errors(cli, fit_file, tmp_path, args, message):
    result = cli("vpc", fit_file, *args, "--nsim", 20, "--out", tmp_path / "v.html")
    assert result.exit_code == 1
    assert message in result.output


def test_vpc_refuses_other_suffixes(cli, fit_file, tmp_path):
    result = cli("vpc", fit_file, "--out", tmp_path / "v.csv")
    assert result.exit_code == 1 and ".html" in result.output
