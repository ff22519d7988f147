"""Fixtures of the CLI tests: the shared oral fit saved once as a netCDF file."""

import pytest


@pytest.fixture(scope="session")
def fit_file(oral_fit, tmp_path_factory):
    """The session's ``oral_fit`` written to a .nc file (no refit)."""
    return oral_fit.save(tmp_path_factory.mktemp("cli_fit") / "fit.nc")
