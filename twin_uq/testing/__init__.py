"""Tools for testing models written for twin_uq.

:func:`check_model` runs the checks that :func:`twin_uq.load_model`, ``tq.fit`` and
``tq.simulate`` run on every model before using it (declaration, shapes, declared names,
units, priors, finite values at the typical parameters). Call it in a model's own tests::

    from twin_uq.testing import check_model

    def test_my_model_passes_the_checks():
        check_model(MyModel())

It raises :class:`ModelCheckError` naming the model and what is wrong.

:mod:`twin_uq.testing.glucose_simulator` simulates people with type 1 diabetes from the
Dalla Man et al. (2007) meal model (test data for diabetes twins; imported on its own,
since it needs SciPy): ``simulate_t1d_cohort(...)``.
"""

from twin_uq.model.check import check_model
from twin_uq.model.errors import ModelCheckError

__all__ = ["ModelCheckError", "check_model"]
