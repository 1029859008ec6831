"""``vlkge demo``: the embedded default, end to end and offline."""

from __future__ import annotations

import typer

from vlkge.cli.common import echo, state
from vlkge.components import BACKBONES


def command(
    entities: int = typer.Option(600, "--entities", help="Size of the generated graph."),
    backbone: str = typer.Option("distmult", "--backbone", help=BACKBONES.choices()),
    epochs: int = typer.Option(40, "--epochs"),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """The embedded default, end to end and offline: generate a small user graph, crawl, clean,
    train and evaluate it (about a minute on 2 cores)."""
    from vlkge import api
    from vlkge.evaluation import evaluate
    from vlkge.graph import format_summary
    from vlkge.metric_tables import format_metrics
    from vlkge.pipeline.synthetic import write_synthetic_graph

    name = "custom:demo"
    source = write_synthetic_graph(state.data_dir / "demo-source", entities=entities, seed=seed)
    config = state.config(
        {
            "dataset": name,
            "seed": seed,
            "crawl": {"source": str(source), "images": None},
            "model": {"backbone": backbone, "dim": 64},
            "train": {"epochs": epochs, "batch_size": 256, "negatives": 32, "eval_every": 5},
            "evaluate": {"split": "test", "protocol": "correct"},
        }
    )
    graph = api.prepare(name, config, state.data_dir)
    echo(format_summary(graph.summary()))
    trained = api.train(name, config, state.data_dir, out=backbone, resume=None, show=False, log=echo)
    result = evaluate(trained.model, graph, "test", batch_size=config.evaluate.batch_size)
    typer.echo(format_metrics(result))
    random_mrr = sum(1.0 / k for k in range(1, graph.num_entities + 1)) / graph.num_entities
    typer.echo(f"(a random ranking would give MRR ≈ {random_mrr:.4f})")
