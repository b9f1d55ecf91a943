"""Name -> class registries for backends and power meters."""
from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class Registry(dict[str, type]):
    """A small name -> class map with a decorator and one clear error for unknown names."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind

    def register(self, name: str) -> Callable[[type[T]], type[T]]:
        def add(cls: type[T]) -> type[T]:
            self[name] = cls
            cls.name = name  # type: ignore[attr-defined]
            return cls
        return add

    def get_class(self, name: str) -> type:
        if name not in self:
            raise KeyError(f"unknown {self.kind} {name!r} (known: {', '.join(sorted(self))})")
        return self[name]
