"""The Python API: the steps of the pipeline as functions, each the body of a command-line verb —
``prepare`` (crawl + clean), ``encode``, ``train``, ``evaluate``, ``predict``, ``zeroshot``,
``neighbours``; and ``hold_out`` (an inductive variant of a graph, as the demo makes) — in the
spirit of PyKEEN's ``pipeline()``. The CLI, the demo, the DVC stages (through the CLI) and the
benchmarks all go through here.

    from vlkge import api
    from vlkge.config import load_config

    config = load_config(overrides={"model": {"backbone": "complex", "dim": 64}})
    graph = api.prepare("custom:mygraph", config, source="path/to/dir")
    trained = api.train("custom:mygraph", config, out="complex")
    metrics = api.evaluate(trained.run_dir, config).metrics

Every function takes the typed :class:`~vlkge.config.Config` (default: :func:`load_config`, i.e.
the packaged defaults and ``./params.yaml``) and the data directory (default ``data``). A dataset
of ``None`` is ``config.dataset``; a run is a directory or a name under the dataset's models.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vlkge import paths
from vlkge.config import Config, load_config
from vlkge.encode_batches import ModalityResult
from vlkge.errors import ConfigError, InputError
from vlkge.graph import Graph, read_graph
from vlkge.model import KGEModel
from vlkge.predict import Prediction
from vlkge.runs import (
    CHECKPOINT,
    Run,
    load_run,
    require_features,
    run_encoder,
    run_path,
    seed_dir,
    seed_runs,
)
from vlkge.training import TrainState
from vlkge.zeroshot import ZeroShotResult

Log = Callable[[str], None]


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _setup(dataset: str | None, config: Config | None) -> tuple[str, Config]:
    config = config or load_config()
    return dataset or config.dataset, config


def _run_dir(run: str | Path, dataset: str | None, config: Config, data_dir: str | Path) -> Path:
    """A run's directory: a path, or a name under ``data/<dataset>/models``."""
    return run_path(str(run), data_dir, dataset or config.dataset)


# ----------------------------------------------------------------------------- data


def crawl(dataset: str | None = None, config: Config | None = None, data_dir: str | Path = "data") -> dict:
    """Copy and verify the dataset's inputs (``crawl.source``, else its mirror or public URL) into
    ``data/<ds>/raw``; return the raw manifest."""
    from vlkge.pipeline import adapter_for

    name, config = _setup(dataset, config)
    raw = paths.raw_dir(data_dir, name)
    return adapter_for(name).crawl(name, config.crawl.source, raw, config.to_params())


def clean(
    dataset: str | None = None,
    config: Config | None = None,
    data_dir: str | Path = "data",
    *,
    out: str | Path | None = None,
) -> Graph:
    """Build the canonical graph ``data/<ds>/graph`` (or the directory ``out``) from the crawled
    inputs."""
    from vlkge.pipeline import adapter_for

    name, config = _setup(dataset, config)
    raw = paths.raw_dir(data_dir, name)
    if not raw.is_dir():
        raise InputError("nothing crawled yet", path=raw, hint=f"run `vlkge crawl {name}` first")
    graph_dir = paths.graph_dir(data_dir, name) if out is None else Path(out)
    return adapter_for(name).clean(name, raw, graph_dir, config.to_params())


def prepare(dataset: str | None = None, config: Config | None = None, data_dir: str | Path = "data") -> Graph:
    """:func:`crawl` then :func:`clean`."""
    crawl(dataset, config, data_dir)
    return clean(dataset, config, data_dir)


def hold_out(
    source: Graph,
    dataset: str | None = None,
    config: Config | None = None,
    data_dir: str | Path = "data",
    *,
    fraction: float = 0.1,
    entities: int | None = None,
) -> Graph:
    """The inductive variant of the graph ``source`` as ``data/<ds>/graph``: ``fraction`` of its
    entities, drawn with ``seed``, held out of training, half for valid and half for test
    (:mod:`vlkge.holdout`; ``meta.json`` lists every entity absent from train). ``entities``:
    first cut ``source`` down to a connected part of that many entities (written beside it as
    ``<source>-<entities>``), for quick runs."""
    from vlkge.holdout import connected_part, hold_out_entities

    name, config = _setup(dataset, config)
    if entities is not None and entities < source.num_entities:
        part_dir = source.root.with_name(f"{source.root.name}-{entities}")
        source = connected_part(source, entities, part_dir, seed=config.seed)
    return hold_out_entities(source, fraction, paths.graph_dir(data_dir, name), seed=config.seed)


def graph_of(
    dataset: str | None = None, config: Config | None = None, data_dir: str | Path = "data"
) -> Graph:
    """The dataset's canonical graph, read."""
    name, _ = _setup(dataset, config)
    return read_graph(paths.graph_dir(data_dir, name))


def encode(
    dataset: str | None = None,
    config: Config | None = None,
    data_dir: str | Path = "data",
    *,
    shard: tuple[int, int] = (0, 1),
    force: bool = False,
    progress: bool = True,
    log: Log = _stderr,
) -> list[ModalityResult]:
    """Encode the graph with the ``encode:`` section's encoder into its feature store (resumes
    complete shards); one ``ModalityResult`` per store modality."""
    from vlkge.encoding import run_encode

    name, config = _setup(dataset, config)
    return run_encode(data_dir, name, config.encode, shard=shard, force=force, progress=progress, log=log)


# ----------------------------------------------------------------------------- runs


@dataclass
class Trained:
    """What :func:`train` leaves: the run directory, its graph, the last epoch's model and the
    training state (best valid MRR and epoch, history)."""

    run_dir: Path
    graph: Graph
    model: KGEModel
    state: TrainState
    is_main: bool = True


def train(
    dataset: str | None = None,
    config: Config | None = None,
    data_dir: str | Path = "data",
    *,
    out: str | None = None,
    resume: bool | None = False,
    show: bool = True,
    log: Log | None = _stderr,
) -> Trained:
    """Train a model as ``config`` says into the run ``out`` (default: the backbone's name);
    checkpoints every epoch, early-stops on valid MRR. ``resume``: continue from the run's last
    checkpoint (None: quietly, when there is one). Under ``torchrun`` the processes train one model with
    DistributedDataParallel (:mod:`vlkge.distributed`)."""
    from vlkge.distributed import make_trainer, shutdown

    name, config = _setup(dataset, config)
    graph = graph_of(name, config, data_dir)
    run_dir = run_path(out or config.model.backbone, data_dir, name)
    trainer = make_trainer(graph, config, run_dir)
    has_checkpoint = (run_dir / CHECKPOINT).exists()
    if resume or (resume is None and has_checkpoint):
        trainer.resume()
        if resume and log is not None:
            log(f"resuming {run_dir} after epoch {trainer.state.epoch}")
    elif has_checkpoint:
        raise InputError(
            "this run already has a checkpoint",
            path=run_dir,
            hint="pass --resume to continue it, or --out NAME for a new run",
        )
    state = trainer.fit(show=show, log=log)
    shutdown()
    return Trained(run_dir, graph, trainer.model, state, trainer.is_main)


def train_seeds(
    dataset: str | None = None,
    config: Config | None = None,
    data_dir: str | Path = "data",
    *,
    out: str | None = None,
    **options: Any,
) -> list[Trained]:
    """:func:`train` once per seed of ``train.seeds`` (``seed``, ``seed + 1``, …) into the group
    ``<out>/seed-<s>/`` (the runs :func:`evaluate` and :func:`report` read as one, mean ± sd).
    ``options``: :func:`train`'s ``resume``, ``show`` and ``log``, for every run (``resume=None``:
    continue the runs that have a checkpoint, start the others)."""
    log = options.get("log", _stderr)
    name, config = _setup(dataset, config)
    group = run_path(out or config.model.backbone, data_dir, name)
    if (group / CHECKPOINT).exists() or (group / "config.json").exists():
        raise InputError(
            "this is a single run, not a group of seeds", path=group, hint="pass --out NAME for a new group"
        )
    done = []
    for seed in range(config.seed, config.seed + config.train.seeds):
        if log is not None:
            log(f"seed {seed} ({seed - config.seed + 1} of {config.train.seeds})")
        run = str(seed_dir(group, seed))
        done.append(train(name, config.updated({"seed": seed}), data_dir, out=run, **options))
    return done


@dataclass
class Evaluation:
    """The metrics of a run (the evaluation's JSON) and the run they are of; for a group of seeds,
    the metrics are their mean with the standard deviations beside (``sd``, ``seeds``), ``run`` is
    the first seed's and ``group`` the group's directory."""

    run: Run
    metrics: dict[str, Any]
    group: Path | None = None

    @property
    def path(self) -> Path:
        """Where the evaluation belongs: the group's directory, else the run's."""
        return self.group or self.run.path


def evaluate(
    run: str | Path,
    config: Config | None = None,
    data_dir: str | Path = "data",
    *,
    dataset: str | None = None,
) -> Evaluation:
    """Filtered link-prediction metrics of a trained run (or of every run of a group of seeds,
    aggregated) on ``evaluate.split`` under ``evaluate.protocol`` (directions and pools: the
    graph's, unless ``evaluate`` overrides them), on the run's own device."""
    from vlkge.metric_tables import aggregate_seeds

    config = config or load_config()
    path = _run_dir(run, dataset, config, data_dir)
    members = seed_runs(path)
    if not members:
        opened = load_run(path)
        return Evaluation(opened, _evaluate_run(opened, config))
    results, first, baseline = [], None, None
    for member in members:
        opened = load_run(member)
        first = first or opened
        results.append(_evaluate_run(opened, config, baseline))
        baseline = results[-1].get("neighbours", {}).get("results")  # the same queries every seed
    return Evaluation(first, aggregate_seeds(results), group=path)


def _evaluate_run(opened: Run, config: Config, baseline: dict[str, Any] | None = None) -> dict[str, Any]:
    """One run's metrics; a VL run's carry the nearest-neighbour block (``baseline``: its results
    from another seed of the group, on the same queries)."""
    from vlkge.evaluation import evaluate as run_evaluation

    spec = config.evaluate
    options = {
        "protocol": spec.protocol,
        "directions": spec.directions,
        "candidate_pools_mode": spec.candidate_pools,
        "missing": spec.missing,
    }
    metrics = run_evaluation(opened.model, opened.graph, spec.split, batch_size=spec.batch_size, **options)
    if opened.config.model.multimodal:  # features: the baseline they give untrained, same queries
        metrics["neighbours"] = _neighbours_beside(opened, metrics, spec.batch_size, options, baseline)
    metrics["seed"] = opened.config.seed
    return metrics


def _neighbours_beside(
    opened: Run, metrics: dict[str, Any], batch_size: int, options: dict, baseline: dict | None = None
) -> dict:
    """The nearest-neighbour baseline over the run's own store, on the run's queries
    (:func:`vlkge.neighbours.beside_model`)."""
    from vlkge.features.inputs import store_dir_for
    from vlkge.neighbours import baseline_sets, beside_model

    graph, model = opened.graph, opened.model
    store = next((Path(r["store"]).name for r in opened.features.values() if r.get("store")), None)
    mentions = model.prior is not None and model.prior.mentions is not None
    return beside_model(
        metrics,
        graph,
        store_dir_for(graph, opened.config) if store is None else graph.root.parent / "features" / store,
        baseline_sets(opened.config.model.modalities, mentions),
        present=model.entity.present,
        device=next(model.parameters()).device,
        batch_size=batch_size,
        results=baseline,
        **options,
    )


def predict(
    run: str | Path,
    relation: str,
    *,
    image: str | Path | None = None,
    text: str | None = None,
    name: str | None = None,
    k: int = 5,
    head: bool = False,
    search: str = "auto",
    config: Config | None = None,
    data_dir: str | Path = "data",
    dataset: str | None = None,
) -> Prediction:
    """Top-``k`` answers of ``(new, relation, ?)`` (``head``: ``(?, relation, new)``) and the
    nearest entities for an entity not in the graph, given by an image and/or a text, encoded with
    the encoder that made the run's features; its ``name`` (optional) lets a model with text
    mentions find the graph's texts that name it."""
    from vlkge.predict import encode_query
    from vlkge.predict import predict as run_predict

    if image is None and text is None:
        raise InputError("nothing to predict from", hint="give --image FILE and/or --text '...'")
    opened = load_run(_run_dir(run, dataset, config or load_config(), data_dir), device="cpu")
    require_features(opened)
    opened.graph.relation_id(relation)  # unknown relation: a clear error before loading the encoder
    encoder = run_encoder(opened)
    query = encode_query(encoder, image, text, opened.features)
    return run_predict(
        opened.model, opened.graph, query, relation, k=k, head=head, search=search, text=text, name=name
    )


def zeroshot(
    dataset: str | None = None,
    config: Config | None = None,
    data_dir: str | Path = "data",
    *,
    query: str = "auto",
    prompts: dict[str, str] | None = None,
    batch_size: int = 256,
    top_k: int = 5,
    limit: int | None = None,
    log: Log | None = _stderr,
) -> tuple[Graph, ZeroShotResult]:
    """The zero-shot baseline on ``evaluate.split`` with the ``encode:`` section's encoder
    (image–text similarity in a shared space, or ``query="text"``: text–text)."""
    from vlkge.encoders import build_encoder
    from vlkge.zeroshot import zero_shot

    name, config = _setup(dataset, config)
    graph = graph_of(name, config, data_dir)
    encoder = build_encoder(config.encode.model, **config.encode.encoder_options())
    if not encoder.info.shared_space and query != "text":  # text–text needs only one text space
        raise ConfigError(
            f"encoder {config.encode.model!r} has no shared image–text space",
            key="encode.model",
            hint="use clip, blip or tiny-clip, or --query text (text–text similarity in its text space)",
        )
    result = zero_shot(
        graph,
        encoder,
        config.evaluate.split,
        prompts=prompts,
        query=query,
        batch_size=batch_size,
        top_k=top_k,
        limit=limit,
        log=log,
    )
    return graph, result


def neighbours(
    dataset: str | None = None,
    config: Config | None = None,
    data_dir: str | Path = "data",
    *,
    features: str | Path | None = None,
    modalities: str | None = None,
    device: str | None = None,
    mentions: bool = False,
) -> dict[str, Any]:
    """The features-only nearest-neighbour baseline (:mod:`vlkge.neighbours`; ``mentions``: plus
    the untrained text-mention term) on
    ``evaluate.split`` under the ``evaluate:`` protocol, over the store ``features`` (a name under
    the dataset's ``features/`` or a path; None: the store a run would read) and ``modalities``
    (text | image | both; None: all the store has), on ``device`` (None: ``train.device``).
    Returns the evaluation's metrics JSON."""
    from vlkge.devices import resolve_device
    from vlkge.features.inputs import store_dir_for
    from vlkge.neighbours import neighbour_evaluation

    name, config = _setup(dataset, config)
    graph = graph_of(name, config, data_dir)
    store = store_dir_for(graph, config)
    if features is not None:  # a store name under the dataset's features/, else a path
        named = graph.root.parent / "features" / str(features)
        store = named if named.is_dir() else Path(features)
    spec = config.evaluate
    return neighbour_evaluation(
        graph,
        store,
        modalities,
        spec.split,
        device=resolve_device(device or config.train.device),
        protocol=spec.protocol,
        directions=spec.directions,
        candidate_pools_mode=spec.candidate_pools,
        batch_size=spec.batch_size,
        mentions=mentions,
    )


def report(
    source: str | Path,
    config: Config | None = None,
    data_dir: str | Path = "data",
    *,
    out: str | Path = "reports",
    dataset: str | None = None,
    evaluation: dict[str, Any] | None = None,
    per_relation: int = 2,
    top_k: int = 5,
    title: str | None = None,
) -> dict[str, Path]:
    """The per-relation MRR chart (PNG + DVC plots CSV) and the top-k HTML page of a run (its
    ``evaluation`` given, or evaluated now on ``evaluate.split``), or of a ``vlkge zeroshot``
    JSON; returns the files written."""
    import json

    from vlkge.reports import queries_from_predictions, sample_queries, top_predictions, write_report

    name, config = _setup(dataset, config)
    spec = config.evaluate
    path = Path(source)
    if path.is_file() and path.suffix == ".json":
        result = json.loads(path.read_text(encoding="utf-8"))
        graph = graph_of(name, config, data_dir)
        queries = queries_from_predictions(graph, result.get("predictions", []))
        label = title or f"{name} · zero-shot"
    else:
        # a group of seeds: its aggregated evaluation, the first seed's model for the top-k page
        run_dir = _run_dir(source, dataset, config, data_dir)
        members = seed_runs(run_dir)
        opened = load_run(members[0] if members else run_dir, device="cpu")
        graph = opened.graph
        if evaluation is None:
            evaluation = (
                evaluate(run_dir, config, data_dir).metrics if members else _evaluate_run(opened, config)
            )
        result = evaluation
        split = result.get("setup", {}).get("split", spec.split)
        queries = top_predictions(
            opened.model, graph, sample_queries(graph, split, per_relation, config.seed), top_k
        )
        dataset_name = opened.record.get("dataset") or graph.meta.get("dataset")
        label = title or f"{dataset_name} · {opened.config.model.backbone} · {run_dir.name}"
    return write_report(out, graph, result, queries, title=label)
