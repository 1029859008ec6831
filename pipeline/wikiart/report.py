"""Reporting on a built WikiArt-MKG graph: counts per split and relation, modalities per type."""

from __future__ import annotations

from typing import Any

import polars as pl
from vlkge.pipeline.assemble import Assembled


def count_by_split(frame: pl.DataFrame) -> dict[str, int]:
    return {s: int((frame["split"] == s).sum()) for s in ("train", "valid", "test")}


def split_counts(triples: pl.DataFrame, relation_keys: list[str]) -> dict[str, Any]:
    """Per split: triples, distinct entities and relations, triples per relation."""
    out: dict[str, Any] = {}
    for split in ("train", "valid", "test"):
        part = triples.filter(pl.col("split") == split)
        per = part.group_by("relation").len().sort("relation")
        out[split] = {
            "triples": part.height,
            "entities": pl.concat([part["head"], part["tail"]]).n_unique(),
            "relations": part["relation"].n_unique(),
            "per_relation": {relation_keys[r]: n for r, n in per.iter_rows()},
        }
    return out


def format_split_counts(splits: dict[str, Any]) -> str:
    return "\n".join(
        f"{s}: {c['triples']:,} triples, {c['entities']:,} entities, {c['relations']} relations"
        for s, c in splits.items()
    )


def _modality_by_type(entities: pl.DataFrame) -> dict[str, dict[str, int]]:
    text = pl.col("text").is_not_null()
    image = pl.col("images").list.len() > 0
    table = entities.group_by("type").agg(
        count=pl.len(), text=text.sum(), image=image.sum(), neither=(~text & ~image).sum()
    )
    return {
        r["type"]: {k: int(r[k]) for k in ("count", "text", "image", "neither")}
        for r in table.sort("type").iter_rows(named=True)
    }


def _orphans(entities: pl.DataFrame, triples: pl.DataFrame) -> dict[str, Any]:
    """Entities with no text, no image and no train triple: nothing to represent them by."""
    train = triples.filter(pl.col("split") == "train")
    seen = pl.concat([train["head"], train["tail"]]).unique().to_frame("entity_id")
    none = entities.filter(pl.col("text").is_null() & (pl.col("images").list.len() == 0))
    orphans = none.join(seen, on="entity_id", how="anti")
    return {"count": orphans.height, "by_type": dict(orphans.group_by("type").len().sort("type").iter_rows())}


def graph_report(assembled: Assembled) -> dict[str, Any]:
    """What ``meta.json`` reports on an assembled WikiArt graph: counts per split and relation,
    modalities per entity type, entities with nothing to represent them by."""
    return {
        "splits": split_counts(assembled.triples, assembled.relations["key"].to_list()),
        "modalities_by_type": _modality_by_type(assembled.entities),
        "without_modality_or_structure": _orphans(assembled.entities, assembled.triples),
    }
