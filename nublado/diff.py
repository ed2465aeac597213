"""``nublado diff``: what apply would change in a running lab or file server.

DESIGN.md ("Applying and reconciling"): a server-side dry-run apply of the
desired render against live state, the comparison the daemon's reconcile
makes (services/drift.py). The output is a unified diff per drifted object,
live against desired YAML as ``kubectl diff`` shows it, or a JSON list. The
exit status is 1 when something drifted, 0 when nothing did and 2 on an
error (one line), so a script or a CI job can branch on it.

Secret values are never printed: they show as ``***`` (``*** (before)`` and
``*** (after)`` where they differ), as ``kubectl diff`` masks them.
"""

from __future__ import annotations

import asyncio
import difflib
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import orjson
import yaml

from .errors import InputError, NubladoError

if TYPE_CHECKING:
    from .config import Config
    from .kube.client import KubernetesClient
    from .render.engine import Renderer
    from .services.drift import LiveObjects, ObjectDrift

__all__ = ["Finding", "diff", "render_diff", "render_json"]

_MASK = "***"


@dataclass(frozen=True, slots=True)
class Finding:
    """One drifted object, with the set (``lab`` or ``fileserver``) and user it belongs to."""

    set_name: str
    username: str
    drift: ObjectDrift


@click.command("diff")
@click.argument("target", required=False, type=click.Choice(["lab", "fileserver"]))
@click.argument("username", required=False)
@click.option("--all", "every", is_flag=True, help="Every lab and file server in the cluster.")
@click.option(
    "--config",
    "config_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Controller configuration file.",
)
@click.option(
    "--kubeconfig",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Kubeconfig to use (default $KUBECONFIG, ~/.kube/config, else in-cluster).",
)
@click.option(
    "-o",
    "--output",
    type=click.Choice(["diff", "json"]),
    default="diff",
    show_default=True,
    help="A unified diff per object, or a JSON list of the drifted objects and fields.",
)
def diff(
    target: str | None,
    username: str | None,
    every: bool,
    config_path: Path,
    kubeconfig: Path | None,
    output: str,
) -> None:
    """Show how live objects differ from the desired render: lab USER, fileserver USER, --all.

    Exit status 1 when something drifted, 0 when nothing did, 2 on an error.
    """
    if every and target is not None:
        raise InputError("give either --all or lab|fileserver USER, not both")
    if not every and (target is None or username is None):
        raise InputError("give lab USER, fileserver USER or --all")
    from .config.loader import load_config

    config = load_config(config_path)
    findings, problems = asyncio.run(_diff(config, kubeconfig, target, username))
    text = render_json(findings) if output == "json" else render_diff(findings)
    sys.stdout.write(text)
    sys.stdout.flush()
    if problems:
        # What could be compared is shown; a lab or file server that could not be is an error.
        raise InputError("\n".join(problems))
    if findings:
        sys.exit(1)


async def _client(kubeconfig: Path | None) -> KubernetesClient:
    from .kube.client import KubernetesClient
    from .kube.errors import KubernetesError

    try:
        return await KubernetesClient.load(kubeconfig, retries=1)
    except KubernetesError as exc:
        raise InputError(str(exc)) from None


async def _diff(
    config: Config, kubeconfig: Path | None, target: str | None, username: str | None
) -> tuple[list[Finding], list[str]]:
    """The drifted objects, and the labs or file servers (of --all) that could not be compared."""
    from .render.engine import Renderer
    from .services import drift

    renderer = Renderer(config.template_dirs)
    kube = await _client(kubeconfig)
    async with kube:
        try:
            if target is None:
                return await _diff_all(config, kube, renderer)
            assert username is not None
            if target == "lab":
                live = await drift.read_lab(kube, config, username)
                if live is None:
                    raise InputError(f"no lab found for user {username}")
                return await _lab(config, kube, renderer, username, live), []
            if not config.fileserver.enabled:
                raise InputError("file servers are not enabled in this configuration")
            found = await drift.read_fileserver(kube, config, username)
            if found is None:
                raise InputError(f"no file server found for user {username}")
            return await _fileserver(config, kube, renderer, username, found), []
        except InputError:
            raise
        except NubladoError as exc:
            raise InputError(_first_line(exc)) from None


def _first_line(exc: BaseException) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0]


async def _lab(
    config: Config, kube: KubernetesClient, renderer: Renderer, username: str, live: LiveObjects
) -> list[Finding]:
    from .services import drift

    try:
        desired = drift.desired_lab_manifests(config, renderer, username, live)
    except drift.DriftError as exc:
        raise InputError(f"lab of {username}: {exc}") from None
    return [Finding("lab", username, d) for d in await drift.lab_drift(kube, desired, live)]


async def _fileserver(
    config: Config, kube: KubernetesClient, renderer: Renderer, username: str, live: LiveObjects
) -> list[Finding]:
    from .services import drift

    try:
        desired = drift.desired_fileserver_manifests(config, renderer, username, live)
    except drift.DriftError as exc:
        raise InputError(f"file server of {username}: {exc}") from None
    found = await drift.fileserver_drift(kube, desired, live)
    return [Finding("fileserver", username, d) for d in found]


async def _diff_all(
    config: Config, kube: KubernetesClient, renderer: Renderer
) -> tuple[list[Finding], list[str]]:
    """Every lab, then every file server; one that cannot be compared is a problem (exit 2)."""
    from .services import drift

    findings: list[Finding] = []
    problems: list[str] = []
    for username, live in (await drift.read_labs(kube, config)).items():
        try:
            findings.extend(await _lab(config, kube, renderer, username, live))
        except InputError as exc:
            problems.append(str(exc))
    if config.fileserver.enabled:
        for username, live in (await drift.read_fileservers(kube, config)).items():
            try:
                findings.extend(await _fileserver(config, kube, renderer, username, live))
            except InputError as exc:
                problems.append(str(exc))
    return findings, problems


# Output


def _masker(kind: str) -> Callable[[Any, Any], tuple[Any, Any]]:
    """Masks Secret values pairwise: equal values as ***, differing ones as before/after."""

    def mask(live: Any, desired: Any) -> tuple[Any, Any]:
        if kind != "Secret":
            return live, desired
        if live == desired:
            return (_MASK if live is not None else None), (_MASK if desired is not None else None)
        return (
            f"{_MASK} (before)" if live is not None else None,
            f"{_MASK} (after)" if desired is not None else None,
        )

    return mask


def _masked_objects(
    kind: str, live: dict[str, Any] | None, desired: dict[str, Any]
) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    if kind != "Secret":
        return live, desired
    mask = _masker(kind)
    live_data = dict((live or {}).get("data") or {})
    desired_data = dict(desired.get("data") or {})
    masked_live, masked_desired = {}, {}
    for key in sorted(live_data.keys() | desired_data.keys()):
        a, b = mask(live_data.get(key), desired_data.get(key))
        if a is not None:
            masked_live[key] = a
        if b is not None:
            masked_desired[key] = b
    new_live = {**live, "data": masked_live} if live is not None and "data" in live else live
    new_desired = {**desired, "data": masked_desired} if "data" in desired else desired
    return new_live, new_desired


def _yaml(obj: dict[str, Any] | None) -> list[str]:
    if obj is None:
        return []
    text = yaml.safe_dump(obj, sort_keys=True, default_flow_style=False, width=100)
    return text.splitlines(keepends=True)


def render_diff(findings: list[Finding]) -> str:
    """A unified diff per object, live against desired, headed ``--- live/<title>``."""
    parts: list[str] = []
    for finding in findings:
        d = finding.drift
        live, desired = _masked_objects(d.kind, d.live, d.desired)
        state = "missing, " if d.missing else ""
        parts.append(f"# {d.title} ({finding.set_name} of {finding.username}): {state}")
        parts.append(f"{d.remedy.value}: {d.reason}\n")
        if d.refused:
            parts.append(f"# the dry-run apply was refused: {d.refused.splitlines()[0]}\n")
        parts.extend(
            difflib.unified_diff(
                _yaml(live), _yaml(desired), fromfile=f"live/{d.title}", tofile=f"desired/{d.title}"
            )
        )
    return "".join(parts)


def render_json(findings: list[Finding]) -> str:
    """The drifted objects as a JSON list, each with its fields (Secret values masked)."""
    document = []
    for finding in findings:
        d = finding.drift
        entry = d.to_json()
        mask = _masker(d.kind)
        for field in entry["fields"]:
            if field["path"].startswith("data"):
                field["live"], field["desired"] = mask(field["live"], field["desired"])
        document.append({"set": finding.set_name, "user": finding.username, **entry})
    return orjson.dumps(document, option=orjson.OPT_INDENT_2).decode() + "\n"
