"""``vlkge encode``: the feature-encoding stage.

vlkge encode [DATASET] --model lite                 # encode (resumes complete shards)
vlkge encode [DATASET] --model clip --shard 3/8     # one of 8 parallel processes
vlkge encode [DATASET] --model clip --merge         # check all shards, write manifests
vlkge encode [DATASET] --model clip --check         # verify a merged store, print it
"""

from __future__ import annotations

import time
from pathlib import Path

import typer

from vlkge.cli.common import echo, state
from vlkge.components import ENCODERS
from vlkge.errors import InputError
from vlkge.modalities import STORE_MODALITIES


def command(
    dataset: str | None = typer.Argument(None, help="Dataset; default: `dataset` in params.yaml."),
    model: str | None = typer.Option(None, "--model", "-m", help=ENCODERS.choices()),
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
    from vlkge import api
    from vlkge.encoding import feature_store_dir, parse_shard

    options = {"model": model, "arch": arch, "pretrained": pretrained, "weights": weights, "store": store}
    options.update(batch_size=batch_size, workers=workers, device=device, precision=precision)
    config = state.config({"encode": options})
    name = dataset or config.dataset
    store_dir = feature_store_dir(state.data_dir, name, config.encode)
    if merge or check:
        _merge_or_check(store_dir, api.graph_of(name, config, state.data_dir), check_only=check)
        return
    started = time.perf_counter()
    results = api.encode(
        name, config, state.data_dir, shard=parse_shard(shard), force=force, progress=progress, log=echo
    )
    seconds = time.perf_counter() - started
    echo(f"encoded {name} with {config.encode.model} into {store_dir} in {seconds:.1f} s")
    for result in results:
        echo("  " + result.line())


def _merge_or_check(store_dir: Path, graph, *, check_only: bool) -> None:
    """``--merge``: check all shards, write the manifests; ``--check``: verify the merged store
    against its manifest and the current graph (stale?), load it, check its values."""
    from vlkge.features.store import load_features, merge_store

    found = [m for m in STORE_MODALITIES if (store_dir / m).is_dir()]
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
