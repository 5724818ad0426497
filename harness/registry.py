"""Typed registries for pluggable components (adapters, scorers, task kinds).

Built-in components register with a decorator when their module is imported;
third-party packages add theirs through an entry-point group, loaded the first time
a name is looked up, so a plugin needs no change to the runner. One registry
mechanism serves the three kinds of component:

- a plugin that fails to import is a warning naming it and its package, and an error
  only for a suite that uses it (`broken`);
- two components under one name (a plugin named like a built-in, or two plugins)
  raise `RegistryClash` naming both packages: a silent choice would run the wrong code.
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable, Iterator
from functools import cache
from typing import TYPE_CHECKING, Any, Generic, TypeVar

if TYPE_CHECKING:
    from importlib.metadata import EntryPoint

T = TypeVar("T")


@cache
def _installed_entry_points() -> Any:
    """Every installed package's entry points, read once a process for the three registries:
    a group's own look-up reads all the packages' metadata again (5-8 ms each with 130
    installed; `harness validate` took 0.227 s with three, 0.216 s with one, medians of 15)."""
    from importlib.metadata import entry_points

    return entry_points()  # Python 3.11: groups of them (SelectableGroups); both answer `select(group=)`


class RegistryClash(Exception):
    """Two components were registered under one name."""


class PluginWarning(UserWarning):
    """A plugin could not be loaded; suites that do not use it are unaffected."""


def _origin(ep: EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    return f"package '{dist.name}'" if dist is not None else f"entry point {ep.value}"


class Registry(Generic[T]):
    """Name → component, filled by `register` and by the entry-point group."""

    def __init__(self, what: str, group: str | None, builtins: dict[str, str] | None = None,
                 name_attr: str | None = None) -> None:
        self.what = what
        self.group = group
        self.name_attr = name_attr  # class attribute that carries the registered name
        # built-in name → module, imported only when that name is used: a replay-only suite
        # never imports aiohttp, a text suite never imports the clinical lexicon
        self._builtins = builtins or {}
        self._items: dict[str, T] = {}
        self._origins: dict[str, str] = {}
        self.broken: dict[str, str] = {}  # name → why its plugin could not be loaded
        self._loaded = False
        self._loading_origin = "avec-harness (built-in)"

    def register(self, name: str) -> Callable[[T], T]:
        def deco(obj: T) -> T:
            if name in self._items and self._items[name] is not obj:
                raise RegistryClash(f"two {self.what}s are named '{name}': {self._origins[name]} and "
                                    f"{self._loading_origin}; rename one of them")
            self._items[name] = obj
            self._origins[name] = self._loading_origin
            return obj
        return deco

    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        if not self.group:
            return
        for ep in _installed_entry_points().select(group=self.group):
            origin = _origin(ep)
            if ep.name in self._builtins:
                self._builtin(ep.name)
            if ep.name in self._items:
                if self._origins.get(ep.name) == origin:
                    continue
                raise RegistryClash(f"two {self.what}s are named '{ep.name}': {self._origins[ep.name]} and "
                                    f"{origin}; uninstall or rename one of them")
            try:
                obj = ep.load()
            except Exception as exc:  # a broken plugin must not break suites that do not use it
                self.broken[ep.name] = f"{origin} failed to load: {type(exc).__name__}: {exc}"
                warnings.warn(f"{self.what} plugin '{ep.name}' from {self.broken[ep.name]}", PluginWarning,
                              stacklevel=2)
                continue
            if self.name_attr and isinstance(obj, type) and not getattr(obj, self.name_attr, None):
                setattr(obj, self.name_attr, ep.name)
            self._items[ep.name] = obj
            self._origins[ep.name] = origin

    def _builtin(self, name: str) -> None:
        if name not in self._items and name in self._builtins:
            importlib.import_module(self._builtins[name])

    def names(self) -> list[str]:
        self._load()
        for name in self._builtins:
            self._builtin(name)
        return sorted(self._items)

    def get(self, name: str) -> T:
        self._load()
        self._builtin(name)
        if name not in self._items and name in self.broken:
            raise KeyError(f"{self.what} '{name}': {self.broken[name]}")
        return self._items[name]

    def origin(self, name: str) -> str:
        """Which package provides `name`."""
        self._load()
        return self._origins.get(name, "unknown")

    def __getitem__(self, name: str) -> T:
        return self.get(name)

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __contains__(self, name: object) -> bool:
        self._load()
        if isinstance(name, str):
            self._builtin(name)
        return name in self._items
