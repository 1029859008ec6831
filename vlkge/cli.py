"""The ``vlkge`` command line: crawl → clean → (encode) → train → evaluate.

Every default comes from the parameters (packaged defaults ← ``params.yaml`` ← flags). A
:class:`~vlkge.errors.VlkgeError` is shown as one line without a traceback (``--debug`` shows it).
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from pathlib import Path

import typer

from vlkge import cli_encode, cli_predict, cli_report, cli_zeroshot, paths
from vlkge.config import Params, load_params
from vlkge.errors import InputError, VlkgeError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Multimodal knowledge-graph embeddings (VL-KGE): crawl, clean, encode, train, evaluate.",
)


@dataclass
class State:
    data_dir: Path = Path("data")
    params_path: Path | None = None
    debug: bool = False

    def params(self, overrides: Params | None = None) -> Params:
        return load_params(self.params_path, overrides)


state = State()


@app.callback()
def _global(
    data_dir: Path = typer.Option(Path("data"), "--data-dir", help="Root of all stage outputs."),
    params: Path | None = typer.Option(
        None, "--params", help="Parameter file (default: ./params.yaml when present)."
    ),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks."),
) -> None:
    state.data_dir, state.params_path, state.debug = data_dir, params, debug


def echo(message: str) -> None:
    """Progress and summaries go to stderr; results (metrics) to stdout."""
    typer.echo(message, err=True)


def resolve_dataset(dataset: str | None, params: Params) -> str:
    return dataset or params["dataset"]


def resolve_run(run: str, dataset: str) -> Path:
    """A run given as a path (contains a separator or exists) or as a name under the dataset."""
    candidate = Path(run)
    if candidate.exists() or "/" in run or "\\" in run:
        return candidate
    return paths.models_dir(state.data_dir, dataset) / run


@app.command()
def crawl(
    dataset: str | None = typer.Argument(
        None, help="wn9-img | wikiart-v1 | wikiart-v2 | custom:<name> (default: params)"
    ),
    source: str | None = typer.Option(None, "--source", help="Directory or URL of the dump, or 'packaged'."),
    images: str | None = typer.Option(None, "--images", help="Directory of entity images."),
) -> None:
    """Copy and verify a dataset's inputs into data/<dataset>/raw."""
    from vlkge.pipeline import adapter_for

    params = state.params({"crawl": {"source": source, "images": images}})
    name = resolve_dataset(dataset, params)
    raw = paths.raw_dir(state.data_dir, name)
    manifest = adapter_for(name).crawl(name, params["crawl"]["source"], raw, params)
    files = manifest.get("files", manifest)
    echo(f"crawled {name}: {len(files)} files into {raw}")


@app.command()
def clean(
    dataset: str | None = typer.Argument(None, help="Dataset to clean (default: params)."),
    unseen: str | None = typer.Option(
        None,
        "--unseen",
        help="valid/test entities or relations unseen in train: drop | fail | keep | inductive",
    ),
) -> None:
    """Build the canonical graph data/<dataset>/graph from the crawled inputs."""
    from vlkge.graph import format_summary
    from vlkge.pipeline import adapter_for

    params = state.params({"clean": {"unseen": unseen}})
    name = resolve_dataset(dataset, params)
    raw = paths.raw_dir(state.data_dir, name)
    if not raw.is_dir():
        raise InputError("nothing crawled yet", path=raw, hint=f"run `vlkge crawl {name}` first")
    graph = adapter_for(name).clean(name, raw, paths.graph_dir(state.data_dir, name), params)
    echo(f"cleaned {name} into {graph.root}")
    echo(format_summary(graph.summary()))


@app.command()
def summary(dataset: str | None = typer.Argument(None)) -> None:
    """Print a canonical graph's counts."""
    from vlkge.graph import format_summary, read_graph

    name = resolve_dataset(dataset, state.params())
    typer.echo(format_summary(read_graph(paths.graph_dir(state.data_dir, name)).summary()))


@app.command()
def train(
    dataset: str | None = typer.Argument(None, help="Dataset (default: params)."),
    backbone: str | None = typer.Option(None, "--backbone", help="transe | distmult | complex | rotate"),
    epochs: int | None = typer.Option(None, "--epochs"),
    dim: int | None = typer.Option(None, "--dim"),
    margin: float | None = typer.Option(
        None, "--margin", help="TransE/RotatE: score γ − distance (model.margin)."
    ),
    batch_size: int | None = typer.Option(None, "--batch-size"),
    negatives: int | None = typer.Option(None, "--negatives"),
    lr: float | None = typer.Option(None, "--lr"),
    optimizer: str | None = typer.Option(None, "--optimizer", help="adagrad | adam"),
    sampler: str | None = typer.Option(None, "--sampler", help="uniform | bernoulli"),
    filtered: bool | None = typer.Option(
        None, "--filtered/--unfiltered", help="Skip true triples among negatives."
    ),
    seed: int | None = typer.Option(None, "--seed"),
    device: str | None = typer.Option(None, "--device", help="auto | cpu | cuda"),
    modalities: str | None = typer.Option(
        None, "--modalities", help="Comma-separated subset of structural,visual,textual."
    ),
    fusion: str | None = typer.Option(None, "--fusion", help="average | concat | weighted | sum"),
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
    from vlkge.distributed import make_trainer, shutdown
    from vlkge.graph import read_graph

    overrides = {
        "seed": seed,
        "model": {
            "backbone": backbone,
            "dim": dim,
            "margin": margin,
            "modalities": None if modalities is None else modalities.split(","),
            "fusion": fusion,
            "features": features,
        },
        "train": {
            "frozen": frozen,
            "epochs": epochs,
            "batch_size": batch_size,
            "negatives": negatives,
            "lr": lr,
            "optimizer": optimizer,
            "sampler": sampler,
            "filtered": filtered,
            "device": device,
        },
    }
    params = state.params(overrides)
    name = resolve_dataset(dataset, params)
    graph = read_graph(paths.graph_dir(state.data_dir, name))
    run_dir = resolve_run(out or params["model"]["backbone"], name)
    trainer = make_trainer(graph, params, run_dir)
    if resume:
        trainer.resume()
        echo(f"resuming {run_dir} after epoch {trainer.state.epoch}")
    elif (run_dir / "checkpoint.pt").exists():
        raise InputError(
            "this run already has a checkpoint",
            path=run_dir,
            hint="pass --resume to continue it, or --out NAME for a new run",
        )
    state_ = trainer.fit(show=not quiet, log=echo)
    if getattr(trainer, "is_main", True):
        echo(
            f"trained {params['model']['backbone']} on {name}: {state_.epoch} epochs, "
            f"best valid MRR {state_.best_mrr:.4f} at epoch {state_.best_epoch} → {run_dir}"
        )
    shutdown()


@app.command()
def evaluate(
    run: str = typer.Argument(..., help="Run directory or name (under data/<dataset>/models)."),
    split: str | None = typer.Option(None, "--split", help="valid | test"),
    protocol: str | None = typer.Option(
        None,
        "--protocol",
        help="correct (default) | paper: the reference code's over-filtering, for comparison only",
    ),
    directions: str | None = typer.Option(None, "--directions", help="both | tail (default: meta.json)"),
    dataset: str | None = typer.Option(None, "--dataset", help="Dataset of a run given by name."),
    out: Path | None = typer.Option(
        None, "--out", help="Full results JSON (default: <run>/eval_<split>_<protocol>.json)."
    ),
    metrics: Path | None = typer.Option(None, "--metrics", help="Also write compact metrics (for DVC) here."),
    per_relation: Path | None = typer.Option(
        None, "--per-relation", help="Write per-relation metrics CSV here."
    ),
) -> None:
    """Filtered link-prediction metrics of a trained run; prints them and writes JSON."""
    from vlkge.evaluation import evaluate as run_evaluation
    from vlkge.fileio import write_json_atomic
    from vlkge.graph import read_graph
    from vlkge.metric_tables import compact_metrics, format_metrics, write_per_relation_csv
    from vlkge.training import load_run, read_config, resolve_device

    params = state.params({"evaluate": {"split": split, "protocol": protocol, "directions": directions}})
    run_dir = resolve_run(run, resolve_dataset(dataset, params))
    config = read_config(run_dir)
    graph = read_graph(config["graph"])
    device = resolve_device(config["params"]["train"]["device"])
    model = load_run(run_dir, graph, device=str(device))
    spec = params["evaluate"]
    result = run_evaluation(
        model,
        graph,
        spec["split"],
        protocol=spec["protocol"],
        directions=spec["directions"],
        candidate_pools_mode=spec["candidate_pools"],
        batch_size=spec["batch_size"],
    )
    out = out or run_dir / f"eval_{spec['split']}_{spec['protocol']}.json"
    write_json_atomic(out, result)
    if metrics is not None:
        write_json_atomic(metrics, compact_metrics(result))
    if per_relation is not None:
        write_per_relation_csv(per_relation, result)
    typer.echo(format_metrics(result))
    echo(f"wrote {out}")


@app.command()
def demo(
    entities: int = typer.Option(600, "--entities", help="Size of the generated graph."),
    backbone: str = typer.Option("distmult", "--backbone"),
    epochs: int = typer.Option(40, "--epochs"),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """The embedded default, end to end and offline: generate a small user graph, crawl, clean,
    train and evaluate it (about a minute on 2 cores)."""
    from vlkge.evaluation import evaluate as run_evaluation
    from vlkge.graph import format_summary
    from vlkge.metric_tables import format_metrics
    from vlkge.pipeline import adapter_for
    from vlkge.pipeline.synthetic import write_synthetic_graph
    from vlkge.training import Trainer

    name = "custom:demo"
    source = write_synthetic_graph(state.data_dir / "demo-source", entities=entities, seed=seed)
    overrides = {
        "dataset": name,
        "seed": seed,
        "crawl": {"source": str(source), "images": None},
        "model": {"backbone": backbone, "dim": 64},
        "train": {"epochs": epochs, "batch_size": 256, "negatives": 32, "eval_every": 5},
        "evaluate": {"split": "test", "protocol": "correct"},
    }
    params = load_params(state.params_path, overrides)
    adapter = adapter_for(name)
    adapter.crawl(name, str(source), paths.raw_dir(state.data_dir, name), params)
    graph = adapter.clean(
        name, paths.raw_dir(state.data_dir, name), paths.graph_dir(state.data_dir, name), params
    )
    echo(format_summary(graph.summary()))
    run_dir = paths.models_dir(state.data_dir, name) / backbone
    trainer = Trainer(graph, params, run_dir)
    if (run_dir / "checkpoint.pt").exists():
        trainer.resume()
    trainer.fit(show=False, log=echo)
    result = run_evaluation(trainer.model, graph, "test", batch_size=params["evaluate"]["batch_size"])
    typer.echo(format_metrics(result))
    random_mrr = sum(1.0 / k for k in range(1, graph.num_entities + 1)) / graph.num_entities
    typer.echo(f"(a random ranking would give MRR ≈ {random_mrr:.4f})")


def main() -> None:
    """Console entry point: user errors become one line on stderr and exit status 2."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(message)s", stream=sys.stderr)
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


# stage commands that live in their own modules
cli_encode.register(app)
cli_predict.register(app)
cli_zeroshot.register(app)
cli_report.register(app)
