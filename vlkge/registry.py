"""A name → component registry: one way to resolve a component from a string plus its options.

A component is registered by import path (``"name": ("package.module:Attr", "help")`` in the
registry's ``entries``, or ``REGISTRY.add(...)``) and imported when first used, so the command
line lists the choices and their help without importing torch; or registered as an object
(``@REGISTRY.register("name")``). :meth:`Registry.build`
passes a component its own options (``model.fusion_options`` …) straight through: the registry
checks their names against the component's signature, the component checks their values.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from vlkge.errors import ConfigError

T = TypeVar("T")


@dataclass
class _Entry:
    target: Any  # the component, or "module:attr" until first use
    help: str

    def load(self) -> Any:
        if isinstance(self.target, str):
            module, _, attr = self.target.partition(":")
            self.target = getattr(importlib.import_module(module), attr)
        return self.target


def spoken_list(names: list[str]) -> str:
    """``a, b or c``."""
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


class Registry(Generic[T]):
    """Maps lower-case names to components (classes or functions) of one kind.

    ``key``: the parameter that names the component (``model.fusion``), for error messages;
    ``options_key``: the parameter holding its own options (``model.fusion_options``).
    """

    def __init__(
        self,
        kind: str,
        *,
        key: str | None = None,
        options_key: str | None = None,
        entries: Mapping[str, tuple[str, str]] | None = None,
    ) -> None:
        self.kind = kind
        self.key = key
        self.options_key = options_key
        self._items: dict[str, _Entry] = {}
        for name, (target, help) in (entries or {}).items():
            self.add(name, target, help)

    def add(self, name: str, target: str | T, help: str = "") -> None:
        """Register ``target`` (an object, or ``"module:attr"`` imported when first used)."""
        key = name.lower()
        if key in self._items:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        self._items[key] = _Entry(target, help)

    def register(self, name: str, help: str = "") -> Callable[[T], T]:
        """Decorator: register the decorated component under ``name``."""

        def decorate(item: T) -> T:
            self.add(name, item, help or (inspect.getdoc(item) or "").split("\n")[0])
            return item

        return decorate

    def get(self, name: str, *, key: str | None = None) -> T:
        """The component registered as ``name``; a ConfigError listing the choices otherwise."""
        entry = self._items.get(str(name).lower())
        if entry is None:
            raise ConfigError(f"unknown {self.kind} {name!r}", key=key or self.key, hint=self.hint())
        return entry.load()

    def build(self, name: str, options: Mapping[str, Any] | None = None, /, **common: Any) -> Any:
        """``component(**common, **options)``: ``common`` are the arguments every component of this
        kind takes; ``options`` the component's own, refused by name when it has no such option."""
        component = self.get(name)
        options = dict(options or {})
        accepted = self.options_of(name, exclude=set(common))
        unknown = sorted(k for k in options if k in common or (accepted is not None and k not in accepted))
        if unknown:
            where = f"{self.options_key}.{unknown[0]}" if self.options_key else None
            takes = ", ".join(accepted or []) or "none"
            raise ConfigError(
                f"the {self.kind} {name!r} has no option {unknown[0]!r}",
                key=where,
                hint=f"its options: {takes}",
            )
        return component(**common, **options)

    def options_of(self, name: str, *, exclude: Collection[str] = ()) -> list[str] | None:
        """The keyword arguments of the component registered as ``name`` except ``exclude`` (the
        arguments every component of its kind takes), or None when it takes any (``**kwargs``)."""
        params = inspect.signature(self.get(name)).parameters.values()
        if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
            return None
        keyword = (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
        return [p.name for p in params if p.kind in keyword and p.name not in exclude]

    def names(self) -> list[str]:
        return sorted(self._items)

    def help(self, name: str) -> str:
        return self._items[name.lower()].help

    def hint(self) -> str:
        """What to write instead: ``use adagrad or adam`` / ``choose one of: a, b, c``."""
        names = list(self._items)
        return f"use {spoken_list(names)}" if len(names) <= 2 else f"choose one of: {', '.join(names)}"

    def choices(self) -> str:
        """``a | b | c`` in registration order (command-line help)."""
        return " | ".join(self._items)

    def describe(self) -> str:
        """``a (help) | b (help)``: the command-line help of the option that names a component."""
        return " | ".join(f"{n} ({e.help})" if e.help else n for n, e in self._items.items())

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
