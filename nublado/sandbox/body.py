"""Request bodies read as kube-apiserver reads them: by media type, never by guessing.

kube-apiserver picks the decoder from the Content-Type (an empty one means
JSON): ``application/json`` and the ``+json`` patch types go through Go's
JSON decoder only, ``application/yaml`` through sigs.k8s.io/yaml, which
converts YAML to JSON first and so refuses what JSON cannot hold, and any
other type answers 415. The error texts are the real decoders': Go's JSON
scanner (``invalid character 'm' looking for beginning of value``), wrapped
as the create and update handlers wrap them.

No body may crash the server: orjson reads well-formed JSON quickly; what it
refuses (a lone surrogate escape, invalid UTF-8, nesting beyond its limit,
a syntax error) is read again by `_GoJson`, an iterative reader that behaves
as Go's decoder does: lone surrogates and invalid bytes become U+FFFD,
nesting is allowed to 10,000 levels, and errors carry Go's messages.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import orjson
import yaml

from .protobuf import PROTOBUF_KINDS
from .store import ApiError

__all__ = [
    "BODY_MEDIA_TYPES",
    "JsonSyntaxError",
    "decode_apply_body",
    "decode_apply_config",
    "decode_json",
    "decode_object_body",
    "decode_patch_body",
    "decode_yaml",
    "json_type",
    "media_type",
]

# What a create or update accepts, in the order kube-apiserver lists them.
BODY_MEDIA_TYPES = ("application/json", "application/yaml", "application/vnd.kubernetes.protobuf")
# Go's encoding/json nesting limit (maxNestingDepth).
MAX_DEPTH = 10_000

Object = dict[str, Any]


class JsonSyntaxError(ValueError):
    """A body Go's JSON decoder refuses; the text is Go's."""


class _YamlError(ValueError):
    """A YAML body sigs.k8s.io/yaml refuses; the text is its."""


def media_type(content_type: str | None) -> str:
    """The media type of a Content-Type header, lowercased, without parameters."""
    return (content_type or "").split(";", 1)[0].strip().lower()


# -- JSON ----------------------------------------------------------------------

_SURROGATE = re.compile("[\ud800-\udfff]")
_NUMBER = re.compile(rb"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?")
_WHITESPACE = b" \t\r\n"
_LITERALS = {b"t": (b"true", True), b"f": (b"false", False), b"n": (b"null", None)}


def decode_json(raw: bytes) -> Any:
    """A JSON body as Go decodes it into interface{}; `JsonSyntaxError` if it does not parse."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return _GoJson(raw).parse()


def _quote_char(byte: int) -> str:
    """Go's quoteChar: the offending byte as a quoted rune (``'m'``, ``'\\n'``)."""
    if byte == 0x27:
        return "'\\''"
    if byte == 0x22:
        return "'\"'"
    char = chr(byte)
    escapes = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
    if char in escapes:
        return f"'{escapes[char]}'"
    if char == "\v":
        return "'\\v'"
    if byte < 0x20 or byte == 0x7F or 0x80 <= byte < 0xA0:
        return f"'\\x{byte:02x}'"
    if byte == 0xAD:
        return "'\\u00ad'"
    return f"'{char}'"


class _GoJson:
    """An iterative JSON reader with Go's rules and messages (the slow path)."""

    def __init__(self, raw: bytes) -> None:
        self.raw = raw
        self.pos = 0

    def _error(self, message: str) -> JsonSyntaxError:
        return JsonSyntaxError(message)

    def _invalid(self, context: str) -> JsonSyntaxError:
        if self.pos >= len(self.raw):
            return self._error("unexpected end of JSON input")
        return self._error(f"invalid character {_quote_char(self.raw[self.pos])} {context}")

    def _skip_space(self) -> None:
        raw = self.raw
        while self.pos < len(raw) and raw[self.pos] in _WHITESPACE:
            self.pos += 1

    def parse(self) -> Any:
        # Containers under construction: (container, pending key of an object).
        stack: list[tuple[Any, str | None]] = []
        raw = self.raw
        value: Any = None
        while True:
            # Read one value (a scalar, or the opening of a container).
            self._skip_space()
            if self.pos >= len(raw):
                raise self._error("unexpected end of JSON input")
            byte = raw[self.pos : self.pos + 1]
            complete = True
            if byte == b"{" or byte == b"[":
                if len(stack) >= MAX_DEPTH:
                    raise self._error("exceeded max depth")
                self.pos += 1
                self._skip_space()
                closing = b"}" if byte == b"{" else b"]"
                if raw[self.pos : self.pos + 1] == closing:
                    self.pos += 1
                    value = {} if byte == b"{" else []
                else:
                    container: Any = {} if byte == b"{" else []
                    key = self._key() if byte == b"{" else None
                    stack.append((container, key))
                    complete = False
            else:
                value = self._scalar()
            if not complete:
                continue
            # Place the value, closing every container it completes.
            while True:
                if not stack:
                    self._skip_space()
                    if self.pos < len(raw):
                        raise self._invalid("after top-level value")
                    return value
                container, key = stack[-1]
                self._skip_space()
                if key is not None:
                    container[key] = value
                    context, closing = "after object key:value pair", b"}"
                else:
                    container.append(value)
                    context, closing = "after array element", b"]"
                following = raw[self.pos : self.pos + 1]
                if following == b",":
                    self.pos += 1
                    if key is not None:
                        stack[-1] = (container, self._key())
                    break
                if following != closing:
                    raise self._invalid(context)
                self.pos += 1
                stack.pop()
                value = container

    def _key(self) -> str:
        """An object key and its colon."""
        self._skip_space()
        if self.raw[self.pos : self.pos + 1] != b'"':
            raise self._invalid("looking for beginning of object key string")
        key = self._string()
        self._skip_space()
        if self.raw[self.pos : self.pos + 1] != b":":
            raise self._invalid("after object key")
        self.pos += 1
        return key

    def _scalar(self) -> Any:
        raw = self.raw
        byte = raw[self.pos : self.pos + 1]
        if byte == b'"':
            return self._string()
        if byte in _LITERALS:
            word, result = _LITERALS[byte]
            for index in range(1, len(word)):
                self.pos += 1
                if self.pos >= len(raw):
                    raise self._error("unexpected end of JSON input")
                if raw[self.pos] != word[index]:
                    expected = chr(word[index])
                    raise self._invalid(f"in literal {word.decode()} (expecting '{expected}')")
            self.pos += 1
            return result
        if byte == b"-" or byte.isdigit():
            return self._number()
        raise self._invalid("looking for beginning of value")

    def _number(self) -> Any:
        raw = self.raw
        match = _NUMBER.match(raw, self.pos)
        if match is None or match.end() == self.pos + (raw[self.pos] == 0x2D):
            # A minus sign without digits.
            self.pos += 1
            raise self._invalid("in numeric literal")
        end = match.end()
        text = match.group()
        # "1." or "1e": Go stops inside the number and names the byte it met.
        if end < len(raw) and raw[end] in b".eE":
            if raw[end] == 0x2E:
                self.pos = end + 1
                raise self._invalid("after decimal point in numeric literal")
            self.pos = end + 1 + (raw[end + 1 : end + 2] in (b"+", b"-"))
            raise self._invalid("in exponent of numeric literal")
        self.pos = end
        if b"." in text or b"e" in text or b"E" in text:
            number = float(text)
            return number if math.isfinite(number) else float(text)
        return int(text)

    def _string(self) -> str:
        """A string starting at the quote: escapes checked as Go's scanner does."""
        raw = self.raw
        start = self.pos
        position = start + 1
        simple = True
        while True:
            if position >= len(raw):
                raise self._error("unexpected end of JSON input")
            byte = raw[position]
            if byte == 0x22:
                break
            if byte < 0x20:
                self.pos = position
                raise self._invalid("in string literal")
            if byte >= 0x80:
                simple = False
            if byte == 0x5C:
                simple = False
                position += 1
                if position >= len(raw):
                    raise self._error("unexpected end of JSON input")
                escape = raw[position]
                if escape == 0x75:
                    for offset in range(1, 5):
                        if position + offset >= len(raw):
                            raise self._error("unexpected end of JSON input")
                        if raw[position + offset] not in b"0123456789abcdefABCDEF":
                            self.pos = position + offset
                            raise self._invalid("in \\u hexadecimal character escape")
                    position += 4
                elif escape not in b'"\\/bfnrt':
                    self.pos = position
                    raise self._invalid("in string escape code")
            position += 1
        self.pos = position + 1
        text = raw[start : position + 1]
        if simple:
            return text[1:-1].decode()
        # Go replaces invalid UTF-8 and lone surrogate escapes with U+FFFD.
        decoded: str = json.loads(text.decode("utf-8", "replace"))
        return _SURROGATE.sub("\ufffd", decoded)


# -- YAML ----------------------------------------------------------------------


class _JsonCompatibleLoader(yaml.SafeLoader):
    """PyYAML's safe loader, producing only what sigs.k8s.io/yaml's YAML-to-JSON step does.

    go-yaml v2 decodes ``!!binary`` to the decoded bytes as a string and keeps
    a timestamp as its text; map keys become strings (``1`` is ``"1"``); a
    null key or a float that JSON cannot write is an error.
    """


def _binary(loader: yaml.SafeLoader, node: yaml.Node) -> str:
    data = yaml.SafeLoader.construct_yaml_binary(loader, node)  # type: ignore[arg-type]
    return bytes(data).decode("utf-8", "replace")


def _timestamp(loader: yaml.SafeLoader, node: yaml.Node) -> str:
    return str(loader.construct_scalar(node))  # type: ignore[arg-type]


def _mapping(loader: yaml.SafeLoader, node: yaml.Node) -> dict[str, Any]:
    loader.flatten_mapping(node)  # type: ignore[arg-type]
    result: dict[str, Any] = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        result[_json_key(key)] = loader.construct_object(value_node, deep=True)
    return result


def _json_key(key: Any) -> str:
    if isinstance(key, str):
        return key
    if isinstance(key, bool):
        return "true" if key else "false"
    if isinstance(key, int):
        return str(key)
    if isinstance(key, float):
        return _go_float(key)
    raise _YamlError(
        f"error converting YAML to JSON: unsupported map key of type: {_go_type_name(key)}"
    )


def _go_float(value: float) -> str:
    """strconv.FormatFloat(f, 'g', -1, 64) for the usual cases."""
    text = repr(value)
    return text[:-2] if text.endswith(".0") else text


def _string(loader: yaml.SafeLoader, node: yaml.Node) -> str:
    # A lone surrogate escape becomes U+FFFD, as Go writes it to JSON.
    return _SURROGATE.sub("\ufffd", str(loader.construct_scalar(node)))  # type: ignore[arg-type]


def _float(loader: yaml.SafeLoader, node: yaml.Node) -> float:
    value = float(yaml.SafeLoader.construct_yaml_float(loader, node))  # type: ignore[arg-type]
    if not math.isfinite(value):
        shown = "NaN" if math.isnan(value) else ("+Inf" if value > 0 else "-Inf")
        raise _YamlError(f"error converting YAML to JSON: json: unsupported value: {shown}")
    return value


def _go_type_name(value: Any) -> str:
    return "%!s(<nil>)" if value is None else type(value).__name__


_JsonCompatibleLoader.add_constructor("tag:yaml.org,2002:binary", _binary)
_JsonCompatibleLoader.add_constructor("tag:yaml.org,2002:timestamp", _timestamp)
_JsonCompatibleLoader.add_constructor("tag:yaml.org,2002:map", _mapping)
_JsonCompatibleLoader.add_constructor("tag:yaml.org,2002:str", _string)
_JsonCompatibleLoader.add_constructor("tag:yaml.org,2002:float", _float)


def decode_yaml(raw: bytes) -> Any:
    """A YAML body as sigs.k8s.io/yaml turns it into JSON; `_YamlError` if it cannot."""
    try:
        value = yaml.load(raw, Loader=_JsonCompatibleLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = f"line {mark.line + 1}: " if mark is not None else ""
        raise _YamlError(
            f"error converting YAML to JSON: yaml: {line}{exc.problem or exc.context}"
        ) from None
    except yaml.YAMLError as exc:
        raise _YamlError(f"error converting YAML to JSON: yaml: {exc}") from None
    except RecursionError:
        raise _YamlError("error converting YAML to JSON: yaml: exceeded max depth") from None
    return value


# -- bodies of the handlers ----------------------------------------------------


def _summary(raw: bytes) -> str:
    """apiserver's summarizeData(body, 30): the start of the body, as text or hex."""
    if not raw:
        return "<empty>"
    if raw[:1] == b"{":
        return raw[:30].decode("utf-8", "replace") + (" ..." if len(raw) > 30 else "")
    return raw[:30].hex() + (" ..." if len(raw) > 30 else "")


_FIND_KIND = (
    'struct { APIVersion string "json:\\"apiVersion,omitempty\\""; '
    'Kind string "json:\\"kind,omitempty\\"" }'
)


def json_type(value: Any) -> str:
    """How Go's decoder names a JSON value in an UnmarshalTypeError."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, str):
        return "string"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    return "number"


def decode_object_body(raw: bytes, content_type: str | None, kind: str) -> Object:
    """A create or update body (JSON or YAML) as an object, or the real 400 or 415."""
    media = media_type(content_type) or "application/json"
    unrecognized = f"the object provided is unrecognized (must be of type {kind})"
    if media == "application/json":
        try:
            body = decode_json(raw)
        except JsonSyntaxError as exc:
            raise ApiError.bad_request(
                f"{unrecognized}: couldn't get version/kind; json parse error: {exc} "
                f"({_summary(raw)})"
            ) from None
    elif media == "application/yaml":
        try:
            body = decode_yaml(raw)
        except _YamlError as exc:
            raise ApiError.bad_request(f"{unrecognized}: {exc} ({_summary(raw)})") from None
    else:
        # What the sandbox accepts for this kind: protobuf only where it reads it.
        readable = BODY_MEDIA_TYPES if kind in PROTOBUF_KINDS else BODY_MEDIA_TYPES[:2]
        raise unsupported_media_type(readable)
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise ApiError.bad_request(
            f"{unrecognized}: couldn't get version/kind; json parse error: json: cannot "
            f"unmarshal {json_type(body)} into Go value of type {_FIND_KIND} "
            f"({_summary(raw)})"
        )
    return body


def decode_patch_body(raw: bytes, content_type: str, field_validation: str) -> Any:
    """A JSON, merge or strategic merge patch body: JSON only, errors as the patch handler's."""
    try:
        return decode_json(raw)
    except JsonSyntaxError as exc:
        if content_type == "application/strategic-merge-patch+json":
            raise ApiError.bad_request(str(exc)) from None
        if field_validation in ("Strict", "Warn"):
            raise ApiError.bad_request(f"error decoding patch: {exc}") from None
        if content_type == "application/merge-patch+json":
            raise ApiError.bad_request("Invalid JSON Patch") from None
        raise ApiError.bad_request(str(exc)) from None


def decode_apply_config(raw: bytes) -> tuple[Object, bool]:
    """`decode_apply_body`, and whether the object is orjson's parse of plain JSON.

    Such an object shares no part with another (YAML anchors can) and holds
    nothing a JSON copy would change (YAML's ``.nan``), so the caller may
    keep it as it is instead of copying it.
    """
    if raw.lstrip()[:1] == b"{":
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass
        else:
            if isinstance(body, dict):
                return body, True
    return decode_apply_body(raw), False


def decode_apply_body(raw: bytes) -> Object:
    """An apply configuration (YAML, or JSON, which YAML reads too)."""
    try:
        body = decode_json(raw) if raw.lstrip()[:1] == b"{" else decode_yaml(raw)
    except JsonSyntaxError:
        body = None
        try:
            body = decode_yaml(raw)
        except _YamlError as exc:
            raise ApiError.bad_request(f"error decoding YAML: {exc}") from None
    except _YamlError as exc:
        raise ApiError.bad_request(f"error decoding YAML: {exc}") from None
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise ApiError.bad_request(
            "error decoding YAML: error unmarshaling JSON: while decoding JSON: json: cannot "
            f"unmarshal {json_type(body)} into Go value of type map[string]interface {{}}"
        )
    return body


def unsupported_media_type(accepted: tuple[str, ...]) -> ApiError:
    """415 UnsupportedMediaType, as kube-apiserver words it."""
    return ApiError(
        415,
        "UnsupportedMediaType",
        "the body of the request was in an unknown format - accepted media types include: "
        + ", ".join(accepted),
    )
