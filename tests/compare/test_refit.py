"""Exact leave-one-patient-out refits where Pareto k is high (slow: one extra fit)."""

import numpy as np
import pytest

from twin_uq.compare import loo


@pytest.mark.slow
def test_high_k_patient_is_refitted(oral_laplace):
    plain = loo(oral_laplace, "patient", n_inner=32)
    worst = plain.pareto_k.idxmax()
    # Every patient above the threshold, the cap keeps the one with the largest k.
    result = loo(oral_laplace, "patient", refit=True, max_refits=1, n_inner=32, k_threshold=-np.inf)
    assert result.refitted == (worst,)
    assert result.pareto_k[worst] == 0.0
    others = [p for p in oral_laplace.patient_ids if p != worst]
    i = list(oral_laplace.patient_ids).index(worst)
    np.testing.assert_allclose(np.delete(result.elpd_i, i), np.delete(plain.elpd_i, i), rtol=1e-12)
    # The exact value is a log predictive density of the patient's whole record: finite
    # and within a few nats of the importance-sampling estimate for a well-specified model.
    assert np.isfinite(result.elpd_i[i]) and abs(result.elpd_i[i] - plain.elpd_i[i]) < 10
    assert len(others) == 15
