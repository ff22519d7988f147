#!/usr/bin/env bash
# The GPU points of the scaling series (issue #11): 1000 and 10 000 oral patients on one
# accelerator, NUTS (2 vectorised chains, 300 + 300) and SVI (3000 steps), float64.
# Environment: NUTS_PROBLEMS, NUTS_ITER (warm-up = draws), NUTS_TIMEOUT, SVI_TIMEOUT (s), TAG_SUFFIX.
# Run from the repository root on a machine whose Python has JAX with GPU support; the
# packages the image lacks (or has in other versions) are installed from ./.whl first when
# that folder exists. Results: $TWIN_UQ_BENCH_OUT (default benchmarks/out)/fit_benchmark_gpu_*.json.
set -uo pipefail
PY=${PYTHON:-python3}
if [ -d .whl ]; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD
fi
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
$PY -c "import jax, numpyro; print('jax', jax.__version__, 'numpyro', numpyro.__version__, jax.devices())"
# shellcheck disable=SC2086  # NUTS_PROBLEMS is a list
$PY benchmarks/fit_benchmark.py --problems ${NUTS_PROBLEMS:-p1_oral_1000 p1_oral_10000} --tools twin_uq \
  --warmup "${NUTS_ITER:-300}" --draws "${NUTS_ITER:-300}" --fits 1 --timeout "${NUTS_TIMEOUT:-200}" \
  --tag "gpu_nuts${TAG_SUFFIX:-}"
$PY benchmarks/fit_benchmark.py --problems p1_oral_10000 --tools twin_uq --method svi \
  --draws 1000 --fits 1 --timeout "${SVI_TIMEOUT:-150}" --tag "gpu_svi${TAG_SUFFIX:-}"
