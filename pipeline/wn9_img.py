"""The ``wn9-img`` adapter: WN9-IMG (Xie et al., IJCAI 2017), as used by the VL-KGE paper.

Source directory layout (a local mirror, e.g. ``shared/data/wn9_img``)::

    wn9_img_triples.csv                       head,relation,tail,mode (the paper's file, CRLF)
    ikrl_raw/{train,valid,test}.txt           head TAB tail TAB relation (used when no CSV)
    text/wn9_entity_text_wordnet30.tsv        entity,name,lemmas,definition (WordNet 3.0)
    images_imagenet1k_sample/                 <wnid>.JPEG, <wnid>_<n>.JPEG or <wnid>/*.JPEG

Only the triples CSV has a public URL (:data:`PUBLIC_TRIPLES_URL`, pinned by sha256). The entity
text has none: a mirror directory (``--source DIR`` or ``$VLKGE_DATA_MIRROR/wn9-img``) must
provide it. ``crawl.images`` points at another image directory (e.g. a full ImageNet tree).

Entities: name = ``name``, text = ``clean.text_template`` over the text columns (``entity``,
``name``, ``lemmas``, ``definition``), type null, images sorted by path; entities without an
image have none.
"""

from __future__ import annotations

import re
import string
from pathlib import Path
from typing import Any

import polars as pl
from vlkge.pipeline import ADAPTERS
from vlkge.pipeline.assemble import assemble_graph, read_table
from vlkge.pipeline.sources import crawl_files, crawl_source, read_manifest, source_display

from vlkge.errors import ConfigError, InputError, SourceError
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
PINNED = {"url": PUBLIC_TRIPLES_URL, "sha256": PUBLIC_TRIPLES_SHA256}

_NUMBERED = re.compile(r"(?P<key>.+)_\d+")


class Wn9ImgAdapter:
    """Adapter for WN9-IMG dumps (paper CSV or IKRL release, WordNet text, ImageNet images)."""

    def crawl(
        self, dataset: str, source: str | None, raw_dir: Path, params: dict[str, Any]
    ) -> dict[str, Any]:
        crawl = params.get("crawl", {}) or {}
        src = crawl_source(dataset, source, params, PINNED)
        root = src.parent if src.is_file() else src
        if src.is_file():
            files, fmt = [(src, TRIPLES_CSV, "table")], "csv"
        elif (src / TRIPLES_CSV).is_file():
            files, fmt = [(src / TRIPLES_CSV, TRIPLES_CSV, "table")], "csv"
        elif all((src / IKRL_DIR / f).is_file() for f in IKRL_FILES.values()):
            files = [(src / IKRL_DIR / f, f"{IKRL_DIR}/{f}", "table") for f in IKRL_FILES.values()]
            fmt = "ikrl"
        else:
            raise SourceError(
                f"no WN9-IMG triples here (neither {TRIPLES_CSV} nor {IKRL_DIR}/train.txt, "
                "valid.txt, test.txt)",
                path=src,
                hint="point --source at a WN9-IMG mirror directory",
            )
        text = root / TEXT_TSV
        if not text.is_file():
            raise SourceError(
                "WN9-IMG entity text not found",
                path=text,
                hint=f"{TEXT_TSV} has no public URL: pass --source DIR (or set "
                "VLKGE_DATA_MIRROR so that $VLKGE_DATA_MIRROR/wn9-img exists) pointing at a "
                "WN9-IMG mirror that holds it (entity,name,lemmas,definition from WordNet 3.0)",
            )
        files.append((text, TEXT_TSV, "table"))
        keys = set(read_text_table(text)["entity"].to_list())
        image_dir = _image_dir(root, crawl.get("images"))
        if image_dir is not None:
            for path in sorted(image_dir.rglob("*")):
                rel = path.relative_to(image_dir)
                if path.suffix.lower() in IMAGE_SUFFIXES and image_key(rel, keys) is not None:
                    files.append((path, f"{RAW_IMAGE_DIR}/{rel.as_posix()}", "image"))
        return crawl_files(
            raw_dir,
            files,
            dataset=dataset,
            source=src,
            extra={"adapter": "wn9-img", "triples_format": fmt, "images": str(image_dir)},
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
            entities=entities,
            manifest=manifest,
            image_root=raw_dir.parent,
            protocol={"directions": "both", "candidate_pools": "all"},
        )


def _image_dir(root: Path, override: str | None) -> Path | None:
    if override:
        path = Path(override).expanduser()
        if not path.is_dir():
            raise SourceError("image directory not found", path=path, key="crawl.images")
        return path
    default = root / DEFAULT_IMAGE_DIR
    return default if default.is_dir() else None


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


ADAPTERS.register("wn9-img")(Wn9ImgAdapter())
