"""What a multimodal model reads from a feature store: per feature modality a dense matrix [N, d_m]
and a presence mask, checked against the graph; and which store that is.

A run reads the store named by ``model.features``, else ``encode.store``, else the store of
``encode.model``; when that one does not exist and exactly one other store does, that one (said
in the log); with several, the error lists them and names ``--features``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import torch
from torch import Tensor

from vlkge.config import Config
from vlkge.errors import InputError
from vlkge.features.mentions import Mentions
from vlkge.features.plan import plan_modality
from vlkge.features.store import MANIFEST, FeatureTable, load_features, read_sidecar
from vlkge.graph import Graph
from vlkge.modalities import FEATURE_MODALITIES, IMAGE, STORE_MODALITIES, STRUCTURAL, TEXT

log = logging.getLogger(__name__)


@dataclass
class EntityInputs:
    """What multimodal representations are built from, for one graph.

    ``features[m]``: dense frozen features [N, d_m] (zero rows where absent) and ``present[m]``
    [N] bool, for each feature modality used; ``has_structure`` [N] bool; ``record``: per model
    modality the manifest facts a run keeps (store, fingerprint, dim, encoder) to refuse another
    store later.
    """

    num_entities: int
    features: dict[str, Tensor] = field(default_factory=dict)
    present: dict[str, Tensor] = field(default_factory=dict)
    has_structure: Tensor | None = None
    record: dict[str, Any] = field(default_factory=dict)
    #: which entities' texts name which (textual modality with ``model.mentions``), else None
    mentions: Mentions | None = None
    #: the train split's triples [T, 3] the prior's neighbour votes read (``model.votes``), else None
    train: Tensor | None = None


# ----------------------------------------------------------------------------- which store


def is_store(path: Path) -> bool:
    """A directory holding at least one merged modality (``<modality>/manifest.json``)."""
    return any((path / m / MANIFEST).is_file() for m in STORE_MODALITIES)


def available_stores(features_dir: Path) -> list[str]:
    """Names of the stores under a dataset's ``features/`` directory."""
    if not features_dir.is_dir():
        return []
    return sorted(p.name for p in features_dir.iterdir() if p.is_dir() and is_store(p))


def store_dir_for(graph: Graph, config: Config) -> Path:
    """The feature store a run of ``config`` reads (see the module docstring)."""
    root = graph.root.parent / "features"
    named = config.model.features or config.encode.store
    if named:
        return root / named
    default = root / config.encode.model
    if is_store(default):
        return default
    stores = available_stores(root)
    if len(stores) == 1:
        log.warning(
            "no feature store for encode.model %r; using the only store there is, %r",
            config.encode.model,
            stores[0],
        )
        return root / stores[0]
    if stores:
        raise InputError(
            f"no feature store for encode.model {config.encode.model!r}, and {len(stores)} others: "
            f"{', '.join(stores)}",
            path=root,
            hint="choose one with --features NAME (model.features)",
        )
    return default  # none at all: the modality's own error says to encode


# ----------------------------------------------------------------------------- checks


def check_feature_table(table: FeatureTable, graph: Graph, mod_dir: Path) -> None:
    """Refuse features that do not fit ``graph``: dim differing from the manifest, ids beyond
    the entity count or repeated, NaN/inf rows, or a text store made from another graph's texts."""
    manifest = table.manifest
    if table.values.ndim != 2 or table.dim != int(manifest["dim"]):
        raise InputError(
            f"features have dim {tuple(table.values.shape)[1:]} but the manifest says {manifest['dim']}",
            path=mod_dir,
            hint="re-encode the store (`vlkge encode --force`)",
        )
    n = graph.num_entities
    ids = table.ids
    if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= n):
        raise InputError(
            f"feature ids reach {int(ids.max())} but the graph has {n} entities: "
            "this store was made for another graph",
            path=mod_dir,
            hint="encode this graph (`vlkge encode`) or point model.features at its store",
        )
    if torch.unique(ids).numel() != ids.numel():
        raise InputError("an entity has more than one feature row", path=mod_dir)
    bad = ~torch.isfinite(table.values).all(dim=1)
    if bad.any():
        shown = ", ".join(graph.entity_keys[i] for i in ids[bad][:5].tolist())
        raise InputError(
            f"{int(bad.sum())} feature row(s) hold NaN or inf (entities {shown})",
            path=mod_dir,
            hint="re-encode the store; the encoder produced non-finite vectors",
        )
    if manifest.get("modality") == IMAGE:
        _check_image_rows(graph, mod_dir, manifest)
    elif manifest.get("modality") == TEXT:
        _check_text_inputs(graph, mod_dir, manifest)


def _check_image_rows(graph: Graph, mod_dir: Path, manifest: dict[str, Any]) -> None:
    """Image rows must belong to entities that have images in this graph."""
    has_image = torch.from_numpy((graph.entities["images"].list.len().fill_null(0) > 0).to_numpy())
    ids = load_ids(mod_dir, manifest)
    if ids.numel() and not bool(has_image[ids].all()):
        raise InputError(
            "the image store holds entities that have no image in this graph: it was made for another graph",
            path=mod_dir,
            hint="encode this graph (`vlkge encode`)",
        )


def _check_text_inputs(graph: Graph, mod_dir: Path, manifest: dict[str, Any]) -> None:
    """The text store's per-shard input hashes (ids and texts) must match this graph's texts, as
    the store's own plan would list them."""
    sidecars = [read_sidecar(mod_dir, i) for i in range(int(manifest["num_shards"]))]
    if any(s is None for s in sidecars):
        return  # check_store reports a damaged store; nothing to compare here
    shard_rows = int(sidecars[0]["planned"]) if len(sidecars) > 1 else max(1, graph.num_entities)
    template = manifest.get("settings", {}).get("text_template", "{text}")
    plan = plan_modality(graph, TEXT, text_template=template, shard_rows=shard_rows)
    same = plan.num_shards == len(sidecars) and all(
        s.get("inputs_sha256") == plan.inputs_sha256(i) for i, s in enumerate(sidecars)
    )
    if not same:
        raise InputError(
            "the text features were made from other entities or texts than this graph's "
            f"({graph.num_entities} entities): a store for another graph",
            path=mod_dir,
            hint="re-run `vlkge encode` on this graph",
        )


def load_ids(mod_dir: Path, manifest: dict[str, Any]) -> Tensor:
    """The ids of a merged store modality, in row order: LongTensor [rows]."""
    column = manifest["id_column"]
    parts = [
        pq.read_table(mod_dir / s["name"], columns=[column]).column(column).to_numpy()
        for s in manifest["shards"]
    ]
    if not parts:
        return torch.zeros(0, dtype=torch.long)
    return torch.from_numpy(np.concatenate(parts).astype(np.int64))


def check_record(inputs: EntityInputs, recorded: dict[str, Any], path: Path) -> None:
    """Refuse a store whose features differ from those a run was trained on."""
    for modality, rec in recorded.items():
        now = inputs.record.get(modality)
        if now is None or now["fingerprint"] != rec["fingerprint"] or now["rows"] != rec["rows"]:
            raise InputError(
                f"the {modality} features in the store differ from those the run was trained on",
                path=path,
                hint=f"re-encode with the run's encoder settings ({rec.get('encoder', {}).get('id')})",
            )


# ----------------------------------------------------------------------------- loading


def load_entity_inputs(graph: Graph, config: Config, store_dir: Path | None = None) -> EntityInputs:
    """Read the features ``model.modalities`` needs from the store (``store_dir``, default
    :func:`store_dir_for`), checked against ``graph``; mark which entities have structure (those
    in the train split)."""
    modalities = config.model.modalities
    n = graph.num_entities
    inputs = EntityInputs(num_entities=n)
    inputs.has_structure = graph.in_train() if STRUCTURAL in modalities else torch.zeros(n, dtype=torch.bool)
    wanted = [m for m in modalities if m in FEATURE_MODALITIES]
    if not wanted:
        return inputs
    store = Path(store_dir) if store_dir is not None else store_dir_for(graph, config)
    for modality in wanted:
        mod_dir = store / FEATURE_MODALITIES[modality]
        if not (mod_dir / MANIFEST).is_file():
            raise InputError(
                f"the {modality} modality needs {FEATURE_MODALITIES[modality]} features, "
                "and the store has none",
                path=mod_dir,
                hint="run `vlkge encode` first, or drop the modality from model.modalities",
            )
        table = load_features(mod_dir, graph=graph)  # refuses a store of another graph version
        check_feature_table(table, graph, mod_dir)
        inputs.features[modality], inputs.present[modality] = table.dense(n)
        inputs.record[modality] = {
            "store": str(store),
            "dir": str(mod_dir),
            "fingerprint": table.manifest["fingerprint"],
            "dim": table.dim,
            "rows": int(table.ids.numel()),
            "encoder": table.manifest.get("encoder", {}),
            "normalisation": table.manifest.get("normalisation"),
            "text_template": table.manifest.get("settings", {}).get("text_template"),
        }
    reads_text = any(FEATURE_MODALITIES[m] == TEXT for m in wanted)
    if reads_text and config.model.mentions > 0 and config.model.similarity > 0:
        mentions = graph_mentions(graph)
        inputs.mentions = mentions if len(mentions) else None  # no text names another entity
    if config.model.votes > 0 and config.model.similarity > 0:
        inputs.train = graph.split("train")
    return inputs


def graph_mentions(graph: Graph) -> Mentions:
    """The text mentions among ``graph``'s entities (:mod:`vlkge.features.mentions`), found once
    per in-memory graph (a model and its baselines read the same; ~30 s for 180,000 entities)."""
    found = _MENTIONS.get(id(graph))
    if found is not None and found[0] is graph:
        return found[1]
    entities = graph.entities
    mentions = Mentions.from_texts(entities["name"].to_list(), entities["text"].to_list())
    log.info("text mentions: %d (entity text naming another entity)", len(mentions))
    _MENTIONS.clear()  # one graph at a time: the cache must not hold every graph a process read
    _MENTIONS[id(graph)] = (graph, mentions)
    return mentions


_MENTIONS: dict[int, tuple[Graph, Mentions]] = {}
