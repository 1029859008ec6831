"""sLCWA training with checkpoints, resume and early stopping on valid MRR.

Into a run directory (:mod:`vlkge.runs`): ``config.json`` first, ``checkpoint.pt`` after every
epoch, ``model.pt`` whenever valid MRR improves (the last epoch's when never evaluated), and
``history.json`` at the end.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm.auto import tqdm

from vlkge.calibration import calibrate_votes
from vlkge.components import OPTIMIZERS
from vlkge.config import Config, TrainConfig
from vlkge.devices import keep_freed_host_memory, resolve_device
from vlkge.errors import ConfigError, InputError
from vlkge.evaluation import evaluate
from vlkge.features.inputs import EntityInputs, load_entity_inputs
from vlkge.fileio import remove_temporaries, write_json_atomic
from vlkge.finetune import EncoderTuner
from vlkge.graph import Graph
from vlkge.model import KGEModel, build_model, saved_vote_table
from vlkge.optim import OptimizerPair
from vlkge.ranking import Filters
from vlkge.representations import BatchRows, EntityRepresentation
from vlkge.runs import (
    CHECKPOINT,
    CONFIG,
    HISTORY,
    RUN_FILES,
    WEIGHTS,
    apply_tuned,
    load_payload,
    run_record,
    save_payload,
)
from vlkge.sampling import NegativeSampler

log = logging.getLogger(__name__)

#: optimisers whose update from a sparse (touched rows only) gradient equals the dense update.
#: With one of them, and a batch touching under half the entity rows (B·(K+2) < N/2: large
#: graphs), the entity table gets sparse gradients: a batch then costs O(touched rows), not O(N).
ROW_WISE = {"adagrad"}


def parameter_groups(
    model: KGEModel, spec: TrainConfig, tuner: EncoderTuner | None = None
) -> list[dict[str, Any]]:
    """Tables (and the backbone's own parameters) at ``train.lr``; the shared layers of multimodal
    models (projections, fusion, imaginary part) at ``train.projection_lr``, the feature prior at
    ``train.prior_lr``:
    one dense matrix gets a gradient from every entity, and a per-coordinate optimiser step of
    ``lr`` would move every projected vector far more than a table row moves; the encoder's
    unfrozen layers at ``train.finetune_lr``. Groups after the first are the shared ones."""
    shared, prior = model.shared_parameters(), model.prior_parameters()
    ids = {id(p) for p in shared + prior}
    groups: list[dict[str, Any]] = [{"params": [p for p in model.parameters() if id(p) not in ids]}]
    if shared:
        groups.append({"params": shared, "lr": spec.projection_lr})
    if prior:
        groups.append({"params": prior, "lr": spec.prior_lr})
    if tuner is not None:
        groups.append({"params": tuner.parameters(), "lr": spec.finetune_lr})
    return groups


def make_optimizer(groups: list[dict[str, Any]], spec: TrainConfig) -> Any:
    """``train.optimizer`` over every group, or — with ``train.shared_optimizer`` set and shared
    groups present — that one over the shared groups and ``train.optimizer`` over the tables."""
    tables = OPTIMIZERS.get(spec.optimizer)
    if spec.shared_optimizer is None or len(groups) == 1:
        return tables(groups, lr=spec.lr)
    shared = OPTIMIZERS.get(spec.shared_optimizer)
    return OptimizerPair(tables(groups[:1], lr=spec.lr), shared(groups[1:], lr=spec.projection_lr))


def missing_entities(reps: EntityRepresentation, graph: Graph) -> list[str]:
    """Keys of entities with no representation (no modality and no structure), logged once."""
    absent = (~reps.present).nonzero().flatten().tolist()
    if absent:
        shown = ", ".join(graph.entity_keys[i] for i in absent[:10]) + (" …" if len(absent) > 10 else "")
        log.warning(
            "%d entit%s have no modality and no structure and are excluded from evaluation: %s",
            len(absent),
            "y" if len(absent) == 1 else "ies",
            shown,
        )
    return [graph.entity_keys[i] for i in absent]


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
    """Trains a model on ``graph``'s train split as ``config.train`` says, into ``run_dir``."""

    #: whether this process reports and writes the run's files (all but rank 0 under DDP do not)
    is_main: bool = True

    def __init__(self, graph: Graph, config: Config, run_dir: Path, model: KGEModel | None = None):
        self.graph = graph
        self.config = config
        self.spec = config.train
        self.run_dir = Path(run_dir)
        self.device = resolve_device(self.spec.device)
        if self.device.type == "cpu":
            keep_freed_host_memory()
        if self.spec.threads:
            torch.set_num_threads(self.spec.threads)
        self.train = graph.split("train")
        if len(self.train) == 0:
            raise InputError("the train split is empty", path=graph.root / "triples.parquet")
        # negatives come from the entities of the train split only: held-out (inductive) entities
        # never reach training, not even as negatives
        self.negative_candidates = graph.in_train().nonzero().flatten()
        self._check_spec()
        torch.manual_seed(config.seed)
        self.inputs: EntityInputs | None = None
        if model is None and config.model.multimodal:
            self.inputs = load_entity_inputs(graph, config)
        # a run with a checkpoint is resumed (or refused): its saved neighbour table is reused
        # and its vote weights are loaded, so neither is searched for nor fitted again
        votes = config.model.multimodal and config.model.votes > 0
        # read once: resume() takes it from here
        self._checkpoint = self._read_checkpoint() if votes else None
        saved = None if self._checkpoint is None else self._checkpoint["model"]
        if model is None:
            model = build_model(config, graph.num_entities, graph.num_relations, self.inputs, saved)
        self.model = model.to(self.device)
        if self.model.prior is not None and votes and saved_vote_table(saved) is None:
            calibrate_votes(
                self.model.prior, self.model.entity, self.train, self.negative_candidates, config.seed
            )
        self.excluded = missing_entities(self.model.entity, graph)
        self.tuner = None
        if not self.spec.frozen and self.inputs is not None:
            self.tuner = EncoderTuner.for_run(config, graph, self.model.entity, self.inputs.record)
        self.generator = torch.Generator().manual_seed(config.seed)
        self.sampler = NegativeSampler(
            self.train,
            graph.num_entities,
            graph.num_relations,
            self.spec.negatives,
            mode=self.spec.sampler,
            filtered=self.spec.filtered,
            generator=self.generator,
            candidates=self.negative_candidates,
        )
        touched = self.spec.batch_size * (self.spec.negatives + 2)
        self.model.entity.sparse = self.spec.optimizer in ROW_WISE and 2 * touched < graph.num_entities
        self.optimizer = make_optimizer(parameter_groups(self.model, self.spec, self.tuner), self.spec)
        self.state = TrainState()
        # model selection never sees test triples: the validation filter knows train and valid only
        self.filters = Filters.build(
            graph.triples_of(("train", "valid")), graph.num_relations, self.spec.valid_protocol
        )
        self.downsample = self._downsampling()

    def _check_spec(self) -> None:
        """Refuse more negatives than candidates, and an impossible structure dropout."""
        if self.spec.negatives >= len(self.negative_candidates):
            raise ConfigError(
                f"{self.spec.negatives} negatives per positive but only "
                f"{len(self.negative_candidates)} entities in the train split to draw them from",
                key="train.negatives",
                hint="use fewer negatives than entities",
            )
        if not 0.0 <= self.spec.structure_dropout < 1.0:
            raise ConfigError(
                f"impossible value {self.spec.structure_dropout}",
                key="train.structure_dropout",
                hint="0 <= p < 1",
            )

    # -- files -----------------------------------------------------------------------------
    @property
    def checkpoint_path(self) -> Path:
        return self.run_dir / CHECKPOINT

    def _read_checkpoint(self) -> dict[str, Any] | None:
        """The run's checkpoint, on the CPU (None without one)."""
        if not self.checkpoint_path.is_file():
            return None
        return load_payload(self.checkpoint_path, "cpu")

    def write_config(self) -> None:
        features = None if self.inputs is None else self.inputs.record
        write_json_atomic(self.run_dir / CONFIG, run_record(self.config, self.graph, self.device, features))

    def save_checkpoint(self) -> None:
        payload = {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "generator": self.generator.get_state(),
            "torch_rng": torch.get_rng_state(),  # dropout etc. draw from the global generator
            "state": self.state.__dict__,
            "params": self.config.to_params(),
        }
        if self.tuner is not None:
            payload["tuned"] = self._tuned()
        save_payload(self.checkpoint_path, payload)

    def save_weights(self, name: str = WEIGHTS) -> None:
        payload = {"model": self.model.state_dict(), "params": self.config.to_params()}
        if self.inputs is not None:
            payload["features"] = self.inputs.record
        if self.tuner is not None:
            payload["tuned"] = self._tuned()
        save_payload(self.run_dir / name, payload)

    def _tuned(self) -> dict[str, Any]:
        """Fine-tuned runs: the encoder's trainable weights and the tuned feature tables."""
        reps = self.model.entity
        return {
            "encoder": self.tuner.state_dict(),
            "features": {m: reps.feature_table(m).detach().cpu() for m in reps.feature_modalities},
        }

    def resume(self) -> None:
        """Restore the last complete epoch from ``checkpoint.pt``."""
        if not self.checkpoint_path.is_file():
            raise InputError(
                "nothing to resume: no checkpoint",
                path=self.checkpoint_path,
                hint="run without --resume",
            )
        payload = self._checkpoint or load_payload(self.checkpoint_path, self.device)
        self._checkpoint = None  # not kept through training
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
        rows = self._batch_rows(batch, replacement)
        scores = self.model.score_batch(rows, corrupt_head)
        loss = softplus_loss(scores.positive, scores.negative, keep.float())
        if self.spec.prior_loss and scores.prior_positive is not None:  # the features-only view
            prior_loss = softplus_loss(scores.prior_positive, scores.prior_negative, keep.float())
            loss = loss + self.spec.prior_loss * prior_loss
        reg = self.spec.regularization
        if reg:
            batch, replacement = rows.batch, rows.replacement
            heads = torch.where(corrupt_head, replacement, batch[:, 0:1])
            tails = torch.where(corrupt_head, batch[:, 2:3], replacement)
            touched = torch.cat([batch[:, 0], batch[:, 2], heads.reshape(-1), tails.reshape(-1)])
            loss = loss + reg * self.model.entity_rows(touched, rows.table).pow(2).mean()
        return loss

    def _batch_rows(self, batch: Tensor, replacement: Tensor) -> BatchRows:
        """What this batch is scored against (:meth:`EntityRepresentation.for_batch`): multimodal
        runs compute the rows of the entities it touches (the positives re-encoded when
        fine-tuning, structure dropped at ``train.structure_dropout``), or under a dot-product
        backbone only its heads' and tails' rows; a table is read in place."""
        fresh = None if self.tuner is None else self.tuner.fresh
        drop = self._structure_drop if self.spec.structure_dropout > 0 else None
        # the regulariser reads every touched entity's row: then all rows are computed
        linear = self.model.interaction.linear_in_candidates and not self.spec.regularization
        return self.model.entity.for_batch(batch, replacement, fresh=fresh, drop=drop, linear=linear)

    def _structure_drop(self, count: int) -> Tensor:
        """[count] bool: the entities of a batch represented without their structure."""
        rand = torch.rand(count, generator=self.generator)
        return (rand < self.spec.structure_dropout).to(self.device)

    def train_epoch(self, epoch: int, show: bool = True) -> dict[str, float]:
        self.model.train()
        triples = self._epoch_triples()
        size = self.spec.batch_size
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
            protocol=self.spec.valid_protocol,
            filters=self.filters,
            batch_size=self.config.evaluate.batch_size,
        )

    def fit(self, *, show: bool = True, log=print) -> TrainState:
        """Train until ``train.epochs`` or early stopping; checkpoint every epoch."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        remove_temporaries(self.run_dir, RUN_FILES)  # what a killed run was writing
        self.write_config()
        spec, state = self.spec, self.state
        has_valid = len(self.graph.triples["valid"]) > 0
        for epoch in range(state.epoch + 1, spec.epochs + 1):
            if state.stopped_early:
                break
            record = self.train_epoch(epoch, show=show)
            if has_valid and (epoch % spec.eval_every == 0 or epoch == spec.epochs):
                mrr = self.validate()["overall"]["mrr"]
                record["valid_mrr"] = mrr
                if mrr > state.best_mrr + spec.min_delta:
                    state.best_mrr, state.best_epoch, state.bad_evaluations = mrr, epoch, 0
                    self.save_weights(WEIGHTS)
                else:
                    state.bad_evaluations += 1
                    state.stopped_early = 0 < spec.patience <= state.bad_evaluations
            state.epoch = epoch
            state.history.append(record)
            if not has_valid:
                self.save_weights(WEIGHTS)
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
            log(f"early stop: no valid MRR gain in {spec.patience} evaluations")
        if not (self.run_dir / WEIGHTS).is_file():
            self.save_weights(WEIGHTS)
        write_json_atomic(self.run_dir / HISTORY, state.history)
        return state
