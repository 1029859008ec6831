"""The ``custom`` adapter: a user's own graph directory (dataset names ``custom:<name>``).

Input directory (GUIDE §2 "User graph input"):

- ``triples.csv`` with header ``head,relation,tail,mode`` (mode train/val/test; ``split`` is
  accepted for ``mode``), or ``train.txt``/``valid.txt``/``test.txt`` (``head<TAB>relation<TAB>
  tail``, no header);
- optional ``entities.csv`` with header ``entity`` plus any of ``text``, ``image`` (paths relative
  to the input directory, or to ``crawl.images`` when set; ``|`` separates several), ``name``,
  ``type``;
- optional ``images/`` holding the referenced images.

``crawl`` copies those files and the referenced images into ``raw/``; ``clean`` reads ``raw/``
and hands the tables to :func:`vlkge.pipeline.assemble.assemble_graph`. Anything missing is a
missing modality. A user graph is inductive where it can be (``clean.unseen`` unset:
``inductive``): valid/test triples whose entity is absent from train are kept when that entity
has text or an image, and dropped, with a count, when it has neither.
"""

from __future__ import annotations

import logging
from pathlib import Path, PurePosixPath
from typing import Any

import polars as pl
from vlkge.pipeline.assemble import assemble_graph, read_table, unseen_mode
from vlkge.pipeline.sources import crawl_files, crawl_source, image_dir, read_manifest, source_display

from vlkge.errors import InputError, SourceError
from vlkge.graph import Graph

log = logging.getLogger("vlkge.pipeline")

TRIPLES_CSV = "triples.csv"
SPLIT_FILES = ("train.txt", "valid.txt", "test.txt")
ENTITIES_CSV = "entities.csv"
ENTITY_COLUMNS = ("text", "image", "name", "type")
IMAGE_SEPARATOR = "|"


class CustomAdapter:
    """Adapter for a user graph directory."""

    def crawl(
        self, dataset: str, source: str | None, raw_dir: Path, params: dict[str, Any]
    ) -> dict[str, Any]:
        src = crawl_source(
            dataset,
            source,
            params,
            directory="the directory holding triples.csv or train.txt/valid.txt/test.txt (and "
            "optionally entities.csv, images/)",
        )
        files = [(src / name, name, "table") for name in triple_files(src)]
        image_base = image_dir(params, src) or src
        if (src / ENTITIES_CSV).is_file():
            files.append((src / ENTITIES_CSV, ENTITIES_CSV, "table"))
            refs = image_refs(read_entities(src / ENTITIES_CSV))
            found = [r for r in refs if (image_base / r).is_file()]
            files += [(image_base / r, r, "image") for r in found]
            if len(found) < len(refs):
                first = next(r for r in refs if not (image_base / r).is_file())
                log.warning(
                    "%s: %d referenced image(s) not found under %s (first: %r); those entities "
                    "will have no image",
                    src / ENTITIES_CSV,
                    len(refs) - len(found),
                    image_base,
                    first,
                )
        return crawl_files(
            raw_dir,
            files,
            dataset=dataset,
            source=src,
            extra={"adapter": "custom", "images": str(image_base)},
        )

    def clean(self, dataset: str, raw_dir: Path, graph_dir: Path, params: dict[str, Any]) -> Graph:
        raw_dir = Path(raw_dir)
        manifest = read_manifest(raw_dir)
        present = {f["path"] for f in manifest.get("files", [])}
        triples = read_triples(raw_dir, present, manifest)
        entities = None
        if ENTITIES_CSV in present:
            table = read_entities(
                raw_dir / ENTITIES_CSV, display=source_display(raw_dir, manifest, ENTITIES_CSV)
            )
            entities = entity_table(table, raw_dir.name)
        return assemble_graph(
            dataset,
            triples,
            graph_dir,
            params,
            unseen=unseen_mode(params, "inductive"),  # a user graph: inductive where it can be
            entities=entities,
            manifest=manifest,
            image_root=raw_dir.parent,
        )


def triple_files(src: Path) -> list[str]:
    """The triple files of an input directory: ``triples.csv``, else the split files."""
    for name in (TRIPLES_CSV, *SPLIT_FILES, ENTITIES_CSV):
        if (src / name).exists() and not (src / name).is_file():
            raise SourceError(
                "a directory (or special file) where a file should be",
                path=src / name,
                hint=f"replace it with the {name} file, or remove it",
            )
    if (src / TRIPLES_CSV).is_file():
        ignored = [n for n in SPLIT_FILES if (src / n).is_file()]
        if ignored:
            log.warning("%s: using triples.csv; ignoring %s", src, ", ".join(ignored))
        return [TRIPLES_CSV]
    if not (src / "train.txt").is_file():
        raise SourceError(
            "no triples.csv and no train.txt here",
            path=src,
            hint="provide triples.csv (head,relation,tail,mode) or train.txt/valid.txt/test.txt "
            "(head TAB relation TAB tail)",
        )
    names = [n for n in SPLIT_FILES if (src / n).is_file()]
    for name in SPLIT_FILES:
        if name not in names:
            log.warning("%s: no %s; that split will be empty", src, name)
    return names


def read_triples(raw_dir: Path, present: set[str], manifest: dict[str, Any]) -> pl.DataFrame:
    """The raw triple files as one string table with ``split`` and source locations."""
    if TRIPLES_CSV in present:
        table = read_table(
            raw_dir / TRIPLES_CSV,
            display=source_display(raw_dir, manifest, TRIPLES_CSV),
            required=("head", "relation", "tail"),
            optional=("mode", "split"),
        )
        label = "mode" if "mode" in table.columns else "split" if "split" in table else None
        if label is None:
            raise InputError(
                "missing column(s) ['mode'] in the header",
                path=source_display(raw_dir, manifest, TRIPLES_CSV),
                line=1,
                hint="the first line must name the columns: head, relation, tail, mode",
            )
        if table.height == 0:
            raise InputError(
                "no triples (only a header)",
                path=source_display(raw_dir, manifest, TRIPLES_CSV),
                hint="add one line per triple: head,relation,tail,mode",
            )
        return table.rename({label: "split"})
    parts = []
    for name in SPLIT_FILES:
        if name in present:
            table = read_table(
                raw_dir / name,
                display=source_display(raw_dir, manifest, name),
                delimiter="\t",
                names=("head", "relation", "tail"),
                quoting=False,
            )
            parts.append(table.with_columns(split=pl.lit(name.removesuffix(".txt"))))
    if not parts:
        raise InputError("no triple files in the crawled inputs", path=raw_dir, hint="re-run `vlkge crawl`")
    return pl.concat(parts)


def read_entities(path: Path, *, display: str | None = None) -> pl.DataFrame:
    return read_table(path, display=display, required=("entity",), optional=ENTITY_COLUMNS)


def _image_lists(table: pl.DataFrame) -> pl.Series:
    """Per row, the image paths of the ``image`` column, normalised to POSIX relative paths."""
    if "image" not in table.columns:
        return pl.Series("images", [[] for _ in range(table.height)], dtype=pl.List(pl.String))
    out = []
    for value, file, line in table.select("image", "source_file", "source_line").iter_rows():
        paths = []
        for part in (value or "").split(IMAGE_SEPARATOR):
            part = part.strip().replace("\\", "/")
            if not part:
                continue
            rel = PurePosixPath(part)
            if rel.is_absolute() or ".." in rel.parts:
                raise InputError(
                    f"image path {part!r} must be relative to the input directory",
                    path=file,
                    line=line,
                    hint="put the image under the input directory (e.g. images/) and write its "
                    "path relative to it",
                )
            paths.append(rel.as_posix())
        out.append(paths)
    return pl.Series("images", out, dtype=pl.List(pl.String))


def image_refs(table: pl.DataFrame) -> list[str]:
    """Distinct image paths referenced by an entities table, in order of first reference."""
    return list(dict.fromkeys(p for paths in _image_lists(table).to_list() for p in paths))


def entity_table(table: pl.DataFrame, raw_name: str) -> pl.DataFrame:
    """entities.csv rows → assemble's entity table (image paths relative to ``data/<ds>/``)."""
    images = _image_lists(table).list.eval(pl.lit(f"{raw_name}/") + pl.element())
    columns = {
        c: pl.col(c) if c in table.columns else pl.lit(None, pl.String) for c in ("text", "name", "type")
    }
    return table.select(
        pl.col("entity").alias("key"),
        **columns,
        images=images,
        source_file=pl.col("source_file"),
        source_line=pl.col("source_line"),
    )


ADAPTER = CustomAdapter()
