"""Field ownership for the sandbox: managedFields, server-side apply merges, conflicts.

A faithful-enough model of structured-merge-diff without schemas: maps merge
key by key, lists and scalars are atomic leaves. Each (manager, operation)
owns a set of leaf paths; an apply merges its configuration into the live
object, removes the leaves its manager stopped applying, and refuses (409) to
change a leaf another manager owns unless forced, as kube-apiserver does.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from .store import clone

__all__ = [
    "FieldConflict",
    "ManagedEntry",
    "Path",
    "apply_config",
    "conflict_message",
    "decode_managed_fields",
    "encode_managed_fields",
    "leaf_paths",
    "merge_patch",
    "record_update",
]

Path = tuple[str, ...]

# Fields that no manager owns: identity, system metadata, and status on the main resource.
_SYSTEM_METADATA = {
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",
    "selfLink",
}
_MISSING = object()


@dataclass
class ManagedEntry:
    """One managedFields entry: who owns which leaves, by which operation."""

    manager: str
    operation: str
    api_version: str
    time: str
    fields: set[Path] = field(default_factory=set)
    subresource: str = ""


@dataclass(frozen=True)
class FieldConflict:
    """A leaf an apply would change that another manager owns."""

    path: Path
    entry: ManagedEntry


def _owned_part(obj: dict[str, Any], with_status: bool) -> dict[str, Any]:
    """The part of an object that field ownership covers."""
    owned = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind")}
    if not with_status:
        owned.pop("status", None)
    metadata = owned.get("metadata")
    if isinstance(metadata, dict):
        owned["metadata"] = {k: v for k, v in metadata.items() if k not in _SYSTEM_METADATA}
        if not owned["metadata"]:
            del owned["metadata"]
    return owned


def leaf_paths(obj: Any, prefix: Path = ()) -> set[Path]:
    """Every leaf path of a value: non-empty maps are walked, everything else is a leaf."""
    paths: set[Path] = set()
    if isinstance(obj, dict) and obj:
        for key, value in obj.items():
            if isinstance(value, dict) and value:
                paths |= leaf_paths(value, (*prefix, key))
            else:
                paths.add((*prefix, key))
    elif prefix:
        paths.add(prefix)
    return paths


def object_paths(obj: dict[str, Any], with_status: bool = False) -> set[Path]:
    """Leaf paths of an object that a manager can own."""
    return leaf_paths(_owned_part(obj, with_status))


def _get(obj: Any, path: Path) -> Any:
    for key in path:
        if not isinstance(obj, dict) or key not in obj:
            return _MISSING
        obj = obj[key]
    return obj


def _delete(obj: dict[str, Any], path: Path) -> None:
    """Remove a leaf, and the maps it leaves empty."""
    parents: list[tuple[dict[str, Any], str]] = []
    current: Any = obj
    for key in path[:-1]:
        if not isinstance(current, dict) or key not in current:
            return
        parents.append((current, key))
        current = current[key]
    if isinstance(current, dict):
        current.pop(path[-1], None)
    for parent, key in reversed(parents):
        if parent[key] == {}:
            del parent[key]
        else:
            break


def _merge_into(target: dict[str, Any], source: dict[str, Any]) -> None:
    for key, value in source.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict) and value:
            _merge_into(target[key], value)
        elif isinstance(value, dict) and isinstance(target.get(key), dict):
            continue
        else:
            target[key] = clone(value)


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch (what ``application/merge-patch+json`` means)."""
    if not isinstance(patch, dict):
        return clone(patch)
    result = clone(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _prefixes(paths: set[Path]) -> set[Path]:
    found: set[Path] = set()
    for path in paths:
        for i in range(1, len(path) + 1):
            found.add(path[:i])
    return found


def _overlapping(
    owned: set[Path], paths: set[Path], path_prefixes: set[Path]
) -> list[tuple[Path, Path]]:
    """Pairs (owned path, path) where one is a prefix of (or equal to) the other."""
    pairs: list[tuple[Path, Path]] = []
    for owned_path in owned:
        if owned_path in path_prefixes:
            pairs.extend((owned_path, p) for p in paths if p[: len(owned_path)] == owned_path)
        else:
            for i in range(1, len(owned_path)):
                if owned_path[:i] in paths:
                    pairs.append((owned_path, owned_path[:i]))
    return pairs


def _drop_overlaps(entry: ManagedEntry, paths: set[Path]) -> None:
    prefixes = _prefixes(paths)
    entry.fields = {
        p
        for p in entry.fields
        if p not in prefixes and not any(p[:i] in paths for i in range(1, len(p)))
    }


def apply_config(
    live: dict[str, Any] | None,
    config: dict[str, Any],
    entries: list[ManagedEntry],
    *,
    manager: str,
    api_version: str,
    now: str,
    force: bool,
    with_status: bool = False,
) -> tuple[dict[str, Any], list[ManagedEntry], list[FieldConflict]]:
    """Merge an applied configuration into the live object.

    Returns the new object, the new managed entries and the conflicts; when
    there are conflicts and ``force`` is false, the object is not changed and
    the caller answers 409.
    """
    config_owned = _owned_part(config, with_status)
    paths = leaf_paths(config_owned)
    prefixes = _prefixes(paths)
    mine = next((e for e in entries if e.manager == manager and e.operation == "Apply"), None)
    conflicts: list[FieldConflict] = []
    base = live or {}
    for entry in entries:
        if entry is mine:
            continue
        for owned_path, path in _overlapping(entry.fields, paths, prefixes):
            longer = owned_path if len(owned_path) >= len(path) else path
            if _get(base, longer) != _get(config_owned, longer):
                conflicts.append(FieldConflict(path, entry))
    if conflicts and not force:
        return base, entries, conflicts

    result = clone(base)
    others = [e for e in entries if e is not mine]
    if mine is not None:
        other_owned = set().union(*(e.fields for e in others)) if others else set()
        other_prefixes = _prefixes(other_owned)
        for path in mine.fields - paths:
            if path in other_prefixes or any(path[:i] in other_owned for i in range(1, len(path))):
                continue
            _delete(result, path)
    _merge_into(result, config_owned)
    for key in ("apiVersion", "kind"):
        if key in config:
            result[key] = config[key]
    metadata = result.setdefault("metadata", {})
    for key in ("name", "namespace"):
        if key in config.get("metadata", {}):
            metadata[key] = config["metadata"][key]

    new_entries: list[ManagedEntry] = []
    applied = ManagedEntry(manager, "Apply", api_version, now, paths)
    if mine is not None and mine.fields == paths:
        applied.time = mine.time  # an unchanged apply does not touch the entry
    for entry in entries:
        if entry is mine:
            new_entries.append(applied)
            continue
        entry = copy.copy(entry)
        entry.fields = set(entry.fields)
        if force:
            _drop_overlaps(entry, paths)
        if entry.fields:
            new_entries.append(entry)
    if mine is None:
        new_entries.append(applied)
    return result, new_entries, conflicts


def record_update(
    old: dict[str, Any] | None,
    new: dict[str, Any],
    entries: list[ManagedEntry],
    *,
    manager: str,
    api_version: str,
    now: str,
    subresource: str = "",
) -> list[ManagedEntry]:
    """Give the changed leaves of a non-apply write to its manager (an Update entry)."""
    with_status = subresource == "status"
    new_paths = object_paths(new, with_status)
    changed = new_paths if old is None else {p for p in new_paths if _get(old, p) != _get(new, p)}
    all_paths = object_paths(new, True)
    result: list[ManagedEntry] = []
    found = False
    for entry in entries:
        entry = copy.copy(entry)
        entry.fields = {p for p in entry.fields if p in all_paths or _get(new, p) is not _MISSING}
        if (
            entry.manager == manager
            and entry.operation == "Update"
            and entry.subresource == subresource
        ):
            found = True
            if changed:
                entry.fields |= changed
                entry.time = now
        else:
            _drop_overlaps(entry, changed)
        if entry.fields:
            result.append(entry)
    if not found and changed:
        result.append(ManagedEntry(manager, "Update", api_version, now, changed, subresource))
    return result


def _encode_paths(paths: set[Path]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for path in sorted(paths):
        node = tree
        for key in path:
            node = node.setdefault(f"f:{key}", {})
    return tree


def _decode_tree(tree: Any, prefix: Path = ()) -> set[Path]:
    paths: set[Path] = set()
    if not isinstance(tree, dict):
        return paths
    children = {k: v for k, v in tree.items() if k.startswith("f:")}
    if not children and prefix:
        paths.add(prefix)
    for key, value in children.items():
        paths |= _decode_tree(value, (*prefix, key[2:]))
    return paths


def encode_managed_fields(entries: list[ManagedEntry]) -> list[dict[str, Any]]:
    """The ``metadata.managedFields`` list of an object."""
    encoded = []
    for entry in entries:
        item: dict[str, Any] = {
            "manager": entry.manager,
            "operation": entry.operation,
            "apiVersion": entry.api_version,
            "time": entry.time,
            "fieldsType": "FieldsV1",
            "fieldsV1": _encode_paths(entry.fields),
        }
        if entry.subresource:
            item["subresource"] = entry.subresource
        encoded.append(item)
    return encoded


def decode_managed_fields(obj: dict[str, Any]) -> list[ManagedEntry]:
    """Read the managed entries back from an object's metadata."""
    entries = []
    for item in obj.get("metadata", {}).get("managedFields") or []:
        entries.append(
            ManagedEntry(
                manager=item.get("manager", ""),
                operation=item.get("operation", "Update"),
                api_version=item.get("apiVersion", ""),
                time=item.get("time", ""),
                fields=_decode_tree(item.get("fieldsV1", {})),
                subresource=item.get("subresource", ""),
            )
        )
    return entries


def _format_path(path: Path) -> str:
    return "".join(f".{key}" for key in path)


def _describe_manager(entry: ManagedEntry) -> str:
    if entry.operation == "Apply":
        return f'"{entry.manager}"'
    text = f'"{entry.manager}" using {entry.api_version}'
    return f"{text} at {entry.time}" if entry.time else text


def conflict_message(conflicts: list[FieldConflict]) -> tuple[str, list[dict[str, str]]]:
    """The message and causes of a 409 apply conflict, worded as kube-apiserver words them."""
    unique: dict[tuple[Path, str], FieldConflict] = {}
    for conflict in conflicts:
        unique.setdefault((conflict.path, conflict.entry.manager), conflict)
    ordered = sorted(unique.values(), key=lambda c: (c.entry.manager, c.path))
    causes = [
        {
            "reason": "FieldManagerConflict",
            "message": f"conflict with {_describe_manager(c.entry)}",
            "field": _format_path(c.path),
        }
        for c in ordered
    ]
    if len(ordered) == 1:
        only = ordered[0]
        message = (
            f"Apply failed with 1 conflict: conflict with {_describe_manager(only.entry)}: "
            f"{_format_path(only.path)}"
        )
        return message, causes
    groups: dict[str, list[FieldConflict]] = {}
    for conflict in ordered:
        groups.setdefault(_describe_manager(conflict.entry), []).append(conflict)
    parts = []
    for described, items in groups.items():
        lines = "\n".join(f"- {_format_path(c.path)}" for c in items)
        word = "conflicts" if len(items) > 1 else "conflict"
        parts.append(f"{word} with {described}:\n{lines}")
    return f"Apply failed with {len(ordered)} conflicts: " + "\n".join(parts), causes
