"""The ``twin-uq`` command line: one small module per subcommand group.

``twin-uq --help`` lists the commands. Heavy modules (JAX, NumPyro, ArviZ) are imported
inside each command, so help and argument errors answer quickly.
"""

from twin_uq.cli.app import app as app, main as main
