"""The encode job: a canonical graph → the feature store of one encoder (GUIDE §1–2).

Every modality the encoder reads is planned (:mod:`vlkge.features.plan`: the rows that have it,
in id order, cut into shards of ``shard_rows``); each shard is encoded and written on its own
(:mod:`vlkge.encode_batches`), so a killed run resumes by skipping complete shards, and
``--shard i/n`` splits the shards between processes (dealt round-robin across modalities). When
every shard of a modality is complete the modality is merged (``manifest.json``, ``report.json``).
Relation names (``relation_text``) are encoded for encoders with a text side.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from vlkge.config import EncodeConfig
from vlkge.encode_batches import (
    BatchRun,
    ModalityResult,
    Progress,
    ShardCounts,
    ShardTask,
    ShardWriter,
    encode_images,
    encode_texts,
)
from vlkge.encoders import Encoder, build_encoder
from vlkge.errors import ConfigError
from vlkge.features.plan import ModalityPlan, plan_modality, template_fields
from vlkge.features.store import (
    FORMAT_VERSION,
    IncompleteStoreError,
    merge_store,
    prepare_store,
    read_sidecar,
    shard_is_complete,
    sidecar_name,
)
from vlkge.fileio import write_json_atomic
from vlkge.graph import Graph, graph_hashes, read_graph
from vlkge.modalities import IMAGE, RELATION_TEXT, STORE_MODALITIES, TEXT
from vlkge.paths import features_dir, graph_dir
from vlkge.provenance import library_versions

MODALITIES = STORE_MODALITIES
POOLS = ("mean", "first")

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

    @classmethod
    def from_config(cls, encode: EncodeConfig, **run: Any) -> EncodeOptions:
        """The options of the ``encode:`` section; ``run``: shard, force, progress."""
        return cls(
            batch_size=encode.batch_size,
            workers=encode.workers,
            text_template=encode.text_template,
            relation_template=encode.relation_template,
            pool=encode.pool,
            normalize=encode.normalize,
            shard_rows=encode.shard_rows,
            **run,
        )

    def plan(self, graph: Graph, modality: str) -> ModalityPlan:
        """The rows of ``modality`` these options encode."""
        return plan_modality(
            graph,
            modality,
            text_template=self.text_template,
            relation_template=self.relation_template,
            shard_rows=self.shard_rows,
        )

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


@dataclass
class _Modality:
    """One modality of an encode run: its plan, what gets written, and this process's pending
    shards."""

    modality: str
    plan: ModalityPlan
    result: ModalityResult
    settings: dict[str, Any]
    fingerprint: str
    pending: list[ShardTask] = field(default_factory=list)

    @property
    def inputs(self) -> int:
        """Inputs of the pending shards (image files, or texts)."""
        files = self.plan.files
        return sum(len(files[r]) if self.modality == IMAGE else 1 for s in self.pending for r in s.rows)


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
    graph_record = graph_hashes(graph)  # in every sidecar, then the manifest: stale-store checks
    work = _plan(graph, encoder, store_dir, options, graph_record, log)
    progress = Progress(sum(m.inputs for m in work), options.progress)
    try:
        for mod in work:
            if mod.plan.rows:
                _encode(mod, encoder, store_dir, options, graph_record, progress)
    finally:
        progress.close()
    for mod in work:
        if mod.plan.rows:
            _merge(mod, store_dir / mod.modality, options.shard, log)
    return [m.result for m in work]


def _plan(
    graph: Graph, encoder: Encoder, store_dir: Path, options: EncodeOptions, graph_record: dict, log: Log
) -> list[_Modality]:
    """Plan each modality the encoder reads, prepare its directory and list this process's
    shards that are not complete yet."""
    rank, world = options.shard
    offset = 0  # shards are dealt to ranks round-robin across all modalities
    work = []
    for modality in (m for m in MODALITIES if m in options.modalities):
        if (IMAGE if modality == IMAGE else TEXT) not in encoder.modalities:
            continue
        plan = options.plan(graph, modality)
        settings = modality_settings(modality, encoder, options)
        result = ModalityResult(
            modality,
            encoder.info.dims[IMAGE if modality == IMAGE else TEXT],
            ShardCounts(total=plan.num_shards),
            planned_rows=plan.rows,
            missing_rows=int(plan.missing.get("count", 0)),
        )
        mod = _Modality(modality, plan, result, settings, fingerprint(modality, encoder, settings))
        work.append(mod)
        owns = partial(_owns, base=offset, rank=rank, world=world)
        owned = [k for k in range(plan.num_shards) if owns(k)]
        offset += plan.num_shards
        if plan.rows == 0:
            owner = "relation" if modality == RELATION_TEXT else "entity"
            log(f"{modality}: no {owner} has it; nothing to encode")
            continue
        mod_dir = store_dir / modality
        prepare_store(
            mod_dir, fingerprint=mod.fingerprint, owns=owns, num_shards=plan.num_shards, force=options.force
        )
        for index in owned:
            result.shards.owned += 1
            shard = ShardTask(modality, index, plan.rows_of(index), plan.inputs_sha256(index))
            if shard_is_complete(mod_dir, index, mod.fingerprint, shard.inputs_sha256):
                result.shards.skipped += 1
                _refresh_sidecar(mod_dir, index, num_shards=plan.num_shards, graph=graph_record)
            else:
                mod.pending.append(shard)
    return work


def _owns(index: int, *, base: int, rank: int, world: int) -> bool:
    """Whether this process (``rank`` of ``world``) writes shard ``index`` of a modality whose
    shards are numbered from ``base`` in the run's round-robin."""
    return (base + index) % world == rank


def _encode(
    mod: _Modality,
    encoder: Encoder,
    store_dir: Path,
    options: EncodeOptions,
    graph_record: dict,
    progress: Progress,
) -> None:
    """Encode and write a modality's pending shards."""
    sidecar = {
        "format_version": FORMAT_VERSION,
        "modality": mod.modality,
        "fingerprint": mod.fingerprint,
        "num_shards": mod.plan.num_shards,
        "encoder": encoder.info.as_dict(),
        "settings": mod.settings,
        "versions": encoder_library_versions(),
        "graph": graph_record,
    }
    run = BatchRun(
        encoder,
        mod.plan,
        mod.pending,
        ShardWriter(store_dir / mod.modality, mod.plan, sidecar, mod.result),
        progress,
        batch_size=options.batch_size,
        workers=options.num_workers,
        pool=options.pool,
        normalize=options.normalize,
    )
    started = time.perf_counter()
    (encode_images if mod.modality == IMAGE else encode_texts)(run)
    mod.result.seconds = time.perf_counter() - started


def _merge(mod: _Modality, mod_dir: Path, shard: tuple[int, int], log: Log) -> None:
    """Merge a modality once all its shards are there (another rank may still be at work)."""
    rank, world = shard
    if not all((mod_dir / sidecar_name(k)).is_file() for k in range(mod.plan.num_shards)):
        log(f"{mod.modality}: shard {rank}/{world} done; run `vlkge encode --merge` once every shard is")
        return
    try:
        merge_store(mod_dir)
        mod.result.merged = True
    except IncompleteStoreError as exc:
        if world == 1:
            raise
        log(f"{mod.modality}: not merged yet: {exc}")


def _refresh_sidecar(mod_dir: Path, index: int, **current: Any) -> None:
    """A complete shard kept from another version of the graph (same rows and inputs, so the same
    vectors): record the current plan size and graph hashes in its sidecar, so the merge sees one
    plan and one graph."""
    record = read_sidecar(mod_dir, index)
    if record is not None and any(record.get(k) != v for k, v in current.items()):
        write_json_atomic(mod_dir / sidecar_name(index), {**record, **current})


def feature_store_dir(data_dir: str | Path, dataset: str, encode: EncodeConfig) -> Path:
    """``data/<ds>/features/<store>/`` of the ``encode:`` section (``encode.store`` or the model)."""
    return features_dir(data_dir, dataset) / encode.store_name


def run_encode(
    data_dir: str | Path,
    dataset: str,
    encode: EncodeConfig,
    *,
    shard: tuple[int, int] = (0, 1),
    force: bool = False,
    progress: bool = True,
    log: Log = _stderr,
) -> list[ModalityResult]:
    """Read ``data/<ds>/graph``, build the encoder of the ``encode:`` section, encode into its
    feature store."""
    graph = read_graph(graph_dir(data_dir, dataset))
    options = EncodeOptions.from_config(encode, shard=shard, force=force, progress=progress)
    encoder = build_encoder(encode.model, **encode.encoder_options())
    return encode_graph(graph, encoder, feature_store_dir(data_dir, dataset, encode), options, log=log)
