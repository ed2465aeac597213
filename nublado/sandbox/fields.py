"""Field ownership for the sandbox: managedFields, server-side apply merges, conflicts.

kube-apiserver tracks who owns which field with structured-merge-diff, driven
by each kind's schema, and so does this module (with `schema.Node`): structs
and granular maps merge key by key, associative lists (``list-type: map``)
element by element on their keys, sets by value, and atomic structs, maps and
lists are one leaf. A field set is a tree of path elements written exactly as
``metadata.managedFields[].fieldsV1`` writes them: ``f:name`` for a field,
``k:{"port":80,"protocol":"TCP"}`` for a list element by its keys, ``v:"x"``
for a set value, and ``.`` for "this element itself" when it also has
children.

An apply (operation ``Apply``) merges its configuration into the live object,
removes what its manager applied before and no longer applies unless another
manager owns it, and refuses (409) to change a field another manager owns
unless forced; a PUT, POST or non-apply PATCH (operation ``Update``) takes the
fields it changed from everyone else. Conflicts name the exact field
(``.spec.ports[port=80,protocol="TCP"].targetPort``) in kube-apiserver's words.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any

import orjson

from .request import current_write
from .schema import Node, node_for
from .store import ApiError, clone
from .validation import FieldError, GoSyntax

__all__ = [
    "FieldConflict",
    "FieldSet",
    "ManagedEntry",
    "Path",
    "SchemaError",
    "apply_config",
    "check_applied_type",
    "check_field_manager",
    "conflict_message",
    "decode_managed_fields",
    "encode_managed_fields",
    "format_path",
    "record_update",
    "typed_patch_error",
]

Path = tuple[str, ...]
"""A field path as a tuple of encoded path elements (``("f:spec", "f:ports", 'k:{...}')``)."""

_MISSING: Any = object()


class SchemaError(Exception):
    """A value the schema cannot type (an undeclared field, a list element without its keys).

    ``path`` is the place of the error, built from the inside out.
    """

    def __init__(self, message: str, path: Path = ()) -> None:
        super().__init__(message)
        self.message = message
        self.path = path

    def __str__(self) -> str:
        return f"{format_path(self.path)}: {self.message}" if self.path else self.message


class FieldSet:
    """A set of field paths as a tree, as structured-merge-diff's ``fieldpath.Set``.

    ``members`` are the path elements of this level that are in the set;
    ``children`` the sets below path elements that have something in the set
    under them. Treated as immutable once built: operations return new sets
    and share unchanged subtrees.
    """

    __slots__ = ("children", "members")

    def __init__(self) -> None:
        self.members: set[str] = set()
        self.children: dict[str, FieldSet] = {}

    def __bool__(self) -> bool:
        return bool(self.members or self.children)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, FieldSet):
            return NotImplemented
        return self.members == other.members and self.children == other.children

    __hash__ = None  # type: ignore[assignment]

    def insert(self, path: Path) -> None:
        """Add one path (building; only on a set not yet shared)."""
        node = self
        for element in path[:-1]:
            node = node.children.setdefault(element, FieldSet())
        node.members.add(path[-1])

    def union(self, other: FieldSet) -> FieldSet:
        """Every path in either set."""
        if not other:
            return self
        if not self:
            return other
        out = FieldSet()
        out.members = self.members | other.members
        out.children = dict(self.children)
        for element, child in other.children.items():
            mine = out.children.get(element)
            out.children[element] = child if mine is None else mine.union(child)
        return out

    def intersection(self, other: FieldSet) -> FieldSet:
        """The paths in both sets."""
        out = FieldSet()
        out.members = self.members & other.members
        for element, child in self.children.items():
            theirs = other.children.get(element)
            if theirs is not None:
                common = child.intersection(theirs)
                if common:
                    out.children[element] = common
        return out

    def difference(self, other: FieldSet) -> FieldSet:
        """The paths of this set that are not in the other (descendants are kept).

        This set itself when the other takes nothing from it: an entry a write
        leaves as it was keeps its identity, and with it its cached encoding.
        """
        if not other or not self:
            return self
        out = FieldSet()
        out.members = self.members - other.members
        same = len(out.members) == len(self.members)
        for element, child in self.children.items():
            theirs = other.children.get(element)
            if theirs is None:
                out.children[element] = child
            else:
                rest = child.difference(theirs)
                if rest:
                    out.children[element] = rest
                same = same and rest is child
        return self if same else out

    def without_subtrees(self, other: FieldSet) -> FieldSet:
        """This set without the other's members and everything under them (itself when
        nothing goes)."""
        if not other or not self:
            return self
        out = FieldSet()
        out.members = self.members - other.members
        same = len(out.members) == len(self.members)
        for element, child in self.children.items():
            if element in other.members:
                same = False
                continue
            theirs = other.children.get(element)
            rest = child if theirs is None else child.without_subtrees(theirs)
            if rest:
                out.children[element] = rest
            same = same and rest is child
        return self if same else out

    def paths(self, prefix: Path = ()) -> list[Path]:
        """Every path, in structured-merge-diff's order (members first, then children)."""
        found = [(*prefix, e) for e in sorted(self.members, key=_order)]
        for element in sorted(self.children, key=_order):
            found.extend(self.children[element].paths((*prefix, element)))
        return found

    def to_json(self) -> dict[str, Any]:
        """The ``fieldsV1`` form: elements in order, ``.`` first where a member has children
        (as kube-apiserver's answers show it)."""
        children = self.children
        if not children:
            # Most levels are leaves only (a container's fields): one comprehension.
            return {element: {} for element in _ordered(self.members)}
        members = self.members
        tree: dict[str, Any] = {}
        for element in _ordered(members | children.keys()):
            child = children.get(element)
            if child is None:
                tree[element] = {}
            elif element in members:
                tree[element] = {".": {}, **child.to_json()}
            else:
                tree[element] = child.to_json()
        return tree

    @classmethod
    def from_json(cls, tree: Any) -> FieldSet:
        """Read a ``fieldsV1`` tree; unknown kinds of path element are dropped, as upstream does."""
        out = cls()
        if not isinstance(tree, dict):
            return out
        for element, sub in tree.items():
            if element == "." or element[:2] not in ("f:", "k:", "v:", "i:"):
                continue
            child = cls.from_json(sub)
            if not isinstance(sub, dict) or not sub or "." in sub:
                out.members.add(element)
            if child:
                out.children[element] = child
        return out


def _ordered(elements: Iterable[str]) -> tuple[str, ...]:
    """Path elements in `_order`, sorted once per distinct set of them.

    Objects of one shape (every user's lab pod) have the same sets level by
    level, and sorting them again was half the cost of encoding a new entry.
    """
    key = frozenset(elements)
    known = _ORDERED.get(key)
    if known is None:
        if len(_ORDERED) >= _ORDERED_MAX:
            _ORDERED.clear()
        known = _ORDERED[key] = tuple(sorted(key, key=_order))
    return known


_ORDERED: dict[frozenset[str], tuple[str, ...]] = {}
_ORDERED_MAX = 4096


@lru_cache(maxsize=4096)
def _order(element: str) -> tuple[Any, ...]:
    """Sort key of a path element: field names, then keys, then values, then indexes."""
    prefix, text = element[:2], element[2:]
    if prefix == "f:":
        return (0, text)
    if prefix == "k:":
        fields = json.loads(text)
        return (1, tuple((name, *_value_order(fields[name])) for name in fields))
    if prefix == "v:":
        return (2, *_value_order(json.loads(text)))
    return (3, int(text) if text.isdigit() else 0)


def _value_order(value: Any) -> tuple[int, Any]:
    if isinstance(value, bool):
        return (1, int(value))
    if isinstance(value, int | float):
        return (2, value)
    if isinstance(value, str):
        return (3, value)
    return (4, json.dumps(value, sort_keys=True))


def _json(value: Any) -> str:
    """Compact JSON, as Go writes it in a path element."""
    return orjson.dumps(value).decode()


@lru_cache(maxsize=4096)
def _display(element: str) -> str:
    """How a path element reads in a conflict or error message."""
    prefix, text = element[:2], element[2:]
    if prefix == "f:":
        return f".{text}"
    if prefix == "k:":
        fields = json.loads(text)
        return "[" + ",".join(f"{name}={_json(value)}" for name, value in fields.items()) + "]"
    if prefix == "v:":
        return f"[={text}]"
    return f"[{text}]"


def format_path(path: Path) -> str:
    """A path as kube-apiserver prints it: ``.spec.ports[port=80,protocol="TCP"].targetPort``."""
    return "".join(_display(e) for e in path)


# -- what the schema says about each node, decided once per node ----------------


class _Plan:
    """How one schema node merges, decided once: ``struct``, ``map``, ``list``, ``deduced``
    (no schema: maps merge per key, lists are atomic) or ``leaf``; with its children's plans.
    """

    __slots__ = ("_fields", "_items", "defaults", "keys", "kind", "list_type", "node", "preserves")

    def __init__(
        self,
        kind: str,
        node: Node | None = None,
        list_type: str = "",
        keys: tuple[str, ...] = (),
        preserves: bool = False,
    ) -> None:
        self.kind = kind
        self.node = node
        self.list_type = list_type
        self.keys = keys
        self.preserves = preserves
        self.defaults: dict[str, Any] = {}
        self._fields: dict[str, tuple[_Plan, bool] | None] = {}
        self._items: _Plan | None = None

    def child(self, key: str, strict: bool = False) -> tuple[_Plan, bool]:
        """The plan of a map entry or struct field, and whether it is a declared field.

        ``strict`` refuses a field the struct does not declare (an applied
        configuration); elsewhere such a field is handled as schema-less.
        """
        found = self._fields.get(key)
        if found is None:
            if self.kind == "struct":
                assert self.node is not None
                child = self.node.field(key)
                if child is None:
                    if strict and not self.preserves:
                        raise SchemaError("field not declared in schema", (f"f:{key}",))
                    return _DEDUCED, False
                found = (_plan(child), True)
            elif self.kind == "map":
                assert self.node is not None
                found = (_plan(self.node.values), False)
            else:
                found = (_DEDUCED, False)
            self._fields[key] = found
        return found

    @property
    def items(self) -> _Plan:
        """The plan of a list's elements."""
        if self._items is None:
            assert self.node is not None
            self._items = _plan(self.node.items)
        return self._items

    def granular(self, value: Any) -> bool:
        """True when a value is walked element by element rather than as one leaf."""
        kind = self.kind
        if kind == "list":
            return type(value) is list
        return kind != "leaf" and type(value) is dict


_LEAF = _Plan("leaf")
_DEDUCED = _Plan("deduced")
_PLANS: dict[int, tuple[Node, _Plan]] = {}


def _plan(node: Node | None) -> _Plan:
    if node is None:
        return _DEDUCED
    found = _PLANS.get(id(node))
    if found is not None:
        return found[1]
    kind = node.kind
    plan = _LEAF
    if kind in ("struct", "map") and not node.atomic:
        plan = _Plan(kind, node, preserves=node.preserves_unknown_fields)
    elif kind == "list":
        list_type = node.list_type
        keys = tuple(sorted(node.list_map_keys)) if list_type == "map" else ()
        if list_type == "set" or keys:
            plan = _Plan("list", node, list_type, keys)
            for name in keys:
                default = node.items.field_default(name)
                if default is not None:
                    plan.defaults[name] = default
    _PLANS[id(node)] = (node, plan)
    return plan


def _element(plan: _Plan, item: Any, index: int) -> str:
    """The path element of a list item: its keys (``k:``) or its value (``v:``)."""
    if plan.list_type == "set":
        return "v:" + _json(item)
    if type(item) is not dict:
        raise SchemaError(
            f"element {index}: associative list with keys may not have non-map elements"
        )
    key: dict[str, Any] = {}
    for name in plan.keys:
        if name in item:
            key[name] = item[name]
        elif name in plan.defaults:
            key[name] = plan.defaults[name]
        else:
            raise SchemaError(
                f"element {index}: associative list with keys has an element that omits key "
                f'field "{name}" (and doesn\'t have default value)'
            )
    return "k:" + _json(key)


def _index(plan: _Plan, items: list[Any]) -> dict[str, Any]:
    """A list's items by path element, first occurrence first, in list order."""
    found: dict[str, Any] = {}
    for i, item in enumerate(items):
        found.setdefault(_element(plan, item, i), item)
    return found


# -- the fields of an applied configuration (ToFieldSet) ---------------------------


def _collect(value: Any, plan: _Plan, out: FieldSet) -> None:
    """Fill ``out`` with the fields under a non-empty map, struct or list value."""
    if plan.kind == "list":
        items = plan.items
        for i, item in enumerate(value):
            element = _element(plan, item, i)
            if element in out.members:
                # An applied configuration may not name one element twice (upstream's
                # validation refuses it; the live object may have duplicates).
                raise SchemaError(f"duplicate entries for key {_display(element)}")
            out.members.add(element)
            if item and items.granular(item):
                below = FieldSet()
                try:
                    _collect(item, items, below)
                except SchemaError as error:
                    error.path = (element, *error.path)
                    raise
                if below:
                    out.children[element] = below
        return
    known = plan._fields  # the plans already decided (plan.child's cache), read inline
    members = out.members
    for key, child in value.items():
        element = f"f:{key}"
        found = known.get(key)
        child_plan, declared = found if found is not None else plan.child(key, strict=True)
        # child_plan.granular(child), inline: this loop runs for every field applied.
        kind = child_plan.kind
        if kind == "list":
            leaf = type(child) is not list
        else:
            leaf = kind == "leaf" or type(child) is not dict
        if leaf:
            members.add(element)  # a leaf
            continue
        if not child:
            if type(child) is dict or not declared:
                members.add(element)  # an empty map is a leaf; an empty list is nothing
            continue
        below = FieldSet()
        try:
            _collect(child, child_plan, below)
        except SchemaError as error:
            error.path = (element, *error.path)
            raise
        if not declared:
            members.add(element)
        if below:
            out.children[element] = below


def _drop_undeclared(value: Any, plan: _Plan, prefix: str) -> None:
    """Drop, with a warning, the fields a custom resource's schema does not declare.

    A custom resource's structural schema prunes undeclared fields on every
    write; under ``fieldValidation=Strict`` they are refused instead, which
    here means they stay and fail typing like a built-in kind's.
    """
    if not plan.granular(value):
        return
    if plan.kind == "list":
        for i, item in enumerate(value):
            _drop_undeclared(item, plan.items, f"{prefix}[{i}]")
        return
    for key in list(value):
        path = f"{prefix}.{key}" if prefix else key
        child_plan, declared = plan.child(key)
        if plan.kind == "struct" and not declared and not plan.preserves:
            del value[key]
            current_write().warn(f'unknown field "{path}"')
        else:
            _drop_undeclared(value[key], child_plan, path)


def _contains(live: Any, config: Any, plan: _Plan) -> bool:
    """True when merging the configuration would leave the live value as it is."""
    if not (plan.granular(live) and plan.granular(config)):
        return bool(live == config)
    if plan.kind == "list":
        left = _index(plan, live)
        right = _index(plan, config)
        shared = [e for e in left if e in right]
        if shared != list(right):
            return False  # a new element, or the configuration reorders them
        items = plan.items
        return all(_contains(left[e], right[e], items) for e in right)
    for key, value in config.items():
        current = live.get(key, _MISSING)
        if current is _MISSING or value is None:
            return False
        if (
            current is not value
            and current != value
            and not _contains(current, value, plan.child(key)[0])
        ):
            return False
    return True


# -- merge, compare, prune --------------------------------------------------------


def _merge(live: Any, config: Any, plan: _Plan) -> Any:
    """The configuration merged into a private copy of the live value."""
    if plan.kind == "list":
        if type(live) is list and type(config) is list:
            return _merge_list(live, config, plan)
        return config
    if not (plan.granular(live) and type(config) is dict):
        return config
    for key, value in config.items():
        if value is None:
            live.pop(key, None)
            continue
        current = live.get(key, _MISSING)
        if current is _MISSING:
            live[key] = value
        else:
            live[key] = _merge(current, value, plan.child(key)[0])
    return live


def _merge_list(live: list[Any], config: list[Any], plan: _Plan) -> list[Any]:
    """Merge two associative lists in structured-merge-diff's element order.

    Live-only elements keep their place; elements in both follow the
    configuration's order; configuration-only elements come where the
    configuration puts them.
    """
    left = _index(plan, live)
    right = _index(plan, config)
    left_order, right_order = list(left), list(right)
    shared = iter([e for e in right_order if e in left])
    next_shared = next(shared, None)
    merged: list[Any] = []
    taken: set[str] = set()
    li = ri = 0
    items = plan.items
    while li < len(left_order) or ri < len(right_order):
        if li < len(left_order) and ri < len(right_order):
            element = left_order[li]
            if element == right_order[ri]:
                merged.append(_merge(left[element], right[element], items))
                taken.add(element)
                li += 1
                ri += 1
                next_shared = next(shared, None)
                continue
            if element in right and next_shared is not None and element != next_shared:
                li += 1
                continue
        if li < len(left_order):
            element = left_order[li]
            if element not in right:
                merged.append(left[element])
                li += 1
                continue
            if element in taken:
                li += 1
                continue
        if ri < len(right_order):
            element = right_order[ri]
            taken.add(element)
            current = left.get(element, _MISSING)
            value = right[element]
            merged.append(value if current is _MISSING else _merge(current, value, items))
            ri += 1
            if element == next_shared:
                next_shared = next(shared, None)
    return merged


@dataclass
class _Comparison:
    """What changed between two objects: fields added, modified (leaves) and removed."""

    added: FieldSet
    modified: FieldSet
    removed: FieldSet

    def changed(self) -> FieldSet:
        return self.added.union(self.modified)


def _compare(old: Any, new: Any, plan: _Plan) -> _Comparison:
    """What changed from one object to another, as structured-merge-diff's Compare."""
    result = _Comparison(FieldSet(), FieldSet(), FieldSet())
    _compare_children(old, new, plan, result)
    return result


def _compare_children(old: Any, new: Any, plan: _Plan, out: _Comparison) -> None:
    if plan.kind == "list":
        left = _index(plan, old if type(old) is list else [])
        right = _index(plan, new if type(new) is list else [])
        items = plan.items
        for element in {**left, **right}:
            _compare_one(
                left.get(element, _MISSING), right.get(element, _MISSING), items, element, out
            )
        return
    left = old if type(old) is dict else {}
    right = new if type(new) is dict else {}
    for key in {**left, **right}:
        child_plan = plan.child(key)[0]
        _compare_one(left.get(key, _MISSING), right.get(key, _MISSING), child_plan, f"f:{key}", out)


def _compare_one(old: Any, new: Any, plan: _Plan, element: str, out: _Comparison) -> None:
    if old is not _MISSING and new is not _MISSING and (old is new or old == new):
        return
    # A null is an empty map or list that is there (upstream's nil slices).
    granular = (
        plan.kind != "leaf"
        and (old is _MISSING or old is None or plan.granular(old))
        and (new is _MISSING or new is None or plan.granular(new))
    )
    if granular and not (old is not _MISSING and old) and not (new is not _MISSING and new):
        granular = False  # both empty: a leaf, keeping the empty/null distinction
    if not granular:
        if old is _MISSING:
            out.added.members.add(element)
        elif new is _MISSING:
            out.removed.members.add(element)
        else:
            out.modified.members.add(element)
        return
    below = _Comparison(FieldSet(), FieldSet(), FieldSet())
    _compare_children(
        None if old is _MISSING else old, None if new is _MISSING else new, plan, below
    )
    for mine, theirs in (
        (out.added, below.added),
        (out.modified, below.modified),
        (out.removed, below.removed),
    ):
        if theirs:
            mine.children[element] = theirs
    if old is _MISSING:
        out.added.members.add(element)
    elif new is _MISSING:
        out.removed.members.add(element)


def _owns(owned: FieldSet | None, element: str, named: bool) -> bool:
    """True when a manager owns the element; a struct's field also when one owns a field
    under it (upstream makes named fields members before pruning), a list element or map
    entry only by itself."""
    if owned is None:
        return False
    return element in owned.members or (named and element in owned.children)


def _prune(obj: Any, plan: _Plan, last: FieldSet, owned: FieldSet | None) -> None:
    """Remove, in place, the fields of ``last`` that no manager owns (nor anything under them).

    A map or list that loses its last item goes too, as upstream turns it into null.
    """
    if not plan.granular(obj):
        return
    if plan.kind == "list":
        kept = []
        items = plan.items
        for i, item in enumerate(obj):
            element = _element(plan, item, i)
            if element in last.members and not _owns(owned, element, named=False):
                continue
            below = last.children.get(element)
            if below is not None:
                _prune(item, items, below, owned.children.get(element) if owned else None)
            kept.append(item)
        obj[:] = kept
        return
    for element in last.members | last.children.keys():
        if not element.startswith("f:") or element[2:] not in obj:
            continue
        key = element[2:]
        child_plan, declared = plan.child(key)
        if element in last.members and not _owns(owned, element, named=declared):
            del obj[key]
            continue
        below = last.children.get(element)
        child = obj[key]
        if below is None or type(child) not in (dict, list) or not child:
            continue
        _prune(child, child_plan, below, owned.children.get(element) if owned else None)
        if not child:
            del obj[key]


# -- fields no manager owns ---------------------------------------------------------


def _paths_set(*paths: Path) -> FieldSet:
    out = FieldSet()
    for path in paths:
        out.insert(path)
    return out


# What kube-apiserver strips from every manager's set (non-recursively).
_STRIPPED = _paths_set(
    ("f:apiVersion",),
    ("f:kind",),
    ("f:metadata",),
    *(
        ("f:metadata", f"f:{name}")
        for name in (
            "name",
            "namespace",
            "creationTimestamp",
            "selfLink",
            "uid",
            "clusterName",
            "generation",
            "managedFields",
            "resourceVersion",
        )
    ),
)
# Set by deletion, never by a manager's write.
_DELETION = _paths_set(
    ("f:metadata", "f:deletionTimestamp"), ("f:metadata", "f:deletionGracePeriodSeconds")
)
_IGNORED_MAIN = _DELETION.union(_paths_set(("f:status",)))


def _tracked(fields: FieldSet, with_status: bool) -> FieldSet:
    """The part of a set managers own: no identity, no system metadata, no status on the main
    resource (kube-apiserver resets it there)."""
    return fields.difference(_STRIPPED).without_subtrees(
        _DELETION if with_status else _IGNORED_MAIN
    )


def _root(obj: dict[str, Any]) -> Node | None:
    return node_for(str(obj.get("apiVersion", "")), str(obj.get("kind", "")))


def _empty_object(root: Node | None) -> dict[str, Any]:
    """The object a create is compared with: the kind's empty Go struct.

    Its non-pointer ``spec`` (and a pod template's ``metadata`` and ``spec``)
    are there from the start, and so are their required fields, as nulls:
    a created pod's ``f:spec`` and ``f:containers`` carry no ``.``.
    """
    empty: dict[str, Any] = {"metadata": {}}
    spec = root.field("spec") if root is not None else None
    if spec is not None and _plan(spec).kind == "struct":
        empty["spec"] = dict.fromkeys(spec.required)
        template = spec.field("template")
        template_spec = template.field("spec") if template is not None else None
        if template_spec is not None and _plan(template_spec).kind == "struct":
            empty["spec"]["template"] = {
                "metadata": {},
                "spec": dict.fromkeys(template_spec.required),
            }
    return empty


# -- managed entries ------------------------------------------------------------------


@dataclass
class ManagedEntry:
    """One managedFields entry: who owns which fields, by which operation."""

    manager: str
    operation: str
    api_version: str
    time: str
    fields: FieldSet = field(default_factory=FieldSet)
    subresource: str = ""
    # The stored item this entry was read from, with the set read from it, when the item
    # is exactly what `encode_managed_fields` would write for them (see `_reusable`).
    source: tuple[FieldSet, dict[str, Any]] | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class FieldConflict:
    """A field an apply would change that another manager owns."""

    path: Path
    entry: ManagedEntry


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
    """Merge an applied configuration into the live object (operation ``Apply``).

    Returns the new object, the new managed entries and the conflicts; when
    there are conflicts and ``force`` is false, the object and entries are
    returned unchanged and the caller answers 409. Raises the 500 `ApiError`
    kube-apiserver answers for a configuration the schema cannot type.
    """
    root = _root(config)
    plan = _plan(root)
    if root is not None and root.custom and current_write().field_validation != "Strict":
        _drop_undeclared(config, plan, "")
    applied = FieldSet()
    if plan.granular(config) and config:
        try:
            _collect(config, plan, applied)
        except SchemaError as error:
            raise typed_patch_error(config, error) from None
    applied = _tracked(applied, with_status)
    subresource = "status" if with_status else ""
    mine = next(
        (
            e
            for e in entries
            if e.manager == manager and e.operation == "Apply" and e.subresource == subresource
        ),
        None,
    )
    # The usual re-apply of the same configuration: nothing to prune, and
    # nothing changes when the live object already holds every value.
    if (
        live is not None
        and mine is not None
        and mine.fields == applied
        and _contains(live, config, plan)
    ):
        return clone(live), entries, []
    base = live if live is not None else _empty_object(root)
    merged = _merge(clone(live) if live is not None else {}, config, plan)
    if mine is not None and mine.fields != applied:
        owned = applied
        for entry in entries:
            if entry is not mine:
                owned = owned.union(entry.fields)
        _prune(merged, plan, mine.fields, owned)
    others = [e for e in entries if e is not mine]
    conflicts: list[FieldConflict] = []
    changed = removed = FieldSet()
    if others:
        # Only other managers' sets care what changed (conflicts, removals).
        comparison = _compare(base, merged, plan)
        changed = _tracked(comparison.changed(), with_status)
        removed = _tracked(comparison.removed, with_status)
        for entry in others:
            common = entry.fields.intersection(changed)
            conflicts.extend(FieldConflict(p, entry) for p in common.paths())
        if conflicts and not force:
            return base, entries, conflicts

    new_entries: list[ManagedEntry] = []
    for entry in entries:
        if entry is mine:
            continue
        fields = entry.fields.difference(changed) if force else entry.fields
        fields = fields.difference(removed)
        if fields:
            new_entries.append(entry if fields is entry.fields else replace(entry, fields=fields))
    if applied:
        unchanged = mine is not None and mine.fields == applied and merged == base
        time = mine.time if unchanged and mine is not None else now
        new_entries.append(ManagedEntry(manager, "Apply", api_version, time, applied, subresource))
    return merged, new_entries, conflicts


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
    """Give the fields a non-apply write changed to its manager (operation ``Update``).

    The changed fields are taken from every other manager without conflict;
    removed fields leave every set; the writer's entry keeps what it owned
    before and gets a new time only when it changed something.
    """
    with_status = subresource == "status"
    root = _root(new)
    comparison = _compare(old if old is not None else _empty_object(root), new, _plan(root))
    changed = _tracked(comparison.changed(), with_status)
    removed = _tracked(comparison.removed, with_status)
    result: list[ManagedEntry] = []
    found = False
    for entry in entries:
        mine = (
            entry.manager == manager
            and entry.operation == "Update"
            and entry.subresource == subresource
        )
        fields = entry.fields.difference(removed)
        if mine:
            found = True
            if changed:
                entry = replace(entry, fields=fields.union(changed), time=now)
            elif fields is not entry.fields:
                entry = replace(entry, fields=fields)
        else:
            fields = fields.difference(changed)
            if fields is not entry.fields:
                entry = replace(entry, fields=fields)
        if entry.fields:
            result.append(entry)
    if not found and changed:
        result.append(ManagedEntry(manager, "Update", api_version, now, changed, subresource))
    return result


def encode_managed_fields(entries: list[ManagedEntry]) -> list[dict[str, Any]]:
    """The ``metadata.managedFields`` list, in kube-apiserver's order (Apply first, then by
    time and manager)."""
    ordered = sorted(
        entries,
        key=lambda e: (e.operation, e.time, e.manager, e.api_version, e.subresource),
    )
    encoded = []
    for entry in ordered:
        source = entry.source
        if source is not None and _reusable(entry, source):
            encoded.append(source[1])
            continue
        item: dict[str, Any] = {
            "manager": entry.manager,
            "operation": entry.operation,
            "apiVersion": entry.api_version,
            "time": entry.time,
            "fieldsType": "FieldsV1",
            "fieldsV1": _encoded(entry.fields),
        }
        if entry.subresource:
            item["subresource"] = entry.subresource
        encoded.append(item)
    return encoded


def _reusable(entry: ManagedEntry, source: tuple[FieldSet, dict[str, Any]]) -> bool:
    """Whether the stored item an entry was read from is what encoding it would write.

    An entry a write leaves as it was (most of them: a status update keeps the
    applier's) then keeps the very item of the version before, rather than a
    new copy of its tree (a lab pod's is some 200 dicts, read back from JSON at
    every write). Stored objects are never changed in place, so versions may
    share it, as a version shares the values of the one before. A replaced
    entry (other fields, a new time) is encoded anew.
    """
    fields, item = source
    return (
        fields is entry.fields
        and item["manager"] == entry.manager
        and item["operation"] == entry.operation
        and item["apiVersion"] == entry.api_version
        and item["time"] == entry.time
        and item.get("subresource", "") == entry.subresource
    )


# The keys of an item as `encode_managed_fields` writes it, in its order (with and
# without a subresource).
_ITEM_KEYS = ("manager", "operation", "apiVersion", "time", "fieldsType", "fieldsV1")
_ITEM_KEYS_SUBRESOURCE = (*_ITEM_KEYS, "subresource")


def _canonical_item(item: dict[str, Any], fields: FieldSet, tree_raw: bytes) -> bool:
    """Whether a stored item is exactly what encoding its entry writes: its keys in
    order, string values, a non-empty subresource only, and the set's canonical tree."""
    keys = tuple(item)
    if keys != _ITEM_KEYS and (keys != _ITEM_KEYS_SUBRESOURCE or not item["subresource"]):
        return False
    if (
        item["fieldsType"] != "FieldsV1"
        or type(item["manager"]) is not str
        or type(item["operation"]) is not str
        or type(item["apiVersion"]) is not str
        or type(item["time"]) is not str
        or type(item.get("subresource", "")) is not str
    ):
        return False
    known = _ENCODED.get(id(fields))
    return known is not None and known[0] is fields and known[1] == tree_raw


_DECODED: OrderedDict[bytes, FieldSet] = OrderedDict()
_DECODED_MAX = 1024
# The other way: a decoded set's tree, by the set's identity. Most writes keep
# most entries as they were (a status update leaves the applier's entry), and
# reading the tree back is much cheaper than walking the set again.
_ENCODED: dict[int, tuple[FieldSet, bytes]] = {}


def _encoded(fields: FieldSet) -> dict[str, Any]:
    """The ``fieldsV1`` tree of a set (a fresh dict each time: callers may keep it).

    A set met for the first time (a write's new entry) is remembered with its
    tree, so the object's next write decodes that tree from the cache instead
    of rebuilding the set and encoding it again.
    """
    known = _ENCODED.get(id(fields))
    if known is not None and known[0] is fields:
        tree: dict[str, Any] = orjson.loads(known[1])
        return tree
    tree = fields.to_json()
    _remember(orjson.dumps(tree), fields)
    return tree


def _remember(key: bytes, fields: FieldSet) -> FieldSet:
    """Cache a set under its tree's bytes (a tree met again keeps the set cached first)."""
    found = _DECODED.get(key)
    if found is not None:
        _DECODED.move_to_end(key)
        return found
    _DECODED[key] = fields
    _ENCODED[id(fields)] = (fields, key)
    if len(_DECODED) > _DECODED_MAX:
        _, dropped = _DECODED.popitem(last=False)
        _ENCODED.pop(id(dropped), None)
    return fields


def _decoded(tree: Any) -> tuple[FieldSet, bytes]:
    """The field set of a ``fieldsV1`` tree, decoded once per distinct tree, and the
    tree's JSON.

    Every write decodes the object's entries, and the store hands out copies,
    so the cache is keyed by content: serializing a tree costs a fraction of
    rebuilding its set, and field sets are never changed once built.
    """
    key = orjson.dumps(tree)
    found = _DECODED.get(key)
    if found is not None:
        _DECODED.move_to_end(key)
        return found, key
    fields = FieldSet.from_json(tree)
    _DECODED[key] = fields
    _ENCODED[id(fields)] = (fields, orjson.dumps(fields.to_json()))  # canonical form
    if len(_DECODED) > _DECODED_MAX:
        _, dropped = _DECODED.popitem(last=False)
        _ENCODED.pop(id(dropped), None)
    return fields, key


def decode_managed_fields(obj: dict[str, Any]) -> list[ManagedEntry]:
    """Read the managed entries back from an object's metadata."""
    entries = []
    for item in obj.get("metadata", {}).get("managedFields") or []:
        fields, raw = _decoded(item.get("fieldsV1"))
        entries.append(
            ManagedEntry(
                manager=item.get("manager", ""),
                operation=item.get("operation", "Update"),
                api_version=item.get("apiVersion", ""),
                time=item.get("time", ""),
                fields=fields,
                subresource=item.get("subresource", ""),
                source=(fields, item) if _canonical_item(item, fields, raw) else None,
            )
        )
    return entries


def _describe_manager(entry: ManagedEntry) -> str:
    text = json.dumps(entry.manager)
    if entry.subresource:
        text = f"{text} with subresource {json.dumps(entry.subresource)}"
    if entry.operation == "Apply":
        return text
    text = f"{text} using {entry.api_version}"
    return f"{text} at {entry.time}" if entry.time else text


def conflict_message(conflicts: list[FieldConflict]) -> tuple[str, list[dict[str, str]]]:
    """The message and causes of a 409 apply conflict, worded as kube-apiserver words them."""
    ordered = sorted(
        conflicts,
        key=lambda c: (
            c.entry.manager,
            c.entry.operation,
            c.entry.api_version,
            c.entry.subresource,
        ),
    )
    causes = [
        {
            "reason": "FieldManagerConflict",
            "message": f"conflict with {_describe_manager(c.entry)}",
            "field": format_path(c.path),
        }
        for c in ordered
    ]
    if len(ordered) == 1:
        only = ordered[0]
        message = (
            f"Apply failed with 1 conflict: conflict with {_describe_manager(only.entry)}: "
            f"{format_path(only.path)}"
        )
        return message, causes
    lines: list[str] = []
    previous: ManagedEntry | None = None
    for conflict in ordered:
        if conflict.entry is not previous:
            lines.append(f"conflicts with {_describe_manager(conflict.entry)}:")
            previous = conflict.entry
        lines.append(f"- {format_path(conflict.path)}")
    return f"Apply failed with {len(ordered)} conflicts: " + "\n".join(lines), causes


class _InternalError(ApiError):
    """A 500 as kube-apiserver writes one for a plain Go error: a Status with no reason."""

    @property
    def body(self) -> dict[str, Any]:
        body = super().body
        body.pop("reason", None)
        return body


def typed_patch_error(config: dict[str, Any], error: SchemaError) -> ApiError:
    """The answer to an apply body the schema cannot type (kube-apiserver 1.32 answers 500)."""
    meta = config.get("metadata") or {}
    api_version = str(config.get("apiVersion", ""))
    group, _, version = api_version.rpartition("/")
    gvk = f"{group}/{version}, Kind={config.get('kind', '')}"
    where = f"{meta.get('namespace', '')}/{meta.get('name', '')}; {gvk}"
    return _InternalError(500, "", f"failed to create typed patch object ({where}): {error}")


# -- checks before an apply or any write uses a manager's name -------------------------

_FIELD_MANAGER_MAX_BYTES = 128


def check_field_manager(options_kind: str, manager: str | None, *, apply: bool = False) -> None:
    """Refuse a ``fieldManager`` query value kube-apiserver refuses (422, every cause at once).

    Every write's options are validated before its body is decoded
    (apimachinery's ``ValidateFieldManager``): at most 128 bytes, every
    character printable; an apply must name one.
    """
    text = manager or ""
    errors: list[FieldError] = []
    if apply and not text:
        errors.append(
            FieldError("FieldValueRequired", "fieldManager", "", "is required for apply patch")
        )
    if len(text.encode()) > _FIELD_MANAGER_MAX_BYTES:
        errors.append(
            FieldError(
                "FieldValueTooLong",
                "fieldManager",
                "",
                f"must have at most {_FIELD_MANAGER_MAX_BYTES} bytes",
            )
        )
    position = 0
    for char in text:
        # Go's unicode.IsPrint and Python's isprintable agree: letters, marks, numbers,
        # punctuation, symbols and the ASCII space.
        if not char.isprintable():
            errors.append(
                FieldError(
                    "FieldValueInvalid",
                    "fieldManager",
                    GoSyntax(_go_quote(text)),
                    f"invalid character U+{ord(char):04X} (at position {position})",
                )
            )
        position += len(char.encode())
    if not errors:
        return
    texts = list(dict.fromkeys(str(e) for e in errors))
    summary = texts[0] if len(texts) == 1 else "[" + ", ".join(texts) + "]"
    raise ApiError(
        422,
        "Invalid",
        f'{options_kind}.meta.k8s.io "" is invalid: {summary}',
        {
            "group": "meta.k8s.io",
            "kind": options_kind,
            "causes": [{"reason": e.reason, "message": e.body(), "field": e.field} for e in errors],
        },
    )


def _go_quote(text: str) -> str:
    """A string as Go's ``%q`` (``strconv.Quote``) writes it."""
    out = ['"']
    for char in text:
        code = ord(char)
        if char in ('"', "\\"):
            out.append("\\" + char)
        elif char.isprintable():
            out.append(char)
        elif char in _GO_ESCAPES:
            out.append(_GO_ESCAPES[char])
        elif code < 0x80:
            out.append(f"\\x{code:02x}")
        elif code < 0x10000:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    out.append('"')
    return "".join(out)


_GO_ESCAPES = {
    "\a": "\\a",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\v": "\\v",
}


def check_applied_type(config: dict[str, Any], api_version: str, kind: str) -> None:
    """Refuse an applied configuration that is not of the endpoint's type (400).

    kube-apiserver's outermost field manager (``versionCheckManager``)
    compares the configuration's group, version and kind with the
    endpoint's before anything else of the apply; an unparseable
    ``apiVersion`` counts as empty, as apimachinery's ``Unstructured`` reads it.
    """
    given_version = config.get("apiVersion")
    given_kind = config.get("kind")
    version_text = given_version if isinstance(given_version, str) else ""
    kind_text = given_kind if isinstance(given_kind, str) else ""
    if version_text == api_version and kind_text == kind:
        return
    if version_text.count("/") > 1:
        group, version, kind_text = "", "", ""
    else:
        group, _, version = version_text.rpartition("/")
    raise ApiError.bad_request(f"invalid object type: {group}/{version}, Kind={kind_text}")
