"""``vlkge predict``: top-k answers for a new entity given by an image and/or a text.

vlkge predict RUN --relation _hypernym --image photo.jpg [--text "a small dog"] [--k 5] [--head]
"""

from __future__ import annotations

import json
from pathlib import Path

import typer


def predict(
    run: str = typer.Argument(..., help="Run directory or name (under data/<dataset>/models)."),
    relation: str = typer.Option(..., "--relation", "-r", help="Relation key of the run's graph."),
    image: Path | None = typer.Option(None, "--image", help="Image of the new entity."),
    text: str | None = typer.Option(None, "--text", help="Text (description) of the new entity."),
    k: int = typer.Option(5, "--k", min=1, help="How many answers and nearest entities."),
    head: bool = typer.Option(False, "--head", help="Predict heads (?, r, new) instead of tails."),
    search: str = typer.Option(
        "auto", "--search", help="auto | exact | faiss (auto: faiss for large graphs)."
    ),
    dataset: str | None = typer.Option(None, "--dataset", help="Dataset of a run given by name."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Link prediction for an entity not in the graph, from its image and/or text."""
    from vlkge.cli import resolve_dataset, resolve_run, state
    from vlkge.encoding import encoder_from_params
    from vlkge.errors import InputError
    from vlkge.predict import (
        apply_tuned_encoder,
        check_encoder,
        encode_query,
        format_prediction,
        load_for_prediction,
    )
    from vlkge.predict import predict as run_predict

    if image is None and text is None:
        raise InputError("nothing to predict from", hint="give --image FILE and/or --text '...'")
    params = state.params()
    run_dir = resolve_run(run, resolve_dataset(dataset, params))
    model, graph, config = load_for_prediction(run_dir)
    graph.relation_id(relation)  # unknown relation: a clear error before loading the encoder
    encode = {**config["params"]["encode"], "device": "cpu", "precision": "fp32"}
    encoder = encoder_from_params(encode)
    check_encoder(encoder, config["features"])
    apply_tuned_encoder(encoder, run_dir)
    query = encode_query(encoder, image, text, config["features"])
    result = run_predict(model, graph, query, relation, k=k, head=head, search=search)
    if as_json:
        typer.echo(json.dumps(result.__dict__, indent=2, ensure_ascii=False))
    else:
        typer.echo(format_prediction(result))


def register(app: typer.Typer) -> None:
    """Add the ``predict`` command to the main typer app."""
    app.command("predict")(predict)
