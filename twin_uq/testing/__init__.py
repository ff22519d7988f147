"""Tools for testing models written for twin_uq.

:func:`check_model` runs the checks that :func:`twin_uq.load_model`, ``tq.fit`` and
``tq.simulate`` run on every model before using it (declaration, shapes, declared names,
units, priors, finite values at the typical parameters). Call it in a model's own tests::

    from twin_uq.testing import check_model

    def test_my_model_passes_the_checks():
        check_model(MyModel())

It raises :class:`ModelCheckError` naming the model and what is wrong.
"""

from twin_uq.model.check import check_model
from twin_uq.model.errors import ModelCheckError

__all__ = ["ModelCheckError", "check_model"]
