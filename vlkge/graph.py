"""The canonical graph: entities, relations and triples as Parquet, plus ``meta.json``.

Every stage after ``clean`` reads a graph through :func:`read_graph` and never needs to know which
dataset it came from; dataset knowledge lives in ``pipeline/`` and in ``meta.json``'s protocol.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from vlkge.errors import InputError
from vlkge.fileio import atomic_path, read_json_object, read_parquet, remove_temporaries, sha256_file

SPLITS: tuple[str, ...] = ("train", "valid", "test")
GRAPH_FORMAT_VERSION = 1

ENTITY_SCHEMA = pa.schema(
    [
        ("entity_id", pa.int32()),
        ("key", pa.string()),
        ("type", pa.string()),
        ("name", pa.string()),
        ("text", pa.string()),
        ("images", pa.list_(pa.string())),
    ]
)
RELATION_SCHEMA = pa.schema([("relation_id", pa.int32()), ("key", pa.string())])
TRIPLE_SCHEMA = pa.schema(
    [
        ("head", pa.int32()),
        ("relation", pa.int32()),
        ("tail", pa.int32()),
        ("split", pa.string()),
    ]
)

DEFAULT_PROTOCOL: dict[str, Any] = {
    "directions": "both",  # both | tail
    "candidate_pools": "all",  # all | per_relation
    "excluded_relations": [],  # relation keys never evaluated
    "inductive": False,  # valid/test entities may be absent from train
    "relation_downsampling": {},  # relation key -> fraction of its train triples per epoch
}


@dataclass(frozen=True)
class Graph:
    """A canonical graph in memory.

    ``triples[split]`` is an int64 array [n, 3] of (head, relation, tail) ids.
    """

    root: Path
    entities: pl.DataFrame
    relations: pl.DataFrame
    triples: dict[str, np.ndarray]
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def num_entities(self) -> int:
        return self.entities.height

    @property
    def num_relations(self) -> int:
        return self.relations.height

    @property
    def protocol(self) -> dict[str, Any]:
        return {**DEFAULT_PROTOCOL, **self.meta.get("protocol", {})}

    def split(self, name: str) -> torch.Tensor:
        """Triples of one split as a LongTensor [n, 3] (head, relation, tail)."""
        return torch.from_numpy(self.triples[name])

    def in_train(self) -> torch.Tensor:
        """[N] bool: entities that occur in the train split (the others are unseen: inductive)."""
        seen = torch.zeros(self.num_entities, dtype=torch.bool)
        train = self.split("train")
        seen[train[:, 0]] = True
        seen[train[:, 2]] = True
        return seen

    def all_triples(self) -> np.ndarray:
        """Triples of all splits stacked: int64 [n_total, 3]."""
        return self.triples_of(SPLITS)

    def triples_of(self, splits: Sequence[str]) -> np.ndarray:
        """Triples of the named splits stacked: int64 [n, 3] (``("train", "valid")``: what model
        selection may know)."""
        return np.concatenate([self.triples[s] for s in splits], axis=0)

    @cached_property
    def entity_keys(self) -> list[str]:
        return self.entities["key"].to_list()

    @cached_property
    def relation_keys(self) -> list[str]:
        return self.relations["key"].to_list()

    @cached_property
    def relation_index(self) -> dict[str, int]:
        return {key: i for i, key in enumerate(self.relation_keys)}

    def relation_id(self, key: str) -> int:
        try:
            return self.relation_index[key]
        except KeyError:
            raise InputError(
                f"unknown relation {key!r}",
                path=self.root / "relations.parquet",
                hint=f"choose one of: {', '.join(self.relation_keys[:20])}",
            ) from None

    def modality_counts(self) -> dict[str, int]:
        """Entities with text, with at least one image, with both, with neither."""
        has_text = self.entities["text"].is_not_null() & (self.entities["text"].str.len_chars() > 0)
        has_image = self.entities["images"].list.len().fill_null(0) > 0
        return {
            "text": int(has_text.sum()),
            "image": int(has_image.sum()),
            "both": int((has_text & has_image).sum()),
            "none": int((~has_text & ~has_image).sum()),
        }

    def summary(self) -> dict[str, Any]:
        """Counts printed after ``clean`` and stored in ``meta.json``."""
        return {
            "entities": self.num_entities,
            "relations": self.num_relations,
            "triples": {s: len(self.triples[s]) for s in SPLITS},
            "modalities": self.modality_counts(),
        }


def format_summary(summary: dict[str, Any]) -> str:
    """One readable block: entities, relations, triples per split, entities by modality."""
    t, m = summary["triples"], summary["modalities"]
    return (
        f"entities {summary['entities']:,} | relations {summary['relations']:,} | "
        f"triples train {t['train']:,} / valid {t['valid']:,} / test {t['test']:,}\n"
        f"entities with text {m['text']:,} | image {m['image']:,} | both {m['both']:,} | "
        f"none {m['none']:,}"
    )


def _check_schema(table: pa.Table, schema: pa.Schema, path: Path) -> pa.Table:
    missing = [f.name for f in schema if f.name not in table.column_names]
    if missing:
        raise InputError(
            f"missing columns {missing}",
            path=path,
            hint="rebuild the graph with `vlkge clean`",
        )
    try:
        return table.select(schema.names).cast(schema)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise InputError(f"columns of the wrong type ({exc})", path=path) from None


def validate_graph(graph: Graph) -> None:
    """Check the contract: dense ids, ids in range, known splits. Raises InputError."""
    n, r = graph.num_entities, graph.num_relations
    ids = graph.entities["entity_id"].to_numpy()
    if not np.array_equal(ids, np.arange(n)):
        raise InputError("entity_id must be dense 0..N-1 in order", path=graph.root / "entities.parquet")
    rids = graph.relations["relation_id"].to_numpy()
    if not np.array_equal(rids, np.arange(r)):
        raise InputError("relation_id must be dense 0..R-1 in order", path=graph.root / "relations.parquet")
    for split, arr in graph.triples.items():
        if arr.size == 0:
            continue
        if arr[:, [0, 2]].min() < 0 or arr[:, [0, 2]].max() >= n:
            raise InputError(
                f"{split} triples hold entity ids out of range", path=graph.root / "triples.parquet"
            )
        if arr[:, 1].min() < 0 or arr[:, 1].max() >= r:
            raise InputError(
                f"{split} triples hold relation ids out of range",
                path=graph.root / "triples.parquet",
            )


def write_graph(
    out_dir: str | Path,
    entities: pl.DataFrame,
    relations: pl.DataFrame,
    triples: pl.DataFrame,
    meta: dict[str, Any],
) -> Graph:
    """Write a canonical graph directory atomically and return it as read back.

    ``entities``/``relations``/``triples`` must carry the contract's columns (extra columns are
    dropped). ``meta`` gets the summary counts, the format version and the protocol defaults.
    The whole directory is built under a temporary name and renamed at the end.
    """
    out_dir = Path(out_dir)
    ent = _check_schema(entities.to_arrow(), ENTITY_SCHEMA, out_dir / "entities.parquet")
    rel = _check_schema(relations.to_arrow(), RELATION_SCHEMA, out_dir / "relations.parquet")
    tri = _check_schema(triples.to_arrow(), TRIPLE_SCHEMA, out_dir / "triples.parquet")
    unknown = set(tri.column("split").to_pylist()) - set(SPLITS)
    if unknown:
        raise InputError(f"unknown split labels {sorted(unknown)}", path=out_dir / "triples.parquet")
    graph = _graph_from_tables(out_dir, ent, rel, tri, meta)
    validate_graph(graph)
    full_meta = {
        "format_version": GRAPH_FORMAT_VERSION,
        **meta,
        "protocol": graph.protocol,
        "counts": graph.summary(),
    }
    remove_temporaries(out_dir.parent, (out_dir.name,))  # what a killed clean left
    with atomic_path(out_dir) as tmp:
        tmp.mkdir(parents=True)
        pq.write_table(ent, tmp / "entities.parquet")
        pq.write_table(rel, tmp / "relations.parquet")
        pq.write_table(tri, tmp / "triples.parquet")
        (tmp / "meta.json").write_text(json.dumps(full_meta, indent=2) + "\n", encoding="utf-8")
    return read_graph(out_dir)


def _graph_from_tables(
    root: Path, ent: pa.Table, rel: pa.Table, tri: pa.Table, meta: dict[str, Any]
) -> Graph:
    frame = pl.from_arrow(tri)
    triples = {
        s: frame.filter(pl.col("split") == s)
        .select("head", "relation", "tail")
        .to_numpy()
        .astype(np.int64, copy=False)
        .reshape(-1, 3)
        for s in SPLITS
    }
    return Graph(
        root=root,
        entities=pl.from_arrow(ent),
        relations=pl.from_arrow(rel),
        triples=triples,
        meta=meta,
    )


GRAPH_FILES = ("entities.parquet", "relations.parquet", "triples.parquet", "meta.json")


def graph_file_hashes(graph: Graph, names: tuple[str, ...] = GRAPH_FILES) -> dict[str, str]:
    """sha256 of the graph's files present among ``names``, by file name."""
    return {n: sha256_file(graph.root / n) for n in names if (graph.root / n).is_file()}


def graph_hashes(graph: Graph) -> dict[str, Any]:
    """What the feature store was encoded from: sha256 of ``entities.parquet`` and
    ``relations.parquet`` (the files DVC tracks as the encode stage's dependency) and counts."""
    files = graph_file_hashes(graph, ("entities.parquet", "relations.parquet"))
    return {
        "dataset": graph.meta.get("dataset"),
        "entities": graph.num_entities,
        "relations": graph.num_relations,
        "entities_sha256": files["entities.parquet"],
        "relations_sha256": files["relations.parquet"],
    }


def read_graph(graph_dir: str | Path) -> Graph:
    """Read a canonical graph directory written by :func:`write_graph`."""
    root = Path(graph_dir)
    meta_path = root / "meta.json"
    if not meta_path.is_file():
        raise InputError(
            "no canonical graph here (meta.json missing)",
            path=root,
            hint="run `vlkge crawl` and `vlkge clean` for this dataset first",
        )
    meta = read_json_object(meta_path, hint="re-run `vlkge clean`")
    tables = {}
    for name, schema in (
        ("entities", ENTITY_SCHEMA),
        ("relations", RELATION_SCHEMA),
        ("triples", TRIPLE_SCHEMA),
    ):
        path = root / f"{name}.parquet"
        if not path.is_file():
            raise InputError("file missing from the graph", path=path, hint="re-run `vlkge clean`")
        table = read_parquet(path, what="damaged Parquet file", hint="re-run `vlkge clean`")
        tables[name] = _check_schema(table, schema, path)
    graph = _graph_from_tables(root, tables["entities"], tables["relations"], tables["triples"], meta)
    validate_graph(graph)
    return graph
