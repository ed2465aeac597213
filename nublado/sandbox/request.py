"""What one write request asked for beyond its body, and what it answers besides the object.

The HTTP layer opens a `WriteContext` around each request; the code that
merges, validates and admits an object reads the request's
``fieldValidation`` from it and adds the warnings the answer carries in
``Warning`` headers, without every call in between passing them along.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Literal

__all__ = ["FieldValidation", "WriteContext", "current_write", "writing"]

FieldValidation = Literal["Ignore", "Warn", "Strict"]


@dataclass
class WriteContext:
    """The options of a write that reach past the verb, and the warnings it collects.

    ``field_validation`` defaults to ``Warn``, as kube-apiserver's does when
    the query does not say.
    """

    field_validation: FieldValidation = "Warn"
    warnings: list[str] = field(default_factory=list)

    def warn(self, message: str) -> None:
        """Add a warning for the answer's ``Warning`` header (each once)."""
        if message not in self.warnings:
            self.warnings.append(message)


_CURRENT: ContextVar[WriteContext | None] = ContextVar("sandbox_write", default=None)


def current_write() -> WriteContext:
    """The context of the write being served (defaults outside a request)."""
    return _CURRENT.get() or WriteContext()


@contextmanager
def writing(field_validation: FieldValidation = "Warn") -> Iterator[WriteContext]:
    """Serve one write with these options; the context collects its warnings."""
    context = WriteContext(field_validation)
    token = _CURRENT.set(context)
    try:
        yield context
    finally:
        _CURRENT.reset(token)
