"""The render engine: YAML Jinja templates in, wire-ready manifests out.

Every object the controller creates is a YAML template under ``templates/<set>/``.
Templates hold structure only; every value that is not a literal of the
template passes through the ``q`` filter. ``q`` does not paste the value into
the text: it records the value and writes a numbered placeholder. The text a
template renders is therefore the same for every user whose lab has the same
*shape* (same optional objects, same number of volumes), and is parsed as YAML
once per shape; each render then only fills the recorded values into the
cached JSON form of that shape and decodes it with orjson.

Two properties follow by construction, not by care:

* no user string ever reaches a YAML parser, so nothing a user sends can
  change a manifest's structure (every value is encoded and decoded as JSON);
* the YAML parse, the expensive step, leaves the per-render path (a 20 kB lab
  set takes about 10 ms with PyYAML's C loader; a fill and an orjson decode
  take a small fraction of a millisecond).

An expression that is not quoted (``{{ value }}`` without ``| q``) is an
error at render time, and so is an undefined value (``StrictUndefined``).

The few HTML pages the API serves (``templates/forms/``) come from the same
search path, so operators override them the same way, but through a second
environment that HTML-escapes every printed value (`Renderer.render_html`).
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
import jinja2.bccache
import orjson
import yaml

from ..errors import InputError
from .checks import InvalidManifestError, check_manifests

__all__ = [
    "BUILTIN_TEMPLATES",
    "InvalidManifestError",
    "Manifest",
    "RenderError",
    "Renderer",
    "quote",
]

Manifest = dict[str, Any]
"""One Kubernetes object as plain JSON-compatible data, ready to send."""

BUILTIN_TEMPLATES = next(
    (
        path
        for path in (
            Path(__file__).resolve().parent.parent / "templates",  # installed wheel
            Path(__file__).resolve().parent.parent.parent / "templates",  # source tree
        )
        if path.is_dir()
    ),
    Path(__file__).resolve().parent.parent.parent / "templates",
)
"""Folder of the built-in templates, one subfolder per object set."""

_SET_INDEX = "set.yaml"
_MARK = "\ue000"  # a private-use character: never in template text, escaped in values
_PLACEHOLDER = re.compile(f'"{_MARK}(\\d+)"')
_SHAPE_CACHE_SIZE = 512


class RenderError(InputError):
    """A template could not be rendered: a template bug or a value templates cannot hold."""


class _InvalidYAMLError(RenderError):
    """A rendered text is not YAML (a template bug)."""


class _Quoted(str):
    """Output of the ``q`` filter: the only thing a template may print."""

    __slots__ = ()


_PLACEHOLDERS = [_Quoted(f'"{_MARK}{i}"') for i in range(1024)]


_values: ContextVar[list[Any] | None] = ContextVar("nublado_render_values", default=None)


def quote(value: Any) -> _Quoted:
    """Record ``value`` for the current render and return its placeholder.

    Strings, numbers, booleans, and lists and mappings of them are accepted.
    ``None`` is refused: an absent value is a template bug (wrap the key in a
    conditional), never an empty or null field.
    """
    values = _values.get()
    if values is None:
        raise RenderError("the q filter is used outside a render")
    if isinstance(value, jinja2.Undefined):
        str(value)  # StrictUndefined raises UndefinedError naming the missing value
    if value is None:
        raise RenderError("q got no value (None): guard optional fields with {% if %}")
    values.append(value)
    index = len(values) - 1
    return _PLACEHOLDERS[index] if index < len(_PLACEHOLDERS) else _Quoted(f'"{_MARK}{index}"')


def _finalize(value: Any) -> Any:
    """Refuse any printed expression that did not go through ``q``."""
    if type(value) is _Quoted:
        return value
    raise RenderError(
        f"template prints an unquoted {type(value).__name__} value: every value must go through | q"
    )


@dataclass(frozen=True, slots=True)
class _Shape:
    """A parsed template shape: its JSON (UTF-8) split around the placeholders."""

    head: bytes
    plan: tuple[tuple[int, bytes], ...]
    """(slot, the JSON text that follows its value), in order."""
    key_slots: tuple[int, ...]

    @classmethod
    def parse(cls, template: str, text: str) -> _Shape:
        try:
            documents = [d for d in yaml.load_all(text, Loader=_Loader) if d is not None]
        except yaml.YAMLError as exc:
            reason = " ".join(str(exc).split())
            raise _InvalidYAMLError(f"template {template} renders invalid YAML: {reason}") from exc
        for document in documents:
            if not isinstance(document, dict):
                raise RenderError(f"template {template} renders a document that is not a mapping")
        json_text = orjson.dumps(documents).decode()
        pieces: list[str] = []
        slots: list[int] = []
        keys: set[int] = set()
        position = 0
        for match in _PLACEHOLDER.finditer(json_text):
            pieces.append(json_text[position : match.start()])
            slot = int(match.group(1))
            slots.append(slot)
            if json_text.startswith(":", match.end()):
                keys.add(slot)
            position = match.end()
        pieces.append(json_text[position:])
        if json_text.count(_MARK) != len(slots):
            raise RenderError(
                f"template {template} prints a q value inside a larger scalar:"
                " each | q must be a whole YAML value (compute the string in the context)"
            )
        encoded = [piece.encode() for piece in pieces]
        return cls(encoded[0], tuple(zip(slots, encoded[1:], strict=True)), tuple(sorted(keys)))

    def fill(self, template: str, values: Sequence[Any]) -> list[Manifest]:
        for slot in self.key_slots:
            if not isinstance(values[slot], str):
                raise RenderError(
                    f"template {template} uses a non-string mapping key"
                    f" of type {type(values[slot]).__name__}"
                )
        out = [self.head]
        dumps, option = orjson.dumps, orjson.OPT_NON_STR_KEYS
        try:
            for slot, piece in self.plan:
                out.append(dumps(values[slot], option=option))
                out.append(piece)
        except TypeError as exc:
            raise RenderError(f"template {template} got a value JSON cannot hold: {exc}") from exc
        documents: list[Manifest] = orjson.loads(b"".join(out))
        return documents


_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _BytecodeCache(jinja2.FileSystemBytecodeCache):
    """Jinja's compiled-template cache in the user's private temp folder, best effort.

    Compiling the lab templates costs about 60 ms, most of a dry-run render's
    budget beyond imports; Jinja keys each entry by template name and source
    checksum, so an edited or overridden template is compiled afresh. A
    folder that cannot be written only costs the compile.
    """

    def dump_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        with suppress(OSError):
            super().dump_bytecode(bucket)


def _bytecode_cache() -> jinja2.BytecodeCache | None:
    try:
        return _BytecodeCache()
    except (OSError, RuntimeError):
        return None


def _locate(starts: list[tuple[int, str]], line: int | None) -> str:
    """``file line N`` for a line of a set's joined source."""
    if line is None or not starts or line < starts[0][0]:
        return "set"
    first, name = max((start for start in starts if start[0] <= line), key=lambda s: s[0])
    return f"{name} line {line - first + 1}"


def _culprit(exc: BaseException, default: str, starts: list[tuple[int, str]] | None) -> str:
    """Where in the templates ``exc`` was raised, from Jinja's rewritten traceback."""
    line = None
    traceback = exc.__traceback__
    while traceback is not None:
        code = traceback.tb_frame.f_code
        if code.co_filename == "<template>" or code.co_filename.endswith((".yaml", ".html")):
            line = traceback.tb_lineno
            if starts is None:
                return f"{default} line {line}"
        traceback = traceback.tb_next
    return _locate(starts, line) if starts is not None and line is not None else default


class Renderer:
    """Renders object sets from the built-in templates and operator folders.

    Operator folders come first in the search path, so a file there replaces
    the built-in file of the same name (``lab/pod.yaml``) and a new file adds a
    template; a set's ``set.yaml`` lists its templates in apply order, so an
    operator adds an object to a set by overriding that list.
    """

    def __init__(self, template_dirs: Sequence[Path] = ()) -> None:
        self.search_path = [*(Path(p) for p in template_dirs), BUILTIN_TEMPLATES]
        self._env = jinja2.Environment(
            loader=jinja2.FileSystemLoader([str(p) for p in self.search_path]),
            undefined=jinja2.StrictUndefined,
            finalize=_finalize,
            autoescape=False,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=True,
            auto_reload=False,
            bytecode_cache=_bytecode_cache(),
        )
        self._env.filters["q"] = quote
        self._shapes: OrderedDict[tuple[str, str], _Shape] = OrderedDict()
        self._sets: dict[str, list[str]] = {}
        self._set_templates: dict[str, tuple[jinja2.Template, list[tuple[int, str]]]] = {}
        self._html_env: jinja2.Environment | None = None

    def templates(self, set_name: str) -> list[str]:
        """Template names of a set, in apply order, as its ``set.yaml`` lists them."""
        if set_name not in self._sets:
            index = f"{set_name}/{_SET_INDEX}"
            try:
                source, _, _ = self._env.loader.get_source(self._env, index)  # type: ignore[union-attr]
            except jinja2.TemplateNotFound as exc:
                raise RenderError(f"unknown object set {set_name!r}: no {index}") from exc
            try:
                names = yaml.safe_load(source)
            except yaml.YAMLError as exc:
                reason = " ".join(str(exc).split())
                raise RenderError(f"{index} is not valid YAML: {reason}") from exc
            if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
                raise RenderError(f"{index} must be a list of template file names")
            self._sets[set_name] = [f"{set_name}/{name}" for name in names]
        return self._sets[set_name]

    def render(self, set_name: str, context: Mapping[str, Any]) -> list[Manifest]:
        """Render every template of a set with ``context``: manifests in apply order.

        The set's files are joined into one Jinja template (each in its own
        ``{% with %}`` scope, separated by document markers), so a set costs one
        Jinja pass, one shape lookup, one fill and one decode.
        """
        compiled = self._set_templates.get(set_name)
        if compiled is None:
            compiled = self._compile_set(set_name)
            self._set_templates[set_name] = compiled
        template, starts = compiled
        try:
            return check_manifests(self._render(set_name, template, context, starts))
        except _InvalidYAMLError:
            for name in self.templates(set_name):  # find the file to blame (rare path)
                self.render_template(name, context)
            raise

    def _compile_set(self, set_name: str) -> tuple[jinja2.Template, list[tuple[int, str]]]:
        loader = self._env.loader
        assert loader is not None
        parts: list[str] = []
        starts: list[tuple[int, str]] = []  # (first line in the joined source, file)
        line = 1
        for name in self.templates(set_name):
            try:
                source = loader.get_source(self._env, name)[0]
            except jinja2.TemplateNotFound as exc:
                raise RenderError(f"template {name} not found in {self._describe_path()}") from exc
            body = source.rstrip("\n")
            starts.append((line + 1, name))
            parts.append(f"{{% with %}}\n{body}\n{{% endwith %}}\n---\n")
            line += body.count("\n") + 4
        try:
            return self._env.from_string("".join(parts)), starts
        except jinja2.TemplateSyntaxError as exc:
            where = _locate(starts, exc.lineno)
            raise RenderError(f"template {where}: {exc.message}") from exc

    def render_template(self, name: str, context: Mapping[str, Any]) -> list[Manifest]:
        """Render one template into zero or more manifests."""
        try:
            template = self._env.get_template(name)
        except jinja2.TemplateNotFound as exc:
            raise RenderError(f"template {name} not found in {self._describe_path()}") from exc
        except jinja2.TemplateSyntaxError as exc:
            raise RenderError(f"template {name} line {exc.lineno}: {exc.message}") from exc
        return check_manifests(self._render(name, template, context))

    def _compile(self, name: str, source: str) -> jinja2.Template:
        try:
            return self._env.from_string(source)
        except jinja2.TemplateSyntaxError as exc:
            raise RenderError(f"{name}: {exc.message}") from exc

    def _render(
        self,
        name: str,
        template: jinja2.Template,
        context: Mapping[str, Any],
        starts: list[tuple[int, str]] | None = None,
    ) -> list[Manifest]:
        with self._recording() as values:
            try:
                text = template.render(context)
            except jinja2.TemplateNotFound as exc:
                raise RenderError(
                    f"template {exc.name} not found in {self._describe_path()}"
                ) from exc
            except jinja2.TemplateSyntaxError as exc:
                raise RenderError(f"template {exc.name} line {exc.lineno}: {exc.message}") from exc
            except RenderError as exc:
                raise RenderError(f"template {_culprit(exc, name, starts)}: {exc}") from exc
            except jinja2.UndefinedError as exc:
                where = _culprit(exc, name, starts)
                raise RenderError(f"template {where}: {exc.message}") from exc
            except jinja2.TemplateError as exc:
                raise RenderError(f"template {_culprit(exc, name, starts)}: {exc}") from exc
        return self._shape(name, text).fill(name, values)

    def _shape(self, name: str, text: str) -> _Shape:
        key = (name, text)
        shape = self._shapes.get(key)
        if shape is None:
            shape = _Shape.parse(name, text)
            self._shapes[key] = shape
            if len(self._shapes) > _SHAPE_CACHE_SIZE:
                self._shapes.popitem(last=False)
        return shape

    @staticmethod
    @contextmanager
    def _recording() -> Iterator[list[Any]]:
        values: list[Any] = []
        token = _values.set(values)
        try:
            yield values
        finally:
            _values.reset(token)

    def render_html(self, name: str, context: Mapping[str, Any]) -> str:
        """Render an HTML page (``forms/lab-form.html``) from the same search path.

        HTML is not YAML: there is no ``q`` filter and no shape cache here.
        Instead every printed value is HTML-escaped (Jinja autoescape), so a
        display name or tag from a registry cannot add markup to the page; a
        template marks trusted markup explicitly with ``|safe``. An undefined
        value is still an error, and the file's final newline is dropped so a
        fragment ends where its markup does.
        """
        env = self._html_env
        if env is None:
            env = self._html_env = jinja2.Environment(
                loader=self._env.loader,
                undefined=jinja2.StrictUndefined,
                autoescape=True,
                trim_blocks=True,
                lstrip_blocks=True,
                keep_trailing_newline=False,
                auto_reload=False,
                # No bytecode cache: Jinja keys it by name and source only, yet
                # compiles the escaping in, and these few small pages compile
                # once per process anyway.
            )
        try:
            return env.get_template(name).render(context)
        except jinja2.TemplateNotFound as exc:
            raise RenderError(f"template {exc.name} not found in {self._describe_path()}") from exc
        except jinja2.TemplateSyntaxError as exc:
            raise RenderError(f"template {exc.name} line {exc.lineno}: {exc.message}") from exc
        except jinja2.UndefinedError as exc:
            raise RenderError(f"template {_culprit(exc, name, None)}: {exc.message}") from exc
        except jinja2.TemplateError as exc:
            raise RenderError(f"template {_culprit(exc, name, None)}: {exc}") from exc

    def _describe_path(self) -> str:
        return ", ".join(str(p) for p in self.search_path)
