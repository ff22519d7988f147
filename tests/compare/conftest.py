"""A second fit of the shared oral cohort, for comparisons with ``oral_fit`` (same data)."""

import pytest

import twin_uq as tq


@pytest.fixture(scope="session")
def oral_laplace(oral_sim):
    """Laplace fit (400 draws) of ``oral_sim``: an approximate fit of the same cohort."""
    return tq.fit(
        "one_compartment_oral",
        oral_sim.cohort,
        method=tq.Laplace(draws=400),
        seed=2,
        progress=False,
    )
