"""``.dockerconfigjson`` credentials: only ``auth`` is read, lookup by host then domain suffix."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from nublado.errors import InputError
from nublado.images.credentials import DockerCredential, DockerCredentials

REFERENCE = Path(__file__).resolve().parents[1] / "data/reference/inputs/registry/docker-creds.json"


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_reference_file() -> None:
    credentials = DockerCredentials.from_path(REFERENCE)

    assert len(credentials) == 2
    assert credentials.get("lighthouse.ceres") == DockerCredential("bwk", "/.,/.,")
    assert credentials.get("repo.example.com") == DockerCredential("ken", "p/q2-q4!a")
    assert credentials.get("lighthouse.ceres").authorization == "Basic YndrOi8uLC8uLA=="  # type: ignore[union-attr]


def test_only_auth_is_read_and_split_at_the_first_colon(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    entry = {"username": "stale", "password": "stale", "auth": b64("user:pa:ss")}
    path.write_text(json.dumps({"auths": {"r.example": entry}}))

    assert DockerCredentials.from_path(path).get("r.example") == DockerCredential("user", "pa:ss")


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("example.com", "exact"),
        ("foo.example.com", "suffix"),
        ("a.foo.example.com", "suffix"),
        ("badexample.com", None),  # a suffix must start at a dot
        ("example.org", None),
        ("com", None),
    ],
)
def test_lookup(host: str, expected: str | None) -> None:
    credentials = DockerCredentials(
        {
            "other.org": DockerCredential("other", "x"),
            "foo.example.com": DockerCredential("suffix", "x"),
            "example.com": DockerCredential("exact", "x"),
        }
    )
    found = credentials.get(host)
    assert (found.username if found else None) == expected


def test_suffix_lookup_follows_file_order(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    auths = {
        "example.com": {"auth": b64("first:x")},
        "foo.example.com.": {"auth": b64("no:x")},
        "com": {"auth": b64("second:x")},
    }
    path.write_text(json.dumps({"auths": auths}))
    credentials = DockerCredentials.from_path(path)

    assert credentials.get("a.b.example.com") == DockerCredential("first", "x")
    assert credentials.get("a.example2.com") == DockerCredential("second", "x")


def test_written_form_has_all_three_keys() -> None:
    credentials = DockerCredentials({"lighthouse.ceres": DockerCredential("bwk", "/.,/.,")})

    assert credentials.to_dict() == json.loads(REFERENCE.read_text()) | {
        "auths": {
            "lighthouse.ceres": {
                "username": "bwk",
                "password": "/.,/.,",
                "auth": "YndrOi8uLC8uLA==",
            }
        }
    }


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            "{",
            "{path}: Docker credentials are not valid JSON: Expecting property name enclosed"
            " in double quotes: line 1 column 2 (char 1)",
        ),
        ("[]", '{path}: Docker credentials need an "auths" mapping of host to entry'),
        ('{"auths": {"h": {"username": "u"}}}', '{path}: auths["h"]: no "auth" string'),
        (
            '{"auths": {"h": {"auth": "%%%"}}}',
            '{path}: auths["h"].auth: not base64 of "user:password"',
        ),
        (
            json.dumps({"auths": {"h": {"auth": b64("nocolon")}}}),
            '{path}: auths["h"].auth: decodes to no "user:password" pair',
        ),
    ],
    ids=["bad-json", "no-auths", "no-auth", "bad-base64", "no-colon"],
)
def test_malformed_files(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "config.json"
    path.write_text(content)

    with pytest.raises(InputError) as info:
        DockerCredentials.from_path(path)
    assert str(info.value) == message.format(path=path)


def test_missing_and_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(InputError) as info:
        DockerCredentials.from_path(tmp_path / "nope.json")
    assert str(info.value) == f"{tmp_path / 'nope.json'}: Docker credentials file not found"

    with pytest.raises(InputError) as info:
        DockerCredentials.from_path(tmp_path)
    assert str(info.value) == f"{tmp_path}: is a directory, not a Docker credentials file"
