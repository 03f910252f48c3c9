"""`dcops inventory sample DIR`: a copy of the sample inventory and catalogue, to start an inventory from."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def sample_command(
    directory: Annotated[Path, typer.Argument(help="A new or empty folder for the copy.")],
) -> None:
    """Write a copy of the sample inventory and catalogue (illustrative data, every address on
    loopback) into DIR, to edit and keep in git; writes nothing if DIR exists and is not empty.

    Example: dcops inventory sample inventory/ && dcops inventory load inventory/ --dry-run
    """
    from dcops.resources import copy_sample

    written = copy_sample(directory)
    typer.echo(f"{len(written)} files written to {directory} (the sample inventory and catalogue.yaml)")
