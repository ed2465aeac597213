"""Configuration of the ``nublado images list|delete|prune`` tool (spec/images-tools.md 4.2).

The environment (``NUBLADO_SOURCE``, ``NUBLADO_PRUNE``, ``NUBLADO_LOG_LEVEL``,
...) overrides the file, as upstream's pydantic-settings did; see
`nublado.config.loader.load_tool_config`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator

from ._base import ConfigModel
from .images import ImageFilterPolicy, ImageSourceConfig
from .loader import load_tool_config

__all__ = ["ImagesToolConfig", "LogLevel", "LogProfile", "load_images_tool_config"]


def _upper(value: Any) -> Any:
    return value.upper() if isinstance(value, str) else value


LogLevel = Annotated[
    Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"], BeforeValidator(_upper)
]
"""A Python logging level name, in any case."""

LogProfile = Literal["production", "development"]
"""``production`` logs JSON lines; ``development`` logs for a human."""


class ImagesToolConfig(ConfigModel):
    """Which registry to manage and which images pruning keeps."""

    source: ImageSourceConfig
    prune: ImageFilterPolicy | None = None
    """Images to keep; everything else is pruned. None: ``prune`` refuses to run."""
    log_level: LogLevel = "INFO"
    log_profile: LogProfile = "production"
    docker_credentials_path: Path | None = None


def load_images_tool_config(
    path: Path | str, *, environ: Mapping[str, str] | None = None
) -> ImagesToolConfig:
    """Read the file, let ``NUBLADO_*`` variables override it, validate."""
    return load_tool_config(path, ImagesToolConfig, env_prefix="NUBLADO_", environ=environ)
