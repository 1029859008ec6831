"""A run directory, ``data/<ds>/models/<run>/``: what training writes and everything after reads.

- ``config.json``: the full params, dataset, graph path and file hashes, the feature record (per
  modality: store, fingerprint, dim, encoder), seed, library versions, device;
- ``checkpoint.pt``: written atomically after every epoch (model, optimiser, sampler and global
  RNG state, training state, params, and a fine-tuned run's encoder weights and features);
- ``model.pt``: the weights with the best valid MRR (params, feature record, tuned weights);
- ``history.json``: one record per epoch.

:func:`load_run` is the one way to open a run: its config, then its graph, then its model. The
encoder that made a run's features is rebuilt from the store's record (:func:`run_encoder`) and
checked by weights hash (:func:`check_encoder`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from vlkge import paths
from vlkge.config import Config, config_from_record
from vlkge.devices import resolve_device
from vlkge.encoders import Encoder, build_encoder, encoder_options_from_record
from vlkge.errors import ConfigError, InputError
from vlkge.features.inputs import check_record, load_entity_inputs
from vlkge.fileio import atomic_path, read_json_object
from vlkge.graph import Graph, graph_file_hashes, read_graph
from vlkge.modalities import FEATURE_MODALITIES
from vlkge.model import KGEModel, build_model
from vlkge.provenance import library_versions

CONFIG = "config.json"
CHECKPOINT = "checkpoint.pt"
WEIGHTS = "model.pt"
HISTORY = "history.json"
RUN_FILES = (CONFIG, CHECKPOINT, WEIGHTS, HISTORY)
_GIVE_A_RUN = "give a run directory (data/<dataset>/models/<run>) or a run name with --dataset"


def run_path(run: str, data_dir: str | Path, dataset: str) -> Path:
    """A run given as a path (contains a separator or exists) or as a name under the dataset."""
    candidate = Path(run)
    if candidate.exists() or "/" in run or "\\" in run:
        return candidate
    return paths.models_dir(data_dir, dataset) / run


def seed_dir(group: str | Path, seed: int) -> Path:
    """The run of ``seed`` in a group of seeds (``train.seeds`` > 1): ``<group>/seed-<seed>``."""
    return Path(group) / f"seed-{seed}"


def seed_runs(path: str | Path) -> list[Path]:
    """The runs of a group of seeds (``<group>/seed-<s>/`` holding a ``config.json``), by seed;
    [] when ``path`` is a run itself or holds none."""
    path = Path(path)
    if (path / CONFIG).is_file() or not path.is_dir():
        return []
    found = [p for p in path.glob("seed-*") if (p / CONFIG).is_file() and p.name[5:].lstrip("-").isdigit()]
    return sorted(found, key=lambda p: int(p.name[5:]))


# ----------------------------------------------------------------------------- files


def run_record(config: Config, graph: Graph, device: torch.device, features: dict[str, Any] | None) -> dict:
    """What ``config.json`` holds (see the module docstring)."""
    record = {
        "params": config.to_params(),
        "dataset": graph.meta.get("dataset"),
        "graph": str(graph.root),
        "graph_inputs": graph.meta.get("inputs", {}),
        "graph_sha256": graph_file_hashes(graph),
        "graph_counts": graph.meta.get("counts", {}),
        "seed": config.seed,
        "versions": library_versions(),
        "device": str(device),
    }
    if features is not None:
        record["features"] = features
    return record


def read_record(run_dir: str | Path) -> dict[str, Any]:
    """``config.json`` of a run; InputError for a directory that holds no run."""
    path = Path(run_dir) / CONFIG
    if not path.is_file():
        raise InputError("not a run directory (config.json missing)", path=run_dir, hint=_GIVE_A_RUN)
    record = read_json_object(path, hint="train the run again")
    if not isinstance(record.get("params"), dict):
        raise InputError("config.json holds no params", path=path, hint="train the run again")
    return record


def save_payload(path: Path, payload: dict[str, Any]) -> None:
    """``torch.save`` through a temporary file and a rename."""
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_payload(path: Path, device: Any) -> dict[str, Any]:
    """``torch.load`` of a checkpoint or model file; InputError for a damaged one."""
    try:
        payload = torch.load(path, map_location=device, weights_only=False)
    except Exception as exc:  # a truncated or foreign file fails in many ways inside torch/pickle
        raise InputError(
            f"damaged or not a vlkge checkpoint ({type(exc).__name__}: {str(exc).splitlines()[0][:120]})",
            path=path,
            hint="delete it and train again (or resume from an intact copy)",
        ) from None
    if not isinstance(payload, dict) or "model" not in payload:
        raise InputError("not a vlkge checkpoint", path=path, hint="delete it and train again")
    return payload


# ----------------------------------------------------------------------------- models


def apply_tuned(model: KGEModel, tuned: dict[str, Any]) -> None:
    """Put a fine-tuned run's feature tables into its representations."""
    for modality, values in tuned["features"].items():
        model.entity.feature_table(modality).copy_(values)


def load_model(run_dir: str | Path, graph: Graph, device: str | torch.device = "cpu") -> KGEModel:
    """The best model of a finished (or interrupted) run, on ``graph``; its features are read
    from the store the run recorded and must be the ones it was trained on."""
    path = Path(run_dir) / WEIGHTS
    if not path.is_file():
        raise InputError("no trained model here", path=path, hint="run `vlkge train` first")
    payload = load_payload(path, device)
    config = config_from_record(payload["params"], source=str(path))
    recorded = payload.get("features", {})
    inputs = None
    if config.model.multimodal:
        store = next((Path(r["store"]).name for r in recorded.values() if r.get("store")), None)
        store_dir = None if store is None else graph.root.parent / "features" / store
        inputs = load_entity_inputs(graph, config, store_dir)
        check_record(inputs, recorded, path)
    model = build_model(config, graph.num_entities, graph.num_relations, inputs, payload["model"])
    if "tuned" in payload:
        apply_tuned(model, payload["tuned"])
    try:
        model.load_state_dict(payload["model"])
    except RuntimeError as exc:
        raise InputError(
            f"the model does not fit this graph ({str(exc).splitlines()[0]})",
            path=path,
            hint="evaluate on the graph the run was trained on",
        ) from None
    return model.to(device)


@dataclass
class Run:
    """An opened run: its directory, ``config.json`` (``record``), parsed params, graph, model."""

    path: Path
    record: dict[str, Any]
    config: Config
    graph: Graph
    model: KGEModel

    @property
    def features(self) -> dict[str, Any]:
        """Per model modality, the feature record (store, fingerprint, dim, encoder); {} for a
        structure-only run."""
        return self.record.get("features") or {}


def load_run(run_dir: str | Path, device: str | None = None) -> Run:
    """Read a run's config, then its graph, then its model (on ``device``; None: the device
    ``train.device`` of the run names, resolved here)."""
    run_dir = Path(run_dir)
    record = read_record(run_dir)
    config = config_from_record(record["params"], source=str(run_dir / CONFIG))
    graph = read_graph(record["graph"])
    where = device or resolve_device(config.train.device)
    return Run(run_dir, record, config, graph, load_model(run_dir, graph, device=where))


# ----------------------------------------------------------------------------- encoders


def check_encoder(encoder: Encoder, features: dict[str, Any]) -> None:
    """The encoder must be the one that made the run's features (same weights hash)."""
    have = encoder.info.weights_sha256
    for modality, rec in features.items():
        want = rec.get("encoder", {}).get("weights_sha256")
        if want and want != have:
            raise ConfigError(
                f"the encoder ({encoder.info.encoder_id}) is not the one that made the run's "
                f"{modality} features ({rec.get('encoder', {}).get('id')})",
                key="encode",
                hint="predict with the run's own encode settings (recorded in its config.json)",
            )


def store_encoder(config: Config, features: dict[str, Any], *, device: str, precision: str) -> Encoder:
    """The encoder that made the feature store a run reads, checked by weights hash: named by the
    store's record; built with the run's ``encode`` settings when they name that encoder, else
    with what the record says of it (a run trained with ``--features lite`` under
    ``encode.model: clip`` gets ``lite``)."""
    recorded = next(iter(features.values()), {}).get("encoder", {})
    name = recorded.get("name") or config.encode.model
    if name == config.encode.model:
        options = {
            k: v for k, v in config.encode.encoder_options().items() if k not in ("device", "precision")
        }
    else:
        options = encoder_options_from_record(name, recorded)
    encoder = build_encoder(name, **options, device=device, precision=precision)
    check_encoder(encoder, features)
    return encoder


def apply_tuned_encoder(encoder: Encoder, run_dir: str | Path) -> bool:
    """Load a fine-tuned run's encoder weights into ``encoder``; False for frozen runs."""
    payload = load_payload(Path(run_dir) / WEIGHTS, "cpu")
    tuned = payload.get("tuned")
    if not tuned:
        return False
    encoder.model.load_state_dict(tuned["encoder"], strict=False)
    return True


def require_features(run: Run) -> None:
    """InputError for a run trained on structure only (it cannot read a new entity)."""
    if not run.features:
        raise InputError(
            "this run was trained on structure only: it has no encoder to read a new entity with",
            path=run.path,
            hint=f"train with --modalities including one of {', '.join(FEATURE_MODALITIES)}",
        )


def run_encoder(run: Run) -> Encoder:
    """The run's own encoder on the CPU in float32, with a fine-tuned run's weights; InputError
    for a run trained on structure only."""
    require_features(run)
    encoder = store_encoder(run.config, run.features, device="cpu", precision="fp32")
    apply_tuned_encoder(encoder, run.path)
    return encoder
