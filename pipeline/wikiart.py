"""The ``wikiart-v1`` / ``wikiart-v2`` adapters: WikiArt-MKG graphs from a WikiArt metadata scrape.

Source directory (``--source``; the scrape itself or a folder holding it, e.g. shared/data/wikiart)::

    artwork_data/*.csv     url, Create Date, Date, Style, Genre, Media, Location, tags, Series…
                           (column order may differ per file; ``|`` separates several values)
    artist_data_new.csv    name, url_name, Birth/Death Date and place, Nationality, Art Movement,
                           Field, Influenced by/on, Painting School, Pupils, Teachers, Art institution,
                           Friends and Co-workers (``artist_data.csv`` is accepted too)
    images/ (optional, or ``--images DIR``)  ``Style/artist-slug_title-slug.jpg`` (WikiArt refined),
                           ``artist-slug/title-slug.jpg`` (the artwork key) or ``title-slug.jpg``
                           when that title is unique

Graph (relation names as in the VL-KGE paper; entity keys ``artwork:<artist>/<title>``,
``artist:<slug>``, ``<kind>:<value>`` for attributes):

- v1: isCreatedByArtist, hasStyle, isCreatedInYear, isAssociatedWithTag (artwork → attribute);
- v2: those plus belongsToGenre, isCreatedWithMedium, isLocatedIn; artist → attribute
  (:data:`ARTIST_ATTRIBUTES`); artist → artist (:data:`ARTIST_LINKS`); optionally the
  similarity relations isRelatedToArtwork (consecutive artworks of one artist's series) and
  isRelatedToArtist (friends and co-workers), and the inverse hasCreatedArtwork.

Attributes seen fewer than ``clean.wikiart.min_count`` times are dropped; years are binned
(``year_bin`` for artworks, ``life_bin`` for births and deaths); places become countries where the
last part of the place names one. Splits are inductive by artwork (every triple of a held-out
artwork is in its split), artist → artist relations use disjoint artist sets, artist → attribute
triples are split at random; all deterministic by ``seed``. The protocol (tail prediction,
per-relation candidate pools, excluded relations, down-sampling) goes into ``meta.json``.

Bad input is counted in ``meta.json`` under ``clean.bad_input``, never fatal: rows without a URL
or artist, unparsable dates, the same URL twice, one image URL under two artwork URLs, artists
referenced but not described, artist names that match no artist, images that do not open.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from vlkge.pipeline import ADAPTERS
from vlkge.pipeline.dates import death_year_of, year_bin, year_of
from vlkge.pipeline.places import country_of
from vlkge.pipeline.sources import crawl_files, crawl_source, manifest_inputs, read_manifest

from vlkge.errors import ConfigError, InputError, SourceError
from vlkge.graph import Graph, write_graph

log = logging.getLogger("vlkge.pipeline")

ARTWORK_DIR = "artwork_data"
ARTIST_FILES = ("artist_data_new.csv", "artist_data.csv")
RAW_ARTISTS = "artist_data.csv"
RAW_IMAGES = "images"
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp"})
URL_PATTERN = r"/en/([^/?#]+)/([^/?#]+)/?$"
PLACEHOLDER_IMAGE = "/Content/images/"  # WikiArt's shared "no image" frame


@dataclass(frozen=True)
class Attribute:
    """One attribute relation: the source column, the attribute kind and how values are read.

    ``read``: ``list`` (``|``-separated values), ``country`` (place → country), ``year``
    (a binned year column computed beforehand).
    """

    relation: str
    column: str
    kind: str
    read: str = "list"


ARTWORK_ATTRIBUTES = (
    Attribute("isCreatedByArtist", "artist", "artist", "artist"),
    Attribute("hasStyle", "style", "style"),
    Attribute("belongsToGenre", "genre", "genre"),
    Attribute("isCreatedInYear", "_year", "year", "year"),
    Attribute("isCreatedWithMedium", "media", "medium"),
    Attribute("isAssociatedWithTag", "tags", "tag"),
    Attribute("isLocatedIn", "location", "country", "country"),
)
ARTIST_ATTRIBUTES = (
    Attribute("hasNationality", "nationality", "nationality"),
    Attribute("isAssociatedWithField", "field", "field"),
    Attribute("isAssociatedWithArtMovement", "art movement", "style"),
    Attribute("wasBornOnDate", "_birth", "date", "year"),
    Attribute("wasBornIn", "birth place", "country", "country"),
    Attribute("diedOnDate", "_death", "date", "year"),
    Attribute("diedIn", "death place", "country", "country"),
    Attribute("isMemberOfPaintingSchool", "painting school", "school"),
    Attribute("isAffiliatedWithArtInstitution", "art institution", "institution"),
)
# artist → artist: relation → column of artist names
ARTIST_LINKS = {
    "isInfluencedBy": "influenced by",
    "isInfluencedOn": "influenced on",
    "isPupilOf": "teachers",
    "isTeacherOf": "pupils",
}
SIMILARITY = ("isRelatedToArtwork", "isRelatedToArtist")
# Zero-shot prompts (``meta.json`` → ``prompts``; ``{}`` is the candidate tail's name).
PROMPTS = {
    "isCreatedByArtist": "This painting was created by {}.",
    "hasStyle": "This painting is in the style of {}.",
    "belongsToGenre": "This painting belongs to the genre {}.",
    "isCreatedInYear": "This painting was created in {}.",
    "isCreatedWithMedium": "This painting was made with {}.",
    "isAssociatedWithTag": "This painting shows {}.",
    "isLocatedIn": "This painting is located in {}.",
    "hasNationality": "This artist is {}.",
    "isAssociatedWithField": "This artist works in {}.",
    "isAssociatedWithArtMovement": "This artist belongs to the {} movement.",
    "wasBornOnDate": "This artist was born in {}.",
    "wasBornIn": "This artist was born in {}.",
    "diedOnDate": "This artist died in {}.",
    "diedIn": "This artist died in {}.",
    "isMemberOfPaintingSchool": "This artist is a member of the {}.",
    "isAffiliatedWithArtInstitution": "This artist studied at {}.",
    "isInfluencedBy": "This artist was influenced by {}.",
    "isInfluencedOn": "This artist influenced {}.",
    "isPupilOf": "This artist was a pupil of {}.",
    "isTeacherOf": "This artist was the teacher of {}.",
}
INVERSE = "hasCreatedArtwork"
V1_RELATIONS = ("isCreatedByArtist", "hasStyle", "isCreatedInYear", "isAssociatedWithTag")
ARTWORK_COLUMNS = ("url", "create date", "date", "image_url", "style", "genre", "media", "location")
ARTWORK_COLUMNS += ("tags", "series")
ARTIST_COLUMNS = ("name", "url_name", "birth date", "death date", "birth place", "death place")
ARTIST_COLUMNS += ("nationality", "art movement", "field", "painting school", "art institution")
ARTIST_COLUMNS += ("influenced by", "influenced on", "pupils", "teachers", "friends and co-workers")


def version_relations(dataset: str, spec: dict[str, Any]) -> list[str]:
    """The relations a version builds: ``clean.wikiart.relations`` when set, else its own."""
    if spec.get("relations"):
        wanted = list(spec["relations"])
        known = set(all_relations())
        unknown = [r for r in wanted if r not in known]
        if unknown:
            raise ConfigError(
                f"unknown relation(s) {unknown}",
                key="clean.wikiart.relations",
                hint=f"choose from: {', '.join(all_relations())}",
            )
        return wanted
    if dataset.endswith("v1"):
        return list(V1_RELATIONS)
    rels = [a.relation for a in (*ARTWORK_ATTRIBUTES, *ARTIST_ATTRIBUTES)] + list(ARTIST_LINKS)
    if spec.get("similarity", True):
        rels += list(SIMILARITY)
    if spec.get("inverse", False):
        rels.append(INVERSE)
    return rels


def all_relations() -> list[str]:
    return [a.relation for a in (*ARTWORK_ATTRIBUTES, *ARTIST_ATTRIBUTES)] + [
        *ARTIST_LINKS,
        *SIMILARITY,
        INVERSE,
    ]


# --------------------------------------------------------------------------- crawl


def find_scrape(src: Path) -> tuple[Path, Path]:
    """(artwork_data directory, artist CSV) under ``src`` or one of its sub-folders."""
    for folder in [src, *sorted(p for p in src.iterdir() if p.is_dir())]:
        artists = next((folder / n for n in ARTIST_FILES if (folder / n).is_file()), None)
        if artists is not None and (folder / ARTWORK_DIR).is_dir():
            return folder / ARTWORK_DIR, artists
    raise SourceError(
        f"no WikiArt scrape here (need {ARTWORK_DIR}/*.csv and {ARTIST_FILES[0]})",
        path=src,
        hint="point --source at the scrape folder (e.g. wikiart_scrape_yangyuwang) or its parent",
    )


def slug_of(text: str) -> str:
    """WikiArt-style slug: accents stripped, lower case, non-alphanumerics → ``-``."""
    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return re.sub(r"[^a-z0-9]+", "-", plain.lower()).strip("-")


def image_artwork(rel: Path, keys: set[str], titles: dict[str, str]) -> str | None:
    """The artwork key (``artist/title``) an image path belongs to, else None.

    ``artist/title.jpg`` (the key), ``Style/artist_title.jpg`` (WikiArt refined) or
    ``title.jpg`` when exactly one artwork has that title slug.
    """
    stem_key = rel.with_suffix("").as_posix()
    if stem_key in keys:
        return stem_key
    if len(rel.parts) >= 2 and f"{rel.parts[-2]}/{rel.stem}" in keys:
        return f"{rel.parts[-2]}/{rel.stem}"
    if "_" in rel.stem:
        artist, title = rel.stem.split("_", 1)
        if f"{artist}/{title}" in keys:
            return f"{artist}/{title}"
    return titles.get(rel.stem)


def artwork_keys(artwork_dir: Path) -> pl.DataFrame:
    """Distinct (key, artist, title) of the artwork CSVs."""
    frame = read_artworks(sorted(artwork_dir.glob("*.csv"))).select("url").collect()
    parts = frame.select(pl.col("url").str.extract_groups(URL_PATTERN).alias("p")).unnest("p")
    parts = parts.rename({parts.columns[0]: "artist", parts.columns[1]: "title"}).drop_nulls()
    return parts.unique().with_columns(key=pl.concat_str("artist", pl.lit("/"), "title"))


class WikiArtAdapter:
    """Adapter for WikiArt metadata scrapes; the version (v1 / v2) comes from the dataset name."""

    def crawl(
        self, dataset: str, source: str | None, raw_dir: Path, params: dict[str, Any]
    ) -> dict[str, Any]:
        crawl = params.get("crawl", {}) or {}
        src = crawl_source(dataset, source, params, None)
        if not src.is_dir():
            raise SourceError("a WikiArt source must be a directory", path=src)
        artwork_dir, artists = find_scrape(src)
        csvs = sorted(artwork_dir.glob("*.csv"))
        files = [(p, f"{ARTWORK_DIR}/{p.name}", "table") for p in csvs]
        files.append((artists, RAW_ARTISTS, "table"))
        image_dir = _image_dir(src, crawl.get("images"))
        unmatched = 0
        if image_dir is not None:
            known = artwork_keys(artwork_dir)
            keys = set(known["key"].to_list())
            unique_titles = known.filter(pl.col("title").is_unique())
            titles = dict(zip(unique_titles["title"].to_list(), unique_titles["key"].to_list(), strict=True))
            for path in sorted(image_dir.rglob("*")):
                if path.suffix.lower() not in IMAGE_SUFFIXES or not path.is_file():
                    continue
                key = image_artwork(path.relative_to(image_dir), keys, titles)
                if key is None:
                    unmatched += 1
                    continue
                files.append((path, f"{RAW_IMAGES}/{key}/{path.name}", "image"))
        if unmatched:
            log.warning("%s: %d image(s) match no artwork of the scrape; not copied", image_dir, unmatched)
        return crawl_files(
            raw_dir,
            files,
            dataset=dataset,
            source=src,
            extra={"adapter": "wikiart", "images": str(image_dir), "unmatched_images": unmatched},
        )

    def clean(self, dataset: str, raw_dir: Path, graph_dir: Path, params: dict[str, Any]) -> Graph:
        raw_dir = Path(raw_dir)
        manifest = read_manifest(raw_dir)
        present = {f["path"]: f for f in manifest.get("files", [])}
        csvs = sorted(raw_dir / p for p in present if p.startswith(f"{ARTWORK_DIR}/"))
        if not csvs or RAW_ARTISTS not in present:
            raise InputError(
                "the crawled inputs lack the artwork CSVs or the artist table",
                path=raw_dir,
                hint=f"re-run `vlkge crawl {dataset}`",
            )
        images = [p for p, f in present.items() if f.get("kind") == "image"]
        spec = wikiart_spec(params)
        build = build_wikiart(
            csvs,
            raw_dir / RAW_ARTISTS,
            images,
            raw_dir,
            version_relations(dataset, spec),
            spec,
            seed=int(params["seed"]),
        )
        meta = {
            "dataset": dataset,
            "inputs": manifest_inputs(manifest),
            "clean": {"wikiart": spec, **build.report},
            "protocol": build.protocol,
            "prompts": {r: PROMPTS[r] for r in build.relations["key"].to_list() if r in PROMPTS},
        }
        graph = write_graph(graph_dir, build.entities, build.relations, build.triples, meta)
        for line in format_split_counts(build.report["splits"]).splitlines():
            log.info("%s", line)
        return graph


def _image_dir(src: Path, override: str | None) -> Path | None:
    if override:
        path = Path(override).expanduser()
        if not path.is_dir():
            raise SourceError("image directory not found", path=path, key="crawl.images")
        return path
    return src / RAW_IMAGES if (src / RAW_IMAGES).is_dir() else None


def wikiart_spec(params: dict[str, Any]) -> dict[str, Any]:
    """``clean.wikiart`` with its values checked."""
    spec = dict((params.get("clean", {}) or {}).get("wikiart", {}) or {})
    defaults = {
        "min_count": 10,
        "year_bin": 10,
        "life_bin": 50,
        "valid_fraction": 0.1,
        "test_fraction": 0.1,
        "similarity": True,
        "inverse": False,
        "artwork_text": False,
        "relations": None,
        "downsampling": {"isRelatedToArtwork": 0.001},
    }
    spec = {**defaults, **{k: v for k, v in spec.items() if v is not None}}
    for key in ("min_count", "year_bin", "life_bin"):
        if int(spec[key]) < 1:
            raise ConfigError(f"must be >= 1, got {spec[key]!r}", key=f"clean.wikiart.{key}")
    valid, test = float(spec["valid_fraction"]), float(spec["test_fraction"])
    if valid < 0 or test < 0 or valid + test >= 1:
        raise ConfigError(
            f"valid_fraction {valid} and test_fraction {test} must be >= 0 and sum below 1",
            key="clean.wikiart",
        )
    return spec


# --------------------------------------------------------------------------- reading


def _scan(path: Path, columns: tuple[str, ...]) -> pl.LazyFrame:
    """One CSV as strings, headers lower-cased, exactly ``columns`` (absent ones null)."""
    try:
        lf = pl.scan_csv(path, infer_schema=False, quote_char='"', truncate_ragged_lines=True)
        names = lf.collect_schema().names()
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise InputError(f"unreadable CSV ({exc})", path=path) from None
    lower = {n: n.strip().lower() for n in names}
    lf = lf.rename(lower).with_columns(pl.lit(path.name).alias("_file"))
    have = set(lower.values())
    return lf.select(
        *(pl.col(c).str.strip_chars() if c in have else pl.lit(None, pl.String).alias(c) for c in columns),
        "_file",
    ).with_row_index("_line", offset=2)


def read_artworks(paths: list[Path]) -> pl.LazyFrame:
    """All artwork CSVs as one lazy string table (file order), with ``_file``/``_line``."""
    if not paths:
        return pl.LazyFrame(schema={c: pl.String for c in ARTWORK_COLUMNS})
    return pl.concat([_scan(p, ARTWORK_COLUMNS) for p in paths], how="vertical")


def read_artists(path: Path) -> pl.LazyFrame:
    return _scan(path, ARTIST_COLUMNS)


# --------------------------------------------------------------------------- building


@dataclass
class WikiArtBuild:
    """What :func:`build_wikiart` returns: contract tables, the protocol and the clean report."""

    entities: pl.DataFrame
    relations: pl.DataFrame
    triples: pl.DataFrame
    protocol: dict[str, Any]
    report: dict[str, Any]


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


def build_wikiart(
    artwork_csvs: list[Path],
    artist_csv: Path,
    images: list[str],
    raw_dir: Path,
    relations: list[str],
    spec: dict[str, Any],
    *,
    seed: int,
) -> WikiArtBuild:
    """Read the scrape, build the triples of ``relations``, split them and return the tables.

    ``images``: raw-relative paths ``images/<artist>/<title>/<file>``.
    """
    wanted = set(relations)
    bad: dict[str, int] = {}
    dropped: dict[str, Any] = {}

    # -- artworks: one row per URL, one URL per image --------------------------------------------
    rows = read_artworks(artwork_csvs).collect()
    bad["rows"] = rows.height
    bad["rows_without_url"] = rows.filter(pl.col("url").is_null() | (pl.col("url") == "")).height
    rows = rows.filter(pl.col("url").is_not_null() & (pl.col("url") != ""))
    bad["duplicate_url_rows"] = rows.height - rows["url"].n_unique()
    rows = rows.unique("url", keep="first", maintain_order=True)
    real_image = pl.col("image_url").is_not_null() & ~pl.col("image_url").str.contains(PLACEHOLDER_IMAGE)
    seen_image = rows.filter(real_image).sort("url").with_columns(_dup=pl.col("image_url").is_duplicated())
    dup_urls = seen_image.filter(pl.col("_dup") & ~pl.col("image_url").is_first_distinct())
    bad["same_image_under_two_urls"] = dup_urls.height
    rows = rows.join(dup_urls.select("url"), on="url", how="anti", maintain_order="left")
    parts = pl.col("url").str.extract_groups(URL_PATTERN)
    art = rows.lazy().with_columns(
        _artist=parts.struct.field("1"),
        _title=parts.struct.field("2"),
    )
    art = art.with_columns(
        key=pl.concat_str(
            pl.lit("artwork:"),
            pl.when(pl.col("_artist").is_not_null())
            .then(pl.concat_str("_artist", pl.lit("/"), "_title"))
            .otherwise(pl.col("url")),
        ),
        artist=pl.col("_artist"),
        _year=pl.coalesce(
            year_of(pl.col("create date")),
            year_of(pl.col("date").str.split("|").list.first().str.split(";").list.first()),
        ),
    ).collect()
    bad["artworks_without_artist"] = art.filter(pl.col("artist").is_null()).height
    has_date = pl.col("create date").is_not_null() | pl.col("date").is_not_null()
    bad["unparsable_artwork_dates"] = art.filter(has_date & pl.col("_year").is_null()).height
    art = art.with_columns(_year=year_bin(pl.col("_year"), int(spec["year_bin"])))

    # -- artists ---------------------------------------------------------------------------------
    artists = read_artists(artist_csv).collect()
    artists = artists.with_columns(slug=pl.col("url_name").str.replace(r"^en/", "").str.strip_chars("/"))
    bad["artist_rows_without_slug"] = artists.filter(pl.col("slug").is_null() | (pl.col("slug") == "")).height
    artists = artists.filter(pl.col("slug").is_not_null() & (pl.col("slug") != ""))
    bad["duplicate_artist_rows"] = artists.height - artists["slug"].n_unique()
    artists = artists.unique("slug", keep="first", maintain_order=True)
    artists = artists.with_columns(
        key=pl.concat_str(pl.lit("artist:"), "slug"), _b=year_of(pl.col("birth date"))
    )
    artists = artists.with_columns(_d=death_year_of(pl.col("death date"), pl.col("_b")))
    bad["unparsable_artist_dates"] = artists.filter(
        (pl.col("birth date").is_not_null() & pl.col("_b").is_null())
        | (pl.col("death date").is_not_null() & pl.col("_d").is_null())
    ).height
    life = int(spec["life_bin"])
    artists = artists.with_columns(_birth=year_bin(pl.col("_b"), life), _death=year_bin(pl.col("_d"), life))
    described = set(artists["slug"].to_list())
    referenced = set(art["artist"].drop_nulls().unique().to_list())
    bad["artists_referenced_not_described"] = len(referenced - described)

    # -- attribute triples (min-count filtered) ----------------------------------------------
    parts_ = _attribute_triples(art.lazy(), "key", ARTWORK_ATTRIBUTES, wanted)
    parts_ += _attribute_triples(artists.lazy(), "key", ARTIST_ATTRIBUTES, wanted)
    attr = pl.concat(parts_).collect() if parts_ else _empty_triples()
    attr = attr.unique(["head", "relation", "tail"], maintain_order=True)
    counts = attr.group_by("tail").len("n")
    rare = counts.filter(pl.col("n") < int(spec["min_count"]))
    dropped_rare = attr.join(rare.select("tail"), on="tail", how="semi")
    dropped["rare_attribute_triples"] = dict(sorted(dropped_rare.group_by("relation").len().iter_rows()))
    dropped["rare_attributes"] = rare.height
    attr = attr.join(rare.select("tail"), on="tail", how="anti", maintain_order="left")
    attr = attr.with_columns(group=pl.when(pl.col("head").str.starts_with("artwork:")).then(0).otherwise(1))

    # -- splits: artworks held out with all their triples; disjoint artist sets for links ------
    fractions = (float(spec["valid_fraction"]), float(spec["test_fraction"]))
    artwork_split = _entity_split(attr.filter(pl.col("group") == 0)["head"], fractions, seed)
    by_head = attr.filter(pl.col("group") == 0).join(
        artwork_split, left_on="head", right_on="key", how="left"
    )
    rng = np.random.default_rng(seed + 2)
    artist_attr = attr.filter(pl.col("group") == 1).sort("head", "relation", "tail")
    draw = rng.random(artist_attr.height)
    labels = np.where(draw < fractions[1], "test", np.where(draw < sum(fractions), "valid", "train"))
    artist_attr = artist_attr.with_columns(split=pl.Series(labels, dtype=pl.String))

    # -- entity links: artist → artist, similarity, inverse ------------------------------------
    links = _artist_links(artists, wanted, bad)
    artist_split = _entity_split(pl.concat([links["head"], links["tail"]]), fractions, seed + 1)
    linked = [_link_splits(links, artist_split, dropped, "artist")]
    if "isRelatedToArtwork" in wanted:
        linked.append(_link_splits(_series_links(art), artwork_split, dropped, "artwork"))
    if INVERSE in wanted:
        creation = attr.filter(pl.col("relation") == "isCreatedByArtist")
        inverse = creation.select(head="tail", relation=pl.lit(INVERSE), tail="head")
        linked.append(_link_splits(inverse, artwork_split, dropped, "inverse"))
    cols = ("head", "relation", "tail", "split")
    triples = pl.concat(
        [by_head.select(cols), artist_attr.select(cols), *(x.select(cols) for x in linked)], how="vertical"
    ).filter(pl.col("split").is_not_null())

    # -- entities -------------------------------------------------------------------------------
    entities = _entities(triples, art, artists, attr, images, raw_dir, bad, bool(spec["artwork_text"]))
    relation_order = [r for r in relations if r in set(triples["relation"].unique().to_list())]
    relation_frame = pl.DataFrame(
        {"relation_id": list(range(len(relation_order))), "key": relation_order},
        schema={"relation_id": pl.Int32, "key": pl.String},
    )
    ids = entities.select("key", "entity_id")
    rids = relation_frame.rename({"key": "relation"})
    split_rank = pl.col("split").replace_strict({"train": 0, "valid": 1, "test": 2}, return_dtype=pl.Int8)
    triple_frame = (
        triples.join(ids.rename({"key": "head", "entity_id": "h"}), on="head")
        .join(ids.rename({"key": "tail", "entity_id": "t"}), on="tail")
        .join(rids, on="relation")
        .sort(split_rank, "relation_id", "h", "t")
        .select(head="h", relation="relation_id", tail="t", split="split")
    )
    present = set(relation_order)
    protocol = {
        "directions": "tail",
        "candidate_pools": "per_relation",
        "excluded_relations": [r for r in (*SIMILARITY, INVERSE) if r in present],
        "inductive": True,
        "relation_downsampling": {
            k: float(v) for k, v in (spec.get("downsampling") or {}).items() if k in present
        },
    }
    report = {
        "bad_input": bad,
        "dropped": dropped,
        "split": {
            "seed": seed,
            "inductive_by": "artwork",
            "held_out_artworks": _count_by_split(artwork_split),
            "disjoint_artist_sets": _count_by_split(artist_split),
            "disjoint_relations": [r for r in (*ARTIST_LINKS, *SIMILARITY) if r in present],
        },
        "splits": split_counts(triple_frame, relation_order),
        "modalities_by_type": _modality_by_type(entities),
        "without_modality_or_structure": _orphans(entities, triple_frame),
    }
    return WikiArtBuild(entities, relation_frame, triple_frame, protocol, report)


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
    image_table = _image_table(images, raw_dir, bad)
    artworks = (
        art.select("key", name=artwork_title(pl.col("_title")).fill_null(pl.col("url")))
        .join(used, on="key", how="semi")
        .join(image_table, on="key", how="left")
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


def _image_table(images: list[str], raw_dir: Path, bad: dict[str, int]) -> pl.DataFrame:
    """(key, images) for crawled images that open; paths relative to ``data/<ds>/``."""
    from PIL import Image, UnidentifiedImageError

    rows: list[tuple[str, str]] = []
    broken = 0
    for rel in sorted(images):
        parts = Path(rel).parts
        if len(parts) < 4:
            continue
        try:
            with Image.open(raw_dir / rel) as img:
                img.verify()
        except (OSError, UnidentifiedImageError, SyntaxError, ValueError):
            broken += 1
            continue
        rows.append((f"artwork:{parts[1]}/{parts[2]}", f"{raw_dir.name}/{rel}"))
    bad["images_that_do_not_open"] = broken
    frame = pl.DataFrame(rows, schema={"key": pl.String, "image": pl.String}, orient="row")
    return frame.group_by("key", maintain_order=True).agg(pl.col("image").alias("images"))


def _count_by_split(frame: pl.DataFrame) -> dict[str, int]:
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


ADAPTERS.register("wikiart-v1")(WikiArtAdapter())
ADAPTERS.register("wikiart-v2")(WikiArtAdapter())
