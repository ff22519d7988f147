"""``twin-uq models``: the built-in model library."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from twin_uq._atomic import atomic_write_text
from twin_uq._csv import write_csv
from twin_uq.cli._console import out_console
from twin_uq.cli._errors import handle_errors
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
        if suffix == ".csv":
            write_csv(frame, out, index=False)
        else:
            atomic_write_text(out, frame.to_json(orient="records", indent=1))
