"""The controller configuration: models of every section, and the loader.

``load_config(path)`` reads the YAML file (camelCase keys, as upstream, or
snake_case), applies environment overrides and validates everything, raising
`ConfigError` with one line per problem (``lab.sizes[1].resources.limits.memory:
not a quantity: '3Gx'``). The models are frozen pydantic models; durations are
`timedelta`, memory `int` bytes, CPU `float` cores.
"""

from __future__ import annotations

from .controller import (
    DEFAULT_CONTROLLER_REPOSITORY,
    DEFAULT_CONTROLLER_TAG,
    Config,
    LogLevel,
    LogProfile,
)
from .errors import ConfigError
from .fileserver import FileserverConfig, FSAdminConfig
from .images import (
    DockerSourceConfig,
    GARSourceConfig,
    ImageFilter,
    ImageFilterPolicy,
    ImagesConfig,
    ImageSourceConfig,
    StaticSourceConfig,
)
from .lab import (
    BUILTIN_VOLUME_NAMES,
    RESERVED_ENV,
    LabConfig,
    LabInitContainer,
    LabNSSFiles,
    LabResources,
    LabSecret,
    LabSize,
    LabSizeDefinition,
    ResourceQuantity,
    file_volume_name,
    is_reserved_env,
)
from .loader import find_ignored_keys, load_config
from .scheduling import (
    Affinity,
    LabelSelector,
    LabelSelectorRequirement,
    NodeAffinity,
    NodeSelector,
    NodeSelectorRequirement,
    NodeSelectorTerm,
    PodAffinity,
    PodAffinityTerm,
    PodAntiAffinity,
    PreferredSchedulingTerm,
    Toleration,
    WeightedPodAffinityTerm,
)
from .volumes import (
    RESERVED_PATHS,
    ContainerImage,
    HostPathVolumeSource,
    NFSVolumeSource,
    PullPolicy,
    PVCResources,
    PVCVolumeSource,
    VolumeConfig,
    VolumeMountConfig,
)

__all__ = [
    "BUILTIN_VOLUME_NAMES",
    "DEFAULT_CONTROLLER_REPOSITORY",
    "DEFAULT_CONTROLLER_TAG",
    "RESERVED_ENV",
    "RESERVED_PATHS",
    "Affinity",
    "Config",
    "ConfigError",
    "ContainerImage",
    "DockerSourceConfig",
    "FSAdminConfig",
    "FileserverConfig",
    "GARSourceConfig",
    "HostPathVolumeSource",
    "ImageFilter",
    "ImageFilterPolicy",
    "ImageSourceConfig",
    "ImagesConfig",
    "LabConfig",
    "LabInitContainer",
    "LabNSSFiles",
    "LabResources",
    "LabSecret",
    "LabSize",
    "LabSizeDefinition",
    "LabelSelector",
    "LabelSelectorRequirement",
    "LogLevel",
    "LogProfile",
    "NFSVolumeSource",
    "NodeAffinity",
    "NodeSelector",
    "NodeSelectorRequirement",
    "NodeSelectorTerm",
    "PVCResources",
    "PVCVolumeSource",
    "PodAffinity",
    "PodAffinityTerm",
    "PodAntiAffinity",
    "PreferredSchedulingTerm",
    "PullPolicy",
    "ResourceQuantity",
    "StaticSourceConfig",
    "Toleration",
    "VolumeConfig",
    "VolumeMountConfig",
    "WeightedPodAffinityTerm",
    "file_volume_name",
    "find_ignored_keys",
    "is_reserved_env",
    "load_config",
]
