"""Reading a request's headers and JSON body into pydantic models, failing as FastAPI does.

Upstream declared its inputs as FastAPI parameters; clients see the order
FastAPI checks them in (api.md 1.4, 2.3):

1. A body that is not JSON at all fails first and alone (``json_invalid``).
2. Headers are checked next; an authentication step runs only when its
   headers are present, and may fail (401/403) before the body is looked at.
3. The body is validated against its model.
4. Every missing header and body error is reported together in one 422.

`RequestInput` follows that order: read it (step 1), ask for headers, run
authentication if they are there, ask for the body, then `check`.
"""

from __future__ import annotations

import json
from email.message import Message
from typing import Any, TypeVar

import pydantic
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request

from .errors import RequestValidationError, missing_error, validation_error_items

__all__ = ["RequestInput", "parse_body"]

M = TypeVar("M", bound=pydantic.BaseModel)

_NO_BODY: Any = object()


def _is_json(content_type: str | None) -> bool:
    """Whether FastAPI would parse a body of this content type as JSON (absent counts)."""
    if not content_type:
        return True
    message = Message()
    message["content-type"] = content_type
    if message.get_content_maintype() != "application":
        return False
    subtype = message.get_content_subtype()
    return subtype == "json" or subtype.endswith("+json")


class RequestInput:
    """One request's inputs and the validation errors found so far, in FastAPI's order."""

    def __init__(self, request: Request, body: Any = _NO_BODY) -> None:
        self._request = request
        self._body = body
        self.errors: list[dict[str, Any]] = []

    @classmethod
    async def read(cls, request: Request) -> RequestInput:
        """Read the body; a body declared JSON that does not parse fails now, with 422.

        An empty body, or JSON ``null``, counts as absent. A body of another
        content type is kept as bytes, so its model validation fails (as with
        FastAPI). A body that is not UTF-8, or nested too deep to parse, is
        FastAPI's 400 ``There was an error parsing the body``.
        """
        try:
            raw = await request.body()
        except ClientDisconnect as exc:  # gone mid-body: a client error, as FastAPI answers
            raise HTTPException(400, "There was an error parsing the body") from exc
        if not raw:
            return cls(request)
        if not _is_json(request.headers.get("content-type")):
            return cls(request, raw)
        try:
            body = json.loads(raw)
        except json.JSONDecodeError as exc:
            error = {
                "type": "json_invalid",
                "loc": ["body", exc.pos],
                "msg": "JSON decode error",
                "input": {},
                "ctx": {"error": exc.msg},
            }
            raise RequestValidationError([error]) from exc
        except (ValueError, RecursionError) as exc:  # undecodable bytes, absurd nesting
            raise HTTPException(400, "There was an error parsing the body") from exc
        # FastAPI treats a JSON null like no body at all.
        return cls(request) if body is None else cls(request, body)

    def header(self, name: str) -> str | None:
        """A required header's value, or None after recording it as missing."""
        key = name.lower()
        value = self._request.headers.get(key)
        if value is None:
            self.errors.append(missing_error(("header", key)))
        return value

    def body(self, model: type[M]) -> M | None:
        """The body as ``model``, or None after recording why it is not one."""
        if self._body is _NO_BODY:
            self.errors.append(missing_error(("body",)))
            return None
        try:
            # FastAPI validates with from_attributes, which names the error
            # for a body that is not an object ``model_attributes_type``.
            return model.model_validate(self._body, from_attributes=True)
        except pydantic.ValidationError as exc:
            self.errors.extend(validation_error_items(exc, ("body",)))
            return None

    def check(self) -> None:
        """Raise every recorded error at once (422); nothing when all inputs were valid."""
        if self.errors:
            raise RequestValidationError(self.errors)


async def parse_body(request: Request, model: type[M]) -> M:
    """The request's JSON body as ``model``, or the 422 FastAPI would answer."""
    data = await RequestInput.read(request)
    body = data.body(model)
    data.check()
    assert body is not None
    return body
