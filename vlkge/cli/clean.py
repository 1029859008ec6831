"""``vlkge clean [DATASET] [--unseen drop|fail|keep|inductive]``."""

from __future__ import annotations

import typer

from vlkge.cli.common import echo, state


def command(
    dataset: str | None = typer.Argument(None, help="Dataset to clean (default: params)."),
    unseen: str | None = typer.Option(
        None,
        "--unseen",
        help="valid/test entities or relations unseen in train: drop | fail | keep | inductive",
    ),
) -> None:
    """Build the canonical graph data/<dataset>/graph from the crawled inputs."""
    from vlkge import api
    from vlkge.graph import format_summary

    config = state.config({"clean": {"unseen": unseen}})
    graph = api.clean(dataset, config, state.data_dir)
    echo(f"cleaned {dataset or config.dataset} into {graph.root}")
    echo(format_summary(graph.summary()))
