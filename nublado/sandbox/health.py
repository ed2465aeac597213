"""``/healthz``, ``/readyz`` and ``/livez``: the API server's health checks.

Each answers ``ok`` (text/plain) and, with ``?verbose``, lists its checks as
kube-apiserver does (``[+]ping ok`` ... ``healthz check passed``); one check
is served alone at ``/readyz/ping`` and the like. The sandbox is healthy
whenever it answers, so every check passes.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

__all__ = ["CHECKS", "health"]

_HOOKS = [
    "start-apiserver-admission-initializer",
    "generic-apiserver-start-informers",
    "start-apiextensions-informers",
    "start-apiextensions-controllers",
    "crd-informer-synced",
    "bootstrap-controller",
    "scheduling/bootstrap-system-priority-classes",
    "start-cluster-authentication-info-controller",
    "aggregator-reload-proxy-client-cert",
]
_COMMON = ["ping", "log", "etcd"]

# Endpoint -> its checks, in the order kube-apiserver lists them.
CHECKS = {
    "healthz": [*_COMMON, *(f"poststarthook/{h}" for h in _HOOKS)],
    "livez": [*_COMMON, *(f"poststarthook/{h}" for h in _HOOKS)],
    "readyz": [
        *_COMMON,
        "etcd-readiness",
        "informer-sync",
        *(f"poststarthook/{h}" for h in _HOOKS),
        "shutdown",
    ],
}


def _text(body: str, status: int = 200) -> Response:
    return PlainTextResponse(
        body, status_code=status, headers={"X-Content-Type-Options": "nosniff"}
    )


async def health(request: Request) -> Response:
    """Serve ``/<endpoint>`` and ``/<endpoint>/<check>``."""
    endpoint = request.url.path.strip("/").split("/", 1)[0]
    check = request.path_params.get("check", "")
    checks = CHECKS[endpoint]
    if check:
        if check not in checks:
            return _text("404 page not found\n", 404)
        return _text("ok")
    if "verbose" in request.query_params:
        lines = [f"[+]{name} ok" for name in checks]
        return _text("\n".join([*lines, f"{endpoint} check passed", ""]))
    return _text("ok")
