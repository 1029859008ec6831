"""``vlkge report``: the per-relation MRR chart (PNG + DVC plots CSV) and the top-k HTML page.

vlkge report data/wikiart-v1/models/dvc --eval reports/wikiart-v1/evaluation.json --out reports/wikiart-v1
vlkge report data/wikiart-v1/zeroshot.json --dataset wikiart-v1 --out reports/wikiart-v1-zeroshot
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from vlkge.cli.common import echo, state


def command(
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
    from vlkge import api

    evaluation = None
    if eval_file is not None and eval_file.is_file():
        evaluation = json.loads(eval_file.read_text(encoding="utf-8"))
    config = state.config({"evaluate": {"split": split}, "seed": seed})
    sample = {"per_relation": per_relation, "top_k": top_k, "title": title}
    files = api.report(run, config, state.data_dir, out=out, dataset=dataset, evaluation=evaluation, **sample)
    for kind, path in files.items():
        echo(f"wrote {kind}: {path}")
