"""Following a CGM stream: each batch updates the twin, re-assesses trust, forecasts, risks."""

import json

import numpy as np
import pytest

from tests.diabetes.conftest import FIT_END
from twin_uq.diabetes.stream import stream_twin
from twin_uq.diabetes.stream_input import read_stream
from twin_uq.errors import InputError
from twin_uq.trust import Status


@pytest.mark.slow  # compiles the update, forecast and risks: ~3 min on 2 busy cores
def test_stream_updates_forecasts_and_flags(twin, trace):
    new = trace[trace["time"] > FIT_END].iloc[:4].copy()
    n0 = len(twin.observations)
    # The third reading 250 mg/dL above the trace: far outside any forecast of the twin.
    new.loc[new.index[2], "glucose"] += 250.0
    rows = list(new.itertuples(index=False, name=None))
    rows.insert(1, (new["time"].iloc[0] + 1.0, None, 20.0, 2.0))  # a snack with insulin
    steps = list(stream_twin(twin, rows, batch=2, draws=100, forecast_draws=64, n_paths=8))
    assert [s.readings for s in steps] == [2, 2] and steps[0].events == 2
    for s, t in zip(steps, new["time"].iloc[[1, 3]], strict=True):
        assert s.time == t and s.forecast.origin == t
        assert len(s.twin.observations) == n0 + 2 * (steps.index(s) + 1)
        assert np.all(s.forecast.lower < s.forecast.median)
        assert np.all(s.forecast.median < s.forecast.upper)
        for r in s.risks.values():
            assert 0 <= r.lower <= r.probability <= r.upper <= 1 and r.mcse >= 0
        assert s.forecast.trust is s.trust and "Trust:" in str(s.forecast)
        json.dumps(s.record())
    # the snack and its insulin entered the twin's schedule
    sched = steps[0].twin.schedule
    assert np.isclose(np.asarray(sched.bolus_amount)[np.asarray(sched.bolus_mask)], 20.0).any()
    # no cohort assessment: at best limited, and it says why
    assert steps[0].trust.status.severity >= Status.LIMITED.severity
    assert any("not assessed" in r for r in steps[0].trust.reasons)
    assert steps[0].surprise is None
    assert steps[1].surprise is not None and "outside" in steps[1].surprise
    assert steps[1].surprise in steps[1].trust.reasons
    assert all(v >= 0 for v in steps[1].seconds.values())


def test_stream_refuses_what_it_cannot_read(tmp_path, twin):
    bad = tmp_path / "s.csv"
    bad.write_text("time,glucose\n245,120\n255,118\n250,119\n")
    with pytest.raises(InputError, match=r"line 4, column time: time 250 is before"):
        read_stream(bad)
    bad.write_text("time,glucose,steps\n245,120,3\n")
    with pytest.raises(InputError, match="unknown column 'steps'"):
        read_stream(bad)
    bad.write_text("time,glucose\n245,abc\n")
    with pytest.raises(InputError, match="line 2, column glucose: 'abc' is not a number"):
        read_stream(bad)
    with pytest.raises(InputError, match="item 0, column time: reading at 200"):
        next(stream_twin(twin, [(200.0, 120.0)]))
    with pytest.raises(InputError, match="a second reading at time 245"):
        read_stream([(245.0, 120.0), (245.0, 121.0)])
    with pytest.raises(InputError, match="column carbs: amounts must be >= 0"):
        read_stream([(245.0, 120.0, -5.0)])
