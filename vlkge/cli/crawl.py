"""``vlkge crawl [DATASET] [--source DIR|URL|packaged] [--images DIR]``."""

from __future__ import annotations

import typer

from vlkge import paths
from vlkge.cli.common import echo, state


def command(
    dataset: str | None = typer.Argument(
        None, help="wn9-img | wikiart-v1 | wikiart-v2 | custom:<name> (default: params)"
    ),
    source: str | None = typer.Option(None, "--source", help="Directory or URL of the dump, or 'packaged'."),
    images: str | None = typer.Option(None, "--images", help="Directory of entity images."),
) -> None:
    """Copy and verify a dataset's inputs into data/<dataset>/raw."""
    from vlkge import api

    config = state.config({"crawl": {"source": source, "images": images}})
    name = dataset or config.dataset
    manifest = api.crawl(name, config, state.data_dir)
    files = manifest.get("files", manifest)
    echo(f"crawled {name}: {len(files)} files into {paths.raw_dir(state.data_dir, name)}")
