"""Building WikiArt-MKG: attribute triples, entity links, the inductive split, the entity table.

:func:`build_wikiart` turns the scrape into string-keyed tables; the shared assembly
(:mod:`vlkge.pipeline.assemble`) checks them and assigns ids.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from vlkge.pipeline.places import country_of
from vlkge.pipeline.wikiart.read import image_table, load_artists, load_artworks
from vlkge.pipeline.wikiart.report import count_by_split
from vlkge.pipeline.wikiart.schema import (
    ARTIST_ATTRIBUTES,
    ARTIST_LINKS,
    ARTWORK_ATTRIBUTES,
    INVERSE,
    SIMILARITY,
    Attribute,
)


def slug_of(text: str) -> str:
    """WikiArt-style slug: accents stripped, lower case, non-alphanumerics → ``-``."""
    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return re.sub(r"[^a-z0-9]+", "-", plain.lower()).strip("-")


def _values(frame: pl.LazyFrame, head: str, column: str, read: str) -> pl.LazyFrame:
    """(head, value) pairs of one attribute column."""
    col = pl.col(column)
    if read == "list":
        value = col.str.split("|")
    elif read == "country":
        value = pl.concat_list(country_of(col))
    else:  # year / artist: one value already computed
        value = pl.concat_list(col)
    return (
        frame.select(pl.col(head).alias("head"), value.alias("value"))
        .explode("value")
        .with_columns(pl.col("value").str.strip_chars())
        .filter(pl.col("value").is_not_null() & (pl.col("value") != ""))
    )


def _attribute_triples(
    frame: pl.LazyFrame, head: str, attrs: tuple[Attribute, ...], wanted: set[str]
) -> list[pl.LazyFrame]:
    """(head, relation, tail key, tail name, tail type) of each wanted attribute relation."""
    parts = []
    for a in attrs:
        if a.relation not in wanted:
            continue
        pairs = _values(frame, head, a.column, a.read)
        tail = "artist:" + pl.col("value") if a.kind == "artist" else a.kind + ":" + pl.col("value")
        parts.append(
            pairs.select(
                "head",
                relation=pl.lit(a.relation),
                tail=tail,
                tail_name=pl.col("value"),
                tail_type=pl.lit(a.kind),
            )
        )
    return parts


@dataclass
class WikiArtTables:
    """What :func:`build_wikiart` returns: string-keyed triples (``head``, ``relation``,
    ``tail``, ``split``) and entities (``key``, ``type``, ``name``, ``text``, ``images``), the
    relation order, the protocol and the clean report (bad input, drops, the split)."""

    triples: pl.DataFrame
    entities: pl.DataFrame
    relation_order: list[str]
    protocol: dict[str, Any]
    report: dict[str, Any]


def build_wikiart(
    artwork_csvs: list[Path],
    artist_csv: Path,
    images: list[str],
    raw_dir: Path,
    relations: list[str],
    spec: dict[str, Any],
    *,
    seed: int,
) -> WikiArtTables:
    """Read the scrape, build the triples of ``relations``, split them and return the tables.

    ``images``: raw-relative paths ``images/<artist>/<title>/<file>``.
    """
    wanted = set(relations)
    bad: dict[str, int] = {}
    dropped: dict[str, Any] = {}
    art = load_artworks(artwork_csvs, int(spec["year_bin"]), bad)
    artists = load_artists(artist_csv, int(spec["life_bin"]), bad)
    described = set(artists["slug"].to_list())
    referenced = set(art["artist"].drop_nulls().unique().to_list())
    bad["artists_referenced_not_described"] = len(referenced - described)
    attr = _attributes(art, artists, wanted, int(spec["min_count"]), dropped)
    split = _Split((float(spec["valid_fraction"]), float(spec["test_fraction"])), seed, dropped)
    triples = split.triples(attr, art, artists, wanted, bad)
    entities = _entities(triples, art, artists, attr, images, raw_dir, bad, bool(spec["artwork_text"]))
    present = set(triples["relation"].unique().to_list())
    report = {
        "bad_input": bad,
        "dropped": dropped,
        "split": {
            "seed": seed,
            "inductive_by": "artwork",
            "held_out_artworks": count_by_split(split.artworks),
            "disjoint_artist_sets": count_by_split(split.artists),
            "disjoint_relations": [r for r in (*ARTIST_LINKS, *SIMILARITY) if r in present],
        },
    }
    order = [r for r in relations if r in present]
    return WikiArtTables(triples, entities, order, _protocol(spec, present), report)


def _protocol(spec: dict[str, Any], present: set[str]) -> dict[str, Any]:
    """Tail prediction over per-relation pools, similarity and inverse relations excluded."""
    return {
        "directions": "tail",
        "candidate_pools": "per_relation",
        "excluded_relations": [r for r in (*SIMILARITY, INVERSE) if r in present],
        "inductive": True,
        "relation_downsampling": {
            k: float(v) for k, v in (spec.get("downsampling") or {}).items() if k in present
        },
    }


def _attributes(
    art: pl.DataFrame, artists: pl.DataFrame, wanted: set[str], min_count: int, dropped: dict[str, Any]
) -> pl.DataFrame:
    """Artwork → attribute and artist → attribute triples (``group`` 0 and 1), attributes seen
    fewer than ``min_count`` times dropped and counted."""
    parts = _attribute_triples(art.lazy(), "key", ARTWORK_ATTRIBUTES, wanted)
    parts += _attribute_triples(artists.lazy(), "key", ARTIST_ATTRIBUTES, wanted)
    attr = pl.concat(parts).collect() if parts else _empty_triples()
    attr = attr.unique(["head", "relation", "tail"], maintain_order=True)
    counts = attr.group_by("tail").len("n")
    rare = counts.filter(pl.col("n") < min_count)
    dropped_rare = attr.join(rare.select("tail"), on="tail", how="semi")
    dropped["rare_attribute_triples"] = dict(sorted(dropped_rare.group_by("relation").len().iter_rows()))
    dropped["rare_attributes"] = rare.height
    attr = attr.join(rare.select("tail"), on="tail", how="anti", maintain_order="left")
    return attr.with_columns(group=pl.when(pl.col("head").str.starts_with("artwork:")).then(0).otherwise(1))


class _Split:
    """The inductive split: artworks held out with all their triples, disjoint artist sets for
    artist → artist links, artist → attribute triples at random; all seeded."""

    def __init__(self, fractions: tuple[float, float], seed: int, dropped: dict[str, Any]) -> None:
        self.fractions, self.seed, self.dropped = fractions, seed, dropped
        self.artworks = pl.DataFrame(schema={"key": pl.String, "split": pl.String})
        self.artists = self.artworks

    def triples(
        self,
        attr: pl.DataFrame,
        art: pl.DataFrame,
        artists: pl.DataFrame,
        wanted: set[str],
        bad: dict[str, int],
    ) -> pl.DataFrame:
        """Every triple with its split (links across valid and test dropped and counted)."""
        fractions, seed = self.fractions, self.seed
        self.artworks = _entity_split(attr.filter(pl.col("group") == 0)["head"], fractions, seed)
        by_head = attr.filter(pl.col("group") == 0).join(
            self.artworks, left_on="head", right_on="key", how="left"
        )
        rng = np.random.default_rng(seed + 2)
        artist_attr = attr.filter(pl.col("group") == 1).sort("head", "relation", "tail")
        draw = rng.random(artist_attr.height)
        labels = np.where(draw < fractions[1], "test", np.where(draw < sum(fractions), "valid", "train"))
        artist_attr = artist_attr.with_columns(split=pl.Series(labels, dtype=pl.String))
        links = _artist_links(artists, wanted, bad)
        self.artists = _entity_split(pl.concat([links["head"], links["tail"]]), fractions, seed + 1)
        linked = [_link_splits(links, self.artists, self.dropped, "artist")]
        if "isRelatedToArtwork" in wanted:
            linked.append(_link_splits(_series_links(art), self.artworks, self.dropped, "artwork"))
        if INVERSE in wanted:
            creation = attr.filter(pl.col("relation") == "isCreatedByArtist")
            inverse = creation.select(head="tail", relation=pl.lit(INVERSE), tail="head")
            linked.append(_link_splits(inverse, self.artworks, self.dropped, "inverse"))
        cols = ("head", "relation", "tail", "split")
        return pl.concat(
            [by_head.select(cols), artist_attr.select(cols), *(x.select(cols) for x in linked)],
            how="vertical",
        ).filter(pl.col("split").is_not_null())


def _empty_triples() -> pl.DataFrame:
    schema = {k: pl.String for k in ("head", "relation", "tail", "tail_name", "tail_type")}
    return pl.DataFrame(schema=schema)


def _name_index(artists: pl.DataFrame) -> dict[str, str]:
    """Artist name (and slug of the name) → slug, for resolving names in artist → artist lists."""
    index: dict[str, str] = {}
    for name, slug in artists.select("name", "slug").iter_rows():
        index.setdefault(slug, slug)
        if name:
            index.setdefault(slug_of(name), slug)
    return index


def _artist_links(artists: pl.DataFrame, wanted: set[str], bad: dict[str, int]) -> pl.DataFrame:
    """Artist → artist triples (and isRelatedToArtist) from the name-list columns."""
    columns = {r: c for r, c in ARTIST_LINKS.items() if r in wanted}
    if "isRelatedToArtist" in wanted:
        columns["isRelatedToArtist"] = "friends and co-workers"
    if not columns:
        return pl.DataFrame(schema={"head": pl.String, "relation": pl.String, "tail": pl.String})
    index = _name_index(artists)
    pairs = pl.concat(
        [
            artists.select(head="key", relation=pl.lit(r), name=pl.col(c).str.split("|"))
            .explode("name")
            .with_columns(pl.col("name").str.strip_chars())
            .filter(pl.col("name").is_not_null() & (pl.col("name") != ""))
            for r, c in columns.items()
        ]
    )
    names = pairs["name"].unique()
    resolved = pl.DataFrame(
        {"name": names, "slug": [index.get(slug_of(n)) for n in names.to_list()]},
        schema={"name": pl.String, "slug": pl.String},
    )
    pairs = pairs.join(resolved, on="name", how="left")
    bad["unresolved_artist_names"] = pairs.filter(pl.col("slug").is_null()).height
    pairs = pairs.filter(pl.col("slug").is_not_null())
    pairs = pairs.with_columns(tail=pl.concat_str(pl.lit("artist:"), "slug"))
    return (
        pairs.filter(pl.col("head") != pl.col("tail"))
        .select("head", "relation", "tail")
        .unique(maintain_order=True)
    )


def _series_links(art: pl.DataFrame) -> pl.DataFrame:
    """isRelatedToArtwork: each artwork to the next one of the same artist's series (both ways)."""
    series = (
        art.filter(pl.col("series").is_not_null() & pl.col("artist").is_not_null())
        .select("key", "artist", "series")
        .sort("artist", "series", "key")
        .with_columns(nxt=pl.col("key").shift(-1).over("artist", "series"))
        .filter(pl.col("nxt").is_not_null())
    )
    forward = series.select(head="key", relation=pl.lit("isRelatedToArtwork"), tail="nxt")
    backward = series.select(head="nxt", relation=pl.lit("isRelatedToArtwork"), tail="key")
    return pl.concat([forward, backward])


def _entity_split(keys: pl.Series, fractions: tuple[float, float], seed: int) -> pl.DataFrame:
    """A seeded partition of the distinct ``keys`` into train / valid / test: (key, split)."""
    unique = keys.unique().sort()
    n = len(unique)
    order = np.random.default_rng(seed).permutation(n)
    n_valid, n_test = round(fractions[0] * n), round(fractions[1] * n)
    labels = np.full(n, "train", dtype=object)
    labels[order[:n_test]] = "test"
    labels[order[n_test : n_test + n_valid]] = "valid"
    return pl.DataFrame({"key": unique, "split": pl.Series(labels.tolist(), dtype=pl.String)})


def _link_splits(
    link: pl.DataFrame, node_split: pl.DataFrame, dropped: dict[str, Any], what: str
) -> pl.DataFrame:
    """Entity → entity triples go to the held-out split of a held-out end (train when both ends
    are in train, or not in ``node_split``); a valid–test link is dropped and counted."""
    joined = link.join(node_split.rename({"key": "head", "split": "sh"}), on="head", how="left").join(
        node_split.rename({"key": "tail", "split": "st"}), on="tail", how="left"
    )
    joined = joined.with_columns(pl.col("sh").fill_null("train"), pl.col("st").fill_null("train"))
    split = (
        pl.when(pl.col("sh") == pl.col("st"))
        .then(pl.col("sh"))
        .when(pl.col("sh") == "train")
        .then(pl.col("st"))
        .when(pl.col("st") == "train")
        .then(pl.col("sh"))
        .otherwise(None)
    )
    joined = joined.with_columns(split=split)
    dropped[f"cross_split_{what}_links"] = joined.filter(pl.col("split").is_null()).height
    return joined.filter(pl.col("split").is_not_null())


def _humanise(slug: pl.Expr) -> pl.Expr:
    return slug.str.replace_all("-", " ")


#: WikiArt appends the creation date to an artwork's slug (``naked-lunch-1994``,
#: ``untitled-c-1959``, ``study-1880-82``, ``rain-2006-1``): the label of isCreatedInYear.
APPENDED_YEAR = r"(?:-c)?-\d{4}(?:-\d{1,4})*$"


def artwork_title(slug: pl.Expr) -> pl.Expr:
    """A readable artwork title from its slug, without the appended creation date (kept in the
    name or text it would hand the creation year to every model that reads them)."""
    stripped = slug.str.replace(APPENDED_YEAR, "")
    return _humanise(pl.when(stripped.str.len_chars() > 0).then(stripped).otherwise(slug))


def _entities(
    triples: pl.DataFrame,
    art: pl.DataFrame,
    artists: pl.DataFrame,
    attr: pl.DataFrame,
    images: list[str],
    raw_dir: Path,
    bad: dict[str, int],
    artwork_text: bool,
) -> pl.DataFrame:
    """Every entity of ``triples``: artworks, then artists, then attributes; each by key.

    Artists and attributes have their name as text; artworks have images where crawled, and
    their title as text only with ``artwork_text``."""
    used = pl.concat([triples["head"], triples["tail"]]).unique().to_frame("key")
    pictures = image_table(images, raw_dir, bad)
    artworks = (
        art.select("key", name=artwork_title(pl.col("_title")).fill_null(pl.col("url")))
        .join(used, on="key", how="semi")
        .join(pictures, on="key", how="left")
        .with_columns(
            type=pl.lit("artwork"), text=pl.col("name") if artwork_text else pl.lit(None, pl.String)
        )
    )
    described = artists.select("key", name=pl.col("name"))
    mentioned = used.filter(pl.col("key").str.starts_with("artist:")).join(described, on="key", how="left")
    people = mentioned.with_columns(
        name=pl.coalesce("name", _humanise(pl.col("key").str.strip_prefix("artist:")).str.to_titlecase()),
        type=pl.lit("artist"),
    ).with_columns(text=pl.col("name"))
    values = (
        attr.filter(pl.col("tail_type") != "artist")
        .select(key="tail", name="tail_name", type="tail_type")
        .unique("key")
        .join(used, on="key", how="semi")
        .with_columns(text=pl.col("name"))
    )
    order = pl.col("type").replace_strict({"artwork": 0, "artist": 1}, default=2, return_dtype=pl.Int8)
    frame = pl.concat(
        [
            artworks.select(
                "key", "type", "name", "text", pl.col("images").fill_null(pl.lit([], pl.List(pl.String)))
            ),
            people.select("key", "type", "name", "text", images=pl.lit([], pl.List(pl.String))),
            values.select("key", "type", "name", "text", images=pl.lit([], pl.List(pl.String))),
        ]
    )
    frame = frame.sort(order, "key")
    return frame.with_columns(entity_id=pl.int_range(pl.len(), dtype=pl.Int32)).select(
        "entity_id", "key", "type", "name", "text", "images"
    )
