"""The manifest validation harness accepts what Kubernetes accepts and names what it rejects."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubeschema import (
    KUBERNETES_VERSION,
    _draft4_schema,
    _main,
    supported_kinds,
    validate_manifest,
    validate_manifests,
)

OBJECTS = Path(__file__).resolve().parents[1] / "data" / "reference" / "expected" / "objects"
UPSTREAM_BASE_URL = "http://127.0.0.1:8080"
HTTPS_BASE_URL = "https://nublado.example.com"


def _normalise(value: Any, *, in_secret_data: bool = False) -> Any:
    """Turn an expected object of the upstream tests into something one could apply.

    Drops what only a cluster writes (status, resourceVersion, managedFields) and
    replaces the "<ANY>" placeholders with a plausible value (base64 in a Secret).
    """
    if isinstance(value, dict):
        result = {}
        for key, child in value.items():
            if key in ("status", "resourceVersion", "managedFields"):
                continue
            secret_data = in_secret_data or (key == "data" and value.get("kind") == "Secret")
            result[key] = _normalise(child, in_secret_data=secret_data)
        return result
    if isinstance(value, list):
        return [_normalise(child, in_secret_data=in_secret_data) for child in value]
    if value == "<ANY>":
        return "c29tZSB0b2tlbg==" if in_secret_data else "any"
    return value


def _reference_objects() -> list[tuple[str, dict[str, Any]]]:
    objects = []
    for path in sorted(OBJECTS.glob("*.json")):
        for obj in json.loads(path.read_text()):
            name = f"{path.stem}:{obj['kind']}/{obj['metadata']['name']}"
            objects.append((name, _normalise(obj)))
    return objects


REFERENCE_OBJECTS = _reference_objects()


def _with_https_base_url(obj: dict[str, Any]) -> dict[str, Any]:
    """Upstream's test configuration uses an http:// base URL, which the CRD forbids."""
    if obj["kind"] == "GafaelfawrIngress" and obj["config"].get("baseUrl") == UPSTREAM_BASE_URL:
        obj = copy.deepcopy(obj)
        obj["config"]["baseUrl"] = HTTPS_BASE_URL
    return obj


def _reference(kind: str, name: str | None = None) -> dict[str, Any]:
    for _, obj in REFERENCE_OBJECTS:
        if obj["kind"] == kind and (name is None or obj["metadata"]["name"] == name):
            return _with_https_base_url(copy.deepcopy(obj))
    raise LookupError(f"no {kind} {name} in the reference objects")


def _error(obj: dict[str, Any]) -> str:
    with pytest.raises(AssertionError) as caught:
        validate_manifest(obj)
    return str(caught.value)


def test_reference_objects_cover_every_kind_we_render() -> None:
    kinds = {obj["kind"] for _, obj in REFERENCE_OBJECTS}

    assert len(REFERENCE_OBJECTS) == 24
    assert {"Pod", "Job", "Secret", "ConfigMap", "GafaelfawrIngress", "NetworkPolicy"} <= kinds


@pytest.mark.parametrize(
    "obj", [obj for _, obj in REFERENCE_OBJECTS], ids=[name for name, _ in REFERENCE_OBJECTS]
)
def test_reference_object_validates(obj: dict[str, Any]) -> None:
    validate_manifest(_with_https_base_url(obj))


def test_all_reference_objects_validate_together() -> None:
    validate_manifests([_with_https_base_url(obj) for _, obj in REFERENCE_OBJECTS])


def test_upstream_http_base_url_is_rejected_by_the_crd() -> None:
    # A real API server refuses upstream's test GafaelfawrIngress: the CRD
    # requires an https:// base URL. Tests rendering one must use https.
    (obj,) = [obj for _, obj in REFERENCE_OBJECTS if obj["kind"] == "GafaelfawrIngress"]

    message = _error(obj)

    assert "GafaelfawrIngress/rachel-fs" in message
    assert "$.config.baseUrl: 'http://127.0.0.1:8080' does not match '^https://[a-z.-]+'" in message


def test_unknown_field_is_named_with_its_path() -> None:
    pod = _reference("Pod", "rachel-nb")
    pod["spec"]["containers"][0]["imagePullPolicy2"] = "Always"

    message = _error(pod)

    assert message.startswith(f"Pod/rachel-nb (v1) is invalid for Kubernetes {KUBERNETES_VERSION}:")
    assert "$.spec.containers[0]: Additional properties are not allowed" in message
    assert "'imagePullPolicy2' was unexpected" in message


def test_wrong_type_is_named_with_its_path() -> None:
    service = _reference("Service", "lab")
    service["spec"]["ports"][0]["port"] = "8888"

    message = _error(service)

    assert "$.spec.ports[0].port: '8888' is not of type 'integer'" in message


def test_quantity_of_wrong_type_explains_the_closest_alternative() -> None:
    pod = _reference("Pod", "rachel-nb")
    pod["spec"]["containers"][0]["resources"]["limits"]["memory"] = []

    message = _error(pod)

    assert "$.spec.containers[0].resources.limits.memory: [] is not valid under any" in message
    assert "closest: $.spec.containers[0].resources.limits.memory" in message


def test_missing_required_field() -> None:
    job = _reference("Job")
    del job["spec"]["template"]

    assert "$.spec: 'template' is a required property" in _error(job)


def test_gafaelfawr_ingress_with_http_base_url_fails() -> None:
    ingress = _reference("GafaelfawrIngress")
    ingress["config"]["baseUrl"] = "http://nublado.example.com"

    assert "$.config.baseUrl: 'http://nublado.example.com' does not match" in _error(ingress)


def test_gafaelfawr_ingress_with_any_and_all_scopes_fails() -> None:
    ingress = _reference("GafaelfawrIngress")
    ingress["config"]["scopes"] = {"any": ["read:files"], "all": ["write:files"]}

    message = _error(ingress)

    assert "$.config.scopes: " in message
    assert "is valid under each of" in message


def test_gafaelfawr_ingress_without_template_fails() -> None:
    ingress = _reference("GafaelfawrIngress")
    del ingress["template"]

    assert "$: 'template' is a required property" in _error(ingress)


def test_gafaelfawr_ingress_path_type_is_checked() -> None:
    ingress = _reference("GafaelfawrIngress")
    ingress["template"]["spec"]["rules"][0]["http"]["paths"][0]["pathType"] = "Regex"

    assert "$.template.spec.rules[0].http.paths[0].pathType: 'Regex' is not one of" in _error(
        ingress
    )


def test_custom_resource_metadata_is_checked_like_any_object() -> None:
    ingress = _reference("GafaelfawrIngress")
    ingress["metadata"]["label"] = {"app": "nublado"}

    message = _error(ingress)

    assert "$.metadata: Additional properties are not allowed ('label' was unexpected)" in message


def test_unknown_kind_is_an_error() -> None:
    pod = _reference("Pod", "rachel-nb")
    pod["kind"] = "Pdo"

    assert "no schema for Pdo (v1) in Kubernetes 1.32" in _error(pod)


def test_group_must_match_not_only_its_first_label() -> None:
    policy = _reference("NetworkPolicy")
    policy["apiVersion"] = "networking.example.com/v1"

    assert "no schema for NetworkPolicy (networking.example.com/v1)" in _error(policy)


def test_unknown_custom_resource_version_is_an_error() -> None:
    ingress = _reference("GafaelfawrIngress")
    ingress["apiVersion"] = "gafaelfawr.lsst.io/v1"

    assert "no schema for GafaelfawrIngress (gafaelfawr.lsst.io/v1)" in _error(ingress)


@pytest.mark.parametrize(
    ("kind", "name", "reason"),
    [
        ("Pod", "Rachel_NB", "'Rachel_NB' is not a valid DNS-1123 subdomain"),
        ("Pod", "x" * 254, "is longer than 253 characters"),
        ("Namespace", "userlabs.rachel", "'userlabs.rachel' is not a valid DNS-1123 label"),
        ("Service", "1lab", "'1lab' is not a valid DNS-1035 label"),
    ],
)
def test_invalid_object_names_fail(kind: str, name: str, reason: str) -> None:
    obj = _reference(kind)
    obj["metadata"]["name"] = name

    message = _error(obj)

    assert "$.metadata.name: '" in message
    assert reason in message


def test_missing_name_fails() -> None:
    obj = _reference("ConfigMap")
    del obj["metadata"]["name"]

    assert "ConfigMap/None (v1)" in _error(obj)


@pytest.mark.parametrize(
    ("labels", "path", "reason"),
    [
        ({"nublado.lsst.io/user": "rachel smith"}, 'labels["nublado.lsst.io/user"]', "label value"),
        ({"nublado.lsst.io/user": "r" * 64}, 'labels["nublado.lsst.io/user"]', "longer than 63"),
        ({"Nublado.io/user": "rachel"}, 'labels["Nublado.io/user"]', "key prefix"),
        ({"a/b/c": "x"}, 'labels["a/b/c"]', "key prefix"),
        ({"/user": "x"}, 'labels["/user"]', "empty prefix"),
    ],
)
def test_invalid_labels_fail(labels: dict[str, str], path: str, reason: str) -> None:
    obj = _reference("Pod", "rachel-nb")
    obj["metadata"]["labels"] = labels

    message = _error(obj)

    assert f"$.metadata.{path}: " in message
    assert reason in message


def test_invalid_annotation_key_fails() -> None:
    obj = _reference("Pod", "rachel-nb")
    obj["metadata"]["annotations"] = {"not a key": "x"}

    assert "$.metadata.annotations[\"not a key\"]: 'not a key' is not a valid key name" in _error(
        obj
    )


def test_secret_data_must_be_base64() -> None:
    secret = _reference("Secret", "rachel-nb")
    secret["data"]["token"] = "not base64!"

    assert "$.data[\"token\"]: 'not base64!' is not base64" in _error(secret)


def test_config_map_keys_must_be_file_names() -> None:
    config_map = _reference("ConfigMap", "rachel-nb-files")
    config_map["data"]["etc/passwd"] = "root:x:0:0"

    assert "$.data[\"etc/passwd\"]: 'etc/passwd' is not a valid key" in _error(config_map)


def test_not_a_mapping_fails() -> None:
    with pytest.raises(AssertionError, match="not a mapping"):
        validate_manifest(["not", "a", "manifest"])  # type: ignore[arg-type]


def test_validate_manifests_reports_every_invalid_object() -> None:
    good = _reference("Service", "lab")
    bad_pod = _reference("Pod", "rachel-nb")
    bad_pod["spec"]["bogus"] = True
    bad_secret = _reference("Secret", "rachel-nb")
    bad_secret["data"]["token"] = "???"

    with pytest.raises(AssertionError) as caught:
        validate_manifests([good, bad_pod, bad_secret])

    message = str(caught.value)
    assert "Pod/rachel-nb" in message
    assert "Secret/rachel-nb" in message
    assert "Service/lab" not in message


def test_many_errors_are_capped() -> None:
    config_map = _reference("ConfigMap", "rachel-nb-env")
    config_map["data"] = {f"bad key {index}": "x" for index in range(15)}

    message = _error(config_map)

    assert message.count("is not a valid key") == 10
    assert "... and 5 more" in message


def test_crd_openapi_extensions_become_draft4() -> None:
    schema = {
        "type": "object",
        "properties": {
            "port": {"x-kubernetes-int-or-string": True, "type": "string"},
            "note": {"type": "string", "nullable": True},
            "list": {"type": "array", "items": {"type": "integer", "nullable": True}},
        },
    }

    converted = _draft4_schema(schema)

    assert converted["properties"]["port"] == {"anyOf": [{"type": "integer"}, {"type": "string"}]}
    assert converted["properties"]["note"]["type"] == ["string", "null"]
    assert converted["properties"]["list"]["items"]["type"] == ["integer", "null"]
    assert schema["properties"]["note"] == {"type": "string", "nullable": True}


def test_vendored_crd_is_known() -> None:
    assert ("gafaelfawr.lsst.io/v1alpha1", "GafaelfawrIngress") in supported_kinds()


def test_import_loads_nothing_until_first_use() -> None:
    code = (
        "import sys; import kubeschema;"
        "print(sorted(m for m in ('jsonschema', 'kubernetes_validate', 'referencing', 'yaml')"
        " if m in sys.modules))"
    )
    tests_dir = Path(__file__).resolve().parents[1]

    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=tests_dir
    )

    assert result.stdout.strip() == "[]"


def test_command_line_reports_each_object_and_fails_on_invalid(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = _reference("Service", "lab")
    bad["spec"]["ports"][0]["port"] = "http"
    manifests = tmp_path / "set.yaml"
    manifests.write_text(yaml.safe_dump_all([_reference("Namespace"), bad]))

    status = _main([str(manifests)])

    output = capsys.readouterr().out
    assert status == 1
    assert "ok " in output
    assert "Namespace/fileservers (v1)" in output
    assert "$.spec.ports[0].port: 'http' is not of type 'integer'" in output
    assert "2 objects, 1 invalid" in output
