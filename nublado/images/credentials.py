"""Docker registry credentials from a Kubernetes ``.dockerconfigjson`` file (spec 2.2).

Only each entry's ``auth`` (base64 of ``user:password``) is read, as upstream
does: ``username`` and ``password`` in the file may be stale copies. A host
without an exact entry uses the first entry, in file order, whose key is a
domain suffix of it, so credentials for ``example.com`` serve
``foo.example.com``.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import InputError

__all__ = ["DEFAULT_CREDENTIALS_PATH", "DockerCredential", "DockerCredentials"]

DEFAULT_CREDENTIALS_PATH = Path("/etc/secrets/.dockerconfigjson")
"""Where the controller's pull secret is mounted."""


@dataclass(frozen=True, slots=True)
class DockerCredential:
    """A user name and password for one registry."""

    username: str
    password: str

    @property
    def auth(self) -> str:
        """The ``auth`` value of a ``.dockerconfigjson`` entry: base64 of ``user:password``."""
        return base64.b64encode(f"{self.username}:{self.password}".encode()).decode("ascii")

    @property
    def authorization(self) -> str:
        """The HTTP Basic ``Authorization`` header value."""
        return f"Basic {self.auth}"


class DockerCredentials:
    """Credentials by registry host, in file order."""

    def __init__(self, credentials: Mapping[str, DockerCredential]) -> None:
        self._credentials = dict(credentials)

    @classmethod
    def from_path(cls, path: Path) -> DockerCredentials:
        """Read a ``.dockerconfigjson`` file; a problem is an `InputError` naming the file."""
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise InputError(f"{path}: Docker credentials file not found") from None
        except IsADirectoryError:
            raise InputError(f"{path}: is a directory, not a Docker credentials file") from None
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else str(exc)
            raise InputError(f"{path}: cannot read Docker credentials: {reason}") from None
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise InputError(f"{path}: Docker credentials are not valid JSON: {exc}") from None
        try:
            return cls.from_dict(data)
        except ValueError as exc:
            raise InputError(f"{path}: {exc}") from None

    @classmethod
    def from_dict(cls, data: Any) -> DockerCredentials:
        """Parse the decoded file; a ValueError says which entry is wrong and how."""
        auths = data.get("auths") if isinstance(data, dict) else None
        if not isinstance(auths, dict):
            raise ValueError('Docker credentials need an "auths" mapping of host to entry')
        credentials: dict[str, DockerCredential] = {}
        for host, entry in auths.items():
            auth = entry.get("auth") if isinstance(entry, dict) else None
            if not isinstance(auth, str):
                raise ValueError(f'auths["{host}"]: no "auth" string')
            try:
                decoded = base64.b64decode(auth, validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                raise ValueError(f'auths["{host}"].auth: not base64 of "user:password"') from None
            username, colon, password = decoded.partition(":")
            if not colon:
                raise ValueError(f'auths["{host}"].auth: decodes to no "user:password" pair')
            credentials[host] = DockerCredential(username, password)
        return cls(credentials)

    def to_dict(self) -> dict[str, Any]:
        """The ``.dockerconfigjson`` form, with all three keys of each entry."""
        return {
            "auths": {
                host: {"username": c.username, "password": c.password, "auth": c.auth}
                for host, c in self._credentials.items()
            }
        }

    def get(self, host: str) -> DockerCredential | None:
        """Credentials for a host: an exact entry, else the first domain-suffix entry."""
        exact = self._credentials.get(host)
        if exact is not None:
            return exact
        for domain, credential in self._credentials.items():
            if host.endswith(f".{domain}"):
                return credential
        return None

    def __len__(self) -> int:
        return len(self._credentials)
