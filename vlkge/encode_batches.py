"""Encoding one modality's pending shards in batches, and writing each shard as it completes.

Texts are encoded in batches, longest first (less padding), and put back in row order. Images are
decoded and preprocessed in DataLoader workers (:func:`~vlkge.encoders.images.load_image`); a
batch never crosses a shard, so a shard is pooled (several images of one entity → one row) and
written as soon as its last batch is encoded. Unreadable files and non-finite vectors are skipped,
counted and listed, never stored as zeros.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from vlkge.encoders.base import Encoder
from vlkge.encoders.images import load_image
from vlkge.features.plan import ModalityPlan
from vlkge.features.store import write_shard
from vlkge.modalities import IMAGE

_EPS = 1e-12


@dataclass
class ShardCounts:
    """A modality's shards: planned, this process's, found complete, written now."""

    total: int = 0
    owned: int = 0
    skipped: int = 0
    written: int = 0


@dataclass
class ModalityResult:
    """What one modality's run did (printed by the CLI, used by the benchmark)."""

    modality: str
    dim: int
    shards: ShardCounts = field(default_factory=ShardCounts)
    planned_rows: int = 0
    rows_written: int = 0
    inputs: int = 0
    failed_inputs: int = 0
    dropped_rows: int = 0
    missing_rows: int = 0
    seconds: float = 0.0
    model_seconds: float = 0.0
    merged: bool = False

    @property
    def items_per_second(self) -> float:
        return self.inputs / self.seconds if self.seconds > 0 else 0.0

    def line(self) -> str:
        rate = f"{self.items_per_second:,.1f} items/s" if self.inputs else "nothing to encode"
        return (
            f"{self.modality}: {self.planned_rows:,} rows planned in {self.shards.total} shard(s); "
            f"{self.shards.skipped} complete, {self.shards.written} written "
            f"({self.rows_written:,} rows, "
            f"dim {self.dim}); {self.inputs:,} inputs in {self.seconds:.1f} s ({rate}); "
            f"{self.failed_inputs} failed, {self.dropped_rows} rows dropped, "
            f"{self.missing_rows:,} without this modality"
        )


class Progress:
    """A tqdm bar over all inputs of the run, showing items/s (a no-op when disabled)."""

    def __init__(self, total: int, enabled: bool) -> None:
        self.bar = None
        if enabled and total:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, unit="item", desc="encode", dynamic_ncols=True, mininterval=0.5)

    def update(self, n: int, modality: str) -> None:
        if self.bar is not None:
            self.bar.set_description(f"encode {modality}", refresh=False)
            self.bar.update(n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


@dataclass
class ShardTask:
    """One shard to encode: its rows of the plan and the hash of what they read."""

    modality: str
    index: int
    rows: range
    inputs_sha256: str


class ShardWriter:
    """Turns one shard's vectors into a Parquet shard + sidecar, with its failures listed."""

    def __init__(
        self, mod_dir: Path, plan: ModalityPlan, sidecar: dict[str, Any], result: ModalityResult
    ) -> None:
        self.mod_dir, self.plan, self.sidecar, self.result = mod_dir, plan, sidecar, result
        self.dim = result.dim

    def write(
        self,
        shard: ShardTask,
        vectors: torch.Tensor,
        keep: torch.Tensor,
        *,
        inputs: int,
        failures: list[dict[str, Any]],
        dropped_reason: str,
    ) -> None:
        """``vectors`` [len(shard.rows), d]; ``keep`` BoolTensor: rows that get stored."""
        rows = np.arange(shard.rows.start, shard.rows.stop)
        keep_np = keep.numpy()
        dropped = [
            {"id": int(self.plan.ids[r]), "key": self.plan.keys[r], "reason": dropped_reason}
            for r in rows[~keep_np]
        ]
        record = {
            **self.sidecar,
            "inputs_sha256": shard.inputs_sha256,
            "planned": len(rows),
            "inputs": inputs,
            "failures": failures,
            "dropped": dropped,
        }
        if shard.index == 0:
            record["missing"] = self.plan.missing
        values = vectors[keep].numpy() if len(rows) else np.zeros((0, self.dim), np.float32)
        write_shard(
            self.mod_dir,
            shard.index,
            self.plan.ids[rows[keep_np]],
            values.reshape(-1, self.dim),
            id_column=self.plan.id_column,
            sidecar=record,
        )
        self.result.shards.written += 1
        self.result.rows_written += int(keep_np.sum())
        self.result.inputs += inputs
        self.result.failed_inputs += len(failures)
        self.result.dropped_rows += len(dropped)


@dataclass
class BatchRun:
    """What encoding one modality's pending ``shards`` takes."""

    encoder: Encoder
    plan: ModalityPlan
    shards: list[ShardTask]
    writer: ShardWriter
    progress: Progress
    batch_size: int
    workers: int = 0
    pool: str = "mean"
    normalize: bool = True

    @property
    def result(self) -> ModalityResult:
        return self.writer.result


def encode_texts(run: BatchRun) -> None:
    """Texts of each shard in batches, longest first (less padding), then back in row order."""
    encoder, plan, writer, result, progress = run.encoder, run.plan, run.writer, run.result, run.progress
    for shard in run.shards:
        texts = [plan.inputs[r] for r in shard.rows]
        order = sorted(range(len(texts)), key=lambda i: (-len(texts[i]), i))
        out = torch.zeros(len(texts), writer.dim, dtype=torch.float32)
        for start in range(0, len(order), run.batch_size):
            chunk = order[start : start + run.batch_size]
            tick = time.perf_counter()
            vectors = encoder.encode_texts([texts[i] for i in chunk])
            result.model_seconds += time.perf_counter() - tick
            out[torch.tensor(chunk)] = vectors
            progress.update(len(chunk), plan.modality)
        bad = _bad_rows(out)
        if run.normalize:
            out = F.normalize(out, dim=1, eps=_EPS)
        writer.write(
            shard,
            out,
            ~bad,
            inputs=len(texts),
            failures=[],
            dropped_reason="non-finite or zero vector",
        )


@dataclass
class _ImageItems:
    """Every image file of the pending shards, in row order, and the batches over them."""

    files: list[Path]  # item → its resolved path
    names: list[str]  # item → its path as written in the graph
    owner: list[int]  # item → row of the plan
    batches: list[list[int]]  # item numbers; a batch never crosses a shard
    last_batch: dict[int, int]  # batch number → shard position, for a shard's last batch
    owner_rows: torch.Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.long))  # [items]

    @classmethod
    def of(cls, run: BatchRun) -> _ImageItems:
        items = cls([], [], [], [], {})
        for position, shard in enumerate(run.shards):
            first = len(items.files)
            for r in shard.rows:
                items.files.extend(run.plan.files[r])
                items.names.extend(run.plan.inputs[r])
                items.owner.extend([r] * len(run.plan.files[r]))
            numbers = list(range(first, len(items.files)))
            size = run.batch_size
            items.batches.extend(numbers[s : s + size] for s in range(0, len(numbers), size))
            items.last_batch[len(items.batches) - 1] = position
        items.owner_rows = torch.tensor(items.owner, dtype=torch.long)
        return items

    def failure(self, plan: ModalityPlan, item: int, reason: str) -> dict[str, Any]:
        row = self.owner[item]
        return {"id": int(plan.ids[row]), "key": plan.keys[row], "input": self.names[item], "reason": reason}


def encode_images(run: BatchRun) -> None:
    """One DataLoader over the files of all pending shards; a shard is pooled and written as soon
    as its last batch is encoded."""
    encoder, plan = run.encoder, run.plan
    if encoder.image_transform is None or not run.shards:
        return
    items = _ImageItems.of(run)
    loader = DataLoader(
        _ImageFiles(items.files, encoder.image_transform),
        batch_sampler=items.batches,
        num_workers=run.workers,
        collate_fn=_collate,
        pin_memory=encoder.device.type == "cuda",
        prefetch_factor=4 if run.workers else None,
    )
    got_items: list[torch.Tensor] = []
    got_vectors: list[torch.Tensor] = []
    failures: list[dict[str, Any]] = []
    for number, (done, pixels, failed) in enumerate(loader):
        failures.extend(items.failure(plan, g, reason) for g, reason in failed)
        if done.numel():
            tick = time.perf_counter()
            vectors = encoder.encode_images(pixels)
            run.result.model_seconds += time.perf_counter() - tick
            bad = _bad_rows(vectors)
            failures.extend(
                items.failure(plan, g, "non-finite or zero embedding") for g in done[bad].tolist()
            )
            got_items.append(done[~bad])
            got_vectors.append(vectors[~bad])
        run.progress.update(len(items.batches[number]), IMAGE)
        if number in items.last_batch:
            shard = run.shards[items.last_batch[number]]
            _write_pooled(run, shard, items, got_items, got_vectors, failures)
            got_items, got_vectors, failures = [], [], []


def _write_pooled(
    run: BatchRun,
    shard: ShardTask,
    items: _ImageItems,
    got_items: list[torch.Tensor],
    got_vectors: list[torch.Tensor],
    failures: list[dict[str, Any]],
) -> None:
    """Pool a complete shard's image vectors per entity and write the shard."""
    item_ids = torch.cat(got_items) if got_items else torch.zeros(0, dtype=torch.long)
    vectors = torch.cat(got_vectors) if got_vectors else torch.zeros(0, run.writer.dim)
    local = items.owner_rows[item_ids] - shard.rows.start
    pooled, has = pool_vectors(vectors, local, len(shard.rows), how=run.pool, normalize=run.normalize)
    failures.sort(key=lambda f: (f["id"], f["input"]))
    run.writer.write(
        shard,
        pooled,
        has,
        inputs=sum(len(run.plan.files[r]) for r in shard.rows),
        failures=failures,
        dropped_reason="no readable image",
    )


class _ImageFiles(Dataset):
    """Item ``g`` → ``(g, pixels [3, H, W] | None, reason | None)``; runs in workers."""

    def __init__(self, files: list[Path], transform: Callable[[Any], torch.Tensor]) -> None:
        self.files = files
        self.transform = transform

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[int, torch.Tensor | None, str | None]:
        pixels, reason = load_image(self.files[index], self.transform)
        return index, pixels, reason


def _collate(items: list[tuple[int, torch.Tensor | None, str | None]]) -> tuple[Any, ...]:
    """→ ``(ok_items LongTensor [b], pixels [b, 3, H, W] or empty, failures [(item, reason)])``."""
    ok = [(g, x) for g, x, _ in items if x is not None]
    failures = [(g, r) for g, x, r in items if x is None]
    if not ok:
        return torch.zeros(0, dtype=torch.long), torch.zeros(0), failures
    index = torch.tensor([g for g, _ in ok], dtype=torch.long)
    return index, torch.stack([x for _, x in ok]), failures


def pool_vectors(
    vectors: torch.Tensor, owners: torch.Tensor, num: int, *, how: str, normalize: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pool several vectors per row into one.

    ``vectors`` [m, d] float32; ``owners`` LongTensor [m], non-decreasing, values in 0..num-1.
    ``mean``: mean of the (L2-normalised when ``normalize``) vectors, normalised again;
    ``first``: the first vector of each row. Returns ``(pooled [num, d], has [num] bool)``;
    rows without vectors (or pooling to ~zero) have ``has`` False and must not be stored.
    """
    dim = vectors.shape[1] if vectors.ndim == 2 else 0
    counts = torch.bincount(owners, minlength=num)
    has = counts > 0
    if how == "first":
        first = torch.cumsum(counts, 0) - counts
        pooled = torch.zeros(num, dim, dtype=torch.float32)
        pooled[has] = vectors[first[has]]
    else:
        v = F.normalize(vectors, dim=1, eps=_EPS) if normalize else vectors
        pooled = torch.zeros(num, dim, dtype=torch.float32).index_add_(0, owners, v)
        pooled = pooled / counts.clamp_min(1).unsqueeze(1).to(pooled.dtype)
    if normalize:
        has &= pooled.norm(dim=1) > 1e-6
        pooled = F.normalize(pooled, dim=1, eps=_EPS)
    return pooled, has


def _bad_rows(vectors: torch.Tensor) -> torch.Tensor:
    """BoolTensor [n]: rows with a non-finite value or (almost) zero norm."""
    return ~torch.isfinite(vectors).all(dim=1) | (vectors.abs().sum(dim=1) <= _EPS)
