"""PyTensor links a BLAS for the PyMC backend (twin_uq.inference.pytensor_blas).

Each check runs in a fresh interpreter: PyTensor decides its BLAS flags once per process,
and this test process may have decided them already.
"""

import json
import os
import subprocess
import sys

import numpy as np
from optional_deps import require

require("pytensor")

# Links a BLAS if one is found, then compiles a matrix-vector product with the C/VM linker
# (as PyMC's own NUTS runs the model) and reports what it got.
_PROBE = """
import json, warnings
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    from twin_uq.inference.pytensor_blas import link_blas
    flags = link_blas()
    import numpy as np, pytensor, pytensor.tensor as pt
    A, x = pt.dmatrix("A"), pt.dvector("x")
    f = pytensor.function([A, x], A @ x, mode="CVM")
    a = np.arange(12.0).reshape(3, 4)
    out = f(a, np.ones(4))
print(json.dumps({
    "flags": flags,
    "config": pytensor.config.blas__ldflags,
    "ops": [type(n.op).__name__ for n in f.maker.fgraph.apply_nodes],
    "out": out.tolist(),
    "warnings": [str(w.message) for w in caught if "BLAS" in str(w.message)],
    "env": __import__("os").environ.get("PYTENSOR_FLAGS", ""),
}))
"""


def _probe(pytensor_flags: str | None) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "PYTENSOR_FLAGS"}
    if pytensor_flags is not None:
        env["PYTENSOR_FLAGS"] = pytensor_flags
    done = subprocess.run(
        [sys.executable, "-c", _PROBE], env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_pymc_backend_links_a_blas_without_warning():
    got = _probe(None)
    if not got["flags"]:
        # No BLAS on this machine (.ci/run installs libopenblas-dev where it can): then one
        # warning says what to install, and the product is still right without BLAS.
        assert len(got["warnings"]) == 1 and "libopenblas-dev" in got["warnings"][0], got
        np.testing.assert_array_equal(got["out"], np.arange(12.0).reshape(3, 4) @ np.ones(4))
        return
    assert got["config"] == got["flags"]
    assert got["warnings"] == []
    # The product ran through BLAS (CGemv calls dgemv_), with the right numbers.
    assert "CGemv" in got["ops"], got["ops"]
    np.testing.assert_array_equal(got["out"], np.arange(12.0).reshape(3, 4) @ np.ones(4))
    # Processes started from here (PyMC's chain processes) link the same library.
    if "blas__ldflags" in got["env"]:
        assert got["env"].endswith(f"blas__ldflags={got['flags']}")


def test_a_users_own_blas_setting_is_kept():
    # An explicit empty setting means "no BLAS": kept, nothing exported, no warning from us.
    got = _probe("blas__ldflags=")
    assert got["flags"] == got["config"] == ""
    assert got["env"] == "blas__ldflags="
    assert got["warnings"] == []
    assert "CGemv" not in got["ops"]
    np.testing.assert_array_equal(got["out"], np.arange(12.0).reshape(3, 4) @ np.ones(4))
