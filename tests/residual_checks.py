"""Statistical checks shared by the tests of every residual-replicate consumer.

A replicate ``y`` drawn from the residual model makes ``u = P(Y < y)`` uniform on (0, 1)
(probability integral transform). ``P(Y < y)`` comes from the likelihood's own M3 term
(``observation_loglik`` with ``censored=True, lloq=y``), so uniform ``u`` means the sampler
draws from exactly the density the fit scores, parameters of each element included.
"""

import jax.numpy as jnp
import numpy as np
from scipy import stats

from twin_uq.inference.residual import ErrorKind, observation_loglik

#: Asymptotic Kolmogorov critical value at alpha = 0.001: reject uniformity when
#: sqrt(n) * D exceeds it (with fixed seeds the outcome is deterministic; a correct sampler
#: fails one seed in a thousand).
KS_CRIT_001 = 1.9495


def pit(code, y, f, a, b, nu) -> np.ndarray:
    """``P(Y < y)`` elementwise under the residual model (arguments broadcast)."""
    y = jnp.asarray(y, dtype=float)
    ll = observation_loglik(
        jnp.asarray(code),
        y,
        jnp.asarray(f, dtype=float),
        jnp.asarray(a, dtype=float),
        jnp.asarray(b, dtype=float),
        jnp.asarray(nu, dtype=float),
        jnp.asarray(True),
        y,
    )
    return np.exp(np.asarray(ll)).ravel()


def ks_distance(u: np.ndarray) -> float:
    """Kolmogorov-Smirnov distance of ``u`` from Uniform(0, 1), scaled by sqrt(n)."""
    u = np.sort(np.ravel(u))
    n = u.size
    i = np.arange(1, n + 1)
    return float(np.sqrt(n) * max(np.max(i / n - u), np.max(u - (i - 1) / n)))


def assert_student_t_replicates(y, f, a, b, nu, beyond: float = 3.0) -> None:
    """``y`` are Student-t replicates (scale sqrt(a² + b²f²), dof ``nu``), not Normal ones.

    Two checks: the replicates are uniform under the Student-t CDF of each element's own
    parameters (PIT, KS test), and the number beyond ``beyond`` scale units from ``f``
    matches the Student-t expectation within 5 standard deviations. The data must be able
    to tell Student-t from Normal noise (small enough ``nu``, enough elements); that is
    asserted too, so a consumer drawing Normal noise for a Student-t output fails here.
    """
    y, f, a, b, nu = np.broadcast_arrays(*(np.asarray(x, dtype=float) for x in (y, f, a, b, nu)))
    u_t = pit(ErrorKind.STUDENT_T, y, f, a, b, nu)
    assert ks_distance(u_t) < KS_CRIT_001, ks_distance(u_t)
    scale = np.sqrt(a**2 + (b * f) ** 2)
    count = int(np.sum(np.abs(y - f) / scale > beyond))
    p_t = 2 * stats.t.sf(beyond, nu)
    p_normal = 2 * stats.norm.sf(beyond)
    mean_t, sd_t = p_t.sum(), np.sqrt(np.sum(p_t * (1 - p_t)))
    mean_n, sd_n = y.size * p_normal, np.sqrt(y.size * p_normal * (1 - p_normal))
    assert mean_t - 5 * sd_t > mean_n + 5 * sd_n, "too few or too light-tailed elements"
    assert abs(count - mean_t) < 5 * sd_t, (count, mean_t, sd_t)
