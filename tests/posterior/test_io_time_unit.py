"""load_posterior reads back the time unit the fit's data declared (attrs["data_time_unit"]).

The attribute is describe_time_unit's text; the end-to-end reload of a declared unit is in
tests/twin/test_iov_fit.py (slow).
"""

from twin_uq.data.time_units import describe_time_unit
from twin_uq.posterior.io import _declared_time_unit


def test_a_declared_unit_is_restored_and_an_assumed_one_stays_undeclared():
    assert _declared_time_unit(describe_time_unit("min", "h")) == "min"
    assert _declared_time_unit(describe_time_unit("h", "h")) == "h"
    assert _declared_time_unit(describe_time_unit(None, "h")) is None
    assert _declared_time_unit(None) is None  # files from before the attribute
