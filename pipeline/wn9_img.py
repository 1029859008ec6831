"""The ``wn9-img`` adapter: WN9-IMG (Xie et al., IJCAI 2017), as used by the VL-KGE paper.

Source directory layout (a ``wn9_img/`` dump: a local mirror, the download cache, or the copy
inside the package)::

    wn9_img_triples.csv                       head,relation,tail,mode (the paper's file, CRLF)
    ikrl_raw/{train,valid,test}.txt           head TAB tail TAB relation (used when no CSV)
    text/wn9_entity_text_wordnet30.tsv        entity,name,lemmas,definition (WordNet 3.0)
    images_imagenet1k_sample/                 <wnid>.JPEG, <wnid>_<n>.JPEG or <wnid>/*.JPEG

Public sources, pinned (:func:`public_dump`): the triples CSV (the VL-KGE repository's LFS
object); the entity text, derived from Princeton WordNet 3.0's ``dict/data.noun``
(:mod:`vlkge.pipeline.wordnet`) for the entities in IKRL's order (shipped:
``data/wn9_img/wn9_img_entities.txt.gz``); one photo for each of the 399 entities that are
ImageNet-1k classes, from github.com/EliSchwartz/imagenet-sample-images at a pinned commit
(``data/pins/wn9_img_photos.tsv``). ``crawl.source: packaged`` uses the triples and text shipped
inside the package (no network); photos then come from a mirror or the cache when they are
there. ``crawl.images`` points at another image directory (e.g. a full ImageNet tree).

Entities: name = ``name``, text = ``clean.text_template`` over the text columns (``entity``,
``name``, ``lemmas``, ``definition``), type null, images sorted by path; entities without an
image have none.
"""

from __future__ import annotations

import functools
import gzip
import os
import re
import string
from importlib import resources
from pathlib import Path
from typing import Any

import polars as pl
from vlkge.pipeline.assemble import assemble_graph, read_table, unseen_mode
from vlkge.pipeline.download import extract
from vlkge.pipeline.dumps import Derived, Dump, Pin, cache_dir, dump_dir, read_pins
from vlkge.pipeline.sources import (
    PACKAGED,
    crawl_files,
    crawl_source,
    image_dir,
    is_url,
    mirror_names,
    read_manifest,
    source_display,
)
from vlkge.pipeline.wordnet import entity_text

from vlkge.errors import ConfigError, InputError, SourceError
from vlkge.fileio import atomic_path
from vlkge.graph import Graph

TRIPLES_CSV = "wn9_img_triples.csv"
IKRL_DIR = "ikrl_raw"
IKRL_FILES = {"train": "train.txt", "valid": "valid.txt", "test": "test.txt"}
TEXT_TSV = "text/wn9_entity_text_wordnet30.tsv"
DEFAULT_IMAGE_DIR = "images_imagenet1k_sample"
RAW_IMAGE_DIR = "images"
IMAGE_SUFFIXES = frozenset({".jpeg", ".jpg", ".png"})

# The paper's triples file (Git LFS object of github.com/thefth/vl-kge at a pinned commit).
PUBLIC_TRIPLES_URL = (
    "https://media.githubusercontent.com/media/thefth/vl-kge/"
    "c78994e14cf2dfda251b701c2803215d9d5fe254/vlkge/data/wn9_img/wn9_img_triples.csv"
)
PUBLIC_TRIPLES_SHA256 = "c06d9a50c4bdd407a7c244126afea1548011406b980a4048cd3dc6e950c3e82e"
# Princeton WordNet 3.0 (sha256 as pinned by Homebrew's wordnet formula) and the entity text
# derived from its dict/data.noun.
WORDNET_URL = "https://wordnetcode.princeton.edu/3.0/WordNet-3.0.tar.bz2"
WORDNET_SHA256 = "6c492d0c7b4a40e7674d088191d3aa11f373bb1da60762e098b8ee2dda96ef22"
WORDNET_ARCHIVE = "sources/WordNet-3.0.tar.bz2"
TEXT_SHA256 = "da05d281ef5779702d732bf4d191cc97057f2e7a90492dcf7abc19fb1c4f7910"
PACKAGE_DATA = ("data", "wn9_img")

_NUMBERED = re.compile(r"(?P<key>.+)_\d+")


@functools.cache
def public_dump() -> Dump:
    """WN9-IMG's public inputs: the triples CSV, the 399 photos, the text from WordNet 3.0."""
    triples = Pin(TRIPLES_CSV, PUBLIC_TRIPLES_URL, PUBLIC_TRIPLES_SHA256, 526004)
    wordnet = Pin(WORDNET_ARCHIVE, WORDNET_URL, WORDNET_SHA256, use="source")
    text = Derived(TEXT_TSV, TEXT_SHA256, (wordnet,), _text_from_wordnet, "WordNet 3.0 dict/data.noun")
    return Dump("wn9_img", (triples, *read_pins("wn9_img_photos.tsv")), (text,), packaged_source)


def entity_order() -> list[str]:
    """WN9-IMG's 6,555 entities in the order of IKRL's entity2id.txt (shipped in the package)."""
    data = resources.files("vlkge.pipeline").joinpath(*PACKAGE_DATA, "wn9_img_entities.txt.gz").read_bytes()
    return gzip.decompress(data).decode("ascii").split()


def _text_from_wordnet(root: Path, out: Path) -> None:
    archive = root / WORDNET_ARCHIVE
    unpacked = extract(archive, archive.with_name("WordNet-3.0"))
    data_noun = next(unpacked.rglob("dict/data.noun"), None)
    if data_noun is None:
        raise SourceError("no dict/data.noun in the WordNet archive", path=archive)
    out.write_text(entity_text(data_noun, entity_order()), encoding="utf-8", newline="")


def packaged_source() -> Path:
    """A ``wn9_img/`` directory with the triples and entity text shipped inside the package
    (under the cache; written once, rewritten only when the package's copy changed)."""
    out = cache_dir() / "packaged" / "wn9_img"
    for name, rel in (
        ("wn9_img_triples.csv.gz", TRIPLES_CSV),
        ("wn9_entity_text_wordnet30.tsv.gz", TEXT_TSV),
    ):
        data = gzip.decompress(resources.files("vlkge.pipeline").joinpath(*PACKAGE_DATA, name).read_bytes())
        target = out / rel
        if not (target.is_file() and target.read_bytes() == data):
            with atomic_path(target) as tmp:
                tmp.write_bytes(data)
    return out


def photo_dir() -> Path | None:
    """The WN9-IMG photos of a data mirror or the download cache, where there are any."""
    mirror = os.environ.get("VLKGE_DATA_MIRROR")
    roots = (
        []
        if not mirror or is_url(mirror)
        else [Path(mirror) / n for n in mirror_names("wn9-img", public_dump())]
    )
    roots.append(dump_dir(public_dump()))
    return next((r / DEFAULT_IMAGE_DIR for r in roots if any((r / DEFAULT_IMAGE_DIR).glob("*.JPEG"))), None)


class Wn9ImgAdapter:
    """Adapter for WN9-IMG dumps (paper CSV or IKRL release, WordNet text, ImageNet images)."""

    def crawl(
        self, dataset: str, source: str | None, raw_dir: Path, params: dict[str, Any]
    ) -> dict[str, Any]:
        src = crawl_source(dataset, source, params, public_dump())
        root = src.parent if src.is_file() else src
        files, fmt = _triple_files(src)
        text = root / TEXT_TSV
        if not text.is_file():
            raise SourceError(
                "WN9-IMG entity text not found",
                path=text,
                hint="point --source at a WN9-IMG dump that holds it (entity,name,lemmas,definition from "
                "WordNet 3.0), or leave the source unset to fetch the public files (the text is made "
                "from WordNet 3.0), or use --source packaged (the copy inside the package)",
            )
        files.append((text, TEXT_TSV, "table"))
        keys = set(read_text_table(text)["entity"].to_list())
        packaged = (source or (params.get("crawl") or {}).get("source")) == PACKAGED
        photos = image_dir(params, photo_dir() if packaged else root / DEFAULT_IMAGE_DIR)
        if photos is not None:
            for path in sorted(photos.rglob("*")):
                rel = path.relative_to(photos)
                if path.suffix.lower() in IMAGE_SUFFIXES and image_key(rel, keys) is not None:
                    files.append((path, f"{RAW_IMAGE_DIR}/{rel.as_posix()}", "image"))
        return crawl_files(
            raw_dir,
            files,
            dataset=dataset,
            source=src,
            extra={"adapter": "wn9-img", "triples_format": fmt, "images": str(photos)},
        )

    def clean(self, dataset: str, raw_dir: Path, graph_dir: Path, params: dict[str, Any]) -> Graph:
        raw_dir = Path(raw_dir)
        manifest = read_manifest(raw_dir)
        present = {f["path"]: f for f in manifest.get("files", [])}
        triples = read_triples(raw_dir, present, manifest)
        if TEXT_TSV not in present:
            raise InputError(
                "entity text missing from the crawled inputs",
                path=raw_dir / TEXT_TSV,
                hint="re-run `vlkge crawl wn9-img` with a source that holds it",
            )
        text = read_text_table(raw_dir / TEXT_TSV, display=source_display(raw_dir, manifest, TEXT_TSV))
        template = (params.get("clean", {}) or {}).get("text_template") or "{name}: {definition}"
        keys = set(text["entity"].to_list())
        images: dict[str, list[str]] = {}
        for rel, entry in present.items():
            if entry.get("kind") == "image":
                key = image_key(Path(rel).relative_to(RAW_IMAGE_DIR), keys)
                if key is not None:
                    images.setdefault(key, []).append(f"{raw_dir.name}/{rel}")
        entities = text.select(
            pl.col("entity").alias("key"),
            pl.col("name"),
            text=render_text(text, template),
            type=pl.lit(None, pl.String),
            images=pl.Series(
                [sorted(images.get(k, [])) for k in text["entity"].to_list()],
                dtype=pl.List(pl.String),
            ),
            source_file=pl.col("source_file"),
            source_line=pl.col("source_line"),
        )
        return assemble_graph(
            dataset,
            triples,
            graph_dir,
            params,
            unseen=unseen_mode(params, "drop"),  # the paper's transductive setting
            entities=entities,
            manifest=manifest,
            image_root=raw_dir.parent,
            protocol={"directions": "both", "candidate_pools": "all"},
        )


def _triple_files(src: Path) -> tuple[list[tuple[Path, str, str]], str]:
    """The triple files of a source (the paper CSV, else the IKRL split files) and their format."""
    if src.is_file():
        return [(src, TRIPLES_CSV, "table")], "csv"
    if (src / TRIPLES_CSV).is_file():
        return [(src / TRIPLES_CSV, TRIPLES_CSV, "table")], "csv"
    if all((src / IKRL_DIR / f).is_file() for f in IKRL_FILES.values()):
        return [(src / IKRL_DIR / f, f"{IKRL_DIR}/{f}", "table") for f in IKRL_FILES.values()], "ikrl"
    raise SourceError(
        f"no WN9-IMG triples here (neither {TRIPLES_CSV} nor {IKRL_DIR}/train.txt, valid.txt, test.txt)",
        path=src,
        hint="point --source at a WN9-IMG mirror directory",
    )


def image_key(rel: Path, keys: set[str]) -> str | None:
    """The entity an image belongs to: ``<wnid>/x.JPEG``, ``<wnid>.JPEG`` or ``<wnid>_<n>.JPEG``."""
    if len(rel.parts) > 1:
        return rel.parts[0] if rel.parts[0] in keys else None
    if rel.stem in keys:
        return rel.stem
    match = _NUMBERED.fullmatch(rel.stem)
    return match["key"] if match and match["key"] in keys else None


def read_triples(raw_dir: Path, present: dict[str, Any], manifest: dict[str, Any]) -> pl.DataFrame:
    """The paper CSV when crawled, else the IKRL split files (head TAB tail TAB relation)."""
    if TRIPLES_CSV in present:
        return read_table(
            raw_dir / TRIPLES_CSV,
            display=source_display(raw_dir, manifest, TRIPLES_CSV),
            required=("head", "relation", "tail", "mode"),
            optional=(),
        ).rename({"mode": "split"})
    rels = {split: f"{IKRL_DIR}/{name}" for split, name in IKRL_FILES.items()}
    if not all(rel in present for rel in rels.values()):
        raise InputError(
            "no triples in the crawled inputs", path=raw_dir, hint="re-run `vlkge crawl wn9-img`"
        )
    return pl.concat(
        read_table(
            raw_dir / rel,
            display=source_display(raw_dir, manifest, rel),
            delimiter="\t",
            names=("head", "tail", "relation"),
            quoting=False,
        ).with_columns(split=pl.lit(split))
        for split, rel in rels.items()
    ).select("head", "relation", "tail", "split", "source_file", "source_line")


def read_text_table(path: Path, *, display: str | None = None) -> pl.DataFrame:
    return read_table(
        path,
        display=display,
        delimiter="\t",
        required=("entity", "name", "definition"),
        optional=("lemmas",),
        quoting=False,
    )


def render_text(table: pl.DataFrame, template: str) -> pl.Series:
    """``template`` rendered per row over the text columns; an unknown field is a ConfigError."""
    fields = [c for c in table.columns if c not in ("source_file", "source_line")]
    try:
        names = {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}
    except ValueError as exc:
        raise ConfigError(f"bad template ({exc})", key="clean.text_template") from None
    unknown = sorted(n for n in names if n.split(".")[0].split("[")[0] not in fields or not n)
    if unknown:
        raise ConfigError(
            f"unknown field(s) {unknown} in {template!r}",
            key="clean.text_template",
            hint=f"available fields: {', '.join('{' + f + '}' for f in fields)}",
        )
    rows = table.select(fields).iter_rows(named=True)
    return pl.Series("text", [template.format(**row) for row in rows], dtype=pl.String)


ADAPTER = Wn9ImgAdapter()
