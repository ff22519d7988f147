"""The typer application: registers one command per subcommand module."""

from __future__ import annotations

import typer

from twin_uq._config import configure
from twin_uq.cli import (
    check,
    compare,
    demo,
    fit,
    models,
    next_sample,
    predict,
    report,
    stream,
    trust,
    update,
    update_many,
    validate,
    vpc,
)

app = typer.Typer(
    name="twin-uq",
    help="Patient digital twins with honest uncertainty: fit, predict, assess trust, report, audit.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

#: Subcommands in the order ``--help`` lists them.
COMMANDS = {
    "models": models.models,
    "demo": demo.demo,
    "fit": fit.fit,
    "check": check.check,
    "predict": predict.predict,
    "whatif": predict.whatif,
    "update": update.update,
    "next-sample": next_sample.next_sample,
    "update-many": update_many.update_many,
    "stream": stream.stream,
    "trust": trust.trust,
    "report": report.report,
    "audit": report.audit,
    "validate": validate.validate,
    "vpc": vpc.vpc,
    "compare": compare.compare,
}
for _name, _command in COMMANDS.items():
    app.command(_name)(_command)


def main() -> None:
    """Entry point of the ``twin-uq`` console script.

    Applies twin_uq's JAX settings (:func:`twin_uq.configure`: float64, CPU devices for
    parallel chains, the persistent compilation cache; ``TWIN_UQ_X64`` /
    ``TWIN_UQ_HOST_DEVICES`` / ``TWIN_UQ_CACHE`` change them), then runs the command.
    """
    configure()
    app()
