"""The fsadmin routes' bodies (api.md 5.4): the start command and the pod's status."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

__all__ = ["FSAdminCommand", "FSAdminStatus"]


class FSAdminCommand(BaseModel):
    """``POST fsadmin/v1/service``: exactly ``{"start": true}``.

    ``start`` must be the literal ``true`` so that a client cannot start the
    privileged pod by accident with ``{}`` or ``{"start": false}`` (422);
    other keys are ignored, as upstream's model does.
    """

    start: Literal[True] = Field(..., description="Must be true: start fsadmin.")


class FSAdminStatus(BaseModel):
    """The running fsadmin pod: when it started (UTC; serialised with a ``Z`` suffix)."""

    start_time: datetime = Field(..., description="When the fsadmin pod started (UTC).")
