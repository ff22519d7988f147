"""``twin-uq stream``: the command follows a CSV stream and refuses bad rows in one line.

The fit file is replaced by a hand-built CGM twin (:mod:`twin_uq.testing.cgm_twin`)
behind a stand-in for ``load_fit``, so no cohort is fitted here.
"""

import json

import pytest

import twin_uq.cli.stream as stream_cli
from twin_uq.testing.cgm_twin import cgm_trace, cgm_twin


class _Post:
    def __init__(self, twin):
        self._twin = twin

    def twin(self, pid):
        assert pid == "P1"
        return self._twin


@pytest.fixture
def fake_fit(monkeypatch, tmp_path):
    trace = cgm_trace(end=260.0)
    twin = cgm_twin(trace, fit_end=240.0)
    monkeypatch.setattr(stream_cli, "load_fit", lambda path, model=None: _Post(twin))
    monkeypatch.setattr("twin_uq.trust.assess_patient", lambda post, pid: None)
    fit = tmp_path / "fit.nc"
    fit.write_bytes(b"")
    return fit, trace


def test_stream_command_names_the_bad_row(cli, fake_fit, tmp_path):
    fit, _ = fake_fit
    csv = tmp_path / "new.csv"
    csv.write_text("time,glucose\n245,120\n250,abc\n")
    result = cli("stream", fit, "--patient", "P1", "--csv", csv)
    assert result.exit_code == 1
    assert "line 3, column glucose: 'abc' is not a number" in " ".join(result.output.split())


@pytest.mark.slow  # compiles the update, forecast and risks
def test_stream_command_writes_one_line_per_batch(cli, fake_fit, tmp_path):
    fit, trace = fake_fit
    csv = tmp_path / "new.csv"
    trace[trace["time"] > 240.0].to_csv(csv, index=False)
    out = tmp_path / "steps.jsonl"
    result = cli("stream", fit, "--patient", "P1", "--csv", csv, "--batch", "2", "--out", out)
    assert result.exit_code == 0, result.output
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert [x["time"] for x in lines] == [250.0, 260.0]
    assert all(len(x["forecast"]) == 3 and "hypo_70" in x["risks"] for x in lines)
    assert "forecast (median, 90% interval)" in result.output
