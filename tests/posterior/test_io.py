"""A reloaded fit reads what it needs from the file, without re-preparing the fit."""

import numpy as np
import pytest

import twin_uq as tq
import twin_uq.posterior.io as posterior_io


def test_reloaded_views_need_no_preparation(oral_fit, tmp_path, monkeypatch):
    path = oral_fit.save(tmp_path / "fit.nc")

    def refuse(*args, **kwargs):
        raise AssertionError("load_posterior re-prepared the fit")

    monkeypatch.setattr(posterior_io, "prepare_fit", refuse)
    loaded = tq.load_posterior(path)
    pid = oral_fit.patient_ids[4]
    fresh, again = oral_fit.patient(pid), loaded.patient(pid)
    np.testing.assert_array_equal(again.theta, fresh.theta)
    np.testing.assert_array_equal(again.population.mean, fresh.population.mean)
    np.testing.assert_array_equal(again.population.chol, fresh.population.chol)
    np.testing.assert_array_equal(again.add, fresh.add)
    np.testing.assert_array_equal(again.prop, fresh.prop)
    assert again.settings == fresh.settings
    summary = loaded.population_summary()
    np.testing.assert_allclose(summary["median"], oral_fit.population_summary()["median"])
    pred = loaded.twin(pid).predict([1.0, 6.0], draws=64)
    assert np.all(np.isfinite(pred["median"].values))
    with pytest.raises(AssertionError, match="re-prepared"):
        loaded.prepared  # noqa: B018 - inference-level code still gets it on demand
