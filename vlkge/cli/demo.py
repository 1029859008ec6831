"""``vlkge demo``: VL-KGE on real data, end to end and offline.

WN9-IMG's triples and WordNet text as shipped inside the package (``crawl --source packaged``;
photos only where ``$VLKGE_DATA_MIRROR`` or the download cache holds them) → the paper's split,
then an inductive one with entities held out of training (:func:`vlkge.api.hold_out`) → ``lite``
features → a structure-only model and a VL model (``vlkge/defaults.yaml``'s settings, on a
smaller budget) → test metrics of both beside the features' nearest-neighbour baseline, overall and
for seen / unseen entities → a prediction for a held-out entity from its text alone.

Everything goes under ``<data-dir>/wn9-img-demo/`` (the dataset ``wn9-img:demo``), never into a
user's ``wn9-img``. A rerun reuses the crawl, the feature store's complete shards and the trained
runs whose settings and graph are unchanged (a run whose settings or graph changed is trained again
from scratch); the same seed gives the same numbers.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import typer

from vlkge.cli.common import echo, state
from vlkge.errors import InputError

#: the demo's dataset: WN9-IMG under its own name (data/wn9-img-demo/)
DATASET = "wn9-img:demo"
#: the structure-only run and the VL run, under data/wn9-img-demo/models/
RUNS = ("structure", "vl")
#: the budget: everything else is vlkge/defaults.yaml's (or --params FILE's)
BUDGET = {"dim": 256, "epochs": 30}
STEPS = 7
BACKBONE_NAMES = {"transe": "TransE", "distmult": "DistMult", "complex": "ComplEx", "rotate": "RotatE"}


def command(
    dim: int = typer.Option(BUDGET["dim"], "--dim", min=1, help="Embedding size of both models."),
    epochs: int = typer.Option(BUDGET["epochs"], "--epochs", min=1, help="Most epochs of each model."),
    entities: int | None = typer.Option(
        None,
        "--entities",
        min=4,
        help="Only a connected part of WN9-IMG of this many entities (quick runs, tests); default all 6,555.",
    ),
    held_out: float = typer.Option(
        0.1,
        "--held-out",
        min=0.01,
        max=0.9,
        help="Fraction of the entities held out of training, half for valid, half for test.",
    ),
    seed: int | None = typer.Option(None, "--seed", help="Seed of the split and the models (default: 42)."),
) -> None:
    """VL-KGE on real data, offline: WN9-IMG's triples and WordNet text shipped in the package,
    an inductive split (10% of the entities held out of training), the `lite` encoder (MiniLM text;
    EfficientNet-Lite photos only where $VLKGE_DATA_MIRROR or the download cache has them), a
    structure-only and a VL DistMult model, one table of test MRR / Hits@10 (overall, seen and unseen
    entities) beside the features' nearest-neighbour baseline, and a prediction for a held-out
    entity from its text alone.

    Settings: vlkge/defaults.yaml's (./params.yaml is not read; --params FILE is).
    Budget: dim 256, at most 30 epochs per model (early stopping on valid MRR as in the defaults).
    Time: about 2 minutes on 2 CPU cores, half of it encoding the 6,555 texts;
    a rerun reuses the features and the finished runs (about 10 s).
    Outputs: <data-dir>/wn9-img-demo/ (the dataset wn9-img:demo)."""
    from vlkge import api
    from vlkge.config import load_config
    from vlkge.graph import format_summary

    overrides = {
        "dataset": DATASET,
        "seed": seed,
        "crawl": {"source": "packaged", "images": None},
        "encode": {"model": "lite", "store": None},
        "model": {"dim": dim, "features": None},
        "train": {"epochs": epochs, "seeds": 1},
    }
    config = load_config(state.params_path, overrides, project=False)
    data_dir = state.data_dir
    _step(1, f"crawl: WN9-IMG's triples and WordNet text shipped in the package → {data_dir}")
    api.crawl(DATASET, config, data_dir)
    _step(2, "clean: the paper's split, then entities held out of training (inductive)")
    full = api.clean(DATASET, config, data_dir, out=_dataset_dir(data_dir) / "transductive")
    graph = api.hold_out(full, DATASET, config, data_dir, fraction=held_out, entities=entities)
    echo(format_summary(graph.summary()))
    photos = graph.modality_counts()["image"]
    echo(_split_line(graph) + "\n" + _photos_line(photos))
    images = ", EfficientNet-Lite photos" if photos else ""
    _step(3, f"encode: lite features (all-MiniLM-L6-v2 texts{images})")
    for result in api.encode(DATASET, config, data_dir, progress=True, log=echo):
        echo("  " + result.line())
    modalities = ["structural", "textual", *(["visual"] if photos else [])]
    runs = {
        "structure": config.updated({"model": {"modalities": ["structural"]}}),
        "vl": config.updated({"model": {"modalities": modalities}}),
    }
    run_dirs = {}
    for number, (run, run_config) in enumerate(runs.items(), start=4):
        what = "structure only" if run == "structure" else f"VL ({', '.join(modalities)})"
        backbone = BACKBONE_NAMES.get(config.model.backbone, config.model.backbone)
        _step(number, f"train {what}: {backbone}, dim {dim}, at most {epochs} epochs")
        run_dirs[run] = _train(run, run_config, data_dir).run_dir
    _step(6, f"evaluate on test: {config.evaluate.protocol} filtered ranking, both directions")
    metrics = {run: _evaluate(run_dirs[run], runs[run], data_dir) for run in runs}
    typer.echo(format_table(metrics, config.model.backbone, modalities))
    _step(7, "predict for an entity held out of training, from its text alone")
    typer.echo(_prediction(graph, runs["vl"], data_dir))


def _dataset_dir(data_dir: Path) -> Path:
    from vlkge.paths import dataset_dir

    return dataset_dir(data_dir, DATASET)


def _step(number: int, what: str) -> None:
    echo(f"[{number}/{STEPS}] {what}")


def _split_line(graph: Any) -> str:
    info = graph.meta["holdout"]
    absent = info["absent_from_train"]
    part = graph.meta.get("connected_part")
    cut = f"a connected part of {part['entities']:,} of its {part['of']:,} entities; " if part else ""
    return (
        f"inductive split (seed {info['seed']}): {cut}{info['held_out']['valid']:,} entities held out "
        f"for valid, {info['held_out']['test']:,} for test; {absent['count']:,} absent from train in all"
    )


def _photos_line(photos: int) -> str:
    if photos:
        return f"photos: {photos:,} entities have one (from the data mirror or the download cache)"
    return (
        "photos: none here ($VLKGE_DATA_MIRROR and the download cache hold no WN9-IMG photos), so "
        "the VL model reads text only; set VLKGE_DATA_MIRROR to a directory holding "
        "wn9_img/images_imagenet1k_sample/ to add them"
    )


def _train(run: str, config: Any, data_dir: Path) -> Any:
    """``api.train`` of ``run``: continued (a no-op when finished) when its recorded settings and
    graph are the current ones, else trained from scratch."""
    from vlkge import api
    from vlkge.graph import graph_file_hashes
    from vlkge.paths import models_dir

    run_dir = models_dir(data_dir, DATASET) / run
    record = run_dir / "config.json"
    if record.is_file():
        old = json.loads(record.read_text(encoding="utf-8"))
        params = json.loads(json.dumps(config.to_params()))
        graph = api.graph_of(DATASET, config, data_dir)
        if old.get("params") == params and old.get("graph_sha256") == graph_file_hashes(graph):
            echo(f"same settings and graph as {run_dir}: reusing it (continued if unfinished)")
        else:
            echo(f"{run_dir} was trained with other settings or another graph: training it again")
            shutil.rmtree(run_dir)
    return api.train(DATASET, config, data_dir, out=run, resume=None, show=True, log=echo)


def _evaluate(run_dir: Path, config: Any, data_dir: Path) -> dict[str, Any]:
    from vlkge import api
    from vlkge.fileio import write_json_atomic

    result = api.evaluate(run_dir, config, data_dir).metrics
    spec = config.evaluate
    write_json_atomic(run_dir / f"eval_{spec.split}_{spec.protocol}.json", result)
    return result


def _groups(result: dict[str, Any]) -> list[dict[str, Any] | None]:
    entities = result.get("entities", {})
    return [result["overall"], entities.get("seen"), entities.get("unseen")]


def format_table(metrics: dict[str, dict[str, Any]], backbone: str, modalities: list[str]) -> str:
    """One table: the structure-only model, the VL model and the nearest-neighbour baseline over
    the VL model's features (same queries), test MRR and Hits@10 overall and for queries between
    seen entities / touching an entity unseen in training."""
    from vlkge.neighbours import WITH_MENTIONS

    vl = metrics["vl"]
    block = vl["neighbours"]
    sets = list(block["results"])
    baseline = "both" if "both" in sets else sets[0]
    mentioned = baseline + WITH_MENTIONS
    backbone = BACKBONE_NAMES.get(backbone, backbone)
    reads = " + ".join({"textual": "text", "visual": "photos"}[m] for m in modalities if m != "structural")
    rows = [
        (f"structure only ({backbone})", metrics["structure"]),
        (f"VL-{backbone} (structure + {reads})", vl),
        (f"nearest neighbours ({baseline}, no training)", block["results"][baseline]),
    ]
    if mentioned in block["results"]:
        rows.append((f"  + text mentions ({mentioned}, no training)", block["results"][mentioned]))
    width = max(len(label) for label, _ in rows)
    top = f"{'':{width}s}  {'overall':^15s}  {'seen entities':^15s}  {'unseen entities':^15s}"
    head = f"{'':{width}s}" + "  {:>7s} {:>7s}".format("MRR", "H@10") * 3
    lines = [top, head]
    for label, result in rows:
        cells = "".join(
            "  {:>7s} {:>7s}".format("–", "–") if m is None else f"  {m['mrr']:7.3f} {m['hits@10']:7.3f}"
            for m in _groups(result)
        )
        lines.append(f"{label:{width}s}{cells}")
    counts = [m["count"] if m else 0 for m in _groups(vl)]
    lines.append(
        f"test queries (both directions): {counts[0]:,}, of which {counts[1]:,} between seen entities and "
        f"{counts[2]:,} touching an entity unseen in training (the structure-only model has but an "
        "untrained row for it)"
    )
    return "\n".join(lines)


def _held_out_query(graph: Any) -> tuple[int, int, list[int]]:
    """An entity held out for test, a relation and its known tails: the first test-held entity
    (in id order) that heads a test triple whose tail occurs in train, ``_hypernym`` first."""
    keys = graph.entity_keys
    index = {k: i for i, k in enumerate(keys)}
    held = sorted(index[k] for k in graph.meta["holdout"]["held_out_keys"]["test"])
    seen = graph.in_train().numpy()
    test, every = graph.triples["test"], graph.all_triples()
    relations = sorted(range(graph.num_relations), key=lambda r: graph.relation_keys[r] != "_hypernym")
    for relation in relations:
        for entity in held:
            rows = test[(test[:, 0] == entity) & (test[:, 1] == relation)]
            if len(rows) and seen[rows[:, 2]].any():
                known = every[(every[:, 0] == entity) & (every[:, 1] == relation)][:, 2]
                return entity, relation, sorted(set(known.tolist()))
    raise InputError(
        "no test triple is headed by an entity held out of training", hint="give --entities a larger N"
    )


def _prediction(graph: Any, config: Any, data_dir: Path) -> str:
    """``api.predict`` of the VL run for a held-out entity, from its text alone: its top-5 tails
    (known answers ticked) and its nearest entities."""
    from vlkge import api

    entity, relation, known = _held_out_query(graph)
    names, keys = graph.entities["name"].to_list(), graph.entity_keys
    text = graph.entities["text"][entity]
    rel = graph.relation_keys[relation]
    found = api.predict("vl", rel, text=text, k=6, config=config, data_dir=data_dir, dataset=DATASET)
    # the graph holds the entity itself (absent from train, same text): not its own answer
    tails = [row for row in found.answers if row["entity_id"] != entity][:5]
    tails = [{**row, "rank": rank} for rank, row in enumerate(tails, start=1)]

    def line(row: dict[str, Any]) -> str:
        mark = "✓" if row["entity_id"] in known else ("(itself)" if row["entity_id"] == entity else "")
        return f"  {row['rank']}. {row['name']} ({row['key']})  {row['score']:.3f}  {mark}".rstrip()

    answers = ", ".join(f"{names[t]} ({keys[t]})" for t in known)
    out = [
        f"held-out entity {keys[entity]}, never seen in training; the model is given only its text:",
        f'  "{text}"',
        f"top 5 tails of ({names[entity]}, {rel}, ?) — known answers ✓: {answers}",
        *(line(row) for row in tails),
        f"nearest entities ({found.nearest_by}):",
        *(line(row) for row in found.nearest[:5]),
    ]
    return "\n".join(out)
