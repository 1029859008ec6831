"""What every verb of the command line shares: the global options and the message channel."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import typer

from vlkge.config import Config, Params, load_config


@dataclass
class State:
    """The global options (``--data-dir``, ``--params``, ``--debug``) of this invocation."""

    data_dir: Path = Path("data")
    params_path: Path | None = None
    debug: bool = False

    def config(self, overrides: Params | None = None) -> Config:
        """Packaged defaults ← the params file ← ``overrides`` (the flags; None values unset)."""
        return load_config(self.params_path, overrides)


state = State()


def echo(message: str) -> None:
    """Progress and summaries go to stderr; results (metrics) to stdout."""
    typer.echo(message, err=True)


def write_results(result: dict, out: Path, metrics: Path | None, per_relation: Path | None) -> None:
    """Write an evaluation's full JSON to ``out`` (and its compact DVC metrics and per-relation
    CSV where asked), print its table to stdout and say where it went."""
    from vlkge.fileio import write_json_atomic
    from vlkge.metric_tables import compact_metrics, format_metrics, write_per_relation_csv

    write_json_atomic(out, result)
    if metrics is not None:
        write_json_atomic(metrics, compact_metrics(result))
    if per_relation is not None:
        write_per_relation_csv(per_relation, result)
    typer.echo(format_metrics(result))
    echo(f"wrote {out}")
