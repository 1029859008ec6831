"""``vlkge evaluate RUN [--split S] [--protocol correct|paper]``: filtered metrics of a run."""

from __future__ import annotations

from pathlib import Path

import typer

from vlkge.cli.common import state, write_results


def command(
    run: str = typer.Argument(..., help="Run directory or name (under data/<dataset>/models)."),
    split: str | None = typer.Option(None, "--split", help="valid | test"),
    protocol: str | None = typer.Option(
        None,
        "--protocol",
        help="correct (default) | paper: the reference code's over-filtering, for comparison only",
    ),
    directions: str | None = typer.Option(None, "--directions", help="both | tail (default: meta.json)"),
    missing: str | None = typer.Option(
        None,
        "--missing",
        help="Queries touching an entity with no representation: worst (a counted miss, the default) | "
        "drop (left out, counted) | error",
    ),
    dataset: str | None = typer.Option(None, "--dataset", help="Dataset of a run given by name."),
    out: Path | None = typer.Option(
        None, "--out", help="Full results JSON (default: <run>/eval_<split>_<protocol>.json)."
    ),
    metrics: Path | None = typer.Option(None, "--metrics", help="Also write compact metrics (for DVC) here."),
    per_relation: Path | None = typer.Option(
        None, "--per-relation", help="Write per-relation metrics CSV here."
    ),
) -> None:
    """Filtered link-prediction metrics of a trained run, or of a group of seeds (`vlkge train
    --seeds N`: mean ± sd); prints them and writes JSON."""
    from vlkge import api

    wanted = {"split": split, "protocol": protocol, "directions": directions, "missing": missing}
    config = state.config({"evaluate": wanted})
    done = api.evaluate(run, config, state.data_dir, dataset=dataset)
    spec = config.evaluate
    write_results(
        done.metrics, out or done.path / f"eval_{spec.split}_{spec.protocol}.json", metrics, per_relation
    )
