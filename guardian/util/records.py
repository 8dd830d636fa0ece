"""Slotted record classes that behave as dataclasses do, without importing dataclasses.

``dataclasses`` imports ``inspect`` (and with it ``ast``, ``dis`` and ``tokenize``: ~10 ms), which
restore, history and the git hooks cannot afford.  A record that is never changed after it is
made is a NamedTuple; one that is changed, or that needs a fresh default per instance, derives
from :class:`Record` or :class:`FrozenRecord` and lists its fields, in order, in
``__match_args__`` (as a dataclass does).
"""

from __future__ import annotations

from typing import Any, ClassVar


class Record:
    """Equality with its own class by field values, a repr naming each field; mutable and unhashable,
    as a dataclass without ``frozen``."""

    __slots__ = ()
    __match_args__: ClassVar[tuple[str, ...]] = ()

    def _values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in self.__match_args__)

    # Defining __eq__ leaves __hash__ None: unhashable, as a mutable dataclass is.
    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__ or not isinstance(other, Record):
            return NotImplemented
        return self._values() == other._values()

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__match_args__)
        return f"{self.__class__.__qualname__}({fields})"


class FrozenRecord(Record):
    """A :class:`Record` that refuses assignment after ``_init``, hashes and pickles by its values,
    as a frozen dataclass."""

    __slots__ = ()

    def _init(self, *values: Any) -> None:
        """Set the fields, in ``__match_args__`` order: the only way in, since assignment is refused."""
        for name, value in zip(self.__match_args__, values, strict=True):
            object.__setattr__(self, name, value)

    def __hash__(self) -> int:
        return hash(self._values())

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"cannot delete field {name!r}")

    def __reduce__(self) -> tuple[type[FrozenRecord], tuple[Any, ...]]:
        return (self.__class__, self._values())
