"""Atomic writes and hashing: nothing half-written is ever read as complete."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from vlkge.errors import InputError

_CHUNK = 1 << 20


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def read_json_object(path: str | Path, *, hint: str, error: type[InputError] = InputError) -> dict[str, Any]:
    """The JSON object stored in ``path``; ``error`` naming the file and ``hint`` when the file
    cannot be read, is not JSON or holds something other than an object."""
    path = Path(path)
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise error(f"unreadable {path.name} ({exc})", path=path, hint=hint) from None
    if not isinstance(value, dict):
        raise error(f"{path.name} is not a JSON object", path=path, hint=hint)
    return value


@contextlib.contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a temporary sibling path; rename it onto ``target`` only if the block succeeds.

    Works for files and directories. A crash leaves ``target`` as it was (old content or absent)
    and removes the temporary path.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    tmp.rmdir()  # the caller decides whether it becomes a file or a directory
    try:
        yield tmp
        if target.is_dir() and tmp.is_dir():
            old = target.with_name(f".{target.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(target, old)
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink()


def remove_temporaries(directory: str | Path, names: list[str] | tuple[str, ...]) -> list[Path]:
    """Delete what a killed :func:`atomic_path` left next to ``directory/<name>`` for each name
    (``.<name>.*.tmp`` files or directories); return what was removed.

    Only for directories with a single writer (a run directory): a concurrent writer's temporary
    would be removed too.
    """
    directory = Path(directory)
    removed: list[Path] = []
    if not directory.is_dir():
        return removed
    for name in names:
        for path in directory.glob(f".{name}.*.tmp"):
            remove_temporary(path)
            removed.append(path)
    return removed


def remove_temporary(path: Path) -> None:
    """Delete one temporary :func:`atomic_path` left: a file, or a directory (a writer that made
    one under the temporary name)."""
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def read_parquet(
    path: Path,
    *,
    what: str,
    hint: str,
    where: Path | None = None,
    error: type[InputError] = InputError,
    **options: Any,
) -> pa.Table:
    """``pyarrow.parquet.read_table(path, **options)``; ``error`` "<what> (<reason>)" naming
    ``where`` (default ``path``) and ``hint`` for a file that cannot be read as Parquet."""
    try:
        return pq.read_table(path, **options)
    except (OSError, pa.ArrowException) as exc:
        raise error(f"{what} ({str(exc).splitlines()[0]})", path=where or path, hint=hint) from None


def write_text_atomic(target: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``target`` through a temporary file and a rename."""
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json_atomic(target: str | Path, data: Any) -> None:
    """Write ``data`` as indented JSON to ``target`` atomically."""
    write_text_atomic(target, json.dumps(data, indent=2, sort_keys=False) + "\n")
