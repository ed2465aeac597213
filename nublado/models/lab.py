"""What JupyterHub's spawner sends to create a lab (``LabSpecification``)."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator, model_validator

from ..config import LabSize
from ..config._base import config_key_problem, raise_problems
from .user import UserInfo

__all__ = [
    "DROPDOWN_SENTINEL_VALUE",
    "ImageClass",
    "LabOptions",
    "LabRequestOptions",
    "LabResourceAmounts",
    "LabSpecification",
    "LabState",
    "LabStatus",
    "ResourceAmount",
]

DROPDOWN_SENTINEL_VALUE = "use_image_from_dropdown"
"""``image_list`` value meaning "the image is the one chosen in the dropdown"."""

_IMAGE_FIELDS = ("image_class", "image_dropdown", "image_list", "image_tag")


class ImageClass(StrEnum):
    """Images chosen by role rather than by name."""

    RECOMMENDED = "recommended"
    LATEST_RELEASE = "latest-release"
    LATEST_WEEKLY = "latest-weekly"
    LATEST_DAILY = "latest-daily"


class LabRequestOptions(BaseModel):
    """The lab form's choices, accepting JupyterHub's raw form encoding.

    JupyterHub wraps form values in one-element lists and sends absent ones as
    null or ``[]``; both are normalised before validation. Exactly one way of
    naming the image must remain.
    """

    model_config = ConfigDict(extra="ignore", frozen=True)

    size: LabSize
    enable_debug: bool = False
    reset_user_env: bool = False
    image_list: str | None = None
    image_dropdown: str | None = None
    image_class: ImageClass | None = None
    image_tag: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _unwrap_form_values(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        result: dict[str, Any] = {}
        for key, value in data.items():
            if isinstance(value, list):
                if not value:
                    continue
                if len(value) > 1:
                    raise ValueError(f"Too many values for {key}")
                value = value[0]
            if value is None:
                continue
            result[key] = value
        if isinstance(result.get("size"), str):
            result["size"] = result["size"].lower()
        if result.get("image_list") == DROPDOWN_SENTINEL_VALUE:
            del result["image_list"]
        elif result.get("image_list"):
            result.pop("image_dropdown", None)
        return result

    @field_validator("enable_debug", "reset_user_env", mode="before")
    @classmethod
    def _form_boolean(cls, value: Any) -> Any:
        if isinstance(value, bool):
            return value
        if value in ("true", "false"):
            return value == "true"
        raise ValueError("must be true or false")

    @model_validator(mode="after")
    def _one_image(self) -> LabRequestOptions:
        given = sorted(name for name in _IMAGE_FIELDS if getattr(self, name))
        if not given:
            raise ValueError("No image to spawn specified")
        if len(given) > 1:
            raise ValueError(f"Image specified multiple ways ({', '.join(given)})")
        return self

    @property
    def image_reference(self) -> str | None:
        """The Docker reference chosen in the form, if the image was named that way."""
        return self.image_list or self.image_dropdown or None


class LabSpecification(BaseModel):
    """Body of ``POST .../labs/{username}/create``."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    options: LabRequestOptions
    env: dict[str, str]

    @field_validator("env")
    @classmethod
    def _has_service_prefix(cls, env: dict[str, str]) -> dict[str, str]:
        if "JUPYTERHUB_SERVICE_PREFIX" not in env:
            raise ValueError("JUPYTERHUB_SERVICE_PREFIX must be set")
        # Each name becomes a key of the lab's env ConfigMap.
        raise_problems(
            [
                ((name,), f"{problem} (it becomes a key of the lab's env ConfigMap)")
                for name in env
                if (problem := config_key_problem(name)) is not None
            ]
        )
        return env


class LabStatus(StrEnum):
    """Where a lab is in its life (api.md 7.2)."""

    PENDING = "pending"
    RUNNING = "running"
    TERMINATING = "terminating"
    TERMINATED = "terminated"
    FAILED = "failed"


class LabOptions(BaseModel):
    """The options a lab was spawned with, as resolved (api.md 5.3 ``options``)."""

    model_config = ConfigDict(frozen=True)

    size: LabSize
    enable_debug: bool = False
    reset_user_env: bool = False
    image: str
    """The resolved image, ``registry/repository:tag@digest``."""


class ResourceAmount(BaseModel):
    """CPU in cores (serialised as a float: ``1.0``) and memory in bytes."""

    model_config = ConfigDict(frozen=True)

    cpu: float
    memory: int


class LabResourceAmounts(BaseModel):
    """A lab's limits and requests, from its size (api.md 5.3 ``resources``)."""

    model_config = ConfigDict(frozen=True)

    limits: ResourceAmount
    requests: ResourceAmount


class LabState(BaseModel):
    """``GET .../labs/{username}`` and ``user-status`` (api.md 4.5, 5.3).

    Field order is upstream's serialisation order; ``internal_url`` and
    ``quota`` are always present, null when unknown or absent.
    """

    model_config = ConfigDict(frozen=True)

    user: UserInfo
    options: LabOptions
    status: LabStatus
    internal_url: str | None = None
    resources: LabResourceAmounts
    quota: ResourceAmount | None = None

    def to_json(self) -> dict[str, Any]:
        """The response body: the user as api.md 5.3 shows it (no email, no Gafaelfawr quota)."""
        body = self.model_dump(mode="json")
        user = self.user
        body["user"] = {
            "username": user.username,
            "name": user.name,
            "uid": user.uid,
            "gid": user.gid,
            "groups": [{"name": g.name, "id": g.id} for g in user.groups],
        }
        return body
