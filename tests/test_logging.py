"""nublado.logging: JSON lines in production, bound context on every line, stdlib routed through."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
import structlog

from nublado.logging import configure_logging, get_logger


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """Put the root logger and structlog back as they were: the test changes process state."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    uvicorn = {name: logging.getLogger(name) for name in ("uvicorn.error", "uvicorn.access")}
    saved = {name: (lg.handlers[:], lg.level, lg.propagate) for name, lg in uvicorn.items()}
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, (lg_handlers, lg_level, propagate) in saved.items():
        uvicorn[name].handlers[:] = lg_handlers
        uvicorn[name].setLevel(lg_level)
        uvicorn[name].propagate = propagate
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_production_lines_are_json_and_carry_the_bound_user() -> None:
    stream = io.StringIO()
    configure_logging("production", "INFO", stream=stream)

    log = get_logger("nublado.services.labs", user="rachel")
    log.info("Created Kubernetes objects for user lab", progress=30)
    log.warning("Pod event", message="Pulling image")

    first, second = lines(stream)
    assert first["event"] == "Created Kubernetes objects for user lab"
    assert first["user"] == "rachel"
    assert first["progress"] == 30
    assert first["level"] == "info"
    assert first["logger"] == "nublado.services.labs"
    assert first["timestamp"].endswith("Z")
    assert second["user"] == "rachel"
    assert second["level"] == "warning"


def test_a_logger_bound_further_keeps_what_was_bound_before() -> None:
    stream = io.StringIO()
    configure_logging("production", "INFO", stream=stream)

    log = structlog.get_logger("nublado.services.labs").bind(user="rachel").bind(op="spawn")
    log.info("step")

    [line] = lines(stream)
    assert (line["user"], line["op"]) == ("rachel", "spawn")


def test_context_variables_reach_every_logger_standard_library_included() -> None:
    stream = io.StringIO()
    configure_logging("production", "INFO", stream=stream)

    structlog.contextvars.bind_contextvars(user="rachel")
    get_logger("nublado.x").info("from structlog")
    logging.getLogger("nublado.kube.client").info("from %s", "logging")

    structlog_line, stdlib_line = lines(stream)
    assert structlog_line["user"] == "rachel"
    assert stdlib_line == {
        "event": "from logging",
        "user": "rachel",
        "level": "info",
        "logger": "nublado.kube.client",
        "timestamp": stdlib_line["timestamp"],
    }


def test_standard_library_extra_becomes_fields() -> None:
    stream = io.StringIO()
    configure_logging("production", "INFO", stream=stream)

    logging.getLogger("nublado.services.images").warning("Refresh failed", extra={"user": "ada"})

    [line] = lines(stream)
    assert (line["event"], line["user"], line["level"]) == ("Refresh failed", "ada", "warning")


def test_uvicorn_lines_go_through_the_same_formatter_without_colour_copies() -> None:
    stream = io.StringIO()
    uvicorn_error = logging.getLogger("uvicorn.error")
    uvicorn_error.addHandler(logging.NullHandler())  # as a previous uvicorn config may leave
    uvicorn_error.propagate = False
    configure_logging("production", "INFO", stream=stream)

    uvicorn_error.info("Started server process [%d]", 42, extra={"color_message": "\x1b[36m"})
    logging.getLogger("uvicorn.access").info(
        '%s - "%s %s HTTP/%s" %d', "127.0.0.1:5", "GET", "/nublado", "1.1", 200
    )

    started, access = lines(stream)
    assert started["event"] == "Started server process [42]"
    assert "color_message" not in started
    assert started["logger"] == "uvicorn.error"
    assert access["event"] == '127.0.0.1:5 - "GET /nublado HTTP/1.1" 200'


def test_level_comes_from_the_configuration() -> None:
    stream = io.StringIO()
    configure_logging("production", "WARNING", stream=stream)

    get_logger("nublado.x", user="rachel").info("hidden")
    logging.getLogger("nublado.y").info("hidden too")
    get_logger("nublado.x", user="rachel").error("shown")

    assert [line["event"] for line in lines(stream)] == ["shown"]


def test_debug_level_lets_debug_through() -> None:
    stream = io.StringIO()
    configure_logging("production", "DEBUG", stream=stream)

    get_logger("nublado.x").debug("detail")

    assert [line["event"] for line in lines(stream)] == ["detail"]


def test_exceptions_are_structured_without_local_variables() -> None:
    stream = io.StringIO()
    configure_logging("production", "INFO", stream=stream)
    token = "gt-secret-token"

    try:
        raise RuntimeError("spawn broke")
    except RuntimeError:
        get_logger("nublado.x", user="rachel").exception("Spawn failed")

    [line] = lines(stream)
    assert line["user"] == "rachel"
    [exception] = line["exception"]
    assert (exception["exc_type"], exception["exc_value"]) == ("RuntimeError", "spawn broke")
    assert token not in stream.getvalue()


def test_development_profile_writes_for_people() -> None:
    stream = io.StringIO()
    configure_logging("development", "INFO", stream=stream)

    get_logger("nublado.services.labs", user="rachel").info("Spawning lab")

    [line] = stream.getvalue().splitlines()
    assert not line.startswith("{")
    assert "Spawning lab" in line
    assert "user=rachel" in line
    assert "\x1b[" not in line  # not a terminal: no colours


def test_configuring_again_replaces_the_handler() -> None:
    first, second = io.StringIO(), io.StringIO()
    configure_logging("production", "INFO", stream=first)
    configure_logging("production", "INFO", stream=second)

    get_logger("nublado.x").info("once")

    assert first.getvalue() == ""
    assert [line["event"] for line in lines(second)] == ["once"]


def test_a_module_logger_made_before_configuration_follows_it() -> None:
    early = structlog.get_logger("nublado.early")  # as a module-level logger is made
    stream = io.StringIO()
    configure_logging("production", "INFO", stream=stream)

    early.bind(user="rachel").info("late line")

    [line] = lines(stream)
    assert (line["event"], line["user"]) == ("late line", "rachel")
