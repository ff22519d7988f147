"""The typer application: registers one command per subcommand module."""

from __future__ import annotations

import typer

from twin_uq._config import configure
from twin_uq.cli import (
    compare,
    demo,
    fit,
    models,
    predict,
    report,
    trust,
    update,
    update_many,
    validate,
)
from twin_uq.cli._cache import enable_compilation_cache

app = typer.Typer(
    name="twin-uq",
    help="Patient digital twins with honest uncertainty: fit, predict, assess trust, report, audit.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

app.command("models")(models.models)
app.command("demo")(demo.demo)
app.command("fit")(fit.fit)
app.command("predict")(predict.predict)
app.command("whatif")(predict.whatif)
app.command("update")(update.update)
app.command("update-many")(update_many.update_many)
app.command("trust")(trust.trust)
app.command("report")(report.report)
app.command("audit")(report.audit)
app.command("validate")(validate.validate)
app.command("compare")(compare.compare)


def main() -> None:
    """Entry point of the ``twin-uq`` console script.

    Applies twin_uq's JAX settings (:func:`twin_uq.configure`: float64, CPU devices for
    parallel chains; ``TWIN_UQ_X64`` / ``TWIN_UQ_HOST_DEVICES`` change them) and turns the
    compilation cache on, then runs the command.
    """
    configure()
    enable_compilation_cache()
    app()
