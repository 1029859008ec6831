"""The encode job: a canonical graph → the feature store of one encoder (GUIDE §1–2).

For every modality the encoder reads, the entities (or relations) that HAVE it are listed in id
order and cut into shards of ``shard_rows`` rows. Each shard is encoded and written on its own,
so a killed run resumes by skipping complete shards, and ``--shard i/n`` splits the shards
between processes. Modalities:

- ``image``: the entity's image files, decoded and preprocessed in DataLoader workers; several
  images of one entity are pooled into one row (mean of L2-normalised vectors, normalised);
  unreadable files are skipped, counted and listed, never encoded as zeros;
- ``text``: the entity text built from the graph with ``text_template`` (fields ``{name}``,
  ``{text}``, ``{key}``, ``{type}``); an entity lacking a field of the template has no text;
- ``relation_text``: relation names (``{name}`` = the key in words, ``{key}``) for encoders
  with a text side.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import string
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from vlkge.encoders.base import IMAGE, TEXT, Encoder
from vlkge.errors import ConfigError
from vlkge.features import (
    FORMAT_VERSION,
    IncompleteStoreError,
    merge_store,
    prepare_store,
    read_sidecar,
    shard_is_complete,
    sidecar_name,
    write_shard,
)
from vlkge.fileio import write_json_atomic
from vlkge.graph import Graph, graph_hashes, read_graph
from vlkge.paths import features_dir, graph_dir
from vlkge.provenance import library_versions

RELATION_TEXT = "relation_text"
MODALITIES = (IMAGE, TEXT, RELATION_TEXT)
POOLS = ("mean", "first")
_EPS = 1e-12

Log = Callable[[str], None]


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class EncodeOptions:
    """Settings of one encode run (``encode:`` in params.yaml).

    Only ``normalize``, ``pool``, the templates and the encoder's own identity change the
    vectors, so only they enter a store's fingerprint; batch size, workers and sharding do not.
    """

    batch_size: int = 64
    workers: int = -1  # -1: auto (cpu count - 1, at most 8); 0: decode in the main process
    text_template: str = "{text}"
    relation_template: str = "{name}"
    pool: str = "mean"  # mean | first (several images of one entity)
    normalize: bool = True  # L2-normalise every stored vector
    shard_rows: int = 2048
    shard: tuple[int, int] = (0, 1)  # this process is shard i of n
    modalities: tuple[str, ...] = MODALITIES
    force: bool = False  # replace shards of another encoder configuration
    progress: bool = True

    def __post_init__(self) -> None:
        i, n = self.shard
        checks = [
            (self.batch_size > 0, "encode.batch_size", "must be positive"),
            (self.shard_rows > 0, "encode.shard_rows", "must be positive"),
            (n > 0 and 0 <= i < n, "encode.shard", f"shard {i}/{n}: need 0 <= i < n"),
            (self.pool in POOLS, "encode.pool", f"one of {', '.join(POOLS)}"),
            (self.workers >= -1, "encode.workers", "-1 (auto), 0 or more"),
        ]
        for ok, key, what in checks:
            if not ok:
                raise ConfigError("impossible value", key=key, hint=what)
        unknown = set(self.modalities) - set(MODALITIES)
        if unknown:
            raise ConfigError(f"unknown modalities {sorted(unknown)}", key="encode.modalities")
        # refuse a bad template before any encoder (possibly a large download) is built
        template_fields(self.text_template, ("key", "type", "name", "text"), key="encode.text_template")
        template_fields(self.relation_template, ("key", "name"), key="encode.relation_template")

    @property
    def num_workers(self) -> int:
        if self.workers >= 0:
            return self.workers
        return max(0, min(8, (os.cpu_count() or 1) - 1))


def parse_shard(text: str) -> tuple[int, int]:
    """``"2/8"`` → ``(2, 8)`` (this process writes shards k with k ≡ 2 mod 8)."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text or "")
    if not match:
        raise ConfigError(f"--shard {text!r}: expected i/n, e.g. 0/4", key="encode.shard")
    i, n = int(match.group(1)), int(match.group(2))
    if n < 1 or not 0 <= i < n:
        raise ConfigError(f"--shard {text!r}: need 0 <= i < n", key="encode.shard")
    return i, n


# ----------------------------------------------------------------------------- planning


@dataclass
class ModalityPlan:
    """What one modality encodes: rows in id order, cut into shards of ``shard_rows``.

    ``inputs[r]`` is a text (text modalities) or a list of image paths as written in the graph
    (``image``); ``files[r]`` the resolved image paths.
    """

    modality: str
    id_column: str
    ids: np.ndarray  # int32 [n]
    keys: list[str]
    inputs: list[Any]
    shard_rows: int
    files: list[list[Path]] = field(default_factory=list)
    missing: dict[str, Any] = field(default_factory=dict)

    @property
    def rows(self) -> int:
        return int(self.ids.shape[0])

    @property
    def num_shards(self) -> int:
        return -(-self.rows // self.shard_rows)

    def rows_of(self, shard: int) -> range:
        start = shard * self.shard_rows
        return range(start, min(start + self.shard_rows, self.rows))

    def inputs_sha256(self, shard: int) -> str:
        """Hash of what shard ``shard`` reads: ids and texts, or ids, image paths and sizes."""
        rows = self.rows_of(shard)
        if self.modality == IMAGE:
            payload: list[Any] = [
                [[str(p), p.stat().st_size if p.is_file() else -1] for p in self.files[r]] for r in rows
            ]
        else:
            payload = [self.inputs[r] for r in rows]
        blob = json.dumps([self.ids[rows.start : rows.stop].tolist(), payload], ensure_ascii=False)
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def template_fields(template: str, available: Sequence[str], *, key: str) -> list[str]:
    """The ``{field}`` names of a template; ConfigError for a field the table lacks."""
    try:
        fields = [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
    except ValueError as exc:
        raise ConfigError(f"bad template {template!r}: {exc}", key=key) from None
    bad = [f for f in fields if f not in available or not f.isidentifier()]
    if bad or not fields:
        raise ConfigError(
            f"template {template!r} uses {bad or 'no fields'}",
            key=key,
            hint=f"fields available: {', '.join('{' + a + '}' for a in available)}",
        )
    return fields


def fill_template(frame: pl.DataFrame, template: str, *, key: str) -> list[str | None]:
    """The template filled per row; ``None`` when a field it uses is null or blank."""
    fields = template_fields(template, frame.columns, key=key)
    out: list[str | None] = []
    for row in frame.select(fields).iter_rows(named=True):
        if any(v is None or not str(v).strip() for v in row.values()):
            out.append(None)
            continue
        text = template.format_map({k: str(v).strip() for k, v in row.items()}).strip()
        out.append(text or None)
    return out


def relation_words(key: str) -> str:
    """A relation key in words: ``isCreatedByArtist`` → ``is created by artist``,
    ``_member_of_domain_topic`` → ``member of domain topic``."""
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", key)
    spaced = re.sub(r"[_\-/.:#]+", " ", spaced)
    return " ".join(spaced.split()).lower() or key


def plan_modality(graph: Graph, modality: str, options: EncodeOptions) -> ModalityPlan:
    """List the rows of one modality (see the module docstring)."""
    if modality == RELATION_TEXT:
        frame = graph.relations.with_columns(
            pl.col("key").map_elements(relation_words, return_dtype=pl.String).alias("name")
        )
        texts = fill_template(frame, options.relation_template, key="encode.relation_template")
        return _text_plan(modality, "relation_id", frame["relation_id"], frame["key"], texts, options)
    ent = graph.entities
    if modality == TEXT:
        texts = fill_template(
            ent.select("key", "type", "name", "text"),
            options.text_template,
            key="encode.text_template",
        )
        return _text_plan(modality, "entity_id", ent["entity_id"], ent["key"], texts, options)
    has = (ent["images"].list.len().fill_null(0) > 0).to_numpy()
    chosen = ent.filter(pl.Series(has))
    base = graph.root.parent  # image paths are relative to the dataset directory
    inputs = [list(paths) for paths in chosen["images"].to_list()]
    files = [[p if (p := Path(s)).is_absolute() else base / p for s in paths] for paths in inputs]
    return ModalityPlan(
        modality=IMAGE,
        id_column="entity_id",
        ids=chosen["entity_id"].to_numpy().astype(np.int32),
        keys=chosen["key"].to_list(),
        inputs=inputs,
        files=files,
        shard_rows=options.shard_rows,
        missing={
            "count": int((~has).sum()),
            "note": "entities with no image (ordinary missing modality)",
        },
    )


def _text_plan(
    modality: str,
    id_column: str,
    ids: pl.Series,
    keys: pl.Series,
    texts: list[str | None],
    options: EncodeOptions,
) -> ModalityPlan:
    present = np.array([t is not None for t in texts], dtype=bool)
    all_ids = ids.to_numpy().astype(np.int32)
    all_keys = keys.to_list()
    absent = np.flatnonzero(~present)
    return ModalityPlan(
        modality=modality,
        id_column=id_column,
        ids=all_ids[present],
        keys=[k for k, p in zip(all_keys, present, strict=True) if p],
        inputs=[t for t in texts if t is not None],
        shard_rows=options.shard_rows,
        missing={
            "count": int(absent.shape[0]),
            "note": "no text: a field of the template is empty",
            "rows": [{"id": int(all_ids[i]), "key": all_keys[i]} for i in absent],
        },
    )


# ----------------------------------------------------------------------------- images


def load_image(
    path: Path, transform: Callable[[Any], torch.Tensor]
) -> tuple[torch.Tensor | None, str | None]:
    """Decode one image fully and preprocess it: ``(pixels [3, H, W], None)`` or
    ``(None, reason)`` for a missing, empty, truncated, non-image or otherwise bad file."""
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(path) as image:
                image.load()  # decode everything now: truncated data fails here
                rgb = _to_8bit(image).convert("RGB")
            if rgb.width < 1 or rgb.height < 1:
                return None, "empty image"
            pixels = transform(rgb)
    except FileNotFoundError:
        return None, "file not found"
    except IsADirectoryError:
        return None, "a directory, not a file"
    except UnidentifiedImageError:
        reason = "empty file" if path.is_file() and path.stat().st_size == 0 else "not an image"
        return None, reason
    except Image.DecompressionBombError as exc:
        return None, f"too large: {exc}"
    except Exception as exc:  # any decoder failure is one skipped file
        return None, f"unreadable: {type(exc).__name__}: {exc}"
    if not torch.isfinite(pixels).all():
        return None, "non-finite pixels after preprocessing"
    return pixels, None


def _to_8bit(image: Any) -> Any:
    """16- and 32-bit integer images (``I;16*``, ``I``) scaled to 8-bit grey; PIL's own
    ``convert("RGB")`` clips them at 255, which turns most 16-bit photos white."""
    if not image.mode.startswith("I"):
        return image
    from PIL import Image

    array = np.asarray(image)
    bits = 16 if image.mode.startswith("I;16") or int(array.max(initial=0)) < 65536 else 32
    scaled = (array.astype(np.float64) / float(2**bits - 1) * 255.0).round().clip(0, 255)
    return Image.fromarray(scaled.astype(np.uint8))


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


# ----------------------------------------------------------------------------- the job


@dataclass
class ModalityResult:
    """What one modality's run did (printed by the CLI, used by the benchmark)."""

    modality: str
    planned_rows: int = 0
    shards_total: int = 0
    shards_owned: int = 0
    shards_skipped: int = 0
    shards_written: int = 0
    rows_written: int = 0
    inputs: int = 0
    failed_inputs: int = 0
    dropped_rows: int = 0
    missing_rows: int = 0
    seconds: float = 0.0
    model_seconds: float = 0.0
    merged: bool = False
    dim: int = 0

    @property
    def items_per_second(self) -> float:
        return self.inputs / self.seconds if self.seconds > 0 else 0.0

    def line(self) -> str:
        rate = f"{self.items_per_second:,.1f} items/s" if self.inputs else "nothing to encode"
        return (
            f"{self.modality}: {self.planned_rows:,} rows planned in {self.shards_total} shard(s); "
            f"{self.shards_skipped} complete, {self.shards_written} written "
            f"({self.rows_written:,} rows, "
            f"dim {self.dim}); {self.inputs:,} inputs in {self.seconds:.1f} s ({rate}); "
            f"{self.failed_inputs} failed, {self.dropped_rows} rows dropped, "
            f"{self.missing_rows:,} without this modality"
        )


def encoder_library_versions() -> dict[str, str | None]:
    """Versions of the libraries that shape the vectors, for the manifest."""
    return library_versions(
        ("torchvision", "open_clip_torch", "transformers", "pillow", "efficientnet-lite-pytorch")
    )


def modality_settings(modality: str, encoder: Encoder, options: EncodeOptions) -> dict[str, Any]:
    """The settings that change a modality's vectors (and so enter its fingerprint)."""
    settings: dict[str, Any] = {
        "normalisation": "l2" if options.normalize else "none",
        "precision": encoder.precision_name,
    }
    if modality == IMAGE:
        settings["pool"] = options.pool
    elif modality == TEXT:
        settings["text_template"] = options.text_template
    else:
        settings["relation_template"] = options.relation_template
    return settings


def fingerprint(modality: str, encoder: Encoder, settings: dict[str, Any]) -> str:
    """sha256 of what makes two shards comparable: format, encoder, modality, settings.

    The encoder enters by identity and weights hash, not by where its weights were read from.
    """
    identity = {k: v for k, v in encoder.info.as_dict().items() if k != "weights_id"}
    blob = json.dumps(
        {
            "format": FORMAT_VERSION,
            "encoder": identity,
            "modality": modality,
            "settings": settings,
        },
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()


class _Progress:
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
class _Shard:
    modality: str
    index: int
    rows: range
    inputs_sha256: str


def encode_graph(
    graph: Graph,
    encoder: Encoder,
    store_dir: str | Path,
    options: EncodeOptions | None = None,
    *,
    log: Log = _stderr,
) -> list[ModalityResult]:
    """Encode every modality of ``graph`` that ``encoder`` reads into ``store_dir/<modality>/``.

    Resumable (complete shards are skipped), shardable (``options.shard``), crash-safe (atomic
    shard files). When this process is the only one (``n == 1``), or when every shard of a
    modality is complete, the modality is merged (``manifest.json``, ``report.json``).
    """
    options = options or EncodeOptions()
    store_dir = Path(store_dir)
    rank, world = options.shard
    wanted = [
        m
        for m in MODALITIES
        if m in options.modalities and (IMAGE if m == IMAGE else TEXT) in encoder.modalities
    ]
    info = encoder.info
    versions = encoder_library_versions()
    graph_record = graph_hashes(graph)  # in every sidecar, then the manifest: stale-store checks
    plans: dict[str, ModalityPlan] = {}
    todo: dict[str, list[_Shard]] = {}
    results: dict[str, ModalityResult] = {}
    offset = 0  # shards are dealt to ranks round-robin across all modalities
    for modality in wanted:
        plan = plan_modality(graph, modality, options)
        plans[modality] = plan
        result = ModalityResult(
            modality,
            planned_rows=plan.rows,
            shards_total=plan.num_shards,
            missing_rows=int(plan.missing.get("count", 0)),
            dim=info.dims[IMAGE if modality == IMAGE else TEXT],
        )
        results[modality] = result
        base = offset

        def owns(index: int, base: int = base) -> bool:
            return (base + index) % world == rank

        offset += plan.num_shards
        if plan.rows == 0:
            log(
                f"{modality}: no {'relation' if modality == RELATION_TEXT else 'entity'} has it; "
                "nothing to encode"
            )
            continue
        mod_dir = store_dir / modality
        settings = modality_settings(modality, encoder, options)
        fp = fingerprint(modality, encoder, settings)
        prepare_store(mod_dir, fingerprint=fp, owns=owns, num_shards=plan.num_shards, force=options.force)
        pending = []
        for index in range(plan.num_shards):
            if not owns(index):
                continue
            result.shards_owned += 1
            shard = _Shard(modality, index, plan.rows_of(index), plan.inputs_sha256(index))
            if shard_is_complete(mod_dir, index, fp, shard.inputs_sha256):
                result.shards_skipped += 1
                _refresh_sidecar(mod_dir, index, num_shards=plan.num_shards, graph=graph_record)
            else:
                pending.append(shard)
        todo[modality] = pending

    total = sum(
        sum(len(plans[m].files[r]) if m == IMAGE else 1 for s in shards for r in s.rows)
        for m, shards in todo.items()
    )
    progress = _Progress(total, options.progress)
    try:
        for modality, shards in todo.items():
            plan, result = plans[modality], results[modality]
            settings = modality_settings(modality, encoder, options)
            sidecar = {
                "format_version": FORMAT_VERSION,
                "modality": modality,
                "fingerprint": fingerprint(modality, encoder, settings),
                "num_shards": plan.num_shards,
                "encoder": info.as_dict(),
                "settings": settings,
                "versions": versions,
                "graph": graph_record,
            }
            writer = _ShardWriter(store_dir / modality, plan, sidecar, result, result.dim)
            started = time.perf_counter()
            if modality == IMAGE:
                _encode_images(encoder, plan, shards, options, writer, result, progress)
            else:
                _encode_texts(encoder, plan, shards, options, writer, result, progress)
            result.seconds = time.perf_counter() - started
    finally:
        progress.close()

    for modality, result in results.items():
        mod_dir = store_dir / modality
        if not plans[modality].rows:
            continue
        if _all_sidecars_present(mod_dir, plans[modality].num_shards):
            try:
                merge_store(mod_dir)
                result.merged = True
            except IncompleteStoreError as exc:
                if world == 1:
                    raise
                log(f"{modality}: not merged yet: {exc}")  # another rank may still be at work
        else:
            log(f"{modality}: shard {rank}/{world} done; run `vlkge encode --merge` once every shard is")
    return list(results.values())


def _refresh_sidecar(mod_dir: Path, index: int, **current: Any) -> None:
    """A complete shard kept from another version of the graph (same rows and inputs, so the same
    vectors): record the current plan size and graph hashes in its sidecar, so the merge sees one
    plan and one graph."""
    record = read_sidecar(mod_dir, index)
    if record is not None and any(record.get(k) != v for k, v in current.items()):
        write_json_atomic(mod_dir / sidecar_name(index), {**record, **current})


def _all_sidecars_present(mod_dir: Path, num_shards: int) -> bool:
    return all((mod_dir / sidecar_name(k)).is_file() for k in range(num_shards))


class _ShardWriter:
    """Turns one shard's vectors into a Parquet shard + sidecar, with its failures listed."""

    def __init__(
        self,
        mod_dir: Path,
        plan: ModalityPlan,
        sidecar: dict[str, Any],
        result: ModalityResult,
        dim: int,
    ) -> None:
        self.mod_dir, self.plan, self.sidecar, self.result, self.dim = (
            mod_dir,
            plan,
            sidecar,
            result,
            dim,
        )

    def write(
        self,
        shard: _Shard,
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
        self.result.shards_written += 1
        self.result.rows_written += int(keep_np.sum())
        self.result.inputs += inputs
        self.result.failed_inputs += len(failures)
        self.result.dropped_rows += len(dropped)


def _encode_texts(
    encoder: Encoder,
    plan: ModalityPlan,
    shards: list[_Shard],
    options: EncodeOptions,
    writer: _ShardWriter,
    result: ModalityResult,
    progress: _Progress,
) -> None:
    """Texts of each shard in batches, longest first (less padding), then back in row order."""
    for shard in shards:
        texts = [plan.inputs[r] for r in shard.rows]
        order = sorted(range(len(texts)), key=lambda i: (-len(texts[i]), i))
        out = torch.zeros(len(texts), writer.dim, dtype=torch.float32)
        for start in range(0, len(order), options.batch_size):
            chunk = order[start : start + options.batch_size]
            tick = time.perf_counter()
            vectors = encoder.encode_texts([texts[i] for i in chunk])
            result.model_seconds += time.perf_counter() - tick
            out[torch.tensor(chunk)] = vectors
            progress.update(len(chunk), plan.modality)
        bad = _bad_rows(out)
        if options.normalize:
            out = F.normalize(out, dim=1, eps=_EPS)
        writer.write(
            shard,
            out,
            ~bad,
            inputs=len(texts),
            failures=[],
            dropped_reason="non-finite or zero vector",
        )


def _encode_images(
    encoder: Encoder,
    plan: ModalityPlan,
    shards: list[_Shard],
    options: EncodeOptions,
    writer: _ShardWriter,
    result: ModalityResult,
    progress: _Progress,
) -> None:
    """One DataLoader over the files of all pending shards; batches never cross a shard, so a
    shard is pooled and written as soon as its last batch is encoded."""
    if encoder.image_transform is None or not shards:
        return
    files: list[Path] = []
    names: list[str] = []  # item → its path as written in the graph
    owner: list[int] = []  # item → row of the plan
    batches: list[list[int]] = []
    last_batch: dict[int, int] = {}  # batch number → shard position, for a shard's last batch
    for position, shard in enumerate(shards):
        first_item = len(files)
        for r in shard.rows:
            files.extend(plan.files[r])
            names.extend(plan.inputs[r])
            owner.extend([r] * len(plan.files[r]))
        items = list(range(first_item, len(files)))
        batches.extend(items[s : s + options.batch_size] for s in range(0, len(items), options.batch_size))
        last_batch[len(batches) - 1] = position
    owner_t = torch.tensor(owner, dtype=torch.long)
    workers = options.num_workers
    loader = DataLoader(
        _ImageFiles(files, encoder.image_transform),
        batch_sampler=batches,
        num_workers=workers,
        collate_fn=_collate,
        pin_memory=encoder.device.type == "cuda",
        prefetch_factor=4 if workers else None,
    )
    got_items: list[torch.Tensor] = []
    got_vectors: list[torch.Tensor] = []
    failures: list[dict[str, Any]] = []

    def failure(item: int, reason: str) -> dict[str, Any]:
        row = owner[item]
        return {
            "id": int(plan.ids[row]),
            "key": plan.keys[row],
            "input": names[item],
            "reason": reason,
        }

    for number, (items, pixels, failed) in enumerate(loader):
        failures.extend(failure(g, reason) for g, reason in failed)
        if items.numel():
            tick = time.perf_counter()
            vectors = encoder.encode_images(pixels)
            result.model_seconds += time.perf_counter() - tick
            bad = _bad_rows(vectors)
            failures.extend(failure(g, "non-finite or zero embedding") for g in items[bad].tolist())
            got_items.append(items[~bad])
            got_vectors.append(vectors[~bad])
        progress.update(len(batches[number]), IMAGE)
        if number in last_batch:
            shard = shards[last_batch[number]]
            item_ids = torch.cat(got_items) if got_items else torch.zeros(0, dtype=torch.long)
            vectors = torch.cat(got_vectors) if got_vectors else torch.zeros(0, writer.dim)
            local = owner_t[item_ids] - shard.rows.start
            pooled, has = pool_vectors(
                vectors, local, len(shard.rows), how=options.pool, normalize=options.normalize
            )
            inputs = sum(len(plan.files[r]) for r in shard.rows)
            failures.sort(key=lambda f: (f["id"], f["input"]))
            writer.write(
                shard,
                pooled,
                has,
                inputs=inputs,
                failures=failures,
                dropped_reason="no readable image",
            )
            got_items, got_vectors, failures = [], [], []


# ----------------------------------------------------------------------------- from params


def store_name(encode_params: dict[str, Any]) -> str:
    """The store directory name under ``features/``: ``encode.store`` or the model name."""
    return encode_params.get("store") or encode_params["model"]


def feature_store_dir(data_dir: str | Path, dataset: str, encode_params: dict[str, Any]) -> Path:
    """``data/<ds>/features/<store>/`` for the ``encode:`` params (what training reads)."""
    return features_dir(data_dir, dataset) / store_name(encode_params)


def options_from_params(
    encode_params: dict[str, Any],
    *,
    shard: tuple[int, int] = (0, 1),
    force: bool = False,
    progress: bool = True,
) -> EncodeOptions:
    """``EncodeOptions`` from the ``encode:`` section of the params."""
    p = encode_params
    return EncodeOptions(
        batch_size=p["batch_size"],
        workers=p["workers"],
        text_template=p["text_template"],
        relation_template=p["relation_template"],
        pool=p["pool"],
        normalize=p["normalize"],
        shard_rows=p["shard_rows"],
        shard=shard,
        force=force,
        progress=progress,
    )


def encoder_from_params(encode_params: dict[str, Any]) -> Encoder:
    """Build the encoder named by ``encode.model`` with its arch, weights, device, precision."""
    from vlkge.encoders import build_encoder

    p = encode_params
    return build_encoder(
        p["model"],
        arch=p.get("arch"),
        pretrained=p.get("pretrained"),
        weights=p.get("weights"),
        device=p["device"],
        precision=p["precision"],
    )


def run_encode(
    data_dir: str | Path,
    dataset: str,
    encode_params: dict[str, Any],
    *,
    shard: tuple[int, int] = (0, 1),
    force: bool = False,
    progress: bool = True,
    log: Log = _stderr,
) -> list[ModalityResult]:
    """Read ``data/<ds>/graph``, build the encoder, encode into the feature store."""
    graph = read_graph(graph_dir(data_dir, dataset))
    options = options_from_params(encode_params, shard=shard, force=force, progress=progress)
    encoder = encoder_from_params(encode_params)
    store = feature_store_dir(data_dir, dataset, encode_params)
    return encode_graph(graph, encoder, store, options, log=log)
