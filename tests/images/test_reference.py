"""Docker references split as upstream does, and bad ones are input errors with a clear message."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nublado.errors import InputError
from nublado.images.reference import DockerReference, InvalidDockerReferenceError

DIGEST = "sha256:" + "5" * 64


@pytest.mark.parametrize(
    ("reference", "registry", "repository", "tag", "digest"),
    [
        (
            f"lighthouse.ceres/library/sketchbook:recommended@{DIGEST}",
            "lighthouse.ceres",
            "library/sketchbook",
            "recommended",
            DIGEST,
        ),
        (
            "docker.io/lsstsqre/sciplat-lab:w_2077_43",
            "docker.io",
            "lsstsqre/sciplat-lab",
            "w_2077_43",
            None,
        ),
        (
            f"docker.io/lsstsqre/sciplat-lab@{DIGEST}",
            "docker.io",
            "lsstsqre/sciplat-lab",
            None,
            DIGEST,
        ),
        ("localhost:5000/sketchbook", "localhost:5000", "sketchbook", None, None),
        # The first segment is always the registry, even when it looks like a Hub namespace.
        ("library/foo:latest", "library", "foo", "latest", None),
        ("a/b:c:d", "a", "b", "c:d", None),
    ],
)
def test_reference_splits_into_parts(
    reference: str, registry: str, repository: str, tag: str | None, digest: str | None
) -> None:
    parsed = DockerReference.from_str(reference)

    assert (parsed.registry, parsed.repository, parsed.tag, parsed.digest) == (
        registry,
        repository,
        tag,
        digest,
    )
    assert str(parsed) == reference


def test_reference_with_and_without_digest() -> None:
    parsed = DockerReference.from_str(f"lighthouse.ceres/library/sketchbook:w_2077_43@{DIGEST}")

    assert parsed.image == "lighthouse.ceres/library/sketchbook"
    assert parsed.reference_without_digest == "lighthouse.ceres/library/sketchbook:w_2077_43"
    assert parsed.reference_with_digest == f"{parsed.reference_without_digest}@{DIGEST}"


def test_reference_without_tag_or_digest_is_just_the_image() -> None:
    parsed = DockerReference.from_str("docker.io/lsstsqre/sciplat-lab")

    assert parsed.reference_without_digest == parsed.reference_with_digest == parsed.image


@pytest.mark.parametrize(
    "reference",
    [
        "",
        "sketchbook",
        "sketchbook:latest",
        "/repo",
        "registry/",
        "a/b:",
        "a/b@",
        "a/b:@x",
        "a/b\n",
    ],
)
def test_unparsable_reference_is_input_error(reference: str) -> None:
    with pytest.raises(InvalidDockerReferenceError) as caught:
        DockerReference.from_str(reference)

    assert isinstance(caught.value, InputError)
    assert caught.value.reference == reference
    assert caught.value.error == "invalid_docker_reference"
    assert str(caught.value).startswith("Invalid Docker reference")
    assert "\n" not in str(caught.value)


def test_error_message_quotes_the_reference() -> None:
    with pytest.raises(InvalidDockerReferenceError, match='"sketchbook:latest"'):
        DockerReference.from_str("sketchbook:latest")


_PART = st.text(st.characters(codec="ascii", categories=["L", "N"]), min_size=1, max_size=12)


# Four independent parts of a simple alphabet: a few hundred examples cover it, even in CI.
@settings(max_examples=300)
@given(
    _PART,
    st.lists(_PART, min_size=1, max_size=3).map("/".join),
    st.none() | _PART,
    st.none() | _PART.map(lambda hex_part: f"sha256:{hex_part}"),
)
def test_reference_round_trips(
    registry: str, repository: str, tag: str | None, digest: str | None
) -> None:
    reference = DockerReference(registry, repository, tag, digest)

    assert DockerReference.from_str(str(reference)) == reference


def test_reference_module_stays_off_heavy_imports() -> None:
    import subprocess
    import sys

    code = (
        "import sys, nublado.images.reference, nublado.images.tag;"
        "print(sorted(m for m in ('kubernetes', 'httpx', 'pydantic', 'yaml') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )

    assert result.stdout.strip() == "[]"
