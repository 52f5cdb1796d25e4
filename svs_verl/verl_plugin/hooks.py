"""Run a function right after a module has been imported, without importing it now.

verl imports svs-verl's plugin on every ``import verl``, in every Ray worker. Importing the SvS trainer there
would pull in verl's whole trainer stack (thousands of modules, seconds) in processes that never train
with SvS. Instead, ``after_import("verl.trainer.ppo.v1", fn)`` registers ``fn`` to run once, right after
that module finishes loading (or at once, if it is already loaded): verl's registries are filled exactly
when something that can read them exists.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import logging
import sys
import threading
from typing import Callable

logger = logging.getLogger("svs_verl")

_pending: dict[str, list[Callable[[], None]]] = {}
FAILED: dict[str, str] = {}   # module -> error of a callback that raised (logged; the import goes on)
_lock = threading.RLock()


def after_import(module: str, fn: Callable[[], None]) -> None:
    """Call ``fn()`` once ``module`` is fully imported (now, if it already is)."""
    with _lock:
        loaded = sys.modules.get(module)
        if loaded is not None and not _initializing(loaded):
            fn()
            return
        _pending.setdefault(module, []).append(fn)
        if not any(isinstance(f, _Finder) for f in sys.meta_path):
            sys.meta_path.insert(0, _Finder())


def pending() -> dict[str, int]:
    """Modules still awaited, with the number of callbacks each (for ``svs-verl doctor`` and tests)."""
    with _lock:
        return {name: len(fns) for name, fns in _pending.items()}


def _initializing(module) -> bool:
    spec = getattr(module, "__spec__", None)
    return bool(getattr(spec, "_initializing", False))


def _run(name: str) -> None:
    with _lock:
        fns = _pending.pop(name, [])
    for fn in fns:
        try:
            fn()
        except Exception as exc:  # noqa: BLE001 - an import of verl's must not fail because of a plugin
            FAILED[name] = f"{type(exc).__name__}: {exc}"
            logger.warning("svs-verl: a callback after importing %s failed: %s", name, FAILED[name])


class _Loader(importlib.abc.Loader):
    def __init__(self, inner: importlib.abc.Loader, name: str):
        self._inner = inner
        self._name = name

    def create_module(self, spec):
        return self._inner.create_module(spec)

    def exec_module(self, module):
        self._inner.exec_module(module)
        _run(self._name)

    def __getattr__(self, attr):  # get_resource_reader, is_package, get_source, ... of the real loader
        return getattr(self._inner, attr)


class _Finder(importlib.abc.MetaPathFinder):
    """Wraps the loader of an awaited module; every other import passes through untouched."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname not in _pending:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader = _Loader(spec.loader, fullname)
                return spec
        return None
