"""``vlkge predict RUN --relation R [--image F] [--text T] [--k 5] [--head]``: top-k answers for a
new entity given by an image and/or a text."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from vlkge.cli.common import state


def command(
    run: str = typer.Argument(..., help="Run directory or name (under data/<dataset>/models)."),
    relation: str = typer.Option(..., "--relation", "-r", help="Relation key of the run's graph."),
    image: Path | None = typer.Option(None, "--image", help="Image of the new entity."),
    text: str | None = typer.Option(None, "--text", help="Text (description) of the new entity."),
    name: str | None = typer.Option(
        None, "--name", help="Name of the new entity (graph texts that name it count as mentions)."
    ),
    k: int = typer.Option(5, "--k", min=1, help="How many answers and nearest entities."),
    head: bool = typer.Option(False, "--head", help="Predict heads (?, r, new) instead of tails."),
    search: str = typer.Option(
        "auto", "--search", help="auto | exact | faiss (auto: faiss for large graphs)."
    ),
    dataset: str | None = typer.Option(None, "--dataset", help="Dataset of a run given by name."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Link prediction for an entity not in the graph, from its image and/or text."""
    from vlkge import api
    from vlkge.predict import format_prediction

    result = api.predict(
        run,
        relation,
        image=image,
        text=text,
        name=name,
        k=k,
        head=head,
        search=search,
        config=state.config(),
        data_dir=state.data_dir,
        dataset=dataset,
    )
    typer.echo(
        json.dumps(result.__dict__, indent=2, ensure_ascii=False) if as_json else format_prediction(result)
    )
