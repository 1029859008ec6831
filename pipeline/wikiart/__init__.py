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

import functools
import logging
from pathlib import Path
from typing import Any

import polars as pl
from vlkge.pipeline.assemble import Assembled, assemble_tables, write_assembled
from vlkge.pipeline.dumps import Dump, read_pins
from vlkge.pipeline.sources import crawl_files, crawl_source, image_dir, read_manifest
from vlkge.pipeline.wikiart.build import WikiArtTables, artwork_title, build_wikiart
from vlkge.pipeline.wikiart.read import (
    ARTWORK_DIR,
    IMAGE_SUFFIXES,
    RAW_ARTISTS,
    RAW_IMAGES,
    artwork_keys,
    find_scrape,
    image_artwork,
)
from vlkge.pipeline.wikiart.report import format_split_counts, graph_report
from vlkge.pipeline.wikiart.schema import (
    ARTIST_ATTRIBUTES,
    ARTIST_LINKS,
    ARTWORK_ATTRIBUTES,
    INVERSE,
    PROMPTS,
    SIMILARITY,
    V1_RELATIONS,
    Attribute,
    all_relations,
    version_relations,
    wikiart_spec,
)

from vlkge.errors import InputError
from vlkge.graph import Graph

__all__ = [
    "ARTIST_ATTRIBUTES",
    "ARTIST_LINKS",
    "ARTWORK_ATTRIBUTES",
    "INVERSE",
    "PROMPTS",
    "SIMILARITY",
    "V1_RELATIONS",
    "Attribute",
    "WikiArtAdapter",
    "WikiArtTables",
    "all_relations",
    "artwork_title",
    "assemble_wikiart",
    "build_wikiart",
    "version_relations",
    "wikiart_spec",
]

log = logging.getLogger("vlkge.pipeline")


class WikiArtAdapter:
    """Adapter for WikiArt metadata scrapes; the version (v1 / v2) comes from the dataset name."""

    def crawl(
        self, dataset: str, source: str | None, raw_dir: Path, params: dict[str, Any]
    ) -> dict[str, Any]:
        src = crawl_source(
            dataset, source, params, public_dump(), directory="the scrape folder or a folder holding it"
        )
        artwork_dir, artists = find_scrape(src)
        csvs = sorted(artwork_dir.glob("*.csv"))
        files = [(p, f"{ARTWORK_DIR}/{p.name}", "table") for p in csvs]
        files.append((artists, RAW_ARTISTS, "table"))
        pictures = image_dir(params, src / RAW_IMAGES)
        unmatched = 0
        if pictures is not None:
            known = artwork_keys(artwork_dir)
            keys = set(known["key"].to_list())
            unique_titles = known.filter(pl.col("title").is_unique())
            titles = dict(zip(unique_titles["title"].to_list(), unique_titles["key"].to_list(), strict=True))
            for path in sorted(pictures.rglob("*")):
                if path.suffix.lower() not in IMAGE_SUFFIXES or not path.is_file():
                    continue
                key = image_artwork(path.relative_to(pictures), keys, titles)
                if key is None:
                    unmatched += 1
                    continue
                files.append((path, f"{RAW_IMAGES}/{key}/{path.name}", "image"))
        if unmatched:
            log.warning("%s: %d image(s) match no artwork of the scrape; not copied", pictures, unmatched)
        return crawl_files(
            raw_dir,
            files,
            dataset=dataset,
            source=src,
            extra={"adapter": "wikiart", "images": str(pictures), "unmatched_images": unmatched},
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
        tables = build_wikiart(
            csvs,
            raw_dir / RAW_ARTISTS,
            images,
            raw_dir,
            version_relations(dataset, spec),
            spec,
            seed=int(params["seed"]),
        )
        assembled = assemble_wikiart(tables, params)
        report = {**tables.report, **graph_report(assembled)}
        prompts = {r: PROMPTS[r] for r in assembled.relations["key"].to_list() if r in PROMPTS}
        graph = write_assembled(
            dataset,
            assembled,
            graph_dir,
            manifest=manifest,
            protocol=tables.protocol,
            clean={"wikiart": spec, **report},
            extra={"prompts": prompts},
        )
        for line in format_split_counts(report["splits"]).splitlines():
            log.info("%s", line)
        return graph


@functools.cache
def public_dump() -> Dump:
    """The public WikiArt dump (a ``wikiart/`` directory, shared by both versions): the scrape's
    CSVs at a pinned commit, and the image lists around it (pinned, not fetched by crawl)."""
    return Dump("wikiart", read_pins("wikiart.tsv"))


def assemble_wikiart(tables: WikiArtTables, params: dict[str, Any]) -> Assembled:
    """The shared assembly of a WikiArt build: always inductive (held-out artworks, and the
    artists of artist → artist links, are unseen in train), relation ids in the version's order,
    triples sorted by split, relation, head, tail."""
    return assemble_tables(
        tables.triples,
        params,
        entities=tables.entities,
        unseen="keep",
        relation_order=tables.relation_order,
        sort_triples=True,
    )


ADAPTER = WikiArtAdapter()
