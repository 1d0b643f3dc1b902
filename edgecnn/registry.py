"""One generic name → entry registry, used for models, export targets, quantizers and profiles (docs/architecture.md).

A duplicate name raises; an unknown name raises with a "did you mean" suggestion — never a silent substitute.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Iterator
from typing import Generic, TypeVar

from edgecnn.errors import DuplicateNameError, UnknownNameError

T = TypeVar("T")


def suggest(name: str, choices: Iterable[str]) -> str | None:
    """Closest known name to ``name`` (or None), for "did you mean" hints."""
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.5)
    return close[0] if close else None


def did_you_mean(name: str, choices: Iterable[str], *, known: str = "known", show: Callable[[str], str] = repr) -> str:
    """The hint of an unknown-name error: "did you mean X?" with the closest choice (as ``show`` writes it), else
    the ``known`` choices listed."""
    choices = list(choices)
    close = suggest(name, choices)
    return f"did you mean {show(close)}?" if close else f"{known}: {', '.join(choices) or 'none'}"


class Registry(Generic[T]):
    """A named collection of entries of one kind (``kind`` is used in messages: "model", "target", ...)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}

    def register(self, name: str, entry: T) -> T:
        if name in self._entries:
            raise DuplicateNameError(f"{self.kind} {name!r} is already registered")
        self._entries[name] = entry
        return entry

    def unregister(self, name: str) -> T:
        """Remove and return ``name`` (a plugin or a test undoing its registration); unknown names raise."""
        entry = self.get(name)
        del self._entries[name]
        return entry

    def decorator(self, name: str) -> Callable[[T], T]:
        """``@registry.decorator("name")`` registers the decorated object under ``name``."""

        def wrap(entry: T) -> T:
            return self.register(name, entry)

        return wrap

    def get(self, name: str) -> T:
        try:
            return self._entries[name]
        except KeyError:
            raise UnknownNameError(f"unknown {self.kind} {name!r}", hint=did_you_mean(name, self.names())) from None

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)
