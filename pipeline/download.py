"""Fetching public files: streamed, resumable, verified; archives unpacked safely.

:func:`fetch` downloads one URL into ``<target>.part`` and renames it onto ``target`` only once
the whole file is there and its sha256 is the pinned one. A ``.part`` left by an interrupted
transfer is resumed with an HTTP ``Range`` request (a server that ignores it sends the whole
file again); a connection dropped mid-transfer is resumed the same way, a few times, before
giving up. A file with the wrong hash is deleted and reported, never kept.

:func:`extract` unpacks a tar (any compression) or zip archive into a directory, refusing any
member that would land outside it (absolute paths, ``..``, links pointing out, devices).
"""

from __future__ import annotations

import http.client
import os
import shutil
import sys
import tarfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path, PurePosixPath

from tqdm import tqdm

from vlkge.errors import SourceError
from vlkge.fileio import atomic_path, sha256_file

CHUNK = 1 << 16
ATTEMPTS = 3
TIMEOUT_S = 60.0
USER_AGENT = "vlkge (dataset download)"
ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")


class Unreachable(SourceError):
    """The server cannot be reached at all (no network, name not resolved, refused)."""


class _Interrupted(Exception):
    """The connection dropped before the whole file arrived."""


def part_path(target: Path) -> Path:
    """Where the bytes of ``target`` collect while it downloads."""
    return target.with_name(target.name + ".part")


def fetch(
    url: str,
    target: str | Path,
    *,
    sha256: str | None,
    bar: tqdm | None = None,
    attempts: int = ATTEMPTS,
    timeout: float = TIMEOUT_S,
) -> Path:
    """Download ``url`` to ``target`` (see the module docstring); return ``target``.

    ``bar`` (bytes) is advanced as data arrives; without one, a bar for this file is shown.
    Raises :class:`Unreachable` when the server cannot be reached, :class:`SourceError` for an
    HTTP error, a transfer interrupted ``attempts`` times (the ``.part`` stays for the next
    run to resume) or a sha256 mismatch.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    part = part_path(target)
    own = bar is None
    if own:
        bar = tqdm(unit="B", unit_scale=True, desc=target.name, disable=None, file=sys.stderr)
    try:
        for attempt in range(1, attempts + 1):
            try:
                _transfer(url, part, bar, timeout)
                break
            except _Interrupted as exc:
                if attempt == attempts:
                    raise SourceError(
                        f"download of {url} interrupted {attempts} time(s) ({exc}); "
                        f"{part.stat().st_size if part.exists() else 0} bytes kept",
                        path=part,
                        hint="run the same command again: it resumes where the transfer stopped",
                    ) from None
    finally:
        if own:
            bar.close()
    _verify(url, part, target, sha256)
    os.replace(part, target)
    return target


def _transfer(url: str, part: Path, bar: tqdm, timeout: float) -> None:
    """Append the rest of ``url`` to ``part`` (or restart it when the server sends all)."""
    have = part.stat().st_size if part.is_file() else 0
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # nothing left to send: the part may be complete
            return
        raise SourceError(f"cannot download {url} (HTTP {exc.code} {exc.reason})", path=part) from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise Unreachable(f"cannot reach {url} ({reason})", path=part) from None
    with response:
        resumed = have and getattr(response, "status", None) == 206
        if not resumed and have:
            bar.update(-have)  # the server ignored the range: the file comes again from byte 0
        expected = _expected_length(response)
        received = 0
        with open(part, "ab" if resumed else "wb") as out:
            try:
                while chunk := response.read(CHUNK):
                    out.write(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
            except (http.client.IncompleteRead, ConnectionError, TimeoutError) as exc:
                raise _Interrupted(f"{type(exc).__name__} after {received} bytes") from None
        if expected is not None and received < expected:
            raise _Interrupted(f"{received} of {expected} bytes")


def _expected_length(response: object) -> int | None:
    headers = getattr(response, "headers", None)
    length = headers.get("Content-Length") if headers is not None else None
    return int(length) if length and length.isdigit() else None


def _verify(url: str, part: Path, target: Path, sha256: str | None) -> None:
    if not part.is_file():
        raise SourceError(f"nothing downloaded from {url}", path=target)
    got = sha256_file(part) if sha256 is not None else None
    if got != sha256:
        part.unlink()
        raise SourceError(
            f"sha256 mismatch for {target.name} downloaded from {url}: expected {sha256}, got {got}; "
            "the download was deleted",
            path=target,
            hint="the download is corrupt or the file changed upstream; retry, or download it "
            "yourself, check it, and put it there",
        )


def is_archive(name: str) -> bool:
    return name.lower().endswith(ARCHIVE_SUFFIXES)


def extract(archive: str | Path, dest: str | Path) -> Path:
    """Unpack ``archive`` into the directory ``dest`` (built under a temporary name, renamed when
    complete); refuse, naming it, any member that would escape ``dest``. Returns ``dest``."""
    archive, dest = Path(archive), Path(dest)
    with atomic_path(dest) as tmp:
        tmp.mkdir(parents=True)
        try:
            if zipfile.is_zipfile(archive):
                _extract_zip(archive, tmp)
            else:
                _extract_tar(archive, tmp)
        except (tarfile.TarError, zipfile.BadZipFile, OSError, EOFError) as exc:
            raise SourceError(f"cannot unpack archive ({exc})", path=archive) from None
    return dest


def _member_path(archive: Path, root: Path, name: str, shown: str | None = None) -> Path:
    """Where member ``name`` lands under ``root``; SourceError (naming ``shown``, default the
    name) when that is outside ``root``."""
    pure = PurePosixPath(name.replace("\\", "/"))
    drive = bool(pure.parts) and ":" in pure.parts[0]  # C:/… on Windows
    where = Path(os.path.normpath(root / pure))
    if pure.is_absolute() or drive or not where.is_relative_to(root):
        raise SourceError(
            f"archive member {shown or repr(name)} would be written outside the target directory; "
            "nothing unpacked",
            path=archive,
            hint="the archive is malformed or malicious; get it again from its source",
        )
    return where


def _extract_tar(archive: Path, root: Path) -> None:
    root = root.resolve()
    with tarfile.open(archive) as tar:
        members = tar.getmembers()
        for member in members:
            where = _member_path(archive, root, member.name)
            if member.issym():  # a link must point inside too, or files written through it would not
                link = os.path.relpath(where.parent / member.linkname, root)
                _member_path(archive, root, link, f"{member.name!r} (a link to {member.linkname!r})")
            elif member.islnk():
                _member_path(
                    archive, root, member.linkname, f"{member.name!r} (a link to {member.linkname!r})"
                )
            elif not (member.isfile() or member.isdir()):
                raise SourceError(
                    f"archive member {member.name!r} is a device or pipe; nothing unpacked", path=archive
                )
        if hasattr(tarfile, "data_filter"):  # Python >= 3.10.12 / 3.11.4: the same checks again
            tar.extractall(root, members=members, filter="data")
        else:  # pragma: no cover - older Pythons: the members were checked above
            tar.extractall(root, members=members)


def _extract_zip(archive: Path, root: Path) -> None:
    root = root.resolve()
    with zipfile.ZipFile(archive) as zf:
        infos = zf.infolist()
        for info in infos:
            _member_path(archive, root, info.filename)
        for info in infos:
            where = _member_path(archive, root, info.filename)
            if info.is_dir():
                where.mkdir(parents=True, exist_ok=True)
                continue
            where.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, open(where, "wb") as out:
                shutil.copyfileobj(src, out)
