"""``nublado schema``: write (or check) the configuration JSON Schema, or its Markdown reference."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ..errors import InputError
from .reference import DEFAULT_REFERENCE_PATH, config_reference_text
from .schema import config_schema_text

__all__ = ["DEFAULT_SCHEMA_PATH", "schema"]

DEFAULT_SCHEMA_PATH = Path("schema/config.schema.json")
"""Where the schema is committed, relative to the repository root."""


@click.command()
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help=(
        "File to write; '-' writes to standard output."
        f"  [default: {DEFAULT_SCHEMA_PATH}, with --markdown {DEFAULT_REFERENCE_PATH}]"
    ),
)
@click.option(
    "--markdown",
    is_flag=True,
    help="Write the configuration reference (Markdown) instead of the JSON Schema.",
)
@click.option(
    "--check",
    is_flag=True,
    help="Write nothing; exit 1 if the file differs from the current schema.",
)
def schema(output: Path | None, check: bool, markdown: bool) -> None:
    """Write the JSON Schema of the controller configuration file.

    With --markdown, write the operators' reference generated from it instead.
    """
    if markdown:
        text = config_reference_text()
        command = "nublado schema --markdown"
        output = output if output is not None else Path(DEFAULT_REFERENCE_PATH)
    else:
        text = config_schema_text()
        command = "nublado schema"
        output = output if output is not None else DEFAULT_SCHEMA_PATH
    if str(output) == "-":
        if check:
            raise click.UsageError("--check needs a file, not standard output")
        sys.stdout.write(text)
        return
    if check:
        try:
            current = output.read_text(encoding="utf-8")
        except FileNotFoundError:
            click.echo(f"nublado: {output} not found; run `{command}`", err=True)
            sys.exit(1)
        except OSError as exc:
            raise InputError(f"--output {output}: {exc.strerror}") from exc
        if current != text:
            click.echo(f"nublado: {output} is out of date; run `{command}`", err=True)
            sys.exit(1)
        return
    try:
        output.parent.mkdir(exist_ok=True)  # one level (schema/, docs/), never a tree
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise InputError(f"--output {output}: {exc.strerror}") from exc
    click.echo(f"Wrote {output}", err=True)
