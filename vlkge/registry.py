"""A name → component registry: one way to resolve a component from a string plus options."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from vlkge.errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps lower-case names to components (classes or functions) of one kind."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: register the decorated component under ``name``."""

        def decorate(item: T) -> T:
            key = name.lower()
            if key in self._items:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._items[key] = item
            return item

        return decorate

    def get(self, name: str, *, key: str | None = None) -> T:
        """The component registered as ``name``; a ConfigError listing the choices otherwise."""
        try:
            return self._items[name.lower()]
        except KeyError:
            choices = ", ".join(sorted(self._items))
            raise ConfigError(
                f"unknown {self.kind} {name!r}", key=key, hint=f"choose one of: {choices}"
            ) from None

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
