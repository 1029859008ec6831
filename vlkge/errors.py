"""User-facing errors: one clear line naming the file, the line or key, and the fix."""

from __future__ import annotations

from pathlib import Path


class VlkgeError(Exception):
    """An error caused by the user's input or configuration, shown without a traceback.

    The message names where the problem is (``path``, ``line``, ``key``) and, when known,
    what to do about it (``hint``).
    """

    def __init__(
        self,
        message: str,
        *,
        path: str | Path | None = None,
        line: int | None = None,
        key: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.message = message
        self.path = None if path is None else str(path)
        self.line = line
        self.key = key
        self.hint = hint
        super().__init__(self.format())

    def format(self) -> str:
        where = ""
        if self.path is not None:
            where = self.path if self.line is None else f"{self.path}:{self.line}"
        if self.key is not None:
            where = f"{where} [{self.key}]" if where else f"[{self.key}]"
        text = f"{where}: {self.message}" if where else self.message
        if self.hint:
            text += f" — {self.hint}"
        return text


class InputError(VlkgeError):
    """Malformed or inconsistent input data (graph files, entity tables, images)."""


class ConfigError(VlkgeError):
    """An unknown, mistyped or impossible parameter."""


class SourceError(VlkgeError):
    """A dataset source that cannot be found, fetched or verified."""
