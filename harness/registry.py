"""Typed registries for pluggable components (adapters, scorers, task kinds).

Built-in components register with a decorator when their module is imported;
third-party packages add theirs through an entry-point group, loaded lazily the
first time a name is looked up, so a plugin needs no change to the runner.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """Name → component, filled by `register` and by the entry-point group."""

    def __init__(self, what: str, group: str | None, builtins: tuple[str, ...] = (),
                 name_attr: str | None = None) -> None:
        self.what = what
        self.group = group
        self.name_attr = name_attr  # class attribute that carries the registered name
        self._builtins = builtins
        self._items: dict[str, T] = {}
        self._loaded = False

    def register(self, name: str) -> Callable[[T], T]:
        def deco(obj: T) -> T:
            self._items[name] = obj
            return obj
        return deco

    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        for module in self._builtins:
            importlib.import_module(module)
        if self.group:
            for ep in entry_points(group=self.group):
                if ep.name not in self._items:
                    obj = ep.load()
                    if self.name_attr and isinstance(obj, type) and not getattr(obj, self.name_attr, None):
                        setattr(obj, self.name_attr, ep.name)
                    self._items[ep.name] = obj

    def names(self) -> list[str]:
        self._load()
        return sorted(self._items)

    def get(self, name: str) -> T:
        self._load()
        return self._items[name]

    def __contains__(self, name: object) -> bool:
        self._load()
        return name in self._items
