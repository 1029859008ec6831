"""sLCWA training with checkpoints, resume and early stopping on valid MRR.

A run directory holds ``config.json`` (full params, seed, input hashes, library versions),
``checkpoint.pt`` (written atomically after every epoch: model, optimiser, sampler RNG, history)
and ``model.pt`` (the weights with the best valid MRR, or the last epoch's when never evaluated).
"""

from __future__ import annotations

import json
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
from vlkge.fileio import atomic_path, write_json_atomic
from vlkge.graph import Graph
from vlkge.model import KGEModel, build_model
from vlkge.provenance import library_versions
from vlkge.registry import Registry
from vlkge.sampling import NegativeSampler

OPTIMIZERS: Registry = Registry("optimizer")
OPTIMIZERS.register("adagrad")(torch.optim.Adagrad)
OPTIMIZERS.register("adam")(torch.optim.Adam)


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
        if self.spec["negatives"] >= graph.num_entities:
            raise ConfigError(
                f"{self.spec['negatives']} negatives per positive but only {graph.num_entities} entities",
                key="train.negatives",
                hint="use fewer negatives than entities",
            )
        torch.manual_seed(params["seed"])
        self.model = (model or build_model(params, graph.num_entities, graph.num_relations)).to(self.device)
        self.generator = torch.Generator().manual_seed(params["seed"])
        self.sampler = NegativeSampler(
            self.train,
            graph.num_entities,
            graph.num_relations,
            self.spec["negatives"],
            mode=self.spec["sampler"],
            filtered=self.spec["filtered"],
            generator=self.generator,
        )
        self.optimizer = OPTIMIZERS.get(self.spec["optimizer"], key="train.optimizer")(
            self.model.parameters(), lr=self.spec["lr"]
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
            "graph_counts": self.graph.meta.get("counts", {}),
            "seed": self.params["seed"],
            "versions": library_versions(),
            "device": str(self.device),
        }
        write_json_atomic(self.run_dir / "config.json", config)

    def save_checkpoint(self) -> None:
        payload = {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "generator": self.generator.get_state(),
            "state": self.state.__dict__,
            "params": self.params,
        }
        with atomic_path(self.checkpoint_path) as tmp:
            torch.save(payload, tmp)

    def save_weights(self, name: str = "model.pt") -> None:
        with atomic_path(self.run_dir / name) as tmp:
            torch.save({"model": self.model.state_dict(), "params": self.params}, tmp)

    def resume(self) -> None:
        """Restore the last complete epoch from ``checkpoint.pt``."""
        if not self.checkpoint_path.is_file():
            raise InputError(
                "nothing to resume: no checkpoint",
                path=self.checkpoint_path,
                hint="run without --resume",
            )
        payload = torch.load(self.checkpoint_path, map_location=self.device, weights_only=False)
        self.model.load_state_dict(payload["model"])
        self.optimizer.load_state_dict(payload["optimizer"])
        self.generator.set_state(payload["generator"])
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
        positive = self.model.score_hrt(batch[:, 0], batch[:, 1], batch[:, 2])
        negative = self.model.score_negatives(batch, replacement, corrupt_head)
        loss = softplus_loss(positive, negative, keep.float())
        reg = self.spec["regularization"]
        if reg:
            touched = torch.cat(
                [
                    batch[:, 0],
                    batch[:, 2],
                    negatives[..., 0].reshape(-1),
                    negatives[..., 2].reshape(-1),
                ]
            )
            loss = loss + reg * self.model.entity(touched).pow(2).mean()
        return loss

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


def load_run(run_dir: str | Path, graph: Graph, device: str = "cpu") -> KGEModel:
    """The best model of a finished (or interrupted) run."""
    run_dir = Path(run_dir)
    path = run_dir / "model.pt"
    if not path.is_file():
        raise InputError("no trained model here", path=path, hint="run `vlkge train` first")
    payload = torch.load(path, map_location=device, weights_only=False)
    model = build_model(payload["params"], graph.num_entities, graph.num_relations)
    try:
        model.load_state_dict(payload["model"])
    except RuntimeError as exc:
        raise InputError(
            f"the model does not fit this graph ({str(exc).splitlines()[0]})",
            path=path,
            hint="evaluate on the graph the run was trained on",
        ) from None
    return model.to(device)


def read_config(run_dir: str | Path) -> dict[str, Any]:
    path = Path(run_dir) / "config.json"
    if not path.is_file():
        raise InputError("not a run directory (config.json missing)", path=run_dir)
    return json.loads(path.read_text(encoding="utf-8"))
