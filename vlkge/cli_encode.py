"""``vlkge encode``: the feature-encoding stage on the command line.

Wired into the main app by ``vlkge.cli`` with ``register(app)``::

    vlkge encode [DATASET] --model lite                 # encode (resumes complete shards)
    vlkge encode [DATASET] --model clip --shard 3/8     # one of 8 parallel processes
    vlkge encode [DATASET] --model clip --merge         # check all shards, write manifests
    vlkge encode [DATASET] --model clip --check         # verify a merged store, print it
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from vlkge.errors import InputError

if TYPE_CHECKING:
    from vlkge.graph import Graph

_MODALITIES = ("image", "text", "relation_text")


def encode(
    dataset: str | None = typer.Argument(None, help="Dataset; default: `dataset` in params.yaml."),
    model: str | None = typer.Option(None, "--model", "-m", help="clip | blip | lite | tiny-clip."),
    arch: str | None = typer.Option(None, "--arch", help="Architecture (e.g. ViT-L-14)."),
    pretrained: str | None = typer.Option(None, "--pretrained", help="open_clip pretrained tag."),
    weights: str | None = typer.Option(None, "--weights", help="Local checkpoint file or dir."),
    store: str | None = typer.Option(None, "--store", help="Store name; default: the model."),
    batch_size: int | None = typer.Option(None, "--batch-size", min=1),
    workers: int | None = typer.Option(None, "--workers", min=-1, help="-1 auto, 0 none."),
    device: str | None = typer.Option(None, "--device", help="auto | cpu | cuda[:N]."),
    precision: str | None = typer.Option(None, "--precision", help="auto | fp32 | fp16 | bf16."),
    shard: str = typer.Option("0/1", "--shard", help="i/n: write every n-th shard from i."),
    force: bool = typer.Option(False, "--force", help="Replace shards of another configuration."),
    merge: bool = typer.Option(False, "--merge", help="Only check all shards and merge them."),
    check: bool = typer.Option(False, "--check", help="Only verify a merged store."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Progress bar."),
) -> None:
    """Encode the graph's images and texts (and relation names) into the feature store."""
    from vlkge.cli import echo, resolve_dataset, state
    from vlkge.encoding import feature_store_dir, parse_shard, run_encode

    overrides = {
        "encode": {
            "model": model,
            "arch": arch,
            "pretrained": pretrained,
            "weights": weights,
            "store": store,
            "batch_size": batch_size,
            "workers": workers,
            "device": device,
            "precision": precision,
        },
    }
    params = state.params(overrides)
    name = resolve_dataset(dataset, params)
    enc = params["encode"]
    store_dir = feature_store_dir(state.data_dir, name, enc)
    if merge or check:
        from vlkge.graph import read_graph
        from vlkge.paths import graph_dir

        graph = read_graph(graph_dir(state.data_dir, name))
        _merge_or_check(store_dir, graph, check_only=check, echo=echo)
        return
    started = time.perf_counter()
    results = run_encode(
        state.data_dir,
        name,
        enc,
        shard=parse_shard(shard),
        force=force,
        progress=progress,
        log=echo,
    )
    seconds = time.perf_counter() - started
    echo(f"encoded {name} with {enc['model']} into {store_dir} in {seconds:.1f} s")
    for result in results:
        echo("  " + result.line())


def _merge_or_check(store_dir: Path, graph: Graph, *, check_only: bool, echo: Callable[[str], None]) -> None:
    """``--merge``: check all shards, write the manifests; ``--check``: verify the merged store
    against its manifest and the current graph (stale?), load it, check its values."""
    from vlkge.features import load_features, merge_store

    found = [m for m in _MODALITIES if (store_dir / m).is_dir()]
    if not found:
        raise InputError("no feature store here", path=store_dir, hint="run `vlkge encode` first")
    for modality in found:
        mod_dir = store_dir / modality
        if check_only:
            manifest = load_features(mod_dir, verify=True, graph=graph).manifest
        else:
            manifest = merge_store(mod_dir)
        echo(
            f"{modality}: {manifest['rows']:,} rows x {manifest['dim']} ({manifest['encoder_id']}, "
            f"weights {manifest['weights_id']}), {manifest['num_shards']} shard(s) verified"
        )


def register(app: typer.Typer) -> None:
    """Add the ``encode`` command to the main typer app."""
    app.command("encode")(encode)
