"""Give PyTensor a BLAS to link where its own search finds none (the PyMC backend).

PyTensor's C operations call BLAS for matrix products; PyMC's own NUTS
(``PyMC(sampler="pymc")``) runs the model with PyTensor's C/VM linker. PyTensor looks
for a BLAS the first time it needs one (``pytensor.link.c.cmodule.default_blas_ldflags``):
MKL, Apple's Accelerate, ``libblas`` together with ``libcblas``, or ``libopenblas``
together with the compiler's Fortran runtime ``libgfortran.so``. A pip install on Debian
or Ubuntu with the distribution's OpenBLAS (``apt-get install libopenblas-dev``, as
``.ci/run`` does) has ``libopenblas.so`` and ``libblas.so`` but neither ``libcblas.so``
nor ``libgfortran.so``, so PyTensor warned "PyTensor could not link to a BLAS
installation" and ran its matrix products without BLAS, although ``-lopenblas`` links.

:func:`link_blas` runs PyTensor's own search first and, where it finds nothing, tries
``-lopenblas`` and then ``-lblas`` with PyTensor's own link test (a small program that
calls ``dgemm_``). A setting the user made (``PYTENSOR_FLAGS=blas__ldflags=...`` or
``.pytensorrc``) is always kept. It changes PyTensor's configuration of this process only
when the PyMC backend starts, and exports a flag it found itself in ``PYTENSOR_FLAGS``
so that PyMC's chain processes link the same library (a compiled operation unpickled in
a process without the flag would miss the BLAS symbols).

What it changes for twin_uq's own model is small: the model's matrices are per patient
and K x K (K the parameters), and the cost is the JAX likelihood. Measured 2026-12-07 at
commit 6250c8b, logp and gradient of the PyMC model of an 8-patient oral cohort with the
C/VM linker: 1.29 and 1.33 ms per evaluation with ``-lopenblas``, 1.33 and 1.21 ms without
(alternating runs on a quiet 2-core machine); a PyMC NUTS run (1 chain, 30 + 30) took the
same 3810 leapfrog steps to the same draws either way. Larger matrices in a model a user
extends (``post.to_pymc_model()``) are where BLAS matters.
"""

from __future__ import annotations

import os
import warnings

__all__ = ["link_blas"]

#: What is tried, in order, when PyTensor's own search finds no BLAS.
FALLBACK_FLAGS = ("-lopenblas", "-lblas")

_NO_BLAS = "PyTensor could not link to a BLAS installation"


def link_blas() -> str:
    """Set PyTensor's ``blas__ldflags`` if nobody has; return the flags in force.

    Returns ``""`` where no BLAS links (or there is no C compiler), after one warning that
    says what to install; PyTensor then works as before, with slow matrix products.
    """
    import pytensor
    from pytensor.link.c import cmodule

    config = pytensor.config
    param = type(config).__dict__.get("blas__ldflags")
    if param is None or hasattr(param, "val"):  # decided already (PyTensor, user, earlier call)
        return config.blas__ldflags
    try:
        config.fetch_val_for_key("blas__ldflags")  # PYTENSOR_FLAGS or .pytensorrc
        return config.blas__ldflags
    except KeyError:
        pass
    if not config.cxx:  # no C compiler: PyTensor uses no C operations at all
        return config.blas__ldflags
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_NO_BLAS, category=UserWarning)
        flags = cmodule.default_blas_ldflags()
    if not flags:
        for candidate in FALLBACK_FLAGS:
            flags = cmodule.try_blas_flag([candidate])
            if flags:
                _export(flags)
                break
        else:
            warnings.warn(
                "PyTensor found no BLAS to link, so PyMC's own NUTS (sampler='pymc') runs "
                "matrix products slowly. Install OpenBLAS (Debian/Ubuntu: apt-get install "
                "libopenblas-dev) or set PYTENSOR_FLAGS=blas__ldflags=... .",
                UserWarning,
                stacklevel=3,
            )
    config.blas__ldflags = flags
    return flags


def _export(flags: str) -> None:
    """Add ``blas__ldflags=flags`` to ``PYTENSOR_FLAGS`` for processes started from here."""
    current = os.environ.get("PYTENSOR_FLAGS", "")
    os.environ["PYTENSOR_FLAGS"] = ",".join(p for p in (current, f"blas__ldflags={flags}") if p)
