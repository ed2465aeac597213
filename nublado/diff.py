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
import re
import sys
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import orjson
import yaml

from .errors import InputError, NubladoError
from .options import config_option, kubeconfig_option

if TYPE_CHECKING:
    from .config import Config
    from .kube.client import KubernetesClient
    from .render.engine import Renderer
    from .render.lab import SourceSecret
    from .services.drift import LiveObjects, ObjectDrift
    from .services.labstate import OperationRecord

__all__ = ["CONCURRENCY", "Finding", "diff", "render_diff", "render_json"]

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
@config_option
@kubeconfig_option
@click.option(
    "--namespace",
    default=None,
    help=(
        "The controller's namespace (lab records, source Secrets);"
        " default: the namespace file under metadataPath, if readable."
    ),
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
    namespace: str | None,
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
    findings, problems = asyncio.run(_diff(config, kubeconfig, target, username, namespace))
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


@dataclass
class _Session:
    """What comparing labs needs besides a lab's own objects, read once per command."""

    config: Config
    kube: KubernetesClient
    renderer: Renderer
    records: dict[str, OperationRecord]
    sources: dict[str, SourceSecret] | None


def _controller_namespace(config: Config, given: str | None) -> str | None:
    """``--namespace``, else the controller pod's namespace file under metadataPath, if any."""
    if given is not None:
        return given
    try:
        return (config.metadata_path / "namespace").read_text().strip() or None
    except OSError:
        return None


async def _session(
    config: Config, kube: KubernetesClient, namespace: str | None, explicit: bool
) -> _Session:
    """Read the lab records and source Secrets of the controller's namespace, when known.

    A namespace found in metadataPath that cannot be read (no such namespace
    there, no right to read it) is passed over: its records only refine the
    comparison (a lab mid-operation is skipped, a vanished pod is reported
    from its record). One given with ``--namespace`` must be readable.
    """
    from .kube.errors import KubernetesError
    from .render.engine import Renderer
    from .services import drift

    records: dict[str, OperationRecord] = {}
    sources = None
    if namespace is not None:
        try:
            records = await drift.read_lab_records(kube, namespace)
            sources = await drift.read_sources(kube, config, namespace)
        except KubernetesError as exc:
            if explicit:
                raise InputError(f"--namespace {namespace}: {_first_line(exc)}") from None
            records, sources = {}, None
    return _Session(config, kube, Renderer(config.template_dirs), records, sources)


async def _diff(
    config: Config,
    kubeconfig: Path | None,
    target: str | None,
    username: str | None,
    namespace: str | None,
) -> tuple[list[Finding], list[str]]:
    """The drifted objects, and the labs or file servers (of --all) that could not be compared."""
    from .services import drift

    kube = await _client(kubeconfig)
    async with kube:
        try:
            found = _controller_namespace(config, namespace)
            session = await _session(config, kube, found, namespace is not None)
            if target is None:
                return await _diff_all(session)
            assert username is not None
            if target == "lab":
                live = await drift.read_lab(kube, config, username)
                if live is None:
                    raise InputError(f"no lab found for user {username}")
                return await _lab(session, username, live), []
            if not config.fileserver.enabled:
                raise InputError("file servers are not enabled in this configuration")
            fileserver = await drift.read_fileserver(kube, config, username)
            if fileserver is None:
                raise InputError(f"no file server found for user {username}")
            return await _fileserver(session, username, fileserver), []
        except InputError:
            raise
        except NubladoError as exc:
            raise InputError(_first_line(exc)) from None


def _first_line(exc: BaseException) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0]


class _BusyError(InputError):
    """The lab is mid-operation or going away: nothing to compare (skipped by --all)."""


async def _lab(session: _Session, username: str, live: LiveObjects) -> list[Finding]:
    from .services import drift

    record = session.records.get(username)
    live.record = record
    namespace = live.get("Namespace", f"{session.config.lab.namespace_prefix}-{username}")
    if namespace is not None and (namespace.get("metadata") or {}).get("deletionTimestamp"):
        raise _BusyError(f"lab of {username}: its namespace is being deleted")
    if record is not None and record.live():
        raise _BusyError(f"lab of {username}: a {record.operation} is in progress")
    try:
        desired = drift.desired_lab_manifests(
            session.config, session.renderer, username, live, sources=session.sources
        )
    except drift.DriftError as exc:
        raise InputError(f"lab of {username}: {exc}") from None
    found = await drift.lab_drift(session.kube, desired, live)
    return [Finding("lab", username, d) for d in found]


async def _fileserver(session: _Session, username: str, live: LiveObjects) -> list[Finding]:
    from .services import drift

    try:
        desired = drift.desired_fileserver_manifests(
            session.config, session.renderer, username, live
        )
    except drift.DriftError as exc:
        raise InputError(f"file server of {username}: {exc}") from None
    found = await drift.fileserver_drift(session.kube, desired, live)
    return [Finding("fileserver", username, d) for d in found]


CONCURRENCY = 8
"""Labs and file servers --all compares at once (each is a dry-run apply per object)."""


async def _diff_all(session: _Session) -> tuple[list[Finding], list[str]]:
    """Every lab, then every file server; one that cannot be compared is a problem (exit 2).

    Labs mid-operation or being deleted are passed over: they are not drift.
    Up to `CONCURRENCY` are compared at once; the output keeps their order.
    """
    from .services import drift

    config, kube = session.config, session.kube
    limit = asyncio.Semaphore(CONCURRENCY)
    labs = await drift.read_labs(kube, config)
    fileservers = await drift.read_fileservers(kube, config) if config.fileserver.enabled else {}
    jobs: list[tuple[str, Coroutine[Any, Any, list[Finding]]]] = [
        *((f"lab of {user}", _lab(session, user, live)) for user, live in labs.items()),
        *(
            (f"file server of {user}", _fileserver(session, user, live))
            for user, live in fileservers.items()
        ),
    ]

    async def bounded(
        what: str, job: Coroutine[Any, Any, list[Finding]]
    ) -> list[Finding] | str | None:
        async with limit:
            try:
                return await job
            except _BusyError:
                return None
            except InputError as exc:
                return str(exc)  # already names the lab or file server
            except NubladoError as exc:
                # One that cannot be compared (Forbidden, a timeout) is a problem line
                # of its own; the other comparisons still report.
                return f"{what}: {exc or type(exc).__name__}"

    findings: list[Finding] = []
    problems: list[str] = []
    for outcome in await asyncio.gather(*(bounded(what, job) for what, job in jobs)):
        if isinstance(outcome, str):
            problems.append(outcome)
        elif outcome is not None:
            findings.extend(outcome)
    return findings, problems


# Output


def _secret(kind: str, key: str) -> bool:
    """Whether a data key's value is masked: any of a Secret, a secret-named one of a ConfigMap
    (`is_secret_name`: the rule that keeps them out of the lab record too)."""
    from .services.labstate import is_secret_name

    return kind == "Secret" or (kind == "ConfigMap" and is_secret_name(key))


def _mask_pair(live: Any, desired: Any) -> tuple[Any, Any]:
    """Masks a value pairwise: equal values as ***, differing ones as before/after."""
    if live == desired or live is None or desired is None:
        return (_MASK if live is not None else None), (_MASK if desired is not None else None)
    return (
        f"{_MASK} (before)" if live is not None else None,
        f"{_MASK} (after)" if desired is not None else None,
    )


def _masked_data(kind: str, live: Any, desired: Any) -> tuple[Any, Any]:
    """Two ``data`` maps with their secret values masked (`_secret`), other values kept."""
    if not isinstance(live, dict | None) or not isinstance(desired, dict | None):
        return _mask_pair(live, desired) if kind == "Secret" else (live, desired)
    live_data, desired_data = live or {}, desired or {}
    masked_live, masked_desired = {}, {}
    for key in sorted(live_data.keys() | desired_data.keys()):
        a, b = live_data.get(key), desired_data.get(key)
        if _secret(kind, key):
            a, b = _mask_pair(a, b)
        if a is not None:
            masked_live[key] = a
        if b is not None:
            masked_desired[key] = b
    return (masked_live if live is not None else None), (
        masked_desired if desired is not None else None
    )


def _masked_objects(
    kind: str, live: dict[str, Any] | None, desired: dict[str, Any]
) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    if kind not in ("Secret", "ConfigMap"):
        return live, desired
    live_data, desired_data = _masked_data(
        kind, (live or {}).get("data") or {}, desired.get("data") or {}
    )
    new_live = {**live, "data": live_data} if live is not None and "data" in live else live
    new_desired = {**desired, "data": desired_data} if "data" in desired else desired
    return new_live, new_desired


_DATA_KEY = re.compile(r'data(?:\.(?P<plain>[A-Za-z_][A-Za-z0-9_]*)|\["(?P<quoted>.*)"\])')
"""A field path of one data key (`drift.FieldDrift.path`): ``data.KEY`` or ``data["a.b"]``."""


def _masked_field(kind: str, path: str, live: Any, desired: Any) -> tuple[Any, Any]:
    """A JSON field's values, masked as the diff masks them."""
    if kind not in ("Secret", "ConfigMap"):
        return live, desired
    if path == "data":
        return _masked_data(kind, live, desired)
    match = _DATA_KEY.fullmatch(path)
    if match is None:
        return live, desired
    key = match.group("plain") or match.group("quoted")
    return _mask_pair(live, desired) if _secret(kind, key) else (live, desired)


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
    """The drifted objects as a JSON list, each with its fields (secret values masked)."""
    document = []
    for finding in findings:
        d = finding.drift
        entry = d.to_json()
        for field in entry["fields"]:
            field["live"], field["desired"] = _masked_field(
                d.kind, field["path"], field["live"], field["desired"]
            )
        document.append({"set": finding.set_name, "user": finding.username, **entry})
    return orjson.dumps(document, option=orjson.OPT_INDENT_2).decode() + "\n"
