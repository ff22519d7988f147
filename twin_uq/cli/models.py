"""``twin-uq models``: the built-in model library."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from twin_uq.cli._console import out_console
from twin_uq.cli._errors import handle_errors
from twin_uq.cli._io import ensure_parent
from twin_uq.cli._options import Verbose, check_suffix


@handle_errors
def models(
    out: Annotated[
        Path | None, typer.Option("--out", help="Also write the list to .csv or .json.")
    ] = None,
    verbose: Verbose = False,
) -> None:
    """List the built-in models with a one-line description each."""
    from rich.table import Table

    from twin_uq.model.load import list_models

    if out is not None:
        suffix = check_suffix(out, (".csv", ".json"))
    catalogue = list_models()
    table = Table("model", "description", box=None, header_style="bold")
    for name, summary in catalogue.items():
        table.add_row(name, summary)
    out_console.print(table)
    if out is not None:
        import pandas as pd

        frame = pd.DataFrame({"model": list(catalogue), "description": list(catalogue.values())})
        ensure_parent(out)
        if suffix == ".csv":
            frame.to_csv(out, index=False)
        else:
            frame.to_json(out, orient="records", indent=1)
