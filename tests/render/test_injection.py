"""Nothing a user or a request sends can change a manifest's structure.

Hostile strings go through every field a user or request controls; the
rendered set must have exactly the objects and keys of a benign render, and
each string must come out verbatim where it belongs. CI runs these with
HYPOTHESIS_PROFILE=ci (2,000 examples per field).
"""

from __future__ import annotations

import base64
import json
import re
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from reference_cases import (
    REFERENCE_IMAGE,
    TOKEN,
    reference_config,
    reference_discovery,
    reference_secrets,
    reference_spec,
    reference_user,
)

from nublado.config._base import check_image_reference
from nublado.models.image import ResolvedImage
from nublado.models.lab import LabSpecification
from nublado.models.user import UserInfo
from nublado.render.cli import find_size
from nublado.render.engine import InvalidManifestError, Manifest, Renderer
from nublado.render.lab import LabContextBuilder, SourceSecret

CONFIG = reference_config("standard")
BUILDER = LabContextBuilder(CONFIG)
RENDERER = Renderer()
SPEC = reference_spec()
SIZE = find_size(CONFIG, SPEC)
USER = reference_user()
SECRETS = reference_secrets()
DISCOVERY = reference_discovery()

HOSTILE = [
    ": ",
    "- ",
    "---",
    "...",
    "{{ lab }}",
    "{% raw %}",
    "{#",
    "a: b\nc: d",
    "\n- name: injected\n",
    '"',
    "'",
    "\\",
    "\\u0000",
    "#",
    "&a *a",
    "!!python/object:os.system",
    "[1, 2]",
    "{a: 1}",
    "null",
    "true",
    "1e3",
    "0o17",
    "\ue0001",
    '"\ue0000"',
    "\u2028\u2029\x85",
    "\t\r\x0b\x0c\x1b\x7f",
    "💥 ünïcødé",
    " ",
    "",
]

hostile_text = st.one_of(
    st.sampled_from(HOSTILE),
    st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=60),
    st.builds(lambda s, n: (s * n)[:10_000], st.sampled_from(HOSTILE[:12]), st.just(10_000)),
)


def render(
    *,
    user: UserInfo | None = None,
    spec: LabSpecification | None = None,
    image: ResolvedImage = REFERENCE_IMAGE,
    secrets: dict[str, SourceSecret] | None = None,
    token: str = TOKEN,
) -> list[Manifest]:
    context = BUILDER.build(
        user=user or USER,
        spec=spec or SPEC,
        image=image,
        size=SIZE,
        secrets=secrets or SECRETS,
        token=token,
        discovery=DISCOVERY,
    )
    return RENDERER.render("lab", context)


_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"(:?)')


def shape(manifests: list[Manifest]) -> str:
    """The structure of a set: its JSON with every string value blanked.

    Keys, nesting, list lengths, numbers and booleans stay, so two sets have
    the same shape exactly when they have the same objects and keys.
    """
    text = orjson.dumps(manifests).decode()
    return _JSON_STRING.sub(lambda m: m.group(0) if m.group(1) else '""', text)


BASELINE = shape(render())


def by_name(manifests: list[Manifest], kind: str, name: str) -> Manifest:
    return next(m for m in manifests if m["kind"] == kind and m["metadata"]["name"] == name)


def notebook(manifests: list[Manifest]) -> dict[str, Any]:
    container: dict[str, Any] = by_name(manifests, "Pod", "rachel-nb")["spec"]["containers"][0]
    return container


BASE_PASSWD = CONFIG.lab.nss.base_passwd
BASE_GROUP = CONFIG.lab.nss.base_group
UNSAFE_IN_NSS = re.compile(r"[:\x00-\x1f\x7f-\x9f\u2028\u2029]")
GROUP_NAME = re.compile(r"([a-zA-Z]|[a-zA-Z0-9][a-zA-Z0-9._-]*[a-zA-Z])[a-zA-Z0-9._-]*")


@given(hostile_text)
def test_display_name(name: str) -> None:
    manifests = render(user=reference_user(name=name))

    assert shape(manifests) == BASELINE
    pod = by_name(manifests, "Pod", "rachel-nb")
    assert pod["metadata"]["annotations"]["nublado.lsst.io/user-name"] == name
    passwd = by_name(manifests, "ConfigMap", "rachel-nb-nss")["data"]["passwd"]
    # The name cannot add a passwd entry or a field: exactly one line, seven fields.
    assert passwd.startswith(BASE_PASSWD)
    line = passwd[len(BASE_PASSWD) :]
    assert line.endswith("\n")
    assert line.count("\n") == 1
    fields = line[:-1].split(":")
    assert fields[:4] == ["rachel", "x", "1101", "1101"]
    assert fields[5:] == ["/home/rachel", "/bin/bash"]
    if not UNSAFE_IN_NSS.search(name):
        assert fields[4] == name


@given(st.lists(hostile_text, min_size=1, max_size=5))
def test_group_names(names: list[str]) -> None:
    groups = [{"name": n, "id": 3000 + i} for i, n in enumerate(names)]
    manifests = render(user=reference_user(groups=groups))

    pod = by_name(manifests, "Pod", "rachel-nb")
    assert json.loads(pod["metadata"]["annotations"]["nublado.lsst.io/user-groups"]) == groups
    assert pod["spec"]["securityContext"]["supplementalGroups"] == [g["id"] for g in groups]
    # Only names a group file can hold get a line, so none can add an entry.
    group_file = by_name(manifests, "ConfigMap", "rachel-nb-nss")["data"]["group"]
    expected = "".join(
        f"{n}:x:{3000 + i}:rachel\n" for i, n in enumerate(names) if GROUP_NAME.fullmatch(n)
    )
    assert group_file == BASE_GROUP + expected
    benign = [{"name": f"g{i}", "id": g["id"]} for i, g in enumerate(groups)]
    assert shape(manifests) == shape(render(user=reference_user(groups=benign)))


@given(hostile_text, hostile_text)
def test_spawner_env_values(prefix: str, other: str) -> None:
    env = {"JUPYTERHUB_SERVICE_PREFIX": prefix, "JUPYTERHUB_API_URL": other}
    spec = LabSpecification.model_validate({"options": SPEC.options.model_dump(), "env": env})
    manifests = render(spec=spec)

    data = by_name(manifests, "ConfigMap", "rachel-nb-env")["data"]
    assert data["JUPYTERHUB_SERVICE_PREFIX"] == prefix
    assert data["JUPYTERHUB_API_URL"] == other
    expected = shape(render(spec=spec.model_copy(update={"env": {k: "x" for k in env}})))
    assert shape(manifests) == expected


@given(hostile_text, hostile_text, hostile_text, hostile_text, hostile_text)
def test_image_reference_parts(
    registry: str, repository: str, tag: str, digest: str, display: str
) -> None:
    image = ResolvedImage(registry, repository, tag, digest, display)
    reference = f"{registry}/{repository}:{tag}@{digest}"
    try:
        check_image_reference(reference)
    except ValueError:
        # Docker would refuse it: so does the renderer, naming the field, before any apply.
        with pytest.raises(InvalidManifestError, match=r"spec\.containers\[0\]\.image: "):
            render(image=image)
        return
    manifests = render(image=image)

    assert shape(manifests) == BASELINE
    assert notebook(manifests)["image"] == reference
    env = by_name(manifests, "ConfigMap", "rachel-nb-env")["data"]
    assert (env["JUPYTER_IMAGE_SPEC"], env["IMAGE_DIGEST"]) == (reference, digest)
    assert env["IMAGE_DESCRIPTION"] == display


@given(hostile_text, hostile_text)
def test_secret_values(butler: str, pull: str) -> None:
    secrets = dict(SECRETS)
    secrets["nublado-secret"] = SourceSecret(data={"butler-secret": butler})
    secrets["pull-secret"] = SourceSecret(
        data={".dockerconfigjson": pull}, type="kubernetes.io/dockerconfigjson"
    )
    manifests = render(secrets=secrets)

    assert shape(manifests) == BASELINE
    assert by_name(manifests, "Secret", "rachel-nb")["data"]["butler-secret"] == butler
    assert by_name(manifests, "Secret", "pull-secret")["data"][".dockerconfigjson"] == pull


@given(hostile_text)
def test_token(token: str) -> None:
    manifests = render(token=token)

    assert shape(manifests) == BASELINE
    encoded = by_name(manifests, "Secret", "rachel-nb")["data"]["token"]
    assert base64.b64decode(encoded).decode() == token
