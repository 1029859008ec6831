"""Multi-process training with PyTorch DistributedDataParallel, launched by ``torchrun``.

    torchrun --nproc_per_node=N -m vlkge train DATASET ...                      # one machine
    torchrun --nnodes=M --node_rank=i --nproc_per_node=N \\
             --rdzv_backend=c10d --rdzv_endpoint=HOST:PORT -m vlkge train ...    # M machines

``torchrun`` sets ``RANK``/``WORLD_SIZE``/``LOCAL_RANK``; :func:`make_trainer` then returns a
:class:`DistributedTrainer` (NCCL on GPUs, one device per local rank; gloo on CPU), and a plain
:class:`~vlkge.training.Trainer` otherwise.

Semantics: every rank draws the same epoch permutation (same seed); the global batch of
``train.batch_size`` triples is split across the ranks (rank r takes every WORLD_SIZE-th
triple), each rank draws its own negatives (its own generator), and DDP averages the gradients,
so one step updates the model as a single process would with that global batch (up to which
negatives were drawn). An epoch drops at most WORLD_SIZE − 1 triples so every rank takes the same
number of steps. Only rank 0 writes config, checkpoints, weights and metrics and prints.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import replace
from pathlib import Path

import torch
import torch.distributed as dist
from torch import Tensor, nn

from vlkge.config import Config
from vlkge.graph import Graph
from vlkge.prior import VOTE_TABLE
from vlkge.training import Trainer


def world_size() -> int:
    """Processes in this job (1 without ``torchrun``)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def init_process_group() -> tuple[int, int]:
    """Join the job ``torchrun`` started (once); → (rank, world size). On CUDA machines each
    process takes the GPU of its local rank and talks NCCL; elsewhere gloo."""
    if not dist.is_initialized():
        cuda = torch.cuda.is_available()
        if cuda:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend="nccl" if cuda else "gloo")
    return dist.get_rank(), dist.get_world_size()


class _BatchLoss(nn.Module):
    """The trainer's batch loss as a module, so DDP sees the forward and hooks its backward."""

    def __init__(self, trainer: DistributedTrainer) -> None:
        super().__init__()
        self.model = trainer.model
        if trainer.tuner is not None:  # the encoder's unfrozen layers are averaged over ranks too
            self.encoder = trainer.tuner.encoder.model
        self._trainer = [trainer]  # a list: not registered as a submodule

    def forward(self, batch: Tensor) -> Tensor:
        return Trainer._batch_loss(self._trainer[0], batch)


class DistributedTrainer(Trainer):
    """A :class:`~vlkge.training.Trainer` whose batches are shared by ``world`` processes."""

    def __init__(self, graph: Graph, config: Config, run_dir: Path, model: nn.Module | None = None):
        self.rank, self.world = init_process_group()
        self.shared_dir = Path(run_dir)
        if self.rank:  # ranks > 0 keep their own files (history, …) in a private scratch directory
            run_dir = Path(tempfile.mkdtemp(prefix=f"vlkge-rank{self.rank}-"))
        super().__init__(graph, config, run_dir, model)
        self.model.entity.sparse = False  # DDP reduces dense gradients: no sparse row updates here
        # own negatives per rank; the epoch permutation (self.generator) stays common
        self.sampler.generator = torch.Generator().manual_seed(config.seed + 7919 * (self.rank + 1))
        self.spec = replace(self.spec, batch_size=max(1, self.spec.batch_size // self.world))
        device_ids = [self.device.index or 0] if self.device.type == "cuda" else None
        self._share_vote_table()
        # layers shared by all entities (projections of modalities a batch may not touch), encoder
        # layers (a modality a batch may not stream)
        unused = bool(self.model.shared_parameters()) or self.tuner is not None
        # the buffers (feature tables, masks, the vote table) are the same on every rank and never
        # change with frozen features: not broadcast each step (WikiArt's text table: 275 MB); a
        # fine-tuned encoder's (batch-norm statistics) still are
        self.ddp = nn.parallel.DistributedDataParallel(
            _BatchLoss(self),
            device_ids=device_ids,
            find_unused_parameters=unused,
            broadcast_buffers=self.tuner is not None,
        )

    def _share_vote_table(self) -> None:
        """Every rank votes through rank 0's neighbour table (a search near ties may differ)."""
        prior = self.model.prior
        if prior is None or prior.votes is None:
            return
        for name in VOTE_TABLE:
            dist.broadcast(getattr(prior, name), 0)
        prior.votes.use_table(*(getattr(prior, name) for name in VOTE_TABLE))

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def checkpoint_path(self) -> Path:
        """Every rank resumes from rank 0's checkpoint."""
        return self.shared_dir / "checkpoint.pt"

    def _epoch_triples(self) -> Tensor:
        triples = super()._epoch_triples()
        usable = len(triples) - len(triples) % self.world
        return triples[self.rank : usable : self.world]

    def _batch_loss(self, batch: Tensor) -> Tensor:
        return self.ddp(batch)

    def train_epoch(self, epoch: int, show: bool = True) -> dict[str, float]:
        record = super().train_epoch(epoch, show=show and self.is_main)
        # the epoch's mean loss over all ranks (each rank saw the same number of triples)
        loss = torch.tensor([record["loss"]], dtype=torch.float64, device=self.device)
        dist.all_reduce(loss)
        record["loss"] = float(loss) / self.world
        record["triples"] *= self.world
        return record

    # -- only rank 0 writes ----------------------------------------------------------------
    def write_config(self) -> None:
        if self.is_main:
            super().write_config()

    def save_checkpoint(self) -> None:
        if self.is_main:
            super().save_checkpoint()

    def save_weights(self, name: str = "model.pt") -> None:
        if self.is_main:
            super().save_weights(name)

    def fit(self, *, show: bool = True, log=print):
        state = super().fit(show=show and self.is_main, log=log if self.is_main else None)
        dist.barrier()  # rank 0's files are complete when any rank returns
        if not self.is_main:
            shutil.rmtree(self.run_dir, ignore_errors=True)
        return state


def make_trainer(graph: Graph, config: Config, run_dir: Path) -> Trainer:
    """A DistributedTrainer under ``torchrun`` (WORLD_SIZE > 1), else a plain Trainer."""
    if world_size() > 1:
        return DistributedTrainer(graph, config, run_dir)
    return Trainer(graph, config, run_dir)


def shutdown() -> None:
    """Leave the process group (no-op outside ``torchrun``)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
