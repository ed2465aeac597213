"""``nublado images``: inspect RSP image tags; list, delete and prune registry images.

``parse`` shows how the controller will read a tag (its type, version, cycle
and display name) before anyone pushes it, so that a site can check a naming
scheme offline. ``list``, ``delete`` and ``prune`` manage the registry named
by a configuration file (spec/images-tools.md section 4); the two destructive
commands only say what they would delete unless given ``--execute``. This
module must not import the Kubernetes client or the web stack, and imports
httpx, the registry clients and the progress bar only inside the commands
that use them: it is a local tool and its cold start matters.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import re
import sys
from collections.abc import Callable, Coroutine, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

import click
import orjson

from ..errors import InputError, NubladoError
from .prune import Deletion as _Deletion
from .tag import RSPImageTag

if TYPE_CHECKING:
    from ..config.images import DockerSourceConfig, GARSourceConfig
    from ..config.images_tool import ImagesToolConfig
    from .credentials import DockerCredentials
    from .docker import DockerRegistryClient
    from .gar import GARClient
    from .prune import Spared

__all__ = ["delete", "images", "list_images", "parse", "prune"]

gar_client: Any | None = None
"""Test seam: an object standing in for ``ArtifactRegistryAsyncClient`` (None: the real one)."""

default_credentials_path = Path("/etc/secrets/.dockerconfigjson")
"""Credentials used when ``-a`` is not given and this file exists (the mounted pull secret)."""

PROGRESS_THRESHOLD = 20
"""Show a progress bar (on a terminal) for at least this many registry calls."""

_P = ParamSpec("_P")
_T = TypeVar("_T")

# Docker's tag grammar: a word character, then up to 127 word characters, dots or dashes.
_DOCKER_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}", re.ASCII)


def _check_tag(tag: str, *, empty_ok: bool = True) -> None:
    """Refuse what a registry would refuse, so a typo is not silently reported as Unknown.

    ``parse`` reads an empty tag as ``latest``, as Docker does; ``delete`` must
    not (it would ask the registry for ``manifests/`` with no name).
    """
    if not tag and not empty_ok:
        raise InputError("not a Docker tag: '' (an empty tag names no image)")
    if tag and not _DOCKER_TAG.fullmatch(tag):
        shown = tag.encode("unicode_escape").decode("ascii")
        raise InputError(f"not a Docker tag: {shown!r} (letters, digits, _ . -, at most 128)")


# also here, not only on the top-level ``nublado`` group: click caches each command's
# help option the first time it is built, so the group must not depend on how it is reached
@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def images() -> None:
    """Inspect RSP image tags; list, delete and prune a registry's images."""


@images.command()
@click.argument("tags", nargs=-1, required=True)
@click.option(
    "--alias",
    "as_alias",
    is_flag=True,
    help="Parse the tags as declared aliases (the recommended tag or configured alias tags).",
)
def parse(tags: tuple[str, ...], as_alias: bool) -> None:
    """Print each TAG's parsed fields as JSON (one object, or a list for several tags).

    An empty TAG parses as ``latest``, as Docker assumes.
    """
    for tag in tags:
        _check_tag(tag)
    build = RSPImageTag.alias if as_alias else RSPImageTag.from_str
    parsed = [build(tag).to_dict() for tag in tags]
    document = parsed[0] if len(parsed) == 1 else parsed
    options = orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS
    sys.stdout.write(orjson.dumps(document, option=options).decode() + "\n")


# ------------------------------------------------------------------ registry commands


class _ToolError(click.ClickException):
    """Bad input or a registry failure: one line per problem on stderr, exit status 2."""

    exit_code = 2

    def show(self, file: Any = None) -> None:
        for line in self.format_message().splitlines() or ["error"]:
            click.echo(f"nublado: error: {line}", err=True)


def _one_line_errors(command: Callable[_P, _T]) -> Callable[_P, _T]:
    """Turn our errors into `_ToolError`, so neither `main` nor click prints a traceback."""

    @functools.wraps(command)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _T:
        try:
            return command(*args, **kwargs)
        except NubladoError as exc:
            raise _ToolError(str(exc)) from None

    return wrapper


def _tool_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The options every registry command takes (spec 4.3)."""
    command = click.option(
        "-d", "--debug", is_flag=True, help="Log at DEBUG level (also: DEBUG=1)."
    )(command)
    command = click.option(
        "-a",
        "--credentials",
        "credentials_path",
        type=click.Path(path_type=Path),
        help="Docker credentials (.dockerconfigjson); default: the mounted pull secret if any.",
    )(command)
    return click.option(
        "-c",
        "--config",
        "config_path",
        type=click.Path(path_type=Path),
        required=True,
        help="The tool's configuration file (source, prune policy, logging).",
    )(command)


_EXECUTE = click.option(
    "--execute/--dry-run",
    " /-n",
    "execute",
    default=False,
    help="Really delete; the default (--dry-run, -n) only prints what would be deleted.",
)


@dataclass
class _Tool:
    config: ImagesToolConfig
    credentials: DockerCredentials | None


_FALSE_WORDS = frozenset(("", "0", "false", "no", "off"))


def _env_flag(name: str) -> bool:
    """Whether an environment variable is set to something truthy.

    Anything but empty, ``0``, ``false``, ``no`` or ``off`` (any case) counts,
    so ``DEBUG=yes`` or ``DEBUG=garbage`` turns debugging on rather than being
    a usage error (click's own reading of a boolean variable refuses them).
    """
    value = os.environ.get(name)
    return value is not None and value.strip().lower() not in _FALSE_WORDS


def _load(config_path: Path, credentials_path: Path | None, debug: bool) -> _Tool:
    """Configuration, logging and credentials, per the loading rules of spec 4.2."""
    from ..config.images_tool import load_images_tool_config
    from .credentials import DockerCredentials

    config = load_images_tool_config(config_path)
    if debug or _env_flag("DEBUG"):
        config = config.model_copy(update={"log_level": "DEBUG"})
    if credentials_path is None and default_credentials_path.is_file():
        credentials_path = default_credentials_path
    if credentials_path is None:
        credentials_path = config.docker_credentials_path
    _configure_logging(config.log_level, config.log_profile)
    credentials = None
    if credentials_path is not None and config.source.type == "docker":
        credentials = DockerCredentials.from_path(credentials_path)
    return _Tool(config, credentials)


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Write to the ``sys.stderr`` of the moment (click's test runner swaps it)."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


class _JSONFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {"severity": record.levelname, "logger": record.name, "event": record.getMessage()}
        return orjson.dumps(entry).decode()


def _configure_logging(level: str, profile: str) -> None:
    """Log to stderr under ``nublado``: JSON lines in production, plain text in development."""
    logger = logging.getLogger("nublado")
    logger.setLevel(level)
    for old in [h for h in logger.handlers if isinstance(h, _StderrHandler)]:
        logger.removeHandler(old)
    handler = _StderrHandler()
    if profile == "development":
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    else:
        handler.setFormatter(_JSONFormatter())
    logger.addHandler(handler)


def _run(coroutine: Coroutine[Any, Any, _T]) -> _T:
    return asyncio.run(coroutine)


def _stderr_is_tty() -> bool:
    return sys.stderr.isatty()


@contextmanager
def _progress(total: int, description: str) -> Iterator[Callable[[], None]]:
    """A callback that advances a progress bar, shown only on a terminal and for long runs."""
    if total < PROGRESS_THRESHOLD or not _stderr_is_tty():
        yield lambda: None
        return
    from tqdm import tqdm

    with tqdm(total=total, desc=description, file=sys.stderr, unit="image", leave=False) as bar:

        def advance() -> None:
            bar.update(1)

        yield advance


def _report(header: str, tags: Iterable[str]) -> None:
    click.echo(header + "\n" + "".join(f"  {tag}\n" for tag in tags), nl=False)


def _sorted_names(names: Iterable[str]) -> list[str]:
    """Tags in priority order, newest first, arch-specific included, no aliases declared."""
    from .collection import RSPImageTagCollection

    collection = RSPImageTagCollection.from_names(names)
    return [tag.tag for tag in collection.all_tags(hide_arch_specific=False)]


def _docker_client(http: Any, tool: _Tool) -> DockerRegistryClient:
    from .docker import DockerRegistryClient

    return DockerRegistryClient(http, tool.credentials)


def _gar(tool: _Tool) -> GARClient:
    from .gar import GARClient

    return GARClient(gar_client)


@contextmanager
def _reporting_deletions(deletion: _Deletion) -> Iterator[None]:
    """On any failure once deleting has begun, print what was deleted before re-raising."""
    try:
        yield
    except BaseException:
        if deletion.started:
            _report("Deleted images:", deletion.deleted_tags())
        raise


def _say_companions(requested: list[str], digests: dict[str, str]) -> None:
    """Name on stderr, per image to delete, its other tags, which a delete removes too.

    Deleting by digest removes every tag of the image; upstream did so
    silently (``delete w_2021_22`` also took ``recommended``). Tags named on
    the command line are not repeated; each image is described once.
    """
    named = set(requested)
    order = _sorted_names(digests)
    described: set[str] = set()
    for tag in requested:
        digest = digests[tag]
        if digest in described:
            continue
        described.add(digest)
        others = [other for other in order if digests[other] == digest and other not in named]
        if others:
            verb = "goes" if len(others) == 1 else "go"
            click.echo(
                f"{tag}: its image {digest} is also tagged {', '.join(others)},"
                f" which {verb} with it",
                err=True,
            )


def _registry_source(tool: _Tool) -> DockerSourceConfig | GARSourceConfig:
    """The configured registry; a static source has none to delete from."""
    source = tool.config.source
    if source.type == "static":
        raise _ToolError(
            "A static image source has no registry to delete from; edit its tags in the config"
        )
    return source


@images.command("list")
@_tool_options
@_one_line_errors
def list_images(config_path: Path, credentials_path: Path | None, debug: bool) -> None:
    """Print every tag of the configured image, newest first within each type."""
    tool = _load(config_path, credentials_path, debug)

    async def tags() -> list[str]:
        source = tool.config.source
        if source.type == "static":
            return list(source.tags)
        if source.type == "google":
            from .prune import gar_digests

            return list(await gar_digests(_gar(tool), source))
        import httpx

        async with httpx.AsyncClient() as http:
            return await _docker_client(http, tool).list_tags(source)

    names = _sorted_names(_run(tags()))
    click.echo("".join(f"{name}\n" for name in names) if names else "", nl=not names)


@images.command()
@click.argument("tags", nargs=-1, required=True)
@_EXECUTE
@_tool_options
@_one_line_errors
def delete(
    tags: tuple[str, ...],
    execute: bool,
    config_path: Path,
    credentials_path: Path | None,
    debug: bool,
) -> None:
    """Delete the images of TAGS (every tag on each image goes with it).

    The other tags of each image, not named here, are listed on stderr.
    Without --execute, print what would be deleted and change nothing.
    """
    for tag in tags:
        _check_tag(tag, empty_ok=False)
    tool = _load(config_path, credentials_path, debug)
    deletion = _Deletion()
    requested = list(dict.fromkeys(tags))

    async def run() -> list[str]:
        source = _registry_source(tool)
        from .prune import docker_delete, docker_digests, gar_delete, gar_digests

        if source.type == "google":
            client = _gar(tool)
            digests = await gar_digests(client, source)
            found = [tag for tag in requested if tag in digests]
            for tag in requested:
                if tag not in digests:
                    logging.getLogger("nublado").warning("No image has the tag %s, skipped", tag)
            _say_companions(found, digests)
            deletion.plan(found, digests)
            if execute:
                await gar_delete(client, source, deletion)
            return found
        import httpx

        async with httpx.AsyncClient() as http:
            docker = _docker_client(http, tool)
            # the named tags' digests first: a typo stops before anything else
            digests = await docker_digests(docker, source, requested, _progress)
            # then every other tag's, to name those that go with the deleted images
            others = [tag for tag in await docker.list_tags(source) if tag not in digests]
            digests.update(await docker_digests(docker, source, others, _progress))
            _say_companions(requested, digests)
            deletion.plan(requested, digests)
            if execute:
                await docker_delete(docker, source, deletion, _progress)
            return requested

    with _reporting_deletions(deletion):
        found = _run(run())
    if not execute:
        _report("Would delete images:", found)
        click.echo("Dry run: nothing deleted; give --execute to delete.", err=True)


@images.command()
@_EXECUTE
@_tool_options
@_one_line_errors
def prune(execute: bool, config_path: Path, credentials_path: Path | None, debug: bool) -> None:
    """Delete the images the prune policy does not keep.

    Alias and unknown tags are always kept, and so is every image that a kept
    tag points at, even when another of its tags is pruned. Without
    --execute, print what would be deleted and change nothing.
    """
    tool = _load(config_path, credentials_path, debug)
    policy = tool.config.prune
    if policy is None:
        raise _ToolError("No image prune filter defined in config")

    deletion = _Deletion()

    async def run() -> list[str]:
        from .prune import prune_registry

        source = _registry_source(tool)

        def spared(one: Spared) -> None:
            click.echo(str(one), err=True)

        if source.type == "google":
            return await prune_registry(
                source, policy, execute=execute, gar=_gar(tool), deletion=deletion, on_spared=spared
            )
        import httpx

        async with httpx.AsyncClient() as http:
            return await prune_registry(
                source,
                policy,
                execute=execute,
                docker=_docker_client(http, tool),
                deletion=deletion,
                progress=_progress,
                on_spared=spared,
            )

    with _reporting_deletions(deletion):
        doomed = _run(run())
    _report("Deleted images:" if execute else "Would delete images:", doomed)
    if not execute:
        click.echo("Dry run: nothing deleted; give --execute to delete.", err=True)
