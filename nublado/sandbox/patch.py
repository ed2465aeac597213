"""The three patch types of a PATCH request: JSON patch, merge patch, strategic merge patch.

kube-apiserver accepts RFC 6902 JSON patch and RFC 7386 merge patch for every
kind, and strategic merge patch for built-in kinds only: a custom resource
answers 415 and its list of accepted media types leaves strategic merge out.
Server-side apply is `nublado.sandbox.fields`' business, not this module's.

Strategic merge patch follows apimachinery's ``strategicpatch`` package as
the API server runs it (``StrategicMergeMapPatch``): a list merges only where
the schema's ``x-kubernetes-patch-strategy`` says ``merge`` (by the
``x-kubernetes-patch-merge-key`` for lists of objects, as a union for lists
of scalars) and is replaced whole otherwise; a map merges unless its strategy
is ``replace``. The directives ``$patch`` (``replace`` or ``delete`` on a map;
``replace`` or ``delete`` on a list element), ``$setElementOrder/<list>``,
``$deleteFromPrimitiveList/<list>`` and ``$retainKeys`` are processed and
never stored, and a ``null`` deletes a key. Errors carry upstream's messages
and status codes: 400 for malformed directives, 422 for lists of lists, and
500 without a reason for the plain Go errors upstream does not classify (a
missing merge key, an unknown ``$patch`` value), which kubectl prints as
``Error from server: ...``.
"""

from __future__ import annotations

from typing import Any

from .body import json_type
from .schema import Node, node_for
from .store import ApiError, clone

__all__ = [
    "APPLY_PATCH",
    "JSON_PATCH",
    "MERGE_PATCH",
    "STRATEGIC_MERGE_PATCH",
    "accepted_patch_types",
    "apply_patch",
    "check_patch_type",
    "json_patch",
    "merge_patch",
    "strategic_merge_patch",
]

Object = dict[str, Any]

JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"

# In the order kube-apiserver lists them in its 415 answer.
_BUILT_IN_TYPES = (JSON_PATCH, MERGE_PATCH, STRATEGIC_MERGE_PATCH, APPLY_PATCH)
_CUSTOM_TYPES = (JSON_PATCH, MERGE_PATCH, APPLY_PATCH)

_DIRECTIVE = "$patch"
_RETAIN_KEYS = "$retainKeys"
_SET_ELEMENT_ORDER = "$setElementOrder"
_DELETE_FROM_PRIMITIVE_LIST = "$deleteFromPrimitiveList"

# apimachinery's mergepatch errors, word for word.
_BAD_PRIMITIVE_LIST = "invalid patch format of primitive list"
_BAD_RETAIN_KEYS = "invalid patch format of retainKeys"
_BAD_SET_ELEMENT_ORDER = "invalid patch format of setElementOrder list"
_LISTS_OF_LISTS = "lists of lists are not supported"


# -- content types -----------------------------------------------------------


def accepted_patch_types(api_version: str, kind: str) -> tuple[str, ...]:
    """The patch media types a kind accepts: no strategic merge for custom resources."""
    node = node_for(api_version, kind)
    return _CUSTOM_TYPES if node is not None and node.custom else _BUILT_IN_TYPES


def check_patch_type(api_version: str, kind: str, content_type: str) -> None:
    """415 UnsupportedMediaType, as kube-apiserver words it, for a type the kind refuses."""
    accepted = accepted_patch_types(api_version, kind)
    if content_type not in accepted:
        raise ApiError(
            415,
            "UnsupportedMediaType",
            "the body of the request was in an unknown format - accepted media types include: "
            + ", ".join(accepted),
        )


def apply_patch(api_version: str, kind: str, content_type: str, target: Object, body: Any) -> Any:
    """The object ``target`` patched by ``body``, a patch of type ``content_type``.

    ``target`` is not modified.
    """
    check_patch_type(api_version, kind, content_type)
    if content_type == JSON_PATCH:
        return json_patch(target, body)
    if content_type == STRATEGIC_MERGE_PATCH:
        if body is None:
            return clone(target)
        if not isinstance(body, dict):
            raise ApiError.bad_request(
                f"json: cannot unmarshal {json_type(body)} into Go value of type "
                "map[string]interface {}"
            )
        return strategic_merge_patch(target, body, node_for(api_version, kind))
    if not isinstance(body, dict):
        raise ApiError.bad_request("a merge patch must be a JSON object")
    return merge_patch(target, body)


# -- RFC 6902 and RFC 7386 ---------------------------------------------------


def json_patch(target: Any, operations: Any) -> Any:
    """RFC 6902 JSON patch."""
    if not isinstance(operations, list):
        raise ApiError.bad_request("a JSON patch must be a list of operations")
    doc = clone(target)

    def split(pointer: str) -> list[str]:
        if pointer == "":
            return []
        if not pointer.startswith("/"):
            raise ApiError(422, "Invalid", f"invalid JSON pointer {pointer!r}")
        return [p.replace("~1", "/").replace("~0", "~") for p in pointer[1:].split("/")]

    def parent(parts: list[str]) -> tuple[Any, str]:
        node = doc
        for part in parts[:-1]:
            node = node[int(part)] if isinstance(node, list) else node[part]
        return node, parts[-1]

    def read(parts: list[str]) -> Any:
        node = doc
        for part in parts:
            node = node[int(part)] if isinstance(node, list) else node[part]
        return node

    for op in operations:
        try:
            kind = op["op"]
            parts = split(op["path"])
            if kind == "test":
                if read(parts) != op.get("value"):
                    raise ApiError(422, "Invalid", f"testing value at {op['path']} failed")
                continue
            if kind in ("move", "copy"):
                value = clone(read(split(op["from"])))
                if kind == "move":
                    container, key = parent(split(op["from"]))
                    if isinstance(container, list):
                        container.pop(int(key))
                    else:
                        del container[key]
                kind, op = "add", {"value": value}
            if not parts:
                doc = clone(op.get("value"))
                continue
            container, key = parent(parts)
            if kind == "add":
                if isinstance(container, list):
                    index = len(container) if key == "-" else int(key)
                    container.insert(index, clone(op["value"]))
                else:
                    container[key] = clone(op["value"])
            elif kind == "replace":
                read(parts)
                if isinstance(container, list):
                    container[int(key)] = clone(op["value"])
                else:
                    container[key] = clone(op["value"])
            elif kind == "remove":
                if isinstance(container, list):
                    container.pop(int(key))
                else:
                    del container[key]
            else:
                raise ApiError(422, "Invalid", f"unknown JSON patch operation {kind!r}")
        except (KeyError, IndexError, ValueError, TypeError):
            raise ApiError(
                422, "Invalid", f"the JSON patch operation {op!r} does not apply to the object"
            ) from None
    return doc


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


# -- strategic merge patch: errors and Go's printing -------------------------


class _PlainError(ApiError):
    """An error upstream returns as a bare Go error: 500, no reason in the Status body."""

    def __init__(self, message: str) -> None:
        super().__init__(500, "", message)

    @property
    def body(self) -> dict[str, Any]:
        """The Status body, without ``reason`` (Go omits the empty StatusReasonUnknown)."""
        body = super().body
        body.pop("reason", None)
        return body


def _go_type(value: Any) -> str:
    """The Go type a decoded JSON value has inside apimachinery (ints are int64)."""
    if isinstance(value, dict):
        return "map[string]interface {}"
    if isinstance(value, list):
        return "[]interface {}"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int64"
    if isinstance(value, float):
        return "float64"
    return "%!s(<nil>)"


def _go(value: Any) -> str:
    """A value as Go's ``%v`` prints it (maps with sorted keys, no quotes)."""
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{_go(value[k])}" for k in sorted(value)) + "]"
    if isinstance(value, list):
        return "[" + " ".join(_go(v) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "<nil>"
    return str(value)


def _go_string(value: Any) -> str:
    """A value as Go's ``%s`` prints it."""
    if isinstance(value, str):
        return value
    return f"%!s({_go_type(value)}={_go(value)})"


def _no_merge_key(element: Object, merge_key: str) -> ApiError:
    return _PlainError(f"map: {_go(element)} does not contain declared merge key: {merge_key}")


def _bad_arg_type(expected: str, actual: Any) -> ApiError:
    return _PlainError(f"expected a {expected}, but received a {_go_type(actual)}")


def _bad_patch_type(directive: Any, element: Object) -> ApiError:
    return _PlainError(f"unknown patch type: {_go_string(directive)} in map: {_go(element)}")


def _same(left: Any, right: Any) -> bool:
    """Go's ``==`` on two decoded JSON values: same type and same value."""
    return type(left) is type(right) and left == right


# -- strategic merge patch: the schema ----------------------------------------


def _field_meta(node: Node | None, key: str) -> tuple[Node | None, str, str]:
    """(schema, patch strategy, merge key) of a field, as ``LookupPatchMetadata`` finds them."""
    if node is None:
        return None, "", ""
    if node.kind == "map":
        return node.values, "", ""
    if node.kind != "struct":
        return None, "", ""
    child = node.field(key)
    if child is None:
        return None, "", ""
    strategies = [s for s in child.patch_strategy.split(",") if s]
    strategy = ""
    if len(strategies) == 1 and strategies[0] != "retainKeys":
        strategy = strategies[0]
    elif len(strategies) == 2:
        if "retainKeys" not in strategies:
            raise _PlainError(f"unexpected patch strategy: {child.patch_strategy}")
        strategy = strategies[0] if strategies[1] == "retainKeys" else strategies[1]
    return child, strategy, child.patch_merge_key


def _element_kind(*lists: list[Any]) -> str:
    """``sliceElementType``: the one kind of the lists' elements (``map`` or a scalar's)."""
    found: str | None = None
    for values in lists:
        for value in values:
            kind = _go_type(value)
            if found is None:
                if isinstance(value, list):
                    raise ApiError(422, "Invalid", _LISTS_OF_LISTS, {})
                found = kind
            elif kind != found:
                raise _PlainError(
                    "list element types are not identical: "
                    + "["
                    + " ".join(_go(v) for v in lists)
                    + "]"
                )
    if found is None:
        raise _PlainError("no elements in any of the given slices")
    return "map" if found == "map[string]interface {}" else found


# -- strategic merge patch: the merge -------------------------------------------


def strategic_merge_patch(target: Object, patch: Object, node: Node | None) -> Object:
    """``target`` patched by the strategic merge patch ``patch``; neither is modified."""
    return _merge_map(clone(target), clone(patch), node)


def _is_directive_key(key: str) -> bool:
    return (
        key in (_DIRECTIVE, _RETAIN_KEYS)
        or key.startswith(_SET_ELEMENT_ORDER)
        or key.startswith(_DELETE_FROM_PRIMITIVE_LIST)
    )


def _clean(value: Any) -> Any:
    """A patch value taken whole, as the typed decoding after the merge leaves it.

    Upstream stores a patch value as it is where the object has nothing to
    merge it into, then decodes into Go structs, which drops the directive
    keys and nulls. The sandbox keeps no typed structs, so it drops them here.
    """
    if isinstance(value, dict):
        return {
            k: _clean(v) for k, v in value.items() if v is not None and not _is_directive_key(k)
        }
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def _merge_map(original: Object, patch: Object, node: Node | None) -> Object:
    """``mergeMap``: merge ``patch`` into ``original`` (modified and returned)."""
    if _DIRECTIVE in patch:
        directive = patch[_DIRECTIVE]
        if directive == "replace":
            del patch[_DIRECTIVE]
            cleaned: Object = _clean(patch)
            return cleaned
        if directive == "delete":
            return {}
        raise _bad_patch_type(directive, patch)
    _retain_keys(original, patch)
    _set_element_order(original, patch, node)
    for patch_key, value in list(patch.items()):
        key, delete_list = patch_key, False
        if patch_key.startswith(_DELETE_FROM_PRIMITIVE_LIST):
            key, delete_list = _directive_target(patch_key, _DELETE_FROM_PRIMITIVE_LIST), True
        if value is None:
            original.pop(key, None)
            continue
        if key not in original:
            original[key] = _clean(value)
            continue
        current = original[key]
        if _go_type(current) != _go_type(value):
            original[key] = _clean(value)
            continue
        child, strategy, merge_key = _field_meta(node, key)
        if isinstance(current, dict):
            if strategy == "replace":
                original[key] = _clean(value)
            else:
                original[key] = _merge_map(current, value, child)
        elif isinstance(current, list):
            original[key] = _merge_list_field(
                current, value, child, strategy, merge_key, delete_list
            )
        else:
            original[key] = value
    return original


def _directive_target(key: str, prefix: str) -> str:
    """The list a ``$prefix/<list>`` key names; 400 when the key is malformed."""
    head, slash, rest = key.partition("/")
    if not slash or head != prefix:
        raise ApiError.bad_request(
            _BAD_PRIMITIVE_LIST if prefix == _DELETE_FROM_PRIMITIVE_LIST else _BAD_SET_ELEMENT_ORDER
        )
    return rest


def _retain_keys(original: Object, patch: Object) -> None:
    """``$retainKeys``: drop from ``original`` every field the list does not name."""
    if _RETAIN_KEYS not in patch:
        return
    retained = patch.pop(_RETAIN_KEYS)
    if not isinstance(retained, list):
        raise ApiError.bad_request(_BAD_RETAIN_KEYS)
    names = {k for k in retained if isinstance(k, str)}
    for key, value in patch.items():
        if value is None or key.startswith((_DELETE_FROM_PRIMITIVE_LIST, _SET_ELEMENT_ORDER)):
            continue
        if key not in names:
            raise ApiError.bad_request(_BAD_RETAIN_KEYS)
    for key in [k for k in original if k not in names]:
        del original[key]


def _merge_list_field(
    original: list[Any],
    patch: list[Any],
    node: Node | None,
    strategy: str,
    merge_key: str,
    delete_list: bool,
) -> list[Any]:
    """``mergeSliceHandler``: merge by strategy, or take the patch's list whole."""
    if strategy != "merge":
        return list(_clean(patch))
    return _merge_list(original, patch, node.items if node else None, merge_key, delete_list)


def _merge_list(
    original: list[Any],
    patch: list[Any],
    items: Node | None,
    merge_key: str,
    delete_list: bool,
) -> list[Any]:
    """``mergeSlice``: a merge-strategy list, by merge key or as a union of scalars."""
    if not original and not patch:
        return original
    kind = _element_kind(original, patch)
    if kind != "map":
        if delete_list:
            return [v for v in original if not any(_same(v, d) for d in patch)]
        merged: list[Any] = []
        for value in original + patch:
            if not any(_same(value, m) for m in merged):
                merged.append(value)
        in_patch, server_only = _partition_scalars(merged, patch)
        return _normalize_order(in_patch, server_only, patch, original, "")
    if not merge_key:
        item_kind = items.kind if items is not None and items.kind in ("struct", "map") else "map"
        raise _PlainError(f"cannot merge lists without merge key for type {item_kind}")
    original, plain = _special_elements(original, patch, merge_key)
    merged = list(original)
    for element in plain:
        if merge_key not in element:
            raise _no_merge_key(element, merge_key)
        index = _find(merged, merge_key, element[merge_key])
        if index is None:
            merged.append(_clean(element))
        else:
            merged[index] = _merge_map(merged[index], element, items)
    in_patch_maps, server_only_maps = _partition_maps(merged, plain, merge_key)
    return _normalize_order(in_patch_maps, server_only_maps, plain, original, merge_key)


def _special_elements(
    original: list[Any], patch: list[Any], merge_key: str
) -> tuple[list[Any], list[Any]]:
    """``mergeSliceWithSpecialElements``: apply ``$patch`` elements of a list patch.

    Returns the original list with deletions made (or the patch's list when a
    ``$patch: replace`` element replaces it) and the patch's other elements.
    """
    plain: list[Any] = []
    replace = False
    for element in patch:
        if _DIRECTIVE not in element:
            plain.append(element)
            continue
        directive = element[_DIRECTIVE]
        if directive == "delete":
            if merge_key not in element:
                raise _no_merge_key(element, merge_key)
            value = element[merge_key]
            original = [
                o
                for o in original
                if not (isinstance(o, dict) and merge_key in o and _same(o[merge_key], value))
            ]
        elif directive == "replace":
            replace = True
        elif directive == "merge":
            raise _PlainError("merging lists cannot yet be specified in the patch")
        else:
            raise _bad_patch_type(directive, element)
    if replace:
        return [_clean(e) for e in plain], []
    return original, plain


def _find(values: list[Any], merge_key: str, key_value: Any) -> int | None:
    for index, value in enumerate(values):
        if not isinstance(value, dict):
            raise _PlainError(f"value for key {index} is not a map.")
        if merge_key in value and _same(value[merge_key], key_value):
            return index
    return None


def _partition_scalars(merged: list[Any], by: list[Any]) -> tuple[list[Any], list[Any]]:
    """Split ``merged`` into the values ``by`` names and the others, keeping order."""
    inside = [v for v in merged if any(_same(v, b) for b in by)]
    outside = [v for v in merged if not any(_same(v, b) for b in by)]
    return inside, outside


def _partition_maps(
    merged: list[Any], by: list[Any], merge_key: str
) -> tuple[list[Any], list[Any]]:
    """Split ``merged`` into the elements whose merge key ``by`` names and the others."""
    inside: list[Any] = []
    outside: list[Any] = []
    for element in merged:
        if not isinstance(element, dict):
            raise _bad_arg_type("map[string]interface {}", element)
        if merge_key not in element:
            raise _no_merge_key(element, merge_key)
        found = _find(by, merge_key, element[merge_key]) is not None
        (inside if found else outside).append(element)
    return inside, outside


def _position(order: list[Any], value: Any, merge_key: str) -> int:
    """Where ``value`` stands in ``order`` (by merge key for maps); -1 when absent."""
    if merge_key:
        wanted = value.get(merge_key) if isinstance(value, dict) else None
        for index, other in enumerate(order):
            got = other.get(merge_key) if isinstance(other, dict) else None
            if _same(got, wanted):
                return index
        return -1
    for index, other in enumerate(order):
        if _same(other, value):
            return index
    return -1


def _sort_by(values: list[Any], order: list[Any], merge_key: str) -> list[Any]:
    """``normalizeSliceOrder``: ``values`` in the order ``order`` gives them."""
    if merge_key:
        for element in [*values, *order]:
            if not isinstance(element, dict):
                raise _bad_arg_type("map[string]interface {}", element)
            if merge_key not in element:
                raise _no_merge_key(element, merge_key)
    keyed = [(_position(order, v, merge_key), i, v) for i, v in enumerate(values)]
    keyed.sort(key=lambda t: (t[0] < 0, t[0], t[1]))
    return [v for _, _, v in keyed]


def _normalize_order(
    in_patch: list[Any],
    server_only: list[Any],
    patch_order: list[Any],
    server_order: list[Any],
    merge_key: str,
) -> list[Any]:
    """``normalizeElementOrder``: the patch's order first, the live order for the rest.

    Patched elements keep the patch's relative order, the others the live
    object's; an element the live list placed before a patched one stays
    before it, and a new element goes before the remaining live ones.
    """
    patched = _sort_by(in_patch, patch_order, merge_key)
    live = _sort_by(server_only, server_order, merge_key)
    result: list[Any] = []
    i = j = 0
    while i < len(live) or j < len(patched):
        if i >= len(live):
            result.append(patched[j])
            j += 1
        elif j >= len(patched):
            result.append(live[i])
            i += 1
        else:
            left = _position(server_order, live[i], merge_key)
            right = _position(server_order, patched[j], merge_key)
            if left >= 0 and right >= 0 and left < right:
                result.append(live[i])
                i += 1
            else:
                result.append(patched[j])
                j += 1
    return result


def _set_element_order(original: Object, patch: Object, node: Node | None) -> None:
    """``mergePatchIntoOriginal``: merge each list a ``$setElementOrder`` names, then order it."""
    for directive_key in [k for k in patch if k.startswith(_SET_ELEMENT_ORDER)]:
        order = patch.pop(directive_key)
        if not isinstance(order, list):
            raise _bad_arg_type("[]interface {}", order)
        key = _directive_target(directive_key, _SET_ELEMENT_ORDER)
        live = original.get(key)
        if key in original and not isinstance(live, list):
            raise _bad_arg_type("[]interface {}", live)
        patched = patch.get(key)
        if key in patch and not isinstance(patched, list):
            raise _bad_arg_type("[]interface {}", patched)
        if node is not None and node.kind == "struct" and node.field(key) is None:
            raise _PlainError(
                f"unable to find api field in struct {node.name.rpartition('.')[2]} "
                f'for the json field "{key}"'
            )
        child, strategy, merge_key = _field_meta(node, key)
        _check_order(patched or [], order, merge_key)
        if not live and not patched:
            patch.pop(key, None)
            continue
        if live and patched is None:
            merged = live
        elif not live:
            merged = list(_clean(patched))
        else:
            assert patched is not None
            merged = _merge_list_field(live, patched, child, strategy, merge_key, False)
        if merge_key:
            in_order, server_only = _partition_maps(merged, order, merge_key)
        else:
            in_order, server_only = _partition_scalars(merged, order)
        _element_kind(live or [], patched or [])
        original[key] = _normalize_order(in_order, server_only, order, live or [], merge_key)
        patch.pop(key, None)


def _key_equal(left: Any, right: Any, merge_key: str) -> bool:
    """``mergeKeyValueEqual``: two elements name the same merge key value."""
    if not merge_key:
        return _same(left, right)
    for element in (left, right):
        if not isinstance(element, dict):
            raise _bad_arg_type("map[string]interface {}", element)
        if merge_key not in element:
            raise _no_merge_key(element, merge_key)
    return _same(left[merge_key], right[merge_key])


def _check_order(patch_list: list[Any], order: list[Any], merge_key: str) -> None:
    """``validatePatchWithSetOrderList``: the patch's elements follow the order list's."""
    if not patch_list or not order:
        return
    elements = patch_list
    if merge_key:
        for element in patch_list:
            if not isinstance(element, dict):
                raise _bad_arg_type("map[string]interface {}", element)
        elements = [e for e in patch_list if e.get(_DIRECTIVE) != "delete"]
    p = o = 0
    while p < len(elements) and o < len(order):
        if isinstance(elements[p], dict) and _DIRECTIVE in elements[p]:
            p += 1
            continue
        if _key_equal(elements[p], order[o], merge_key):
            p += 1
        o += 1
    if p < len(elements) and o >= len(order):
        raise _PlainError(
            f"The order in patch list:\n{_go(patch_list)}\n doesn't match "
            f"{_SET_ELEMENT_ORDER} list:\n{_go(order)}\n"
        )
