"""One registry mechanism for every kind of named definition: float ops, integer ops, kernels.

A definition is a class with a ``name``; decorating it with ``REGISTRY.register`` instantiates it
once and files it under that name. A registry reads like a read-only dict (``name in OPS``,
``OPS[name]``, ``sorted(OPS)``); `Registry.get` is the lookup that reports an unknown name as a
`ModelError` listing the known ones, which is what users see for an op pqc does not have.
"""
from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Generic, TypeVar

from .errors import ModelError

T = TypeVar("T")


class Registry(Mapping[str, T], Generic[T]):
    """Instances of registered definition classes by ``name``; ``kind`` names them in errors."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, cls: type) -> type:
        """Class decorator: instantiate ``cls`` and register the instance under ``cls.name``."""
        name = getattr(cls, "name", "")
        if not name:
            raise RuntimeError(f"{self.kind} class {cls.__name__} has no name")
        if name in self._items:
            raise RuntimeError(f"{self.kind} {name} registered twice")
        self._items[name] = cls()
        return cls

    def get(self, name: str) -> T:  # type: ignore[override]  # unknown names raise, they do not default
        try:
            return self._items[name]
        except KeyError:
            raise ModelError(f"unknown {self.kind} {name!r}; known: {', '.join(sorted(self._items))}") from None

    def __getitem__(self, name: str) -> T:
        return self._items[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

