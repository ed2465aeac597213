"""The ``nublado`` command.

Subcommands live next to the code they drive and are imported only when run,
so that ``nublado render`` never pays for the Kubernetes client or the web
stack (cold start matters: it runs in init containers and in CI).
"""

from __future__ import annotations

import importlib
import sys

import click

from .errors import InputError

__all__ = ["main"]

# name -> ("module:attribute" of a click command, one-line help); one entry per subcommand.
_COMMANDS: dict[str, tuple[str, str]] = {
    "diff": (
        "nublado.diff:diff",
        "Show how running labs and file servers differ from their desired render.",
    ),
    "images": (
        "nublado.images.cli:images",
        "Inspect RSP image tags; list, delete and prune registry images.",
    ),
    "inithome": ("nublado.inithome.cli:inithome", "Provision a user's home directory."),
    "landingpage": ("nublado.landingpage.cli:landingpage", "Install the lab landing page."),
    "purger": ("nublado.purger.cli:purger", "Report on, warn about or purge old scratch files."),
    "render": ("nublado.render.cli:render", "Print the manifests of an object set (dry run)."),
    "sandbox": ("nublado.sandbox.cli:sandbox", "Run the in-process Kubernetes API server."),
    "schema": ("nublado.config.cli:schema", "Write the configuration JSON Schema."),
    "serve": (
        "nublado.serve:serve",
        "Run the lab controller, on a cluster or the sandbox.",
    ),
    "startup": ("nublado.startup.cli:startup", "Prepare the lab container before JupyterLab."),
}


class _LazyGroup(click.Group):
    """A click group that imports a subcommand's module only when it runs."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(_COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in _COMMANDS:
            return None
        module_name, attribute = _COMMANDS[cmd_name][0].split(":")
        command: click.Command = getattr(importlib.import_module(module_name), attribute)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """List subcommands from the static table, without importing them."""
        with formatter.section("Commands"):
            formatter.write_dl([(name, help_) for name, (_, help_) in sorted(_COMMANDS.items())])


# -h as well as --help (spec 4.1); click hands these settings down to every subcommand.
@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="nublado")
def cli() -> None:
    """Kubernetes lab controller for JupyterHub, and the tools that run beside labs."""


def main(argv: list[str] | None = None) -> int:
    """Run the command and return its exit status.

    Bad input ends with one line on stderr and exit status 2.
    """
    try:
        result = cli.main(args=argv, prog_name="nublado", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.Abort:
        click.echo("nublado: aborted", err=True)
        sys.exit(1)
    except click.ClickException as exc:
        exc.show()
        sys.exit(2 if isinstance(exc, click.UsageError) else exc.exit_code)
    except InputError as exc:
        for line in str(exc).splitlines() or ["invalid input"]:
            click.echo(f"nublado: error: {line}", err=True)
        sys.exit(2)
    # click returns the code of ctx.exit() instead of raising when not standalone
    return result if isinstance(result, int) else 0
