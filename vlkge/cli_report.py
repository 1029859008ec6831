"""``vlkge report``: the per-relation MRR chart (PNG + DVC plots CSV) and the top-k HTML page.

vlkge report data/wikiart-v1/models/dvc --eval reports/wikiart-v1/evaluation.json --out reports/wikiart-v1
vlkge report data/wikiart-v1/zeroshot.json --dataset wikiart-v1 --out reports/wikiart-v1-zeroshot
"""

from __future__ import annotations

import json
from pathlib import Path

import typer


def report(
    run: str = typer.Argument(
        ..., help="Run directory or name (data/<dataset>/models/<run>), or a `vlkge zeroshot` JSON."
    ),
    dataset: str | None = typer.Option(None, "--dataset", help="Dataset of a run given by name or a JSON."),
    eval_file: Path | None = typer.Option(
        None, "--eval", help="Evaluation JSON of the run (`vlkge evaluate --out`); default: evaluate now."
    ),
    split: str | None = typer.Option(None, "--split", help="valid | test (default: evaluate.split)."),
    out: Path = typer.Option(Path("reports"), "--out", help="Output directory."),
    per_relation: int = typer.Option(2, "--per-relation", min=1, help="Sample queries per relation."),
    top_k: int = typer.Option(5, "--top-k", min=1),
    seed: int | None = typer.Option(None, "--seed", help="Seed of the query sample (default: params)."),
    title: str | None = typer.Option(None, "--title"),
) -> None:
    """Write per_relation_mrr.png, per_relation_mrr.csv and topk.html for a run."""
    from vlkge import paths
    from vlkge.cli import echo, resolve_dataset, resolve_run, state
    from vlkge.graph import read_graph
    from vlkge.reports import Query, sample_queries, top_predictions, write_report

    params = state.params({"evaluate": {"split": split}, "seed": seed})
    spec = params["evaluate"]
    source = Path(run)
    if source.is_file() and source.suffix == ".json":
        result = json.loads(source.read_text(encoding="utf-8"))
        name = resolve_dataset(dataset, params)
        graph = read_graph(paths.graph_dir(state.data_dir, name))
        index = {k: i for i, k in enumerate(graph.entity_keys)}
        rel_index = graph.relation_index
        queries = [
            Query(
                index[p["head"]],
                rel_index[p["relation"]],
                index[p["answer"]],
                [index[e] for e in p["top"]],
                p["scores"],
            )
            for p in result.get("predictions", [])
        ]
        label = title or f"{name} · zero-shot"
    else:
        from vlkge.evaluation import evaluate
        from vlkge.training import load_run, read_config

        run_dir = resolve_run(run, resolve_dataset(dataset, params))
        config = read_config(run_dir)
        graph = read_graph(config["graph"])
        model = load_run(run_dir, graph, device="cpu")
        if eval_file is not None and eval_file.is_file():
            result = json.loads(eval_file.read_text(encoding="utf-8"))
        else:
            result = evaluate(model, graph, spec["split"], batch_size=spec["batch_size"])
        sample = sample_queries(
            graph, result.get("setup", {}).get("split", spec["split"]), per_relation, params["seed"]
        )
        queries = top_predictions(model, graph, sample, top_k)
        backbone = config["params"]["model"]["backbone"]
        label = title or f"{config.get('dataset') or graph.meta.get('dataset')} · {backbone} · {run_dir.name}"
    files = write_report(out, graph, result, queries, title=label)
    for kind, path in files.items():
        echo(f"wrote {kind}: {path}")


def register(app: typer.Typer) -> None:
    """Add the ``report`` command to the main typer app."""
    app.command("report")(report)
