"""Name -> class registries for backends and power meters."""
from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class Registry(dict[str, type]):
    """A small name -> class map with a decorator; classes live in modules imported on first use,
    so a missing library only matters for the entry that needs it."""

    def __init__(self, kind: str, modules: dict[str, str]) -> None:
        super().__init__()
        self.kind, self.modules = kind, modules

    def register(self, name: str) -> Callable[[type[T]], type[T]]:
        def add(cls: type[T]) -> type[T]:
            self[name] = cls
            cls.name = name  # type: ignore[attr-defined]
            return cls
        return add

    def load(self, name: str, unavailable: type[Exception]) -> type:
        """The class registered as ``name``, importing its module now; ``unavailable`` says why not."""
        if name not in self.modules:
            raise unavailable(f"unknown {self.kind} {name!r} (known: {', '.join(sorted(self.modules))})")
        try:
            importlib.import_module(self.modules[name])
        except ImportError as exc:
            raise unavailable(f"{self.kind} {name!r} needs {exc.name or exc}: not installed on this host") from None
        return self[name]
