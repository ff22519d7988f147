"""A CGM twin built by hand (:mod:`twin_uq.testing.cgm_twin`): no fit, seconds to make."""

import pytest

from twin_uq.testing.cgm_twin import cgm_trace, cgm_twin

FIT_END = 240.0


@pytest.fixture(scope="session")
def trace():
    return cgm_trace(end=300.0)


@pytest.fixture(scope="session")
def twin(trace):
    return cgm_twin(trace, fit_end=FIT_END)
