"""The controller's logging: structlog for everything, configured in one place.

`configure_logging` is called once by ``nublado serve`` (and by tests that
look at log lines). It sets up structlog and routes the standard library's
logging through the same processors, so a line from our services, from
uvicorn or from a library all come out alike:

* ``production`` (``logProfile``): one JSON object per line, with
  ``timestamp`` (UTC, ISO 8601), ``level``, ``logger`` and ``event``, plus
  whatever was bound. Log collectors parse these without rules.
* ``development``: structlog's console renderer, for a person at a terminal.

Bound context is never dropped: a logger bound with ``user=...`` (the lab
service binds the user of a spawn) carries it on every line it writes, and
so does anything bound with ``structlog.contextvars.bind_contextvars``; a
standard-library call's ``extra={...}`` becomes fields too.

Loggers are not cached on first use, so a module-level
``structlog.get_logger()`` obtained before configuration follows it; a
logger *bound* before configuration keeps the defaults it was bound with,
so services bind per operation, not at import.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, TextIO

import structlog
from structlog.typing import EventDict, Processor

from .config.controller import LogLevel, LogProfile

__all__ = ["configure_logging", "get_logger"]

# uvicorn's loggers: without a log_config uvicorn leaves them to propagate to
# the root handler installed here; they must not keep handlers of their own.
_UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access")


class _NubladoHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The root handler `configure_logging` installs, recognisable for replacement."""


def _tidy_record_fields(logger: Any, method: str, event: EventDict) -> EventDict:
    """Drop what `ExtraAdder` copies from a standard-library record but is not context.

    uvicorn passes a coloured copy of some messages as ``color_message``;
    ``message`` is set on a record by any other handler that formatted it
    first (pytest's, for one), and repeats ``event``.
    """
    if "_record" in event:
        event.pop("color_message", None)
        event.pop("message", None)
    return event


def _shared_processors() -> list[Processor]:
    """Run for structlog calls and standard-library records alike, before rendering."""
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
    ]


def configure_logging(
    profile: LogProfile = "production",
    level: LogLevel | str = "INFO",
    *,
    stream: TextIO | None = None,
) -> None:
    """Send all logging to ``stream`` (stderr), JSON lines or console by ``profile``.

    Calling it again replaces the previous configuration (no duplicate
    handlers), so it is safe in tests. ``level`` is a logging level name and
    applies to the root logger, so to every library, uvicorn included.
    """
    shared = _shared_processors()
    renderer: Processor
    if profile == "production":
        # Tracebacks as structured data, without local variables: a frame's
        # locals can hold a user's token.
        final: list[Processor] = [
            structlog.processors.ExceptionRenderer(
                structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
            )
        ]
        renderer = structlog.processors.JSONRenderer()
    else:
        final = []
        target = stream if stream is not None else sys.stderr
        renderer = structlog.dev.ConsoleRenderer(
            colors=target.isatty(), exception_formatter=structlog.dev.plain_traceback
        )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared, structlog.stdlib.ExtraAdder(), _tidy_record_fields],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *final, renderer],
    )
    handler = _NubladoHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(formatter)

    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _NubladoHandler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in _UVICORN_LOGGERS:
        uvicorn_logger = logging.getLogger(name)
        uvicorn_logger.handlers.clear()
        uvicorn_logger.propagate = True
        uvicorn_logger.setLevel(logging.NOTSET)

    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        context_class=dict,
        cache_logger_on_first_use=False,
    )


def get_logger(name: str | None = None, **context: Any) -> structlog.stdlib.BoundLogger:
    """A structlog logger named ``name`` with ``context`` bound (``user=...``)."""
    logger: structlog.stdlib.BoundLogger = structlog.stdlib.get_logger(name)
    return logger.bind(**context) if context else logger
