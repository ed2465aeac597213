"""Our render of upstream's reference inputs equals the objects upstream creates.

Normalisation is the one tests/data/reference/README.md describes. The
expected files also hold what a cluster adds (the default ServiceAccount, pod
and job status, objects made by Kubernetes or the Gafaelfawr operator); a pure
render cannot produce those, so they are dropped from the expected side here
and checked against the sandbox by the service tests instead.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from reference_cases import (
    EXPECTED,
    REFERENCE_IMAGE,
    TOKEN,
    reference_config,
    reference_discovery,
    reference_metadata,
    reference_secrets,
    reference_spec,
    reference_user,
)
from sandbox_fixtures import drop_refused_toleration_seconds

from nublado.render.cli import find_size
from nublado.render.engine import Manifest, Renderer
from nublado.render.fileserver import build_fileserver_context
from nublado.render.fsadmin import build_fsadmin_context
from nublado.render.lab import LabContextBuilder
from nublado.render.prepuller import build_prepull_context

ANY = "<ANY>"


def _sort_key(obj: Manifest) -> tuple[bool, str, str]:
    return (obj["kind"] == "GafaelfawrIngress", obj["kind"], obj["metadata"]["name"])


def _drop_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_nulls(v) for v in value]
    return value


def _normalise(objects: list[Manifest]) -> list[Manifest]:
    result = []
    for obj in objects:
        obj = _drop_nulls(obj)
        obj["metadata"].pop("resourceVersion", None)
        result.append(obj)
    return sorted(result, key=_sort_key)


def _matches(expected: Any, actual: Any, path: str = "") -> list[str]:
    """Differences between expected and actual, ``"<ANY>"`` matching anything."""
    if expected == ANY:
        return []
    if isinstance(expected, dict) and isinstance(actual, dict):
        problems = []
        for key in sorted(expected.keys() | actual.keys()):
            if key not in actual:
                problems.append(f"{path}.{key}: missing")
            elif key not in expected:
                problems.append(f"{path}.{key}: unexpected {actual[key]!r}")
            else:
                problems.extend(_matches(expected[key], actual[key], f"{path}.{key}"))
        return problems
    if isinstance(expected, list) and isinstance(actual, list):
        if len(expected) != len(actual):
            return [f"{path}: {len(actual)} items, expected {len(expected)}: {actual!r}"]
        problems = []
        for i, (e, a) in enumerate(zip(expected, actual, strict=True)):
            problems.extend(_matches(e, a, f"{path}[{i}]"))
        return problems
    return [] if expected == actual else [f"{path}: {actual!r} != expected {expected!r}"]


def _expected(name: str, *, drop: set[tuple[str, str]] = frozenset()) -> list[Manifest]:
    """Expected objects without what only a cluster adds, and with our fixes."""
    objects = json.loads((EXPECTED / "objects" / f"{name}.json").read_text())
    drop_refused_toleration_seconds(objects)  # a fixed upstream bug
    result = []
    for obj in objects:
        if (obj["kind"], obj["metadata"]["name"]) in drop:
            continue
        if obj["kind"] in ("Pod", "Job"):
            obj.pop("status", None)
        result.append(obj)
    return _normalise(result)


def _assert_same(expected: list[Manifest], actual: list[Manifest]) -> None:
    actual = _normalise(actual)
    names = [(o["kind"], o["metadata"]["name"]) for o in actual]
    assert names == [(o["kind"], o["metadata"]["name"]) for o in expected]
    problems = []
    for e, a in zip(expected, actual, strict=True):
        problems.extend(f"{a['kind']}/{a['metadata']['name']}{p}" for p in _matches(e, a))
    assert problems == []


def render_reference_lab() -> list[Manifest]:
    config = reference_config("standard")
    spec = reference_spec()
    context = LabContextBuilder(config).build(
        user=reference_user(),
        spec=spec,
        image=REFERENCE_IMAGE,
        size=find_size(config, spec),
        secrets=reference_secrets(),
        token=TOKEN,
        discovery=reference_discovery(),
    )
    return Renderer().render("lab", context)


def test_lab_matches_upstream(validate: Any) -> None:
    manifests = render_reference_lab()

    validate(manifests)
    _assert_same(_expected("lab", drop={("ServiceAccount", "default")}), manifests)
    secret = next(m for m in manifests if m["metadata"]["name"] == "rachel-nb")
    assert base64.b64decode(secret["data"]["token"]).decode() == TOKEN


def test_fileserver_matches_upstream(validate: Any) -> None:
    config = reference_config("fileserver")
    manifests = Renderer().render("fileserver", build_fileserver_context(config, reference_user()))

    # The reference runs with the default base URL http://127.0.0.1:8080, which
    # the GafaelfawrIngress CRD rejects (baseUrl must be https): validate the
    # same set as a real deployment, with an https external URL, instead.
    https = config.model_copy(update={"base_url": "https://data.example.com"})
    validate(Renderer().render("fileserver", build_fileserver_context(https, reference_user())))
    made_by_cluster = {
        ("Namespace", "fileservers"),
        ("ServiceAccount", "default"),
        ("Ingress", "rachel-fs"),
        ("Pod", "rachel-fs"),
    }
    _assert_same(_expected("fileserver", drop=made_by_cluster), manifests)


def test_fsadmin_matches_upstream(validate: Any) -> None:
    config = reference_config("fsadmin")
    manifests = Renderer().render("fsadmin", build_fsadmin_context(config, reference_metadata()))

    validate(manifests)
    _assert_same(_expected("fsadmin"), manifests)


def test_prepull_matches_upstream(validate: Any) -> None:
    config = reference_config("standard")
    context = build_prepull_context(config, reference_metadata(), REFERENCE_IMAGE, "node2")
    manifests = Renderer().render("prepuller", context)

    validate(manifests)
    _assert_same(_expected("prepull"), manifests)
