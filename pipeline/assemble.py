"""The one generic graph builder: string-keyed tables in, canonical graph out.

Every adapter reads its dump into two polars tables and calls :func:`assemble_graph` (or
:func:`assemble_tables`, then :func:`write_assembled` with a record of its own):

- ``triples``: ``head``, ``relation``, ``tail``, ``split`` (str) and, when read from a file,
  ``source_file`` (str), ``source_line`` (int, 1-based physical line) for messages;
- ``entities`` (optional): ``key`` plus any of ``type``, ``name``, ``text`` (str) and ``images``
  (list of paths relative to the dataset directory ``data/<ds>/``), optionally with
  ``source_file``/``source_line``.

:func:`read_table` reads a CSV/TSV into such a table with exact line numbers.

All generic checks live here; warnings go through :mod:`logging` (logger ``vlkge.pipeline``,
shown on stderr even when logging is not configured) and are also stored in ``meta.json``
under ``clean.warnings``. Errors are :class:`~vlkge.errors.InputError` naming file and line.

Entity ids follow the order of first appearance: entity-table rows first (table order), then
entities met only in triples (row order, head before tail). Relation ids follow first
appearance in the triples (or an order the adapter gives).

Valid/test triples with an entity or relation absent from train follow ``clean.unseen``
(:data:`UNSEEN_MODES`): ``drop`` them, ``fail``, ``keep`` them all (inductive), or
``inductive``: keep those whose unseen entities have text or an image and drop, with a count,
those with an unseen entity that has neither or a relation never seen in train.
"""

from __future__ import annotations

import csv
import io
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
from vlkge.pipeline.sources import manifest_inputs

from vlkge.errors import ConfigError, InputError
from vlkge.graph import SPLITS, Graph, write_graph

log = logging.getLogger("vlkge.pipeline")

SPLIT_ALIASES: dict[str, str] = {
    "train": "train",
    "training": "train",
    "valid": "valid",
    "val": "valid",
    "validation": "valid",
    "dev": "valid",
    "test": "test",
    "testing": "test",
}
UNSEEN_MODES = ("drop", "fail", "keep", "inductive")
ENTITY_ORDER = (
    "entity table rows in table order, then entities found only in triples in order of first "
    "appearance (row order, head before tail)"
)
_KEYS = ("head", "relation", "tail")
# the entity table while assembling: contract columns (less the id) and where each row came from
_ENTITY_COLUMNS = {
    "key": pl.String,
    "type": pl.String,
    "name": pl.String,
    "text": pl.String,
    "images": pl.List(pl.String),
    "source_file": pl.String,
    "source_line": pl.Int64,
}
_SPLIT_RANK = {s: i for i, s in enumerate(SPLITS)}


# --------------------------------------------------------------------------- reading


def read_table(
    path: str | Path,
    *,
    display: str | Path | None = None,
    delimiter: str = ",",
    names: Sequence[str] | None = None,
    required: Sequence[str] = (),
    optional: Sequence[str] | None = None,
    quoting: bool = True,
) -> pl.DataFrame:
    """Read a delimited text file into a string table with ``source_file``/``source_line``.

    With ``names`` the file has no header and every row must have exactly those fields;
    otherwise the first non-blank line is the header (names stripped and lower-cased) and must
    hold every ``required`` column; columns outside ``required`` + ``optional`` are ignored with
    a warning (``optional=None`` keeps all). UTF-8 with or without BOM, LF or CRLF; blank lines
    are skipped. ``quoting=False`` reads quote characters literally (plain TSV). ``display``
    is the path named in messages (default: ``path``).
    """
    where = str(display or path)
    rows = _Rows(_decode(Path(path), where), where, delimiter, quoting)
    rows.read(names, required)
    if rows.header is None:
        raise _empty_file(where, names, required, delimiter)
    header = rows.header
    keep = [i for i, name in enumerate(header) if optional is None or name in required or name in optional]
    ignored = [header[i] for i in range(len(header)) if i not in keep]
    if ignored:
        known = ", ".join([*required, *(optional or ())])
        log.warning(
            "%s:%d: ignoring unknown columns %s (known: %s)", where, rows.header_line or 1, ignored, known
        )
    data: dict[str, Any] = {header[i]: rows.columns[i] if rows.columns else [] for i in keep}
    frame = pl.DataFrame(data, schema={header[i]: pl.String for i in keep})
    return frame.with_columns(
        source_file=pl.lit(where, dtype=pl.String),
        source_line=pl.Series(rows.lines, dtype=pl.Int64),
    )


class _Rows:
    """The rows of one delimited text: header, columns of values and their physical line numbers."""

    def __init__(self, text: str, where: str, delimiter: str, quoting: bool) -> None:
        self.where, self.delimiter, self.quoting = where, delimiter, quoting
        self.reader = csv.reader(
            io.StringIO(text, newline=""),
            delimiter=delimiter,
            quoting=csv.QUOTE_MINIMAL if quoting else csv.QUOTE_NONE,
            strict=quoting,
        )
        self.header: list[str] | None = None
        self.header_line = 0
        self.columns: list[list[str]] = []
        self.lines: list[int] = []

    def read(self, names: Sequence[str] | None, required: Sequence[str]) -> None:
        """Fill header, columns and lines; InputError naming the line on a malformed row."""
        self.header = list(names) if names is not None else None
        prev = 0
        try:
            for row in self.reader:
                line, prev = prev + 1, self.reader.line_num
                if not row or (len(row) == 1 and not row[0].strip()):
                    continue
                if self.header is None:
                    self.header = [c.strip().lower() for c in row]
                    self.header_line = line
                    _check_header(self.header, required, self.where, line)
                else:
                    self._append(row, line)
        except csv.Error as exc:
            raise InputError(
                f"malformed row ({exc})",
                path=self.where,
                line=prev + 1,
                hint="close the quote: a field holding a quote is wrapped in quotes, inner quotes doubled",
            ) from None

    def _append(self, row: list[str], line: int) -> None:
        header = self.header or []
        if not self.columns:
            self.columns = [[] for _ in header]
        if len(row) != len(header):
            raise InputError(
                f"expected {len(header)} fields ({_join(header, self.delimiter)}), found {len(row)}",
                path=self.where,
                line=line,
                hint="fix the row; quote fields that contain the delimiter"
                if self.quoting
                else "fix the row; fields must not contain tabs",
            )
        for column, value in zip(self.columns, row, strict=True):
            column.append(value)
        self.lines.append(line)


def _empty_file(
    where: str, names: Sequence[str] | None, required: Sequence[str], delimiter: str
) -> InputError:
    if names is None:
        columns = ", ".join(required) or "the columns"
        return InputError(
            "empty file (no header)",
            path=where,
            line=1,
            hint=f"the file needs a header line naming {columns}, then one row per line",
        )
    return InputError(
        "empty file", path=where, line=1, hint=f"write one row per line: {_join(names, delimiter)}"
    )


def _decode(path: Path, where: str) -> str:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read file ({exc.strerror})", path=where) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise InputError(
            f"not valid UTF-8 (byte 0x{data[exc.start]:02x} at column {column})",
            path=where,
            line=line,
            hint="re-save the file as UTF-8",
        ) from None
    if "\x00" in text:
        at = text.index("\x00")
        raise InputError(
            "NUL byte in a text file",
            path=where,
            line=text.count("\n", 0, at) + 1,
            hint="save the file as UTF-8 text (not UTF-16 or a binary format)",
        )
    return text[1:] if text.startswith("\ufeff") else text


def _check_header(header: list[str], required: Sequence[str], where: str, line: int) -> None:
    missing = [c for c in required if c not in header]
    if missing:
        other = [d for d in (";", "\t", ",", "|") if len(header) == 1 and d in header[0]]
        raise InputError(
            f"missing column(s) {missing} in the header (found {header})",
            path=where,
            line=line,
            hint=f"the file seems to be separated by {other[0]!r}; write it with the expected delimiter"
            if other
            else f"the first line must name the columns: {', '.join(required)}",
        )
    dup = sorted({c for c in header if header.count(c) > 1})
    if dup:
        raise InputError(
            f"column(s) {dup} appear twice in the header",
            path=where,
            line=line,
            hint="rename or remove the repeated column",
        )


def _join(names: Sequence[str], delimiter: str) -> str:
    return ("TAB" if delimiter == "\t" else delimiter).join(names)


# --------------------------------------------------------------------------- assembling


def assemble_graph(
    dataset: str,
    triples: pl.DataFrame,
    graph_dir: str | Path,
    params: Mapping[str, Any],
    *,
    entities: pl.DataFrame | None = None,
    manifest: Mapping[str, Any] | None = None,
    image_root: str | Path | None = None,
    protocol: Mapping[str, Any] | None = None,
    entity_file: str | None = None,
    unseen: str | None = None,
) -> Graph:
    """Check the string-keyed tables, assign ids and write the canonical graph to ``graph_dir``:
    :func:`assemble_tables`, then :func:`write_assembled`. Nothing is written when a check fails,
    so a previous graph stays intact."""
    assembled = assemble_tables(
        triples, params, entities=entities, image_root=image_root, entity_file=entity_file, unseen=unseen
    )
    return write_assembled(dataset, assembled, graph_dir, manifest=manifest, protocol=protocol)


@dataclass
class Assembled:
    """The contract tables of one graph, ids assigned, and the record of what assembling did
    (``clean``: unseen mode, dropped counts, warnings; ``inductive``: unseen valid/test kept)."""

    entities: pl.DataFrame
    relations: pl.DataFrame
    triples: pl.DataFrame
    clean: dict[str, Any]
    inductive: bool


def assemble_tables(
    triples: pl.DataFrame,
    params: Mapping[str, Any],
    *,
    entities: pl.DataFrame | None = None,
    image_root: str | Path | None = None,
    entity_file: str | None = None,
    unseen: str | None = None,
    relation_order: Sequence[str] | None = None,
    sort_triples: bool = False,
) -> Assembled:
    """Check the string-keyed tables and assign ids.

    ``params``: ``clean.unseen`` (unless ``unseen`` is given: the adapter's choice, see
    :func:`unseen_mode`) and ``clean.allow_unlisted_entities``. ``image_root`` (usually
    ``data/<ds>/``) is where image paths are resolved; a missing image is dropped with a warning.
    ``entity_file`` names the entity table in messages when its rows carry no ``source_file``.
    Relation ids follow ``relation_order`` where given (relations absent from it after, by first
    appearance); ``sort_triples`` orders the triples by split, relation, head, tail id instead of
    keeping the input order.
    """
    mode = unseen or unseen_mode(params, "drop")
    allow_unlisted = bool((params.get("clean", {}) or {}).get("allow_unlisted_entities", False))
    report = _Report()
    tri = _drop_duplicates(_normalise_triples(triples), report)
    _require_train(tri)
    ent = None
    if entities is not None:
        ent = _normalise_entities(entities, entity_file)
        _check_listed(tri, ent, allow_unlisted)
    tri, inductive = _handle_unseen(tri, mode, report, lambda keys: _represented(ent, image_root, keys))
    entity_frame = _entity_frame(tri, ent, allow_unlisted, report)
    if image_root is not None:
        entity_frame = _check_images(entity_frame, Path(image_root), report)
    relation_frame = _relation_frame(tri, relation_order)
    clean = {
        "unseen": mode,
        "allow_unlisted_entities": allow_unlisted,
        "entity_order": ENTITY_ORDER,
        "dropped": report.dropped,
        "warnings": report.warnings,
        **report.extra,
    }
    return Assembled(
        entity_frame.select("entity_id", "key", "type", "name", "text", "images"),
        relation_frame,
        _id_triples(tri, entity_frame, relation_frame, sort_triples),
        clean,
        inductive,
    )


def write_assembled(
    dataset: str,
    assembled: Assembled,
    graph_dir: str | Path,
    *,
    manifest: Mapping[str, Any] | None = None,
    protocol: Mapping[str, Any] | None = None,
    clean: Mapping[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Graph:
    """Write ``assembled`` to ``graph_dir`` with its ``meta.json``: the inputs of ``manifest``,
    ``protocol`` (``inductive`` added when unseen valid/test triples were kept) and ``extra``
    top-level keys. ``clean`` is an adapter's own record in place of the generic one; the generic
    record is then added under ``assembly`` only when assembling dropped or warned about
    anything, so nothing it did goes unrecorded."""
    record = dict(assembled.clean)
    if clean is not None:
        record = {**clean, **({"assembly": record} if record["warnings"] else {})}
    meta: dict[str, Any] = {
        "dataset": dataset,
        "inputs": manifest_inputs(manifest) if manifest is not None else {},
        "clean": record,
        "protocol": {**dict(protocol or {}), **({"inductive": True} if assembled.inductive else {})},
        **dict(extra or {}),
    }
    return write_graph(graph_dir, assembled.entities, assembled.relations, assembled.triples, meta)


def unseen_mode(params: Mapping[str, Any], default: str) -> str:
    """``clean.unseen`` of ``params``, or the adapter's ``default`` when it is unset (null)."""
    mode = (params.get("clean", {}) or {}).get("unseen") or default
    if mode not in UNSEEN_MODES:
        raise ConfigError(
            f"unknown value {mode!r}", key="clean.unseen", hint=f"use {', '.join(UNSEEN_MODES)}"
        )
    return str(mode)


def _require_train(tri: pl.DataFrame) -> None:
    if tri.filter(pl.col("split") == "train").height == 0:
        files = sorted(set(tri["source_file"].drop_nulls().to_list())) or ["(no triples)"]
        raise InputError(
            "no train triples",
            path=", ".join(files),
            hint="label at least some triples train (mode column or train.txt)",
        )


def _relation_frame(tri: pl.DataFrame, order: Sequence[str] | None) -> pl.DataFrame:
    keys = _first_appearance(tri, ("relation",))["key"].to_list()
    if order is not None:
        present = set(keys)
        listed = [r for r in dict.fromkeys(order) if r in present]
        keys = listed + [r for r in keys if r not in set(listed)]
    return pl.DataFrame(
        {"relation_id": list(range(len(keys))), "key": keys},
        schema={"relation_id": pl.Int32, "key": pl.String},
    )


def _id_triples(
    tri: pl.DataFrame, entity_frame: pl.DataFrame, relation_frame: pl.DataFrame, sort: bool
) -> pl.DataFrame:
    """The triples as ids, in input order or (``sort``) by split, relation, head, tail."""
    ids = entity_frame.select("key", "entity_id")
    rids = relation_frame.select(pl.col("key").alias("relation"), "relation_id")
    frame = (
        tri.sort("_row")
        .join(ids.rename({"key": "head", "entity_id": "h"}), on="head", how="left")
        .join(ids.rename({"key": "tail", "entity_id": "t"}), on="tail", how="left")
        .join(rids, on="relation", how="left")
        .select(
            pl.col("h").alias("head"),
            pl.col("relation_id").alias("relation"),
            pl.col("t").alias("tail"),
            "split",
        )
    )
    if sort:
        rank = pl.col("split").replace_strict(_SPLIT_RANK, return_dtype=pl.Int8)
        frame = frame.sort(rank, "relation", "head", "tail")
    return frame


class _Report:
    """Warnings (logged and kept for meta.json) and dropped counts."""

    def __init__(self) -> None:
        self.warnings: list[str] = []
        self.extra: dict[str, Any] = {}  # mode-specific record (clean.unseen: inductive)
        self.dropped: dict[str, Any] = {
            "duplicate_triples": 0,
            "cross_split_duplicates": 0,
            "unseen_triples": {"valid": 0, "test": 0},
            "missing_images": 0,
            "entities_without_triples": 0,
        }

    def warn(self, message: str) -> None:
        self.warnings.append(message)
        log.warning("%s", message)


def _loc(row: Mapping[str, Any]) -> str:
    if row.get("source_file") is None:
        return "an adapter-built row"
    return f"{row['source_file']}:{row['source_line']}"


def _first(frame: pl.DataFrame) -> dict[str, Any]:
    return frame.sort("_row").row(0, named=True)


def _normalise_triples(triples: pl.DataFrame) -> pl.DataFrame:
    missing = [c for c in (*_KEYS, "split") if c not in triples]
    if missing:
        raise ValueError(f"triples table lacks columns {missing}")
    if "source_file" not in triples.columns:  # built by the adapter, not read from a file
        triples = triples.with_columns(
            source_file=pl.lit(None, dtype=pl.String), source_line=pl.lit(None, dtype=pl.Int64)
        )
    tri = triples.select(
        *(pl.col(c).cast(pl.String).str.strip_chars() for c in _KEYS),
        pl.col("split").cast(pl.String).alias("split_label"),
        pl.col("source_file").cast(pl.String),
        pl.col("source_line").cast(pl.Int64),
    ).with_row_index("_row")
    for column in _KEYS:
        bad = tri.filter(pl.col(column).is_null() | (pl.col(column) == ""))
        if bad.height:
            row = _first(bad)
            raise _row_error(
                f"empty {column} ({bad.height} row(s) like this)",
                row,
                f"every triple needs a non-empty {column}",
            )
    tri = tri.with_columns(
        split=pl.col("split_label")
        .str.strip_chars()
        .str.to_lowercase()
        .replace_strict(SPLIT_ALIASES, default=None, return_dtype=pl.String)
    )
    bad = tri.filter(pl.col("split").is_null())
    if bad.height:
        row = _first(bad)
        raise _row_error(
            f"unknown split label {row['split_label']!r} ({bad.height} row(s) like this)",
            row,
            "use train, valid or test (also accepted: val, validation, dev, training, testing; any case)",
        )
    return tri.drop("split_label").with_columns(
        _rank=pl.col("split").replace_strict(_SPLIT_RANK, return_dtype=pl.Int8)
    )


def _drop_duplicates(tri: pl.DataFrame, report: _Report) -> pl.DataFrame:
    # the usual case: no repeats (distinct hashes prove it; a collision only takes the long way)
    if tri.select(pl.struct(*_KEYS).hash()).n_unique() == tri.height:
        return tri
    ordered = tri.sort("_rank", "_row").with_columns(_keep=pl.struct(*_KEYS).is_first_distinct())
    kept = ordered.filter(pl.col("_keep")).drop("_keep")
    dropped = ordered.filter(~pl.col("_keep"))
    if dropped.height == 0:
        return kept.sort("_row")
    origin = kept.select(
        *_KEYS,
        kept_file=pl.col("source_file"),
        kept_line=pl.col("source_line"),
        kept_split=pl.col("split"),
    )
    dropped = dropped.join(origin, on=list(_KEYS), how="left")
    same = dropped.filter(pl.col("split") == pl.col("kept_split"))
    cross = dropped.filter(pl.col("split") != pl.col("kept_split"))
    if same.height:
        row = _first(same)
        report.warn(
            f"dropped {same.height} duplicate triple(s) (first: {_loc(row)} repeats "
            f"{row['kept_file']}:{row['kept_line']})"
        )
    if cross.height:
        row = _first(cross)
        report.warn(
            f"{cross.height} triple(s) occur in more than one split; kept the copy in the "
            f"earliest split (train, then valid, then test) and dropped the others (first: "
            f"{_loc(row)} [{row['split']}] is also {row['kept_file']}:{row['kept_line']} "
            f"[{row['kept_split']}])"
        )
    report.dropped["duplicate_triples"] = same.height
    report.dropped["cross_split_duplicates"] = cross.height
    return kept.sort("_row")


def _normalise_entities(entities: pl.DataFrame, entity_file: str | None) -> pl.DataFrame:
    if "key" not in entities.columns:
        raise ValueError("entity table lacks a 'key' column")
    height = entities.height
    frame = entities.with_columns(pl.col("key").cast(pl.String).str.strip_chars())
    for column in ("type", "name", "text"):
        if column not in frame.columns:
            frame = frame.with_columns(pl.lit(None, dtype=pl.String).alias(column))
    if "images" not in frame.columns:
        frame = frame.with_columns(pl.lit([], dtype=pl.List(pl.String)).alias("images"))
    if "source_file" not in frame.columns:
        frame = frame.with_columns(source_file=pl.lit(entity_file or "entity table"))
    if "source_line" not in frame.columns:
        frame = frame.with_columns(source_line=pl.int_range(1, height + 1, dtype=pl.Int64))
    frame = frame.with_row_index("_row").with_columns(
        # empty or blank text/type/name → null
        *(
            pl.when(pl.col(c).cast(pl.String).str.strip_chars() == "")
            .then(None)
            .otherwise(pl.col(c).cast(pl.String))
            .alias(c)
            for c in ("type", "name", "text")
        ),
        pl.col("images").cast(pl.List(pl.String)).fill_null([]),
        pl.col("source_file").cast(pl.String),
        pl.col("source_line").cast(pl.Int64),
    )
    bad = frame.filter(pl.col("key").is_null() | (pl.col("key") == ""))
    if bad.height:
        row = _first(bad)
        raise _row_error(
            "empty entity key",
            row,
            "every entity row needs its entity id",
        )
    dup = frame.filter(~pl.col("key").is_first_distinct())
    if dup.height:
        row = _first(dup)
        first = _first(frame.filter(pl.col("key") == row["key"]))
        raise _row_error(
            f"entity {row['key']!r} is listed twice (also at line {first['source_line']})",
            row,
            "keep one row per entity",
        )
    return frame


def _triple_entities(tri: pl.DataFrame) -> pl.DataFrame:
    """Every (entity key, row, file, line) mention, head before tail."""
    cols = ("_row", "source_file", "source_line")
    return pl.concat(
        [
            tri.select(pl.col("head").alias("key"), *cols, _pos=pl.col("_row") * 2),
            tri.select(pl.col("tail").alias("key"), *cols, _pos=pl.col("_row") * 2 + 1),
        ]
    )


def _first_appearance(tri: pl.DataFrame, columns: Sequence[str]) -> pl.DataFrame:
    """Distinct keys of ``columns`` (``head``/``tail`` or ``relation``) by first appearance."""
    if columns == ("relation",):
        mentions = tri.select(pl.col("relation").alias("key"), _pos=pl.col("_row"))
    else:
        mentions = _triple_entities(tri).select("key", "_pos")
    return mentions.group_by("key").agg(pl.col("_pos").min()).sort("_pos").select("key")


def _check_listed(tri: pl.DataFrame, ent: pl.DataFrame, allow_unlisted: bool) -> None:
    if allow_unlisted:
        return
    mentions = _triple_entities(tri)
    missing = mentions.join(ent.select("key"), on="key", how="anti")
    if missing.height:
        row = missing.sort("_pos").row(0, named=True)
        count = missing["key"].n_unique()
        raise _row_error(
            f"{count} entit{'y' if count == 1 else 'ies'} in triples have no row in the "
            f"entity table {_entity_source(ent)} (first: {row['key']!r})",
            row,
            "add them to the entity file, or set clean.allow_unlisted_entities: true "
            "(they then have no text or image)",
        )
    orphans = ent.join(mentions.select("key").unique(), on="key", how="anti")
    if orphans.height:
        count, row = orphans.height, _first(orphans)
        raise _row_error(
            f"{count} listed entit{'y' if count == 1 else 'ies'} occur in no triple (first: {row['key']!r})",
            row,
            "remove them or fix their key, or set clean.allow_unlisted_entities: true "
            "to keep them as entities without triples",
        )


def _row_error(message: str, row: Mapping[str, Any], hint: str) -> InputError:
    """An InputError at the file and line a table row came from."""
    return InputError(message, path=row["source_file"], line=row["source_line"], hint=hint)


def _entity_source(ent: pl.DataFrame) -> str:
    return str(ent["source_file"][0]) if ent.height else "(empty)"


def _handle_unseen(
    tri: pl.DataFrame, mode: str, report: _Report, represented: Callable[[pl.Series], set[str]]
) -> tuple[pl.DataFrame, bool]:
    """Apply ``clean.unseen`` to valid/test triples with an entity or relation absent from
    train; ``represented`` gives the keys among some entities that have text or an image."""
    train = tri.filter(pl.col("split") == "train")
    seen_e = pl.concat([train["head"], train["tail"]]).unique().implode()
    seen_r = train["relation"].unique().implode()
    flags = tri.with_columns(
        _new_h=~pl.col("head").is_in(seen_e),
        _new_t=~pl.col("tail").is_in(seen_e),
        _new_r=~pl.col("relation").is_in(seen_r),
    )
    unseen = flags.filter(pl.col("_new_h") | pl.col("_new_t") | pl.col("_new_r"))
    if unseen.height == 0:
        return tri, False
    row = _first(unseen)
    if row["_new_r"]:
        what = f"relation {row['relation']!r}"
    else:
        what = f"entity {row['head'] if row['_new_h'] else row['tail']!r}"
    counts = _split_counts(unseen)
    n_ent = unseen.filter(pl.col("_new_h") | pl.col("_new_t")).height
    n_rel = unseen.filter(pl.col("_new_r")).height
    summary = (
        f"{counts['valid']} valid and {counts['test']} test triple(s) hold an entity "
        f"({n_ent}) or a relation ({n_rel}) that never occurs in train "
        f"(first: {_loc(row)}, {what})"
    )
    if mode == "fail":
        raise _row_error(
            f"{what} never occurs in train; {summary}",
            row,
            "set clean.unseen: drop to drop such triples, or keep for an inductive graph",
        )
    if mode == "keep":
        log.info("%s; kept them (inductive graph)", summary)
        return tri, True
    if mode == "inductive":
        return _keep_represented(tri, unseen, represented, report)
    report.dropped["unseen_triples"] = counts
    report.warn(f"dropped {summary}; set clean.unseen: keep for an inductive graph")
    return tri.join(unseen.select("_row"), on="_row", how="anti", maintain_order="left"), False


def _split_counts(frame: pl.DataFrame) -> dict[str, int]:
    return {s: frame.filter(pl.col("split") == s).height for s in ("valid", "test")}


def _keep_represented(
    tri: pl.DataFrame, unseen: pl.DataFrame, represented: Callable[[pl.Series], set[str]], report: _Report
) -> tuple[pl.DataFrame, bool]:
    """``clean.unseen: inductive``: keep the valid/test triples whose every unseen entity has text
    or an image (its features stand in for the structure it lacks); drop those with an unseen
    entity that has neither, and those with a relation never seen in train."""
    new_keys = pl.concat([unseen.filter("_new_h")["head"], unseen.filter("_new_t")["tail"]]).unique()
    ok = pl.Series(sorted(represented(new_keys)), dtype=pl.String).implode()
    bare = (pl.col("_new_h") & ~pl.col("head").is_in(ok)) | (pl.col("_new_t") & ~pl.col("tail").is_in(ok))
    flags = unseen.with_columns(_bare=bare)
    by_relation = flags.filter(pl.col("_new_r"))
    by_entity = flags.filter(~pl.col("_new_r") & pl.col("_bare"))
    dropped = pl.concat([by_relation, by_entity])
    kept = _split_counts(flags.filter(~pl.col("_new_r") & ~pl.col("_bare")))
    record = {
        "kept": kept,
        "dropped_entity_without_text_or_image": _split_counts(by_entity),
        "dropped_relation_unseen_in_train": _split_counts(by_relation),
    }
    report.extra["inductive"] = record
    report.dropped["unseen_triples"] = _split_counts(dropped)
    message = (
        f"kept {kept['valid']} valid and {kept['test']} test triple(s) whose entity unseen in train "
        f"has text or an image (inductive); dropped {by_entity.height} whose unseen entity has "
        f"neither and {by_relation.height} with a relation never seen in train"
    )
    if dropped.height:
        row = _first(dropped)
        report.warn(f"{message} (first dropped: {_loc(row)}); set clean.unseen: keep to keep them all")
    else:
        log.info("%s", message)
    survivors = tri.join(dropped.select("_row"), on="_row", how="anti", maintain_order="left")
    return survivors, sum(kept.values()) > 0


def _represented(ent: pl.DataFrame | None, image_root: str | Path | None, keys: pl.Series) -> set[str]:
    """The ``keys`` whose entity row has text, or an image that exists under ``image_root``
    (any listed image when there is no root to check against)."""
    if ent is None or keys.is_empty():
        return set()
    rows = ent.filter(pl.col("key").is_in(keys.implode())).select("key", "text", "images")
    out = set()
    for key, text, images in rows.iter_rows():
        if text is not None or any(
            image_root is None or os.path.isfile(Path(image_root) / p) for p in images
        ):
            out.add(key)
    return out


def _entity_frame(
    tri: pl.DataFrame, ent: pl.DataFrame | None, allow_unlisted: bool, report: _Report
) -> pl.DataFrame:
    """Entities in id order with type/name/text/images (null/empty where unknown)."""
    in_triples = _first_appearance(tri, ("head", "tail"))
    listed = (
        pl.DataFrame(schema=_ENTITY_COLUMNS) if ent is None else ent.sort("_row").select(*_ENTITY_COLUMNS)
    )
    if not allow_unlisted and ent is not None:
        before = listed.height
        listed = listed.join(in_triples, on="key", how="semi", maintain_order="left")
        report.dropped["entities_without_triples"] = before - listed.height
        if before > listed.height:
            report.warn(
                f"dropped {before - listed.height} entit(ies) left without any triple after "
                "dropping unseen valid/test triples"
            )
    extra = in_triples.join(listed.select("key"), on="key", how="anti", maintain_order="left")
    extra = extra.with_columns(
        pl.lit([] if dtype == pl.List(pl.String) else None, dtype=dtype).alias(name)
        for name, dtype in _ENTITY_COLUMNS.items()
        if name != "key"
    )
    frame = pl.concat([listed, extra.select(*_ENTITY_COLUMNS)], how="vertical")
    return frame.with_columns(
        entity_id=pl.int_range(pl.len(), dtype=pl.Int32),
        name=pl.coalesce(pl.col("name"), pl.col("key")),
    )


def _check_images(frame: pl.DataFrame, root: Path, report: _Report) -> pl.DataFrame:
    """Drop image paths that do not exist under ``root``; warn with a count and an example."""
    flat = frame.select("entity_id", "images", "source_file", "source_line").explode("images")
    flat = flat.filter(pl.col("images").is_not_null())
    if flat.height == 0:
        return frame
    exists = [os.path.isfile(root / p) for p in flat["images"].to_list()]
    flat = flat.with_columns(_ok=pl.Series(exists, dtype=pl.Boolean))
    missing = flat.filter(~pl.col("_ok"))
    if missing.height == 0:
        return frame
    row = missing.row(0, named=True)
    where = f"{_loc(row)}: " if row["source_file"] else ""
    report.dropped["missing_images"] = missing.height
    report.warn(
        f"{missing.height} referenced image(s) not found, dropped (first: {where}"
        f"{row['images']!r}); those entities keep their other modalities"
    )
    good = (
        flat.filter(pl.col("_ok"))
        .group_by("entity_id", maintain_order=True)
        .agg(pl.col("images").alias("_images"))
    )
    return (
        frame.join(good, on="entity_id", how="left")
        .with_columns(images=pl.col("_images").fill_null([]))
        .drop("_images")
        .sort("entity_id")
    )
