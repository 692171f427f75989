"""One registry pattern for every kind of component: sources, simulators, readers, models.

A `Registry` maps a short name (``"retina"``, ``"nwb"``, ``"sid"``) to the thing it names.
Components register themselves where they are defined, with the `Registry.register`
decorator, or, where importing them is slow (a reader that needs ``pynwb``), the package
that lists them registers a ``"module:attribute"`` path that is imported on first use.
The command line's choices, the docs and the contract tests all read `Registry.names`,
so a component exists once and is offered, documented and tested the day it registers.

Examples
--------
>>> shapes = Registry("shape")
>>> @shapes.register("square")
... def square(side: float) -> float:
...     return side * side
>>> shapes.add("cube", "math:pow")
>>> shapes.names(), shapes.get("square")(3.0)
(('cube', 'square'), 9.0)
>>> shapes.get("circle")
Traceback (most recent call last):
...
ValueError: unknown shape 'circle'; known: cube, square
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """Named components of one kind, registered by decorator or by import path.

    Parameters
    ----------
    kind
        What the components are, for error messages (``"reader"``, ``"source"``).
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T | str] = {}

    def add(self, name: str, target: T | str) -> None:
        """Register ``target`` (an object, or a ``"module:attribute"`` path) as ``name``.

        Raises
        ------
        ValueError
            ``name`` is registered already (a component exists once).
        """
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is registered already")
        self._entries[name] = target

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator form of `add`: ``@SOURCES.register("natural")``."""

        def decorate(target: T) -> T:
            self.add(name, target)
            return target

        return decorate

    def get(self, name: str) -> T:
        """The component registered as ``name``.

        Raises
        ------
        ValueError
            No component of that name; the message lists the known names.
        """
        if name not in self._entries:
            raise ValueError(f"unknown {self.kind} {name!r}; known: {', '.join(self.names())}")
        target = self._entries[name]
        if isinstance(target, str):
            module, _, attribute = target.partition(":")
            target = getattr(importlib.import_module(module), attribute)
            self._entries[name] = target
        return target

    def names(self) -> tuple[str, ...]:
        """Every registered name, sorted: the CLI's choices and the contract tests' cases."""
        return tuple(sorted(self._entries))

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)
