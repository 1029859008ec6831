"""``vlkge summary [DATASET]``."""

from __future__ import annotations

import typer

from vlkge.cli.common import state


def command(dataset: str | None = typer.Argument(None)) -> None:
    """Print a canonical graph's counts."""
    from vlkge import api
    from vlkge.graph import format_summary

    typer.echo(format_summary(api.graph_of(dataset, state.config(), state.data_dir).summary()))
