"""``vlkge train [DATASET] --backbone B …``: sLCWA training of a (VL-)KGE model."""

from __future__ import annotations

import typer

from vlkge.cli.common import echo, state
from vlkge.components import BACKBONES, FUSIONS, OPTIMIZERS, SAMPLERS


def command(
    dataset: str | None = typer.Argument(None, help="Dataset (default: params)."),
    backbone: str | None = typer.Option(None, "--backbone", help=BACKBONES.choices()),
    epochs: int | None = typer.Option(None, "--epochs"),
    dim: int | None = typer.Option(None, "--dim"),
    margin: float | None = typer.Option(
        None, "--margin", help="TransE/RotatE: score γ − distance (model.margin)."
    ),
    batch_size: int | None = typer.Option(None, "--batch-size"),
    negatives: int | None = typer.Option(None, "--negatives"),
    lr: float | None = typer.Option(None, "--lr"),
    optimizer: str | None = typer.Option(None, "--optimizer", help=OPTIMIZERS.choices()),
    sampler: str | None = typer.Option(None, "--sampler", help=SAMPLERS.choices()),
    filtered: bool | None = typer.Option(
        None, "--filtered/--unfiltered", help="Skip true triples among negatives."
    ),
    preset: str | None = typer.Option(
        None,
        "--preset",
        help="A named recipe above params.yaml: paper (the VL-KGE reference code's WN9-IMG settings "
        "for the backbone: vlkge/presets/paper-<backbone>.yaml), a preset's full name, or a YAML file.",
    ),
    seed: int | None = typer.Option(None, "--seed", help="The seed (the first, with --seeds)."),
    seeds: int | None = typer.Option(
        None, "--seeds", help="Train N seeds (seed … seed+N-1) into <out>/seed-<s>/: one group, mean ± sd."
    ),
    device: str | None = typer.Option(None, "--device", help="auto | cpu | cuda"),
    modalities: str | None = typer.Option(
        None, "--modalities", help="Comma-separated subset of structural,visual,textual."
    ),
    fusion: str | None = typer.Option(None, "--fusion", help=FUSIONS.choices()),
    features: str | None = typer.Option(None, "--features", help="Feature store name (default: encode's)."),
    frozen: bool | None = typer.Option(
        None, "--frozen/--finetune", help="Train on the feature store only, or fine-tune the encoder."
    ),
    out: str | None = typer.Option(None, "--out", help="Run name or directory (default: the backbone)."),
    resume: bool = typer.Option(False, "--resume", help="Continue from the run's last checkpoint."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
) -> None:
    """Train a KGE model; checkpoints every epoch, early-stops on valid MRR.

    Under ``torchrun --nproc_per_node=N -m vlkge train ...`` the processes train one model with
    DistributedDataParallel (vlkge/distributed.py)."""
    from vlkge import api

    model = {
        "backbone": backbone,
        "dim": dim,
        "margin": margin,
        "modalities": None if modalities is None else modalities.split(","),
        "fusion": fusion,
        "features": features,
    }
    train = {
        "frozen": frozen,
        "epochs": epochs,
        "batch_size": batch_size,
        "negatives": negatives,
        "lr": lr,
        "optimizer": optimizer,
        "sampler": sampler,
        "filtered": filtered,
        "device": device,
        "seeds": seeds,
    }
    config = state.config({"preset": preset, "seed": seed, "model": model, "train": train})
    options = {"out": out, "resume": resume, "show": not quiet, "log": echo}
    if config.train.seeds > 1:
        runs = api.train_seeds(dataset, config, state.data_dir, **options)
    else:
        runs = [api.train(dataset, config, state.data_dir, **options)]
    for trained in runs:
        if trained.is_main:
            best = trained.state
            echo(
                f"trained {config.model.backbone} on {dataset or config.dataset}: {best.epoch} epochs, "
                f"best valid MRR {best.best_mrr:.4f} at epoch {best.best_epoch} → {trained.run_dir}"
            )
