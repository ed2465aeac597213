"""``nublado images``: inspect RSP image tags (and, later, list, delete and prune registry images).

``parse`` shows how the controller will read a tag (its type, version, cycle
and display name) before anyone pushes it, so that a site can check a naming
scheme offline. This module must not import the Kubernetes client or the web
stack: it is a local tool and its cold start matters.
"""

from __future__ import annotations

import re
import sys

import click
import orjson

from ..errors import InputError
from .tag import RSPImageTag

__all__ = ["images", "parse"]

# Docker's tag grammar: a word character, then up to 127 word characters, dots or dashes.
_DOCKER_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}", re.ASCII)


def _check_tag(tag: str) -> None:
    """Refuse what a registry would refuse, so a typo is not silently reported as Unknown."""
    if tag and not _DOCKER_TAG.fullmatch(tag):
        shown = tag.encode("unicode_escape").decode("ascii")
        raise InputError(f"not a Docker tag: {shown!r} (letters, digits, _ . -, at most 128)")


@click.group()
def images() -> None:
    """Inspect RSP image tags."""


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
