"""The feature store on disk: ``data/<ds>/features/<store>/<modality>/`` (GUIDE §2).

Layout of one modality directory::

    part-00000.parquet   id column (int32) + embedding fixed_size_list<float32>[d]
    part-00000.json      the shard's sidecar: rows, sha256, fingerprint, inputs hash, failures
    ...
    manifest.json        written by :func:`merge_store` once every shard is complete
    report.json          skipped inputs (unreadable images, missing text), counted and listed

A shard is written under a temporary name and renamed when complete, then its sidecar is
written the same way; a shard counts as complete only when its sidecar matches the file
(sha256) and the job's current fingerprint and inputs. The ``manifest.json`` exists only for a
complete, consistent store: :func:`load_features` refuses a directory without one.

Nothing here knows about encoders or datasets: the encode job (:mod:`vlkge.encoding`) passes
fingerprints and sidecar contents in.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from vlkge.errors import ConfigError, InputError
from vlkge.fileio import (
    atomic_path,
    read_json_object,
    read_parquet,
    remove_temporary,
    sha256_file,
    write_json_atomic,
)
from vlkge.graph import Graph, graph_hashes

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
REPORT = "report.json"
EMBEDDING = "embedding"
_PART = re.compile(r"^part-(\d{5})\.(parquet|json)$")
_TMP = re.compile(r"^\.part-(\d{5})\.(parquet|json)\..*\.tmp$")


def shard_name(index: int) -> str:
    """``part-00007.parquet`` for shard 7."""
    return f"part-{index:05d}.parquet"


def sidecar_name(index: int) -> str:
    return f"part-{index:05d}.json"


# ----------------------------------------------------------------------------- writing


def write_shard(
    mod_dir: Path,
    index: int,
    ids: np.ndarray,
    vectors: np.ndarray,
    *,
    id_column: str,
    sidecar: dict[str, Any],
) -> dict[str, Any]:
    """Write shard ``index`` atomically, then its sidecar; return the sidecar as written.

    ``ids``: int [n]; ``vectors``: float32 [n, d] (C-contiguous). ``sidecar`` must hold at least
    ``fingerprint``, ``inputs_sha256`` and ``num_shards``; rows, dim, file and sha256 are added.
    """
    ids = np.ascontiguousarray(ids, dtype=np.int32)
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    if vectors.ndim != 2 or vectors.shape[0] != ids.shape[0]:
        raise ValueError(f"vectors {vectors.shape} do not match ids {ids.shape}")
    dim = int(vectors.shape[1])
    flat = pa.array(vectors.reshape(-1), type=pa.float32())
    table = pa.table(
        {
            id_column: pa.array(ids, type=pa.int32()),
            EMBEDDING: pa.FixedSizeListArray.from_arrays(flat, dim),
        }
    )
    target = mod_dir / shard_name(index)
    with atomic_path(target) as tmp:
        pq.write_table(
            table,
            tmp,
            compression="snappy",
            use_dictionary=[id_column],
            write_statistics=[id_column],
        )
    record = {
        **sidecar,
        "shard": index,
        "file": target.name,
        "id_column": id_column,
        "rows": int(ids.shape[0]),
        "dim": dim,
        "sha256": sha256_file(target),
    }
    write_json_atomic(mod_dir / sidecar_name(index), record)
    return record


def read_sidecar(mod_dir: Path, index: int) -> dict[str, Any] | None:
    """The sidecar of shard ``index``, or ``None`` when absent or unreadable."""
    path = mod_dir / sidecar_name(index)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def shard_is_complete(mod_dir: Path, index: int, fingerprint: str, inputs_sha256: str) -> bool:
    """True when shard ``index`` exists, matches its sidecar's sha256, and was made by the same
    encoder configuration (``fingerprint``) from the same inputs (``inputs_sha256``)."""
    record = read_sidecar(mod_dir, index)
    if record is None:
        return False
    if record.get("fingerprint") != fingerprint or record.get("inputs_sha256") != inputs_sha256:
        return False
    path = mod_dir / shard_name(index)
    return path.is_file() and sha256_file(path) == record.get("sha256")


def _parts(mod_dir: Path) -> dict[int, set[str]]:
    """Shard index → the kinds present (``parquet``, ``json``)."""
    found: dict[int, set[str]] = {}
    if mod_dir.is_dir():
        for path in mod_dir.iterdir():
            match = _PART.match(path.name)
            if match:
                found.setdefault(int(match.group(1)), set()).add(match.group(2))
    return found


def prepare_store(
    mod_dir: Path,
    *,
    fingerprint: str,
    owns: Callable[[int], bool],
    num_shards: int,
    force: bool,
) -> None:
    """Get a modality directory ready for a (re-)run by the process that ``owns`` some shards.

    - removes temporary files a killed run left for this process's shards;
    - refuses, unless ``force``, a directory holding shards of another encoder configuration
      (another fingerprint): mixing them would give a store of two encoders or two dims; with
      ``force`` this process's such shards are deleted (other ranks' are left to them);
    - deletes this process's shards numbered ``num_shards`` or more (the plan shrank);
    - removes ``manifest.json`` and ``report.json``: the store is about to change.
    """
    mod_dir.mkdir(parents=True, exist_ok=True)
    for path in mod_dir.iterdir():
        match = _TMP.match(path.name)
        if match and owns(int(match.group(1))):
            remove_temporary(path)
    parts = _parts(mod_dir)
    foreign = []
    for index, kinds in sorted(parts.items()):
        record = read_sidecar(mod_dir, index) if "json" in kinds else None
        if record is not None and record.get("fingerprint") != fingerprint:
            foreign.append(index)
    if foreign and not force:
        record = read_sidecar(mod_dir, foreign[0]) or {}
        other = record.get("encoder", {}).get("id", "?")
        raise ConfigError(
            f"the store already holds {len(foreign)} shard(s) of another encoder configuration "
            f"({other}, dim {record.get('dim')})",
            path=mod_dir,
            hint="re-run with --force to replace them, or write to another store (--store NAME)",
        )
    for index in parts:
        if owns(index) and (index in foreign or index >= num_shards):
            (mod_dir / shard_name(index)).unlink(missing_ok=True)
            (mod_dir / sidecar_name(index)).unlink(missing_ok=True)
    (mod_dir / MANIFEST).unlink(missing_ok=True)
    (mod_dir / REPORT).unlink(missing_ok=True)


# ----------------------------------------------------------------------------- merging


class IncompleteStoreError(InputError):
    """A feature store with missing, damaged or mixed shards."""


def _library_versions_note(records: list[dict[str, Any]]) -> dict[str, Any]:
    versions = [json.dumps(r.get("versions", {}), sort_keys=True) for r in records]
    if len(set(versions)) <= 1:
        return {"versions": records[0].get("versions", {})}
    return {
        "versions": records[0].get("versions", {}),
        "versions_differ_between_shards": sorted(set(versions)),
    }


def merge_store(mod_dir: Path) -> dict[str, Any]:
    """Check every shard against its sidecar and write ``manifest.json`` and ``report.json``.

    Refuses (``IncompleteStoreError``) a store with a missing shard, a shard without sidecar or
    vice versa, a sha256 or row-count mismatch, shards of different fingerprints or dims
    (two encoders in one store) or of different graph versions, or an entity present in two
    shards. The sidecars' ``graph`` (:func:`vlkge.graph.graph_hashes` of the graph encoded) goes
    into the manifest so a later change of the graph is detected (:func:`check_graph`). Returns
    the manifest.
    """
    mod_dir = Path(mod_dir)
    parts = _parts(mod_dir)
    if not parts:
        raise IncompleteStoreError("no feature shards here", path=mod_dir, hint="run `vlkge encode`")
    records, problems = _sidecars(mod_dir, parts)
    if records:
        problems += _mixed(records) + _plan_gaps(records, parts) + _damaged(mod_dir, records)
    _refuse(
        problems,
        mod_dir,
        "incomplete or mixed feature store",
        "re-run `vlkge encode` (all shards) or use --force to rebuild it",
    )
    ordered = [records[i] for i in sorted(records)]
    _check_unique_ids(mod_dir, ordered)
    manifest = _manifest(ordered)
    write_json_atomic(mod_dir / REPORT, _report(manifest, ordered))
    write_json_atomic(mod_dir / MANIFEST, manifest)
    return manifest


def _sidecars(mod_dir: Path, parts: dict[int, set[str]]) -> tuple[dict[int, dict[str, Any]], list[str]]:
    """The readable sidecars of complete shard pairs by index, and what is wrong with the others."""
    problems: list[str] = []
    records: dict[int, dict[str, Any]] = {}
    for index, kinds in sorted(parts.items()):
        if kinds != {"parquet", "json"}:
            missing = "sidecar" if "json" not in kinds else "parquet file"
            problems.append(f"shard {index}: {missing} missing")
            continue
        record = read_sidecar(mod_dir, index)
        if record is None:
            problems.append(f"shard {index}: unreadable sidecar")
            continue
        records[index] = record
    return records, problems


def _mixed(records: dict[int, dict[str, Any]]) -> list[str]:
    """Sidecars that disagree on what must be one per store (encoder, dim, plan, graph)."""
    problems = []
    for key, what in (
        ("fingerprint", "encoder configurations"),
        ("dim", "dims"),
        ("num_shards", "shard plans"),
        ("id_column", "id columns"),
        ("graph", "graph versions (re-run `vlkge encode` on the current graph)"),
    ):
        values = {json.dumps(r.get(key), sort_keys=True) for r in records.values()}
        if len(values) > 1:
            problems.append(f"mixed store: {len(values)} different {what} ({', '.join(sorted(values))})")
    return problems


def _plan_gaps(records: dict[int, dict[str, Any]], parts: dict[int, set[str]]) -> list[str]:
    """Shards of the plan that are missing, and shards beyond it."""
    num_shards = int(records[min(records)].get("num_shards", 0))
    expected = set(range(num_shards))
    problems = []
    absent = sorted(expected - set(parts))
    if absent:
        shown = ", ".join(map(str, absent[:10])) + (" …" if len(absent) > 10 else "")
        problems.append(f"{len(absent)} of {num_shards} shards missing: {shown}")
    extra = sorted(set(parts) - expected)
    if extra:
        problems.append(f"shards beyond the plan of {num_shards}: {extra[:10]}")
    return problems


def _damaged(mod_dir: Path, records: dict[int, dict[str, Any]]) -> list[str]:
    """Shards whose sha256 or row count differ from their sidecars."""
    problems = []
    for index, record in sorted(records.items()):
        path = mod_dir / shard_name(index)
        if sha256_file(path) != record.get("sha256"):
            problems.append(f"shard {index}: sha256 differs from its sidecar")
            continue
        rows = pq.ParquetFile(path).metadata.num_rows
        if rows != record.get("rows"):
            problems.append(f"shard {index}: {rows} rows, sidecar says {record.get('rows')}")
    return problems


def _manifest(ordered: list[dict[str, Any]]) -> dict[str, Any]:
    """The manifest of a consistent store from its sidecars in shard order."""
    first = ordered[0]
    encoder = first.get("encoder", {})
    return {
        "format_version": FORMAT_VERSION,
        "modality": first.get("modality"),
        "id_column": first["id_column"],
        "encoder": encoder,
        "encoder_id": encoder.get("id"),
        "weights_id": encoder.get("weights_id"),
        "weights_sha256": encoder.get("weights_sha256"),
        "dim": first["dim"],
        "dtype": "float32",
        "normalisation": first.get("settings", {}).get("normalisation"),
        "settings": first.get("settings", {}),
        "fingerprint": first["fingerprint"],
        "rows": sum(int(r["rows"]) for r in ordered),
        "num_shards": len(ordered),
        "shards": [{"name": r["file"], "rows": r["rows"], "sha256": r["sha256"]} for r in ordered],
        "report": REPORT,
        "graph": first.get("graph"),
        **_library_versions_note(ordered),
    }


def _refuse(problems: list[str], mod_dir: Path, what: str, hint: str) -> None:
    """IncompleteStoreError "<what>: <problem>; <problem>…" when there are problems."""
    if problems:
        raise IncompleteStoreError(f"{what}: " + "; ".join(problems), path=mod_dir, hint=hint)


def _check_unique_ids(mod_dir: Path, records: list[dict[str, Any]]) -> None:
    column = records[0]["id_column"]
    ids = [pq.read_table(mod_dir / r["file"], columns=[column]).column(column).to_numpy() for r in records]
    all_ids = np.concatenate(ids) if ids else np.zeros(0, np.int32)
    if np.unique(all_ids).shape[0] != all_ids.shape[0]:
        raise IncompleteStoreError("an id occurs in more than one row", path=mod_dir)


def _report(manifest: dict[str, Any], records: list[dict[str, Any]]) -> dict[str, Any]:
    failures = [f for r in records for f in r.get("failures", [])]
    dropped = [d for r in records for d in r.get("dropped", [])]
    missing: dict[str, Any] = {}
    for r in records:
        if r.get("missing"):
            missing = r["missing"]
    return {
        "modality": manifest["modality"],
        "planned": sum(int(r.get("planned", r["rows"])) for r in records),
        "rows": manifest["rows"],
        "inputs": sum(int(r.get("inputs", r["rows"])) for r in records),
        "failed_inputs": len(failures),
        "dropped_without_any_valid_input": len(dropped),
        "missing": missing,
        "failures": failures,
        "dropped": dropped,
    }


# ----------------------------------------------------------------------------- reading


def read_manifest(mod_dir: str | Path) -> dict[str, Any]:
    """``manifest.json`` of a complete store; InputError naming the fix otherwise."""
    path = Path(mod_dir) / MANIFEST
    if not path.is_file():
        raise IncompleteStoreError(
            "no manifest.json: the feature store is missing or incomplete",
            path=Path(mod_dir),
            hint="run `vlkge encode` (and `vlkge encode --merge` after sharded runs)",
        )
    manifest = read_json_object(
        path, hint="run `vlkge encode --merge` to rewrite it", error=IncompleteStoreError
    )
    required = {"rows": int, "dim": int, "id_column": str, "shards": list}
    bad = [k for k, kind in required.items() if not isinstance(manifest.get(k), kind)]
    if not bad and (manifest["rows"] < 0 or manifest["dim"] < 1):
        bad = ["rows", "dim"]
    for entry in manifest.get("shards") or []:
        if not (isinstance(entry, dict) and _PART.match(str(entry.get("name")))):
            bad.append("shards")
            break
    if bad:
        raise IncompleteStoreError(
            f"manifest lacks or mistypes {bad}", path=path, hint="run `vlkge encode --merge` to rewrite it"
        )
    return manifest


def check_graph(manifest: dict[str, Any], graph: Graph, mod_dir: str | Path) -> None:
    """Refuse a store encoded from another version of ``graph`` (a :class:`~vlkge.graph.Graph`):
    the manifest's graph hashes (``merge_store(graph=...)``) must match the graph's files."""
    then = manifest.get("graph") or {}
    now = graph_hashes(graph)
    table = "relations" if manifest.get("id_column") == "relation_id" else "entities"
    if not then or then.get(f"{table}_sha256") == now[f"{table}_sha256"]:
        return  # no record (a low-level merge_store call without graph): nothing to compare
    encoder = (manifest.get("encoder") or {}).get("name") or manifest.get("encoder_id") or "MODEL"
    store = Path(mod_dir).parent.name
    dataset = now.get("dataset") or "DATASET"
    command = f"vlkge encode {dataset} --model {encoder}" + (f" --store {store}" if store != encoder else "")
    raise InputError(
        f"stale feature store: it was encoded from another version of the graph ({table}.parquet "
        f"changed: {then.get(table)} {table} then, {now[table]} now)",
        path=Path(mod_dir) / MANIFEST,
        hint=f"re-encode with `{command}` (complete shards are reused)",
    )


def check_store(mod_dir: str | Path) -> dict[str, Any]:
    """Verify a merged store: every shard listed in the manifest present with its sha256/rows,
    and no unlisted shard. Returns the manifest."""
    mod_dir = Path(mod_dir)
    manifest = read_manifest(mod_dir)
    listed = {s["name"] for s in manifest["shards"]}
    problems = []
    for shard in manifest["shards"]:
        path = mod_dir / shard["name"]
        if not path.is_file():
            problems.append(f"{shard['name']} missing")
        elif sha256_file(path) != shard.get("sha256"):
            problems.append(f"{shard['name']}: sha256 differs from the manifest")
        elif _num_rows(path) != shard.get("rows"):
            problems.append(f"{shard['name']}: row count differs from the manifest")
    unlisted = sorted(p.name for p in mod_dir.glob("part-*.parquet") if p.name not in listed)
    if unlisted:
        problems.append(f"shards not in the manifest: {unlisted[:10]}")
    _refuse(
        problems,
        mod_dir,
        "feature store does not match its manifest",
        "re-run `vlkge encode`: damaged shards are redone and the manifest rewritten",
    )
    return manifest


def _num_rows(path: Path) -> int | None:
    """Rows of a Parquet shard, or None when it is not readable Parquet."""
    try:
        return pq.ParquetFile(path).metadata.num_rows
    except (OSError, pa.ArrowException):
        return None


@dataclass(frozen=True)
class FeatureTable:
    """One modality's features: ``ids`` LongTensor [n] and ``values`` FloatTensor [n, d]
    (contiguous float32, row i belongs to id ``ids[i]``), plus the manifest."""

    ids: torch.Tensor
    values: torch.Tensor
    manifest: dict[str, Any]

    @property
    def dim(self) -> int:
        return int(self.values.shape[1])

    def dense(self, num: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Scatter into ``(matrix [num, d] float32, mask [num] bool)``; absent rows are zero
        and masked out (never use them without the mask)."""
        if self.ids.numel() and int(self.ids.max()) >= num:
            raise InputError(f"feature ids reach {int(self.ids.max())} but the graph has {num} entities")
        matrix = torch.zeros(num, self.dim, dtype=torch.float32)
        mask = torch.zeros(num, dtype=torch.bool)
        matrix[self.ids] = self.values
        mask[self.ids] = True
        return matrix, mask


def load_features(mod_dir: str | Path, *, verify: bool = False, graph: Graph | None = None) -> FeatureTable:
    """Load a complete modality store into one contiguous float32 tensor.

    Reads each shard with pyarrow (memory-mapped), takes the flat float buffer of the
    fixed-size-list column without per-row Python, and copies it into a preallocated
    [rows, d] tensor. ``verify`` re-hashes every shard against the manifest first. With
    ``graph`` the store must have been encoded from that graph (:func:`check_graph`) and its ids
    must lie in its range. Refuses non-finite values, negative and repeated ids.
    """
    mod_dir = Path(mod_dir)
    manifest = check_store(mod_dir) if verify else read_manifest(mod_dir)
    if graph is not None:
        check_graph(manifest, graph, mod_dir)
    rows, dim, column = int(manifest["rows"]), int(manifest["dim"]), manifest["id_column"]
    values = np.empty((rows, dim), dtype=np.float32)
    ids = np.empty(rows, dtype=np.int64)
    offset = 0
    for shard in manifest["shards"]:
        table = read_parquet(
            mod_dir / shard["name"],
            what=f"unreadable shard {shard['name']}",
            hint="re-run `vlkge encode` (damaged shards are redone)",
            where=mod_dir,
            error=IncompleteStoreError,
            columns=[column, EMBEDDING],
            memory_map=True,
        )
        n = table.num_rows
        if offset + n > rows:
            raise IncompleteStoreError("shards hold more rows than the manifest says", path=mod_dir)
        ids[offset : offset + n] = table.column(column).to_numpy()
        at = offset
        for chunk in table.column(EMBEDDING).chunks:
            size = getattr(chunk.type, "list_size", None)
            if size != dim:
                raise IncompleteStoreError(
                    f"{shard['name']} has dim {size}, the manifest says {dim}",
                    path=mod_dir,
                    hint="re-encode it: `vlkge encode --force` rebuilds the store",
                )
            flat = chunk.flatten().to_numpy(zero_copy_only=False)
            values[at : at + len(chunk)] = flat.reshape(len(chunk), dim)
            at += len(chunk)
        offset += n
    if offset != rows:
        raise IncompleteStoreError(f"shards hold {offset} rows, the manifest says {rows}", path=mod_dir)
    _check_values(mod_dir, ids, values, manifest, graph)
    return FeatureTable(ids=torch.from_numpy(ids), values=torch.from_numpy(values), manifest=manifest)


def _check_values(
    mod_dir: Path, ids: np.ndarray, values: np.ndarray, manifest: dict, graph: Graph | None
) -> None:
    """Ids non-negative, unique and (with ``graph``) in range; every value finite."""
    hint = "re-encode it: `vlkge encode --force` rebuilds the store"
    finite = np.isfinite(values).all(axis=1)
    if not finite.all():
        first = int(ids[np.flatnonzero(~finite)[0]])
        raise IncompleteStoreError(
            f"{int((~finite).sum())} row(s) hold NaN or infinite values (first: id {first})",
            path=mod_dir,
            hint=hint,
        )
    if ids.size and int(ids.min()) < 0:
        raise IncompleteStoreError(f"negative id {int(ids.min())} in the store", path=mod_dir, hint=hint)
    if np.unique(ids).shape[0] != ids.shape[0]:
        raise IncompleteStoreError("an id occurs in more than one row", path=mod_dir, hint=hint)
    if graph is not None and ids.size:
        size = graph.num_relations if manifest["id_column"] == "relation_id" else graph.num_entities
        if int(ids.max()) >= size:
            raise IncompleteStoreError(
                f"ids reach {int(ids.max())} but the graph has {size}", path=mod_dir, hint=hint
            )
