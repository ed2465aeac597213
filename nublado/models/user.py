"""The user as Gafaelfawr describes them (its ``user-info`` answer)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["NotebookQuota", "UserGroup", "UserInfo", "UserQuota"]


class UserGroup(BaseModel):
    """A group the user belongs to; order matters (it is kept in /etc/group)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    name: str
    id: int


class NotebookQuota(BaseModel):
    """Lab limits granted to the user; memory is in GiB as Gafaelfawr sends it."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    cpu: float
    memory: float
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
    uid: int | None = None
    gid: int | None = None
    groups: list[UserGroup] = Field(default_factory=list)
    quota: UserQuota | None = None

    @property
    def supplemental_groups(self) -> list[int]:
        """Every group id in Gafaelfawr order, the primary group included."""
        return [group.id for group in self.groups]
