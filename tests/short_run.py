"""Trust thresholds for judging the shared short fit ``oral_fit`` (tests/conftest.py).

``oral_fit`` (4 chains x 500 draws) misses the strict default convergence criteria (see
tests/trust/test_validation.py), so the trust and audit tests judge it as a short run.
"""

from twin_uq.trust import TrustThresholds

SHORT_RUN = TrustThresholds(rhat_max=1.05, ess_per_chain=50.0)
