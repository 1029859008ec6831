"""Planning a feature store: which rows each store modality encodes, and from what.

For every modality the entities (or relations) that HAVE it are listed in id order and cut into
shards of ``shard_rows`` rows (the unit of resume and of ``--shard i/n``):

- ``image``: the entity's image files (paths relative to the dataset directory);
- ``text``: the entity text built from the graph with ``text_template`` (fields ``{name}``,
  ``{text}``, ``{key}``, ``{type}``); an entity lacking a field of the template has no text;
- ``relation_text``: relation names (``{name}`` = the key in words, ``{key}``).

The encode job encodes a plan; the store checks and fine-tuning re-plan to compare or re-read.
"""

from __future__ import annotations

import hashlib
import json
import re
import string
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from vlkge.errors import ConfigError
from vlkge.graph import Graph
from vlkge.modalities import IMAGE, RELATION_TEXT, TEXT


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


def plan_modality(
    graph: Graph,
    modality: str,
    *,
    text_template: str = "{text}",
    relation_template: str = "{name}",
    shard_rows: int = 2048,
) -> ModalityPlan:
    """List the rows of one modality (see the module docstring)."""
    if modality == RELATION_TEXT:
        frame = graph.relations.with_columns(
            pl.col("key").map_elements(relation_words, return_dtype=pl.String).alias("name")
        )
        texts = fill_template(frame, relation_template, key="encode.relation_template")
        return _text_plan(modality, "relation_id", frame["relation_id"], frame["key"], texts, shard_rows)
    ent = graph.entities
    if modality == TEXT:
        texts = fill_template(
            ent.select("key", "type", "name", "text"),
            text_template,
            key="encode.text_template",
        )
        return _text_plan(modality, "entity_id", ent["entity_id"], ent["key"], texts, shard_rows)
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
        shard_rows=shard_rows,
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
    shard_rows: int,
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
        shard_rows=shard_rows,
        missing={
            "count": int(absent.shape[0]),
            "note": "no text: a field of the template is empty",
            "rows": [{"id": int(all_ids[i]), "key": all_keys[i]} for i in absent],
        },
    )
