"""Where a dataset's dump comes from, and the verified copy of it under ``data/<ds>/raw/``.

Source resolution (:func:`resolve_source`), in order:

1. ``source`` given (``--source`` / ``crawl.source``): a local directory or file is used as is;
   ``packaged`` is the copy shipped inside the package, where the adapter has one; a
   ``http(s)://`` or ``file://`` URL is downloaded into the cache and checked against the
   adapter's pinned sha256 when the URL names a pinned file.
2. ``$VLKGE_DATA_MIRROR``: a directory holding the dump under the dataset's name (as given, as
   its directory slug, with ``-`` read as ``_``) or under the dump's own name (``wikiart/`` for
   both WikiArt graphs); or the URL of an HTTP mirror laid out the same way.
3. The download cache (``$VLKGE_CACHE``, else ``~/.cache/vlkge``), completed from the adapter's
   pinned public URLs (:func:`vlkge.pipeline.dumps.fetch_dump`): what is already there with the
   pinned hash is not fetched again.

Archives (``.zip``, ``.tar``, ``.tar.gz``, ``.tgz``, ``.tar.bz2``, ``.tar.xz``) given as a URL are
unpacked (safely: :func:`vlkge.pipeline.download.extract`) next to the download and the
directory is returned.

:func:`crawl_files` copies the inputs into ``raw/`` (hardlink when possible), records each file's
sha256 in ``raw/manifest.json`` (written last, atomically) and skips files unchanged since the
previous crawl (same size and mtime as recorded), so a re-crawl is quick and idempotent.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import sys
import urllib.parse
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from tqdm import tqdm
from vlkge.pipeline.download import extract, fetch, is_archive
from vlkge.pipeline.dumps import Dump, cache_dir, fetch_dump

from vlkge.errors import InputError, SourceError
from vlkge.fileio import atomic_path, read_json_object, sha256_file, write_json_atomic, write_text_atomic
from vlkge.paths import dataset_slug

log = logging.getLogger("vlkge.pipeline")

MANIFEST = "manifest.json"
MANIFEST_VERSION = 1
URL_SCHEMES = ("http://", "https://", "file://")
PACKAGED = "packaged"


# --------------------------------------------------------------------------- resolution


def resolve_source(dataset: str, source: str | None, dump: Dump | None) -> Path:
    """The local path of ``dataset``'s dump (see the module docstring for the order).

    ``dump`` is the adapter's pinned public dump, if it has one. Raises :class:`SourceError`
    naming the path or URL and what to do.
    """
    if source:
        return _given_source(dataset, str(source), dump)
    mirror = os.environ.get("VLKGE_DATA_MIRROR")
    if mirror and is_url(mirror):
        if dump is None:
            raise SourceError(
                f"dataset {dataset!r} cannot be fetched from an HTTP mirror ($VLKGE_DATA_MIRROR={mirror})",
                hint="pass --source DIR (or set crawl.source)",
            )
        return fetch_dump(dump, base_url=mirror)
    if mirror:
        candidates = [Path(mirror).expanduser() / name for name in mirror_names(dataset, dump)]
        found = next((c for c in candidates if c.exists()), None)
        if found is not None:
            return found
        tried = ", ".join(str(c) for c in candidates)
        if dump is None:
            raise SourceError(
                f"$VLKGE_DATA_MIRROR is set but holds no {dataset!r} (tried {tried})",
                path=candidates[0],
                hint=f"put the {dataset} dump there, pass --source DIR, or unset VLKGE_DATA_MIRROR",
            )
        log.info("$VLKGE_DATA_MIRROR holds no %s (tried %s): using the download cache", dataset, tried)
    if dump is None:
        raise SourceError(
            f"dataset {dataset!r} has no public URL",
            key="crawl.source",
            hint="pass --source DIR (or set crawl.source), or set VLKGE_DATA_MIRROR to a "
            f"directory holding {dataset_slug(dataset)}/",
        )
    return fetch_dump(dump)


def _given_source(dataset: str, source: str, dump: Dump | None) -> Path:
    if source == PACKAGED:
        if dump is None or dump.packaged is None:
            raise SourceError(
                f"dataset {dataset!r} has no copy inside the package",
                key="crawl.source",
                hint="pass a directory or URL, or leave crawl.source empty for the public sources",
            )
        return dump.packaged()
    if is_url(source):
        return download_url(source, sha256=_pin_for(source, dump))
    path = Path(source).expanduser()
    if not path.exists():
        raise SourceError(
            "source not found",
            path=path,
            hint="pass an existing directory or file, or a http(s):// URL",
        )
    return path


def crawl_source(
    dataset: str,
    source: str | None,
    params: Mapping[str, Any],
    dump: Dump | None = None,
    *,
    directory: str | None = None,
) -> Path:
    """:func:`resolve_source` of what an adapter's ``crawl`` reads: ``--source`` when given, else
    ``crawl.source`` of ``params``, else the mirror or the adapter's ``dump``. With
    ``directory`` (what the adapter needs there), anything but a directory is refused."""
    src = resolve_source(dataset, source or (params.get("crawl") or {}).get("source"), dump)
    if directory is not None and not src.is_dir():
        raise SourceError(
            f"a {dataset} source must be a directory", path=src, hint=f"point it at {directory}"
        )
    return src


def image_dir(params: Mapping[str, Any], default: Path | None) -> Path | None:
    """Where an adapter finds its images: ``crawl.images`` when set (it must exist), else
    ``default`` when that is a directory, else none."""
    override = (params.get("crawl") or {}).get("images")
    if override:
        path = Path(override).expanduser()
        if not path.is_dir():
            raise SourceError("image directory not found", path=path, key="crawl.images")
        return path
    return default if default is not None and default.is_dir() else None


def is_url(source: str) -> bool:
    return source.lower().startswith(URL_SCHEMES)


def mirror_names(dataset: str, dump: Dump | None = None) -> list[str]:
    """Directory names tried under ``$VLKGE_DATA_MIRROR``: the dataset as given, its slug, the
    slug with ``_``, then the dump's own name."""
    slug = dataset_slug(dataset)
    names = [dataset, slug, slug.replace("-", "_"), *([dump.name] if dump is not None else [])]
    return list(dict.fromkeys(names))


def _pin_for(url: str, dump: Dump | None) -> str | None:
    """The pinned sha256 when ``url`` names the same file as one of the dump's public URLs."""
    name = _url_name(url)
    pins = [] if dump is None else [*dump.pins, *(s for d in dump.derived for s in d.sources)]
    return next((p.sha256 for p in pins if _url_name(p.url) == name), None)


def _url_name(url: str) -> str:
    name = Path(urllib.parse.unquote(urllib.parse.urlparse(url).path)).name
    return name or "download"


# --------------------------------------------------------------------------- download


def download_url(url: str, *, sha256: str | None = None) -> Path:
    """Download ``url`` into the cache (resumable, verified when ``sha256`` is given) and return
    the local path; an archive is unpacked once and its directory returned."""
    name = _url_name(url)
    url_key = hashlib.sha256(url.encode("utf-8")).hexdigest()[:16]
    target = cache_dir() / "downloads" / url_key / name
    if not (target.is_file() and (sha256 is None or sha256_file(target) == sha256)):
        fetch(url, target, sha256=sha256)
    return _unpack(target) if is_archive(name) else target


def _unpack(archive: Path) -> Path:
    """Unpack ``archive`` once into a sibling directory; return it (or its single subfolder)."""
    out = archive.with_name(f"{archive.name}.unpacked")
    stamp = archive.with_name(f"{archive.name}.unpacked.sha256")
    digest = sha256_file(archive)
    if not (out.is_dir() and stamp.is_file() and stamp.read_text().strip() == digest):
        extract(archive, out)
        write_text_atomic(stamp, digest + "\n")
    entries = list(out.iterdir())
    return entries[0] if len(entries) == 1 and entries[0].is_dir() else out


# --------------------------------------------------------------------------- raw copy


def copy_verified(
    src_file: str | Path, dst_file: str | Path, *, known: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Copy ``src_file`` to ``dst_file`` (hardlink, else copy; atomic) and hash the copy.

    Returns ``{path, sha256, bytes, mtime_ns}``. ``known`` is the file's entry from the previous
    manifest: when ``dst_file`` still has the size and mtime recorded there and ``src_file`` has
    the same, nothing is copied or hashed again.
    """
    src, dst = Path(src_file), Path(dst_file)
    try:
        st = src.stat()
    except OSError:
        raise SourceError("input file missing or unreadable", path=src) from None
    if not src.is_file():
        raise SourceError("input is not a regular file", path=src)
    if dst.is_file():
        dt = dst.stat()
        unchanged = (dt.st_size, dt.st_mtime_ns) == (st.st_size, st.st_mtime_ns)
        if (
            unchanged
            and known
            and known.get("sha256")
            and (known.get("bytes"), known.get("mtime_ns")) == (st.st_size, st.st_mtime_ns)
        ):
            return _entry(dst, str(known["sha256"]), st)
        if os.path.samefile(src, dst):
            return _entry(dst, sha256_file(dst), st)
    dst.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(dst) as tmp:
        try:
            os.link(src, tmp)
        except OSError:
            shutil.copy2(src, tmp)
    return _entry(dst, sha256_file(dst), dst.stat())


def _entry(path: Path, sha: str, st: os.stat_result) -> dict[str, Any]:
    return {"path": str(path), "sha256": sha, "bytes": st.st_size, "mtime_ns": st.st_mtime_ns}


def crawl_files(
    raw_dir: str | Path,
    files: Iterable[tuple[Path, str, str]],
    *,
    dataset: str,
    source: str | Path,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Copy ``files`` — ``(src, relative destination, kind)``, kind ``table`` or ``image`` —
    into ``raw_dir``, drop files the previous crawl wrote that are no longer inputs, and write
    ``raw_dir/manifest.json`` last. Returns the manifest.
    """
    raw = Path(raw_dir)
    raw.mkdir(parents=True, exist_ok=True)
    previous = _load_manifest(raw)
    known = {f["path"]: f for f in previous.get("files", [])}
    by_rel: dict[str, tuple[Path, str, str]] = {}
    for src, rel, kind in files:
        if rel in by_rel and by_rel[rel][0] != Path(src):
            raise SourceError(
                f"two inputs would be copied to raw/{rel}: {by_rel[rel][0]} and {src}",
                hint="rename one of them",
            )
        by_rel[rel] = (Path(src), rel, kind)
    items = sorted(by_rel.values(), key=lambda item: item[1])
    # No manifest while raw/ is being changed: a crawl that stops half-way leaves none.
    (raw / MANIFEST).unlink(missing_ok=True)
    entries = []
    for src, rel, kind in tqdm(items, desc="crawl", unit="file", disable=None, file=sys.stderr):
        _check_relative(rel)
        entry = copy_verified(src, raw / rel, known=known.get(rel))
        entries.append({**entry, "path": rel, "kind": kind, "from": str(src)})
    manifest = {
        "manifest_version": MANIFEST_VERSION,
        "dataset": dataset,
        "source": str(source),
        **dict(extra or {}),
        "files": entries,
    }
    write_json_atomic(raw / MANIFEST, manifest)
    current = {e["path"] for e in entries}
    for rel in sorted(set(known) - current):
        stale = raw / rel
        if stale.is_file():
            stale.unlink()
            _prune_empty_dirs(stale.parent, raw)
    return manifest


def _check_relative(rel: str) -> None:
    parts = Path(rel).parts
    if not parts or Path(rel).is_absolute() or ".." in parts or rel == MANIFEST:
        raise ValueError(f"raw file path must be relative and inside raw/: {rel!r}")


def _prune_empty_dirs(folder: Path, root: Path) -> None:
    while folder != root and folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()
        folder = folder.parent


def _load_manifest(raw: Path) -> dict[str, Any]:
    path = raw / MANIFEST
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}


def read_manifest(raw_dir: str | Path) -> dict[str, Any]:
    """The crawl manifest of ``raw_dir``; checks every listed file is still there with the size
    and content recorded (raw files may be hardlinks to the source: an in-place edit shows).
    Content is re-hashed only for files whose mtime changed."""
    raw = Path(raw_dir)
    path = raw / MANIFEST
    if not path.is_file():
        raise InputError(
            "no crawled inputs here (manifest.json missing)",
            path=raw,
            hint="run `vlkge crawl` for this dataset first",
        )
    manifest = read_json_object(path, hint="re-run `vlkge crawl`")
    for entry in manifest.get("files", []):
        file = raw / entry["path"]
        st = file.stat() if file.is_file() else None
        changed = st is None or st.st_size != entry["bytes"]
        if not changed and st.st_mtime_ns != entry["mtime_ns"]:
            # a new mtime alone (DVC checkout, a copy) is fine when the content is the same
            changed = sha256_file(file) != entry["sha256"]
        if changed:
            raise InputError(
                "raw file missing or changed since crawl",
                path=file,
                hint="re-run `vlkge crawl` for this dataset",
            )
    return manifest


def manifest_inputs(manifest: Mapping[str, Any]) -> dict[str, Any]:
    """What ``meta.json`` records about the inputs: table sha256s, image count, manifest digest."""
    files = manifest.get("files", [])
    digest = hashlib.sha256(json.dumps([(f["path"], f["sha256"]) for f in files]).encode("utf-8")).hexdigest()
    return {
        "source": manifest.get("source"),
        "files": {f["path"]: f["sha256"] for f in files if f.get("kind") != "image"},
        "images": sum(1 for f in files if f.get("kind") == "image"),
        "digest": digest,
    }


def source_display(raw_dir: str | Path, manifest: Mapping[str, Any], rel: str) -> str:
    """The path to name in messages about raw file ``rel``: the original input it was copied
    from (the file the user fixes) when the manifest records one, else the raw copy."""
    for entry in manifest.get("files", []):
        if entry["path"] == rel and entry.get("from"):
            return str(entry["from"])
    return str(Path(raw_dir) / rel)
