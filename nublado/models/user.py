"""The user as Gafaelfawr describes them (its ``user-info`` answer)."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, StrictInt, field_validator

__all__ = ["USERNAME_PATTERN", "NotebookQuota", "UserGroup", "UserInfo", "UserQuota"]

USERNAME_PATTERN = re.compile(r"[a-z0-9](?:[a-z0-9]|-[a-z0-9])*[a-z](?:[a-z0-9]|-[a-z0-9])*")
"""Gafaelfawr's username rule; usernames become parts of Kubernetes object names."""


class UserGroup(BaseModel):
    """A group the user belongs to; order matters (it is kept in /etc/group)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    name: str
    id: StrictInt
    """Strict: a JSON ``true`` is not group 1."""


class NotebookQuota(BaseModel):
    """Lab limits granted to the user; memory is in GiB as Gafaelfawr sends it."""

    model_config = ConfigDict(extra="ignore", frozen=True, allow_inf_nan=False)

    cpu: float = Field(ge=0)
    memory: float = Field(ge=0)
    """Both become the lab's ResourceQuota, which Kubernetes refuses negative."""
    spawn: bool = True

    @property
    def memory_bytes(self) -> int:
        """The memory quota in bytes, truncated as upstream does."""
        return int(self.memory * 1024**3)


class UserQuota(BaseModel):
    """The quotas we use; Gafaelfawr's others (api, tap, disk) are accepted and ignored."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    notebook: NotebookQuota | None = None


class UserInfo(BaseModel):
    """Gafaelfawr's user-info answer: identity, POSIX ids, groups and quota."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    username: str
    name: str | None = None
    email: str | None = None
    uid: StrictInt | None = None
    """Strict, as ``gid``: a JSON ``true`` or ``"1000"`` is refused, not made a number."""
    gid: StrictInt | None = None
    groups: list[UserGroup] = Field(default_factory=list)
    quota: UserQuota | None = None

    @field_validator("username")
    @classmethod
    def _valid_username(cls, username: str) -> str:
        if not USERNAME_PATTERN.fullmatch(username):
            raise ValueError(f"invalid username {username!r}: not a Gafaelfawr username")
        return username

    @property
    def supplemental_groups(self) -> list[int]:
        """Every group id in Gafaelfawr order, the primary group included."""
        return [group.id for group in self.groups]
