"""Every command answers --help; models lists the library; the entry point is installed."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from twin_uq.model.load import list_models

COMMANDS = [
    "models", "demo", "fit", "check", "predict", "whatif", "update", "next-sample", "stream",
    "trust", "report", "audit", "validate", "vpc", "compare",
]  # fmt: skip


def test_root_help_lists_every_command(cli):
    result = cli("--help")
    assert result.exit_code == 0
    for name in COMMANDS:
        assert name in result.output


@pytest.mark.parametrize("command", COMMANDS)
def test_command_help(cli, command):
    result = cli(command, "--help")
    assert result.exit_code == 0, result.output
    assert "--verbose" in result.output
    if command not in ("models", "validate", "trust", "check"):
        assert "--out" in result.output


def test_models_lists_every_model(cli, tmp_path):
    out = tmp_path / "models.csv"
    result = cli("models", "--out", out)
    assert result.exit_code == 0, result.output
    import pandas as pd

    table = pd.read_csv(out)
    assert list(table["model"]) == sorted(list_models())
    for name in list_models():
        assert name in result.output
    assert table["description"].str.len().min() > 10


def test_unknown_command_fails(cli):
    result = cli("frobnicate")
    assert result.exit_code != 0


def _entry_point() -> list[str]:
    exe = Path(sys.executable).with_name("twin-uq")
    if exe.exists():
        return [str(exe)]
    found = shutil.which("twin-uq")
    assert found, "the twin-uq console script is not installed"
    return [found]


def test_installed_entry_point_reports_bad_input_in_one_line(tmp_path):
    bad = tmp_path / "cohort.csv"
    bad.write_text("ID,TIME,DV,AMT,EVID\nH-0042,0,.,100,1\nH-0042,-1,5.0,.,0\n")
    env = os.environ | {"COLUMNS": "200"}
    proc = subprocess.run(
        [
            *_entry_point(),
            "fit",
            str(bad),
            "--model",
            "one_compartment_oral",
            "--out",
            str(tmp_path / "f.nc"),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 1
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(
        f"error: {bad} line 3, column TIME, patient 'H-0042': TIME is negative (-1)"
    )
    assert not (tmp_path / "f.nc").exists()
