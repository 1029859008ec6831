"""The ``vlkge`` command line: crawl → clean → (encode) → train → evaluate, one module per verb,
each a thin layer over :mod:`vlkge.api`.

Every default comes from the parameters (packaged defaults ← ``params.yaml`` ← flags). A
:class:`~vlkge.errors.VlkgeError` is shown as one line without a traceback (``--debug`` shows it).
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import typer

from vlkge.cli import clean, crawl, demo, encode, evaluate, predict, report, summary, train, zeroshot
from vlkge.cli.common import state
from vlkge.errors import VlkgeError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Multimodal knowledge-graph embeddings (VL-KGE): crawl, clean, encode, train, evaluate.",
)


@app.callback()
def _global(
    data_dir: Path = typer.Option(Path("data"), "--data-dir", help="Root of all stage outputs."),
    params: Path | None = typer.Option(
        None, "--params", help="Parameter file (default: ./params.yaml when present)."
    ),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks."),
) -> None:
    state.data_dir, state.params_path, state.debug = data_dir, params, debug


for _verb in (crawl, clean, summary, encode, train, evaluate, predict, zeroshot, report, demo):
    app.command(_verb.__name__.rsplit(".", 1)[1])(_verb.command)


def log_level() -> int:
    """INFO, but WARNING on the ranks > 0 of a multi-process job (``RANK``, set by torchrun): only
    rank 0 reports what the job does."""
    return logging.INFO if os.environ.get("RANK", "0") == "0" else logging.WARNING


def main() -> None:
    """Console entry point: user errors become one line on stderr and exit status 2."""
    logging.basicConfig(level=log_level(), format="%(levelname)s: %(message)s", stream=sys.stderr)
    try:
        app()
    except VlkgeError as exc:
        if state.debug:
            raise
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except (FloatingPointError, KeyboardInterrupt) as exc:
        if state.debug:
            raise
        typer.echo(f"error: {exc or 'interrupted'}", err=True)
        sys.exit(130 if isinstance(exc, KeyboardInterrupt) else 1)
