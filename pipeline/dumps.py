"""A dataset's public inputs, pinned, and the local dump they make up.

A :class:`Dump` is what a data mirror holds for one dataset (``wn9_img/``, ``wikiart/``): its
files, each with a public URL and a sha256 (:class:`Pin`), laid out as in that directory, and
files derived from other public files (:class:`Derived`, e.g. WN9-IMG's entity text from
WordNet 3.0). :func:`fetch_dump` makes the dump complete in the download cache
(``$VLKGE_CACHE/dumps/<name>/``): files already there with the pinned hash are kept, the rest
are downloaded (:func:`vlkge.pipeline.download.fetch`: streamed, progress bar, resumable,
verified) from their public URL, or from an HTTP data mirror (``<mirror>/<name>/<path>``),
and derived files are made. When a file cannot be had, the error names it, its URL and where
to put it, and ``MISSING.tsv`` in the dump directory lists every such file.
"""

from __future__ import annotations

import csv
import io
import logging
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from urllib.parse import quote

from tqdm import tqdm
from vlkge.pipeline.download import Unreachable, fetch, part_path

from vlkge.errors import SourceError
from vlkge.fileio import atomic_path, sha256_file, write_text_atomic

log = logging.getLogger("vlkge.pipeline")

MISSING_LIST = "MISSING.tsv"
PIN_COLUMNS = ("path", "bytes", "sha256", "url", "use")


@dataclass(frozen=True)
class Pin:
    """One public file: where it lies in the dump (``path``, POSIX), its URL, sha256 and size.

    ``use``: ``input`` (fetched by ``crawl``), ``source`` (fetched only to derive a file), or
    ``reference`` (part of the public dump, pinned and listed, not needed to build the graph).
    """

    path: str
    url: str
    sha256: str
    size: int | None = None
    use: str = "input"


@dataclass(frozen=True)
class Derived:
    """A file of the dump made from other public files by ``make(root, out)``, which writes
    ``out`` from the ``sources`` under ``root``; checked against its pinned sha256."""

    path: str
    sha256: str
    sources: tuple[Pin, ...]
    make: Callable[[Path, Path], None]
    how: str


@dataclass(frozen=True)
class Dump:
    """A dataset dump: its directory name in a data mirror and the files that make it up."""

    name: str
    pins: tuple[Pin, ...]
    derived: tuple[Derived, ...] = ()
    packaged: Callable[[], Path] | None = field(default=None, compare=False)

    def inputs(self) -> list[Pin]:
        return [p for p in self.pins if p.use == "input"]


def read_pins(name: str) -> tuple[Pin, ...]:
    """The pins of ``pipeline/data/pins/<name>`` (TSV: path, bytes, sha256, url, use; ``#``
    comment lines before the header)."""
    text = resources.files("vlkge.pipeline").joinpath("data", "pins", name).read_text(encoding="utf-8")
    table = "".join(line for line in text.splitlines(True) if not line.startswith("#"))
    rows = csv.DictReader(io.StringIO(table), delimiter="\t")
    return tuple(
        Pin(r["path"], r["url"], r["sha256"], int(r["bytes"]) if r["bytes"] else None, r["use"] or "input")
        for r in rows
    )


def cache_dir() -> Path:
    """Download cache: ``$VLKGE_CACHE``, else ``$XDG_CACHE_HOME/vlkge``, else ``~/.cache/vlkge``."""
    if os.environ.get("VLKGE_CACHE"):
        return Path(os.environ["VLKGE_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "vlkge"


def dump_dir(dump: Dump) -> Path:
    """Where :func:`fetch_dump` keeps ``dump``."""
    return cache_dir() / "dumps" / dump.name


def mirror_url(base: str, dump: Dump, path: str) -> str:
    """The URL of ``path`` of ``dump`` in the HTTP data mirror ``base``."""
    return f"{base.rstrip('/')}/{quote(dump.name)}/{quote(path)}"


def fetch_dump(dump: Dump, *, base_url: str | None = None) -> Path:
    """``dump`` complete and verified in the cache (see the module docstring); its directory.

    With ``base_url`` (an HTTP data mirror) every file, derived ones included, is fetched from
    the mirror and checked against its pin; otherwise from its public URL, and derived files
    are made from their sources.
    """
    root = dump_dir(dump)
    pending = [d for d in dump.derived if not _verified(root / d.path, d.sha256)]
    wanted = dump.inputs()
    if base_url is not None:
        wanted += [Pin(d.path, mirror_url(base_url, dump, d.path), d.sha256) for d in pending]
        pending = []
    wanted += [s for d in pending for s in d.sources]
    needed = list({p.path: p for p in wanted if not _verified(root / p.path, p.sha256)}.values())
    _download(dump, needed, root, base_url)
    for derived in pending:
        _derive(root, derived)
    return root


def _verified(path: Path, sha256: str) -> bool:
    if not path.is_file():
        return False
    if sha256_file(path) == sha256:
        return True
    log.warning("%s: sha256 is not the pinned one; fetching it again", path)
    return False


def _download(dump: Dump, pins: Sequence[Pin], root: Path, base_url: str | None) -> None:
    if not pins:
        return
    sizes = [p.size for p in pins]
    resumed = sum(part_path(root / p.path).stat().st_size for p in pins if part_path(root / p.path).is_file())
    failed: list[tuple[Pin, str, str]] = []
    with tqdm(
        total=None if None in sizes else sum(s or 0 for s in sizes),
        initial=resumed,
        unit="B",
        unit_scale=True,
        desc=f"{dump.name}: {len(pins)} file(s)",
        disable=None,
        file=sys.stderr,
    ) as bar:
        for i, pin in enumerate(pins):
            url = pin.url if base_url is None else mirror_url(base_url, dump, pin.path)
            try:
                fetch(url, root / pin.path, sha256=pin.sha256, bar=bar)
            except Unreachable as exc:  # offline: the rest would fail the same way
                failed += [(p, u, exc.message) for p, u in _urls(pins[i:], dump, base_url)]
                break
            except SourceError as exc:
                failed.append((pin, url, exc.message))
    if failed:
        raise _missing(dump, root, failed)


def _urls(pins: Sequence[Pin], dump: Dump, base_url: str | None) -> list[tuple[Pin, str]]:
    return [(p, p.url if base_url is None else mirror_url(base_url, dump, p.path)) for p in pins]


def _missing(dump: Dump, root: Path, failed: list[tuple[Pin, str, str]]) -> SourceError:
    """The error for files that could not be had: each with its URL and destination, the first
    three in the message and all of them in ``MISSING.tsv``."""
    listing = root / MISSING_LIST
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter="\t", lineterminator="\n")
    writer.writerow(("path", "url", "put_it_at", "sha256", "reason"))
    writer.writerows((p.path, url, str(root / p.path), p.sha256, why) for p, url, why in failed)
    root.mkdir(parents=True, exist_ok=True)
    write_text_atomic(listing, buffer.getvalue())
    named = "; ".join(f"{p.path} from {url} -> {root / p.path}" for p, url, _ in failed[:3])
    more = f"; all {len(failed)} with URL and destination in {listing}" if len(failed) > 3 else ""
    return SourceError(
        f"{len(failed)} file(s) of the {dump.name} dump could not be fetched ({failed[0][2]}): {named}{more}",
        path=listing,
        hint=f"download each to the path given and run again, or pass --source DIR (a complete "
        f"{dump.name}/ dump) or set VLKGE_DATA_MIRROR to a directory holding {dump.name}/",
    )


def _derive(root: Path, derived: Derived) -> None:
    target = root / derived.path
    log.info("making %s (%s)", target, derived.how)
    with atomic_path(target) as tmp:
        derived.make(root, tmp)
        got = sha256_file(tmp)
        if got != derived.sha256:
            raise SourceError(
                f"{derived.path} made from its sources ({derived.how}) has sha256 {got}, not the "
                f"pinned {derived.sha256}; not kept",
                path=target,
                hint="its sources differ from the pinned ones; delete them from the cache and run again",
            )
