"""sLCWA training with checkpoints, resume and early stopping on valid MRR.

A run directory holds ``config.json`` (full params, seed, input hashes, library versions),
``checkpoint.pt`` (written atomically after every epoch: model, optimiser, sampler RNG, history)
and ``model.pt`` (the weights with the best valid MRR, or the last epoch's when never evaluated).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm.auto import tqdm

from vlkge.errors import ConfigError, InputError
from vlkge.evaluation import Filters, evaluate
from vlkge.fileio import (
    atomic_path,
    read_json_object,
    remove_temporaries,
    write_json_atomic,
)
from vlkge.graph import Graph, graph_file_hashes
from vlkge.model import KGEModel, StructuralEmbedding, build_model
from vlkge.optim import RowAdagrad
from vlkge.provenance import library_versions
from vlkge.registry import Registry
from vlkge.representations import (
    EntityRepresentations,
    check_record,
    is_multimodal,
    load_entity_inputs,
    report_missing,
)
from vlkge.sampling import NegativeSampler

OPTIMIZERS: Registry = Registry("optimizer")
OPTIMIZERS.register("adagrad")(RowAdagrad)  # torch's Adagrad, row-wise on sparse gradients
OPTIMIZERS.register("adam")(torch.optim.Adam)
#: optimisers whose update from a sparse (touched rows only) gradient equals the dense update.
#: With one of them, and a batch touching under half the entity rows (B·(K+2) < N/2: large
#: graphs), the entity table gets sparse gradients: a batch then costs O(touched rows), not O(N).
ROW_WISE = {"adagrad"}


def build_tuner(graph: Graph, params: dict[str, Any], reps: EntityRepresentations, record: dict[str, Any]):
    """The encoder of ``encode.model``, partly unfrozen, streaming the graph's images and texts."""
    from vlkge.encoding import encoder_from_params
    from vlkge.finetune import UNFREEZE, EncoderTuner
    from vlkge.predict import check_encoder

    if params["encode"]["model"] not in UNFREEZE:
        raise ConfigError(
            f"fine-tuning is not implemented for the {params['encode']['model']!r} encoder",
            key="train.frozen",
            hint=f"fine-tune one of: {', '.join(UNFREEZE.names())}; or train with --frozen",
        )
    encode = {**params["encode"], "precision": "fp32", "device": params["train"]["device"]}
    encoder = encoder_from_params(encode)
    check_encoder(encoder, record)
    return EncoderTuner(encoder, graph, reps, record, params["train"]["finetune_layers"])


def parameter_groups(model: KGEModel, spec: dict[str, Any], tuner: Any = None) -> list[dict[str, Any]]:
    """Tables at ``train.lr``; the shared layers of multimodal representations (projections,
    fusion, imaginary part) at ``train.projection_lr``: one dense matrix gets a gradient from
    every entity, and a per-coordinate optimiser step of ``lr`` would move every projected vector
    far more than a table row moves."""
    shared = []
    if isinstance(model.entity, EntityRepresentations):
        table = model.entity.structure
        own = set() if table is None else {id(p) for p in table.parameters()}
        shared = [p for p in model.entity.parameters() if id(p) not in own]
    ids = {id(p) for p in shared}
    groups: list[dict[str, Any]] = [{"params": [p for p in model.parameters() if id(p) not in ids]}]
    if shared:
        groups.append({"params": shared, "lr": spec["projection_lr"]})
    if tuner is not None:
        groups.append({"params": tuner.parameters(), "lr": spec["finetune_lr"]})
    return groups


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(
            "CUDA was asked for but is not available", key="train.device", hint="use cpu or auto"
        )
    return torch.device(name)


def softplus_loss(positive: Tensor, negative: Tensor, keep: Tensor) -> Tensor:
    """Logistic loss softplus(-y·f), mean over the positives [B] and kept negatives [B, K]."""
    total = F.softplus(-positive).sum() + (F.softplus(negative) * keep).sum()
    return total / (positive.numel() + keep.sum())


def renumber_entities(batch: Tensor, replacement: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """The distinct entities of batch [B, 3] and replacement [B, K] → (ids [U] sorted, batch and
    replacement with their entities renumbered as positions in ``ids``)."""
    b = len(batch)
    ids, local = torch.unique(
        torch.cat([batch[:, 0], batch[:, 2], replacement.reshape(-1)]), return_inverse=True
    )
    batch = torch.stack([local[:b], batch[:, 1], local[b : 2 * b]], dim=1)
    return ids, batch, local[2 * b :].view_as(replacement)


@dataclass
class TrainState:
    """What a checkpoint restores besides the weights."""

    epoch: int = 0  # epochs completed
    best_mrr: float = -1.0
    best_epoch: int = 0
    bad_evaluations: int = 0
    stopped_early: bool = False
    history: list[dict[str, Any]] = field(default_factory=list)


class Trainer:
    """Trains ``model`` on ``graph``'s train split as ``params['train']`` says."""

    def __init__(self, graph: Graph, params: dict[str, Any], run_dir: Path, model: KGEModel | None = None):
        self.graph = graph
        self.params = params
        self.spec = params["train"]
        self.run_dir = Path(run_dir)
        self.device = resolve_device(self.spec["device"])
        if self.spec["threads"]:
            torch.set_num_threads(self.spec["threads"])
        self.train = graph.split("train")
        if len(self.train) == 0:
            raise InputError("the train split is empty", path=graph.root / "triples.parquet")
        # negatives come from the entities of the train split only: held-out (inductive) entities
        # never reach training, not even as negatives
        self.negative_candidates = graph.in_train().nonzero().flatten()
        if self.spec["negatives"] >= len(self.negative_candidates):
            raise ConfigError(
                f"{self.spec['negatives']} negatives per positive but only "
                f"{len(self.negative_candidates)} entities in the train split to draw them from",
                key="train.negatives",
                hint="use fewer negatives than entities",
            )
        if not 0.0 <= self.spec["structure_dropout"] < 1.0:
            raise ConfigError(
                f"impossible value {self.spec['structure_dropout']}",
                key="train.structure_dropout",
                hint="0 <= p < 1",
            )
        torch.manual_seed(params["seed"])
        self.inputs = None
        if model is None and is_multimodal(params):
            self.inputs = load_entity_inputs(graph, params)
        if model is None:
            model = build_model(params, graph.num_entities, graph.num_relations, self.inputs)
        self.model = model.to(self.device)
        self.tuner = None
        if isinstance(self.model.entity, EntityRepresentations):
            self.excluded = report_missing(self.model.entity, graph)
            if not self.spec["frozen"] and self.inputs is not None:
                self.tuner = build_tuner(graph, params, self.model.entity, self.inputs.record)
        self.generator = torch.Generator().manual_seed(params["seed"])
        self.sampler = NegativeSampler(
            self.train,
            graph.num_entities,
            graph.num_relations,
            self.spec["negatives"],
            mode=self.spec["sampler"],
            filtered=self.spec["filtered"],
            generator=self.generator,
            candidates=self.negative_candidates,
        )
        if isinstance(self.model.entity, StructuralEmbedding):
            touched = self.spec["batch_size"] * (self.spec["negatives"] + 2)
            self.model.entity.sparse = self.spec["optimizer"] in ROW_WISE and 2 * touched < graph.num_entities
        self.optimizer = OPTIMIZERS.get(self.spec["optimizer"], key="train.optimizer")(
            parameter_groups(self.model, self.spec, self.tuner), lr=self.spec["lr"]
        )
        self.state = TrainState()
        self.filters = Filters.build(graph.all_triples(), graph.num_relations, "correct")
        self.downsample = self._downsampling()

    # -- files -----------------------------------------------------------------------------
    @property
    def checkpoint_path(self) -> Path:
        return self.run_dir / "checkpoint.pt"

    def write_config(self) -> None:
        config = {
            "params": self.params,
            "dataset": self.graph.meta.get("dataset"),
            "graph": str(self.graph.root),
            "graph_inputs": self.graph.meta.get("inputs", {}),
            "graph_sha256": graph_file_hashes(self.graph),
            "graph_counts": self.graph.meta.get("counts", {}),
            "seed": self.params["seed"],
            "versions": library_versions(),
            "device": str(self.device),
        }
        if self.inputs is not None:
            config["features"] = self.inputs.record
        write_json_atomic(self.run_dir / "config.json", config)

    def save_checkpoint(self) -> None:
        payload = {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "generator": self.generator.get_state(),
            "torch_rng": torch.get_rng_state(),  # dropout etc. draw from the global generator
            "state": self.state.__dict__,
            "params": self.params,
        }
        if self.tuner is not None:
            payload["tuned"] = self._tuned()
        with atomic_path(self.checkpoint_path) as tmp:
            torch.save(payload, tmp)

    def save_weights(self, name: str = "model.pt") -> None:
        with atomic_path(self.run_dir / name) as tmp:
            payload = {"model": self.model.state_dict(), "params": self.params}
            if self.inputs is not None:
                payload["features"] = self.inputs.record
            if self.tuner is not None:
                payload["tuned"] = self._tuned()
            torch.save(payload, tmp)

    def _tuned(self) -> dict[str, Any]:
        """Fine-tuned runs: the encoder's trainable weights and the tuned feature tables."""
        reps = self.model.entity
        return {
            "encoder": self.tuner.state_dict(),
            "features": {m: getattr(reps, f"features_{m}").detach().cpu() for m in reps.feature_modalities},
        }

    def resume(self) -> None:
        """Restore the last complete epoch from ``checkpoint.pt``."""
        if not self.checkpoint_path.is_file():
            raise InputError(
                "nothing to resume: no checkpoint",
                path=self.checkpoint_path,
                hint="run without --resume",
            )
        payload = _load_payload(self.checkpoint_path, self.device)
        self.model.load_state_dict(payload["model"])
        self.optimizer.load_state_dict(payload["optimizer"])
        self.generator.set_state(payload["generator"].cpu())
        if self.tuner is not None and "tuned" in payload:
            apply_tuned(self.model, payload["tuned"])
            self.tuner.encoder.model.load_state_dict(payload["tuned"]["encoder"], strict=False)
        if "torch_rng" in payload:
            torch.set_rng_state(payload["torch_rng"].cpu())
        self.state = TrainState(**payload["state"])

    # -- training --------------------------------------------------------------------------
    def _downsampling(self) -> Tensor | None:
        """Per-relation keep fraction [R] from the protocol, or None."""
        spec = self.graph.protocol.get("relation_downsampling") or {}
        if not spec:
            return None
        fractions = torch.ones(self.graph.num_relations)
        for key, fraction in spec.items():
            fractions[self.graph.relation_id(key)] = float(fraction)
        return fractions

    def _epoch_triples(self) -> Tensor:
        triples = self.train
        if self.downsample is not None:
            keep = torch.rand(len(triples), generator=self.generator) < self.downsample[triples[:, 1]]
            triples = triples[keep]
        return triples[torch.randperm(len(triples), generator=self.generator)]

    def _batch_loss(self, batch: Tensor) -> Tensor:
        negatives, corrupt_head, keep = self.sampler.sample(batch)
        batch, negatives, corrupt_head, keep = (
            x.to(self.device, non_blocking=True) for x in (batch, negatives, corrupt_head, keep)
        )
        replacement = torch.where(corrupt_head, negatives[..., 0], negatives[..., 2])
        table, batch, replacement = self._batch_rows(batch, replacement)
        positive = self.model.score_hrt(batch[:, 0], batch[:, 1], batch[:, 2], table)
        negative = self.model.score_negatives(batch, replacement, corrupt_head, table)
        loss = softplus_loss(positive, negative, keep.float())
        reg = self.spec["regularization"]
        if reg:
            heads = torch.where(corrupt_head, replacement, batch[:, 0:1])
            tails = torch.where(corrupt_head, batch[:, 2:3], replacement)
            touched = torch.cat([batch[:, 0], batch[:, 2], heads.reshape(-1), tails.reshape(-1)])
            loss = loss + reg * self.model._entities(touched, table).pow(2).mean()
        return loss

    def _batch_rows(self, batch: Tensor, replacement: Tensor) -> tuple[Tensor | None, Tensor, Tensor]:
        """Multimodal runs: the representations of the entities this batch touches, [U, w] (with
        the positives re-encoded when fine-tuning, and structure dropped at
        ``structure_dropout``), and batch [B, 3] and replacement [B, K] renumbered into its rows.
        Structural runs: (None, batch, replacement) — the model reads its table directly."""
        reps = self.model.entity
        if not isinstance(reps, EntityRepresentations):
            return None, batch, replacement
        ids, batch, replacement = renumber_entities(batch, replacement)
        fresh = None
        if self.tuner is not None:  # fine-tuning: the positives' entities re-encoded with gradients
            fresh = self.tuner.fresh(ids[torch.cat([batch[:, 0], batch[:, 2]])])
        drop = None
        if self.spec["structure_dropout"] > 0:
            rand = torch.rand(len(ids), generator=self.generator)
            drop = (rand < self.spec["structure_dropout"]).to(self.device)
        return reps.rows(ids, fresh, drop), batch, replacement

    def train_epoch(self, epoch: int, show: bool = True) -> dict[str, float]:
        self.model.train()
        triples = self._epoch_triples()
        size = self.spec["batch_size"]
        start, total, count = time.perf_counter(), 0.0, 0
        bar = tqdm(
            range(0, len(triples), size),
            desc=f"epoch {epoch}",
            unit="batch",
            disable=not show,
            leave=False,
        )
        for offset in bar:
            batch = triples[offset : offset + size]
            self.optimizer.zero_grad(set_to_none=True)
            loss = self._batch_loss(batch)
            if not torch.isfinite(loss):
                raise FloatingPointError(
                    f"loss became {loss.item()} in epoch {epoch}: lower train.lr or add train.regularization"
                )
            loss.backward()
            self.optimizer.step()
            total += loss.item() * len(batch)
            count += len(batch)
            elapsed = time.perf_counter() - start
            bar.set_postfix(loss=f"{total / count:.4f}", triples_s=f"{count / max(elapsed, 1e-9):,.0f}")
        seconds = time.perf_counter() - start
        return {"epoch": epoch, "loss": total / max(count, 1), "seconds": seconds, "triples": count}

    def validate(self) -> dict[str, Any]:
        if self.tuner is not None:
            self.tuner.refresh_all()
        return evaluate(
            self.model,
            self.graph,
            "valid",
            filters=self.filters,
            batch_size=self.params["evaluate"]["batch_size"],
        )

    def fit(self, *, show: bool = True, log=print) -> TrainState:
        """Train until ``train.epochs`` or early stopping; checkpoint every epoch."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        remove_temporaries(self.run_dir, RUN_FILES)  # what a killed run was writing
        self.write_config()
        spec, state = self.spec, self.state
        has_valid = len(self.graph.triples["valid"]) > 0
        for epoch in range(state.epoch + 1, spec["epochs"] + 1):
            if state.stopped_early:
                break
            record = self.train_epoch(epoch, show=show)
            if has_valid and (epoch % spec["eval_every"] == 0 or epoch == spec["epochs"]):
                mrr = self.validate()["overall"]["mrr"]
                record["valid_mrr"] = mrr
                if mrr > state.best_mrr + spec["min_delta"]:
                    state.best_mrr, state.best_epoch, state.bad_evaluations = mrr, epoch, 0
                    self.save_weights("model.pt")
                else:
                    state.bad_evaluations += 1
                    state.stopped_early = state.bad_evaluations >= spec["patience"]
            state.epoch = epoch
            state.history.append(record)
            if not has_valid:
                self.save_weights("model.pt")
            self.save_checkpoint()
            if log is not None:
                line = f"epoch {epoch:4d}  loss {record['loss']:.4f}  {record['seconds']:.2f}s"
                if "valid_mrr" in record:
                    line += (
                        f"  valid MRR {record['valid_mrr']:.4f}"
                        f" (best {state.best_mrr:.4f} @ {state.best_epoch})"
                    )
                log(line)
        if state.stopped_early and log is not None:
            log(f"early stop: no valid MRR gain in {spec['patience']} evaluations")
        if not (self.run_dir / "model.pt").is_file():
            self.save_weights("model.pt")
        write_json_atomic(self.run_dir / "history.json", state.history)
        return state


RUN_FILES = ("config.json", "checkpoint.pt", "model.pt", "history.json")


def _load_payload(path: Path, device: Any) -> dict[str, Any]:
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


def load_run(run_dir: str | Path, graph: Graph, device: str = "cpu") -> KGEModel:
    """The best model of a finished (or interrupted) run."""
    run_dir = Path(run_dir)
    path = run_dir / "model.pt"
    if not path.is_file():
        raise InputError("no trained model here", path=path, hint="run `vlkge train` first")
    payload = _load_payload(path, device)
    params = payload["params"]
    inputs = None
    if is_multimodal(params):
        inputs = load_entity_inputs(graph, params)
        check_record(inputs, payload.get("features", {}), path)
    model = build_model(params, graph.num_entities, graph.num_relations, inputs)
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


def apply_tuned(model: KGEModel, tuned: dict[str, Any]) -> None:
    """Put a fine-tuned run's feature tables into its representations."""
    for m, values in tuned["features"].items():
        getattr(model.entity, f"features_{m}").copy_(values)


def read_config(run_dir: str | Path) -> dict[str, Any]:
    path = Path(run_dir) / "config.json"
    if not path.is_file():
        raise InputError(
            "not a run directory (config.json missing)",
            path=run_dir,
            hint="give a run directory (data/<dataset>/models/<run>) or a run name with --dataset",
        )
    config = read_json_object(path, hint="train the run again")
    if not isinstance(config.get("params"), dict):
        raise InputError("config.json holds no params", path=path, hint="train the run again")
    return config
