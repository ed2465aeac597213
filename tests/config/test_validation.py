"""Every load-time validation rule, each with a failing example and its exact message."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from nublado.config import Config

Loader = Callable[..., Config]
Problems = Callable[..., list[str]]

_DELETE = object()


def _apply(data: dict[str, Any], path: str | tuple[str, ...], value: Any) -> None:
    """Set (or, with _DELETE, remove) a value at a dotted path; numbers index lists."""
    *parents, last = path.split(".") if isinstance(path, str) else path
    node: Any = data
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
    key: Any = int(last) if isinstance(node, list) else last
    if value is _DELETE:
        del node[key]
    else:
        node[key] = value


NFS = {"type": "nfs", "server": "nfs.example.com", "serverPath": "/share"}

# (id, {dotted path: new value}, expected lines), all applied to standard.yaml.
CASES: list[tuple[str, dict[Any, Any], list[str]]] = [
    (
        "memory-not-a-quantity",
        {"lab.sizes.1.resources.limits.memory": "3Gx"},
        ["lab.sizes[1].resources.limits.memory: not a quantity: '3Gx'"],
    ),
    (
        "memory-boolean",
        {"lab.sizes.0.resources.requests.memory": True},
        ["lab.sizes[0].resources.requests.memory: not a quantity: True (a boolean)"],
    ),
    (
        "cpu-precision",
        {"lab.sizes.0.resources.limits.cpu": "1.2345"},
        [
            "lab.sizes[0].resources.limits.cpu: not a CPU quantity: '1.2345': CPU must be"
            " specified as a whole number of milli-cores, like 500m, or a decimal number with"
            " no more than three places of precision, like 1.234"
        ],
    ),
    (
        "cpu-request-above-limit",
        {"lab.sizes.0.resources.requests.cpu": 4},
        ["lab.sizes[0].resources.requests.cpu: CPU request 4.0 is more than the limit 1.0"],
    ),
    (
        "memory-request-above-limit",
        {"lab.sizes.0.resources.requests.memory": "4Gi"},
        [
            "lab.sizes[0].resources.requests.memory: memory request 4294967296 is more than"
            " the limit 3221225472"
        ],
    ),
    ("empty-sizes", {"lab.sizes": []}, ["lab.sizes: At least one lab size must be defined"]),
    (
        "duplicate-size",
        {"lab.sizes.2.size": "small"},
        ["lab.sizes[2].size: Duplicate lab size small"],
    ),
    (
        "unknown-size-name",
        {"lab.sizes.0.size": "enormous"},
        [
            "lab.sizes[0].size: must be 'fine', 'diminutive', 'tiny', 'small',"
            " 'medium', 'large', 'huge', 'gargantuan', 'colossal' or 'custom', got 'enormous'"
        ],
    ),
    (
        "default-size-not-configured",
        {"lab.defaultSize": "colossal"},
        ["lab.defaultSize: Default size colossal not defined in lab.sizes"],
    ),
    (
        "home-volume-missing",
        {"lab.homeVolumeName": "house"},
        ["lab.homeVolumeName: A home volume is required: no volume named house in lab.volumes"],
    ),
    (
        "no-volumes-at-all",
        {"lab.volumes": _DELETE, "lab.volumeMounts": [], "lab.initContainers": []},
        ["lab.homeVolumeName: A home volume is required: no volume named home in lab.volumes"],
    ),
    (
        "reserved-env",
        {"lab.env.ACCESS_TOKEN": "x"},
        ["lab.env.ACCESS_TOKEN: Lab environment variable ACCESS_TOKEN reserved for Nublado"],
    ),
    (
        "reserved-env-jupyterhub-prefix",
        {"lab.env.JUPYTERHUB_API_URL": "x"},
        [
            "lab.env.JUPYTERHUB_API_URL: Lab environment variable JUPYTERHUB_API_URL"
            " reserved for Nublado"
        ],
    ),
    (
        "unquoted-number-env-value",
        {"lab.env.CULL_KERNEL_IDLE_TIMEOUT": 432000},
        ["lab.env.CULL_KERNEL_IDLE_TIMEOUT: must be a string (quote it in YAML), got 432000"],
    ),
    (
        "boolean-env-value",
        {"lab.env.CULL_KERNEL_CONNECTED": True},
        ["lab.env.CULL_KERNEL_CONNECTED: must be a string (quote it in YAML), got True"],
    ),
    (
        "reserved-file-path",
        {"lab.files./etc/passwd": "root"},
        ['lab.files["/etc/passwd"]: Cannot mount volume over /etc/passwd'],
    ),
    (
        "reserved-mount-path",
        {"lab.volumeMounts.0.containerPath": "/tmp"},
        ["lab.volumeMounts[0].containerPath: Cannot mount volume over /tmp"],
    ),
    (
        "relative-mount-path",
        {"lab.volumeMounts.0.containerPath": "home"},
        [
            "lab.volumeMounts[0].containerPath: must be an absolute path (starting with /),"
            " got 'home'"
        ],
    ),
    (
        "mount-of-undefined-volume",
        {"lab.volumeMounts.1.volumeName": "projects"},
        ["lab.volumeMounts[1].volumeName: Unknown mounted volume projects"],
    ),
    (
        "init-container-mount-of-undefined-volume",
        {"lab.initContainers.0.volumeMounts.1.volumeName": "scratchy"},
        ["lab.initContainers[0].volumeMounts[1].volumeName: Unknown mounted volume scratchy"],
    ),
    (
        "duplicate-volume-name",
        {"lab.volumes.3.name": "scratch"},
        [
            "lab.volumes[3].name: volume name scratch is already used by lab.volumes[2]",
            "lab.volumeMounts[4].volumeName: Unknown mounted volume temporary",
        ],
    ),
    (
        "volume-named-like-a-built-in-volume",
        {"lab.volumes.3.name": "runtime", "lab.volumeMounts.4.volumeName": "runtime"},
        ["lab.volumes[3].name: volume name runtime is already a built-in volume"],
    ),
    (
        "file-named-like-a-built-in-volume",
        {"lab.files./opt/lsst/secrets": "x"},
        [
            'lab.files["/opt/lsst/secrets"]: file volume name secrets (from the file name)'
            " is already a built-in volume"
        ],
    ),
    (
        "file-named-like-a-volume",
        {"lab.files./opt/lsst/project": "x"},
        [
            'lab.files["/opt/lsst/project"]: file volume name project (from the file name)'
            " is already used by lab.volumes[1]"
        ],
    ),
    (
        "two-files-with-one-volume-name",
        {("lab", "files", "/etc/lsst.dask.yml"): "x"},
        [
            'lab.files["/etc/lsst.dask.yml"]: file volume name lsst-dask-yml (from the file'
            " name) is already used by lab.files['/opt/lsst/software/jupyterlab/lsst_dask.yml']"
        ],
    ),
    (
        "file-name-not-a-kubernetes-name",
        {("lab", "files", "/etc/Setup.cfg"): "x"},
        [
            'lab.files["/etc/Setup.cfg"]: file volume name (from the file name) is not a valid'
            " Kubernetes name: 'Setup-cfg' (at most 63 lower-case letters, digits and '-',"
            " starting and ending with a letter or digit)"
        ],
    ),
    (
        "volume-name-not-a-kubernetes-name",
        {"lab.volumes.3.name": "Temp_Files"},
        [
            "lab.volumes[3].name: not a valid Kubernetes name: 'Temp_Files' (at most 63"
            " lower-case letters, digits and '-', starting and ending with a letter or digit)"
        ],
    ),
    (
        "nfs-relative-server-path",
        {"lab.volumes.0.source.serverPath": "share1/home"},
        [
            "lab.volumes[0].source.serverPath: must be an absolute path (starting with /),"
            " got 'share1/home'"
        ],
    ),
    (
        "volume-source-missing-key",
        {"lab.volumes.0.source": {"type": "nfs", "server": "x"}},
        ["lab.volumes[0].source.serverPath: required but missing"],
    ),
    (
        "volume-source-unknown-type",
        {"lab.volumes.1.source": {"type": "emptyDir"}},
        [
            "lab.volumes[1].source.type: unknown 'emptyDir' (expected one of hostPath, nfs,"
            " persistentVolumeClaim)"
        ],
    ),
    (
        "volume-source-without-type",
        {"lab.volumes.1.source": {"path": "/x"}},
        ["lab.volumes[1].source.type: required but missing"],
    ),
    (
        "pvc-read-write-once",
        {"lab.volumes.2.source.accessModes": ["ReadWriteOnce"]},
        [
            "lab.volumes[2].source.accessModes[0]: must be 'ReadOnlyMany' or"
            " 'ReadWriteMany', got 'ReadWriteOnce'"
        ],
    ),
    (
        "section-not-a-mapping",
        {"fsadmin": ["podName"]},
        ["fsadmin: must be a mapping, got a list"],
    ),
    (
        "number-not-a-number",
        {"images.numDailies": "three"},
        ["images.numDailies: must be a whole number, got 'three'"],
    ),
    (
        "flag-not-a-boolean",
        {"lab.volumeMounts.1.readOnly": "perhaps"},
        ["lab.volumeMounts[1].readOnly: must be true or false, got 'perhaps'"],
    ),
    (
        "pvc-storage-not-a-quantity",
        {"lab.volumes.2.source.resources.requests.storage": "lots"},
        [
            "lab.volumes[2].source.resources.requests.storage: not a Kubernetes quantity:"
            " 'lots' (a number with an optional suffix such as Ki, Mi, Gi, k, M, G or m,"
            " like 1Gi or 500m)"
        ],
    ),
    (
        "pvc-storage-negative",
        {"lab.volumes.2.source.resources.requests.storage": "-1Gi"},
        ["lab.volumes[2].source.resources.requests.storage: must be greater than zero, got '-1Gi'"],
    ),
    (
        "pvc-storage-zero",
        {"lab.volumes.2.source.resources.requests.storage": 0},
        ["lab.volumes[2].source.resources.requests.storage: must be greater than zero, got '0'"],
    ),
    (
        "pvc-storage-zero-with-suffix",
        {"lab.volumes.2.source.resources.requests.storage": "0Mi"},
        ["lab.volumes[2].source.resources.requests.storage: must be greater than zero, got '0Mi'"],
    ),
    (
        "negative-spawn-timeout",
        {"lab.spawnTimeout": -10},
        ["lab.spawnTimeout: must not be negative, got -10"],
    ),
    (
        "negative-duration-as-a-string",
        {"fileserver.enabled": True, "fileserver.idleTimeout": "-5"},
        ["fileserver.idleTimeout: must not be negative, got '-5'"],
    ),
    (
        "negative-image-refresh-interval",
        {"images.refreshInterval": -0.5},
        ["images.refreshInterval: must not be negative, got -0.5"],
    ),
    (
        "upper-case-image-repository",
        {"lab.initContainers.1.image.repository": "UPPER/Repo"},
        [
            "lab.initContainers[1].image.repository: not a Docker image name (an optional"
            " registry host, then lower-case letters and digits separated by '.', '_', '__'"
            " or '-', in components joined by '/'): 'UPPER/Repo'"
        ],
    ),
    (
        "init-container-image-tag-with-a-command",
        {"lab.initContainers.0.image.tag": "10.0.0;rm -rf /"},
        [
            "lab.initContainers[0].image.tag: not a Docker tag (up to 128 letters, digits,"
            " '_', '.' and '-', not starting with '.' or '-'): '10.0.0;rm -rf /'"
        ],
    ),
    (
        "duplicate-secret-key",
        {"lab.secrets.1.secretKey": "butler-secret"},
        ["lab.secrets[1].secretKey: Duplicate secretKey butler-secret (also lab.secrets[0])"],
    ),
    (
        "secret-key-token",
        {"lab.secrets.0.secretKey": "token"},
        ['lab.secrets[0].secretKey: secretKey "token" is reserved and may not be used'],
    ),
    (
        "homedir-prefix-root",
        {"lab.homedirPrefix": "/"},
        [
            "lab.homedirPrefix: Invalid home directory prefix '/': must be an absolute path"
            " other than /"
        ],
    ),
    (
        "homedir-prefix-relative",
        {"lab.homedirPrefix": "home"},
        [
            "lab.homedirPrefix: Invalid home directory prefix 'home': must be an absolute path"
            " other than /"
        ],
    ),
    (
        "empty-dir-source",
        {"lab.emptyDirSource": "Memory"},
        ["lab.emptyDirSource: must be 'memory' or 'disk', got 'Memory'"],
    ),
    (
        "homedir-schema",
        {"lab.homedirSchema": "initial"},
        ["lab.homedirSchema: must be 'username' or 'initialThenUsername', got 'initial'"],
    ),
    (
        "duration-out-of-order",
        {"lab.spawnTimeout": "3m4h"},
        [
            "lab.spawnTimeout: not a duration: '3m4h' (expected groups like 1w 2d 3h 4m 5s,"
            " largest first)"
        ],
    ),
    (
        "duration-fraction-in-group",
        {"lab.activityInterval": "1.5h"},
        [
            "lab.activityInterval: not a duration: '1.5h' (expected groups like 1w 2d 3h 4m 5s,"
            " largest first)"
        ],
    ),
    (
        "namespace-prefix-missing",
        {"lab.namespacePrefix": _DELETE},
        ["lab.namespacePrefix: required but missing"],
    ),
    ("unknown-lab-key", {"lab.sizez": []}, ["lab.sizez: unknown key (did you mean sizes?)"]),
    (
        "unknown-key-in-a-list-item",
        {"lab.sizes.0.resorces": {}},
        ["lab.sizes[0].resorces: unknown key (did you mean resources?)"],
    ),
    (
        "unknown-key-in-a-tagged-volume-source",
        {"lab.volumes.0.source.serverpath": "/x"},
        ["lab.volumes[0].source.serverpath: unknown key (did you mean serverPath?)"],
    ),
    ("lab-missing", {"lab": _DELETE}, ["lab: required but missing"]),
    ("images-missing", {"images": _DELETE}, ["images: required but missing"]),
    ("fsadmin-missing", {"fsadmin": _DELETE}, ["fsadmin: required but missing"]),
    (
        "duplicate-init-container",
        {"lab.initContainers.1.name": "inithome"},
        [
            "lab.initContainers[1].name: Duplicate init container name inithome"
            " (also lab.initContainers[0])"
        ],
    ),
    (
        "init-container-named-like-a-standard-one",
        {"lab.initContainers.1.name": "nublado-std-startup"},
        [
            "lab.initContainers[1].name: Init container name nublado-std-startup is reserved"
            " for Nublado"
        ],
    ),
    (
        "init-container-pull-policy",
        {"lab.initContainers.1.image.pullPolicy": "always"},
        [
            "lab.initContainers[1].image.pullPolicy: must be 'Always', 'IfNotPresent'"
            " or 'Never', got 'always'"
        ],
    ),
    (
        "toleration-exists-with-value",
        {"lab.tolerations.1.value": "x"},
        ["lab.tolerations[1]: a toleration with operator Exists must not have a value"],
    ),
    (
        "toleration-equal-without-value",
        {"lab.tolerations.0.value": _DELETE},
        ["lab.tolerations[0]: a toleration with operator Equal needs a non-empty key and value"],
    ),
    (
        "toleration-effect",
        {"lab.tolerations.0.effect": "NoRun"},
        [
            "lab.tolerations[0].effect: must be 'NoSchedule', 'PreferNoSchedule' or"
            " 'NoExecute', got 'NoRun'"
        ],
    ),
    (
        "node-selector-in-without-values",
        {
            "lab.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution"
            ".nodeSelectorTerms.0.matchExpressions.0.values": []
        },
        [
            "lab.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution"
            ".nodeSelectorTerms[0].matchExpressions[0]: operator In needs at least one value"
        ],
    ),
    (
        "node-selector-exists-with-values",
        {
            "lab.affinity.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution.0"
            ".preference.matchExpressions.0.operator": "Exists"
        },
        [
            "lab.affinity.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution[0]"
            ".preference.matchExpressions[0]: operator Exists takes no values"
        ],
    ),
    (
        "node-selector-gt-not-an-integer",
        {
            "lab.affinity.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution.0"
            ".preference.matchExpressions.0": {"key": "cores", "operator": "Gt", "values": ["x"]}
        },
        [
            "lab.affinity.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution[0]"
            ".preference.matchExpressions[0]: operator Gt needs an integer value, got 'x'"
        ],
    ),
    (
        "node-selector-lt-two-values",
        {
            "lab.affinity.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution.0"
            ".preference.matchExpressions.0": {
                "key": "cores",
                "operator": "Lt",
                "values": ["1", "2"],
            }
        },
        [
            "lab.affinity.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution[0]"
            ".preference.matchExpressions[0]: operator Lt needs exactly one value"
        ],
    ),
    (
        "preferred-weight-too-large",
        {"lab.affinity.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution.0.weight": 101},
        [
            "lab.affinity.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution[0]"
            ".weight: must be at most 100, got 101"
        ],
    ),
    (
        "images-negative-count",
        {"images.numDailies": -1},
        ["images.numDailies: must be at least 0, got -1"],
    ),
    (
        "images-unknown-key",
        {"images.numMonthlies": 1},
        ["images.numMonthlies: unknown key"],
    ),
    (
        "gar-source-missing-keys",
        {"images.source": {"type": "google", "location": "us-central1"}},
        [
            "images.source.projectId: required but missing",
            "images.source.repository: required but missing",
            "images.source.image: required but missing",
        ],
    ),
    (
        "dropdown-cutoff-version",
        {"dropdownMenu.weekly.cutoffVersion": "27.0"},
        ["dropdownMenu.weekly.cutoffVersion: not a semantic version (like 27.0.0): '27.0'"],
    ),
    (
        "dropdown-number",
        {"dropdownMenu.release.number": -2},
        ["dropdownMenu.release.number: must be at least 0, got -2"],
    ),
    ("base-url-camel-case-refused", {"baseUrl": "https://x"}, ["baseUrl: unknown key"]),
    ("slack-camel-case-refused", {"slackWebhook": "https://x"}, ["slackWebhook: unknown key"]),
    (
        "log-level",
        {"logLevel": "loud"},
        ["logLevel: must be 'DEBUG', 'INFO', 'WARNING', 'ERROR' or 'CRITICAL', got 'LOUD'"],
    ),
    (
        "log-profile-is-case-sensitive",
        {"logProfile": "Development"},
        ["logProfile: must be 'production' or 'development', got 'Development'"],
    ),
    (
        "fileserver-enabled-without-namespace",
        {"fileserver": {"enabled": True}},
        ["fileserver.namespace: required when the file server is enabled"],
    ),
    (
        "fileserver-enabled-unknown-key",
        {"fileserver": {"enabled": True, "namespace": "fs", "image": "x"}},
        ["fileserver.image: unknown key"],
    ),
    (
        "fileserver-mount-of-undefined-volume",
        {
            "fileserver": {
                "enabled": True,
                "namespace": "fs",
                "volumeMounts": [{"containerPath": "/home", "volumeName": "homes"}],
            }
        },
        ["fileserver.volumeMounts[0].volumeName: Unknown mounted volume homes in file servers"],
    ),
    (
        "fsadmin-mount-of-undefined-volume",
        {"fsadmin.extraVolumeMounts": [{"containerPath": "/f", "volumeName": "firefly"}]},
        [
            "fsadmin.extraVolumeMounts[0].volumeName: Unknown mounted volume firefly"
            " (not in lab.volumes or fsadmin.extraVolumes)"
        ],
    ),
    (
        "fsadmin-extra-volume-named-like-a-lab-volume",
        {"fsadmin.extraVolumes": [{"name": "project", "source": NFS}]},
        ["fsadmin.extraVolumes[0].name: volume name project is already used by lab.volumes[1]"],
    ),
    (
        "fsadmin-two-extra-volumes-with-one-name",
        {"fsadmin.extraVolumes": [{"name": "ff", "source": NFS}, {"name": "ff", "source": NFS}]},
        ["fsadmin.extraVolumes[1].name: volume name ff is already used by fsadmin.extraVolumes[0]"],
    ),
    (
        "several-problems-at-once",
        {"lab.env.DEBUG": "1", "lab.sizes.0.resources.limits.memory": "lots", "name": 3},
        [
            "name: must be a string (quote it in YAML), got 3",
            "lab.env.DEBUG: Lab environment variable DEBUG reserved for Nublado",
            "lab.sizes[0].resources.limits.memory: not a quantity: 'lots'",
        ],
    ),
    (
        "namespace-prefix-not-a-name",
        {"lab.namespacePrefix": "User_Labs"},
        [
            "lab.namespacePrefix: not a valid Kubernetes name: 'User_Labs'"
            " (at most 63 lower-case letters, digits and '-', starting and ending with a"
            " letter or digit)"
        ],
    ),
    (
        "fsadmin-pod-name-not-a-name",
        {"fsadmin.podName": "FS Admin"},
        [
            "fsadmin.podName: not a valid Kubernetes name: 'FS Admin'"
            " (at most 63 lower-case letters, digits and '-', starting and ending with a"
            " letter or digit)"
        ],
    ),
    (
        "negative-memory",
        {"lab.sizes.0.resources.requests.memory": "-1Gi"},
        ["lab.sizes[0].resources.requests.memory: must be more than 0, not -1073741824"],
    ),
    (
        "zero-cpu",
        {"lab.sizes.0.resources.requests.cpu": 0},
        ["lab.sizes[0].resources.requests.cpu: must be more than 0, not 0.0"],
    ),
    (
        "duplicate-mount-path",
        {"lab.volumeMounts.2.containerPath": "/home/"},
        [
            "lab.volumeMounts[2].containerPath: /home/ is already mounted by"
            " lab.volumeMounts[0].containerPath"
        ],
    ),
    (
        "secret-path-over-a-file",
        {"lab.secrets.0.path": "/opt/lsst/software/jupyterlab/panda"},
        [
            "lab.secrets[0].path: /opt/lsst/software/jupyterlab/panda is already mounted by"
            " lab.files['/opt/lsst/software/jupyterlab/panda']"
        ],
    ),
    (
        "base-url-not-absolute",
        {"EXTERNAL_INSTANCE_URL": "data.example.com"},
        ["EXTERNAL_INSTANCE_URL: not an absolute http(s) URL: 'data.example.com'"],
    ),
    (
        "env-name-not-a-config-key",
        {("lab", "env", "API ROUTE"): "/api"},
        [
            "lab.env[\"API ROUTE\"]: 'API ROUTE' is not a valid config key: at most 253 letters,"
            " digits, '-', '_' and '.' (it becomes a key of the env ConfigMap)"
        ],
    ),
    (
        "secret-env-not-an-env-name",
        {"lab.secrets.0.env": "A=B"},
        [
            "lab.secrets[0].env: 'A=B' is not a valid environment variable name: printable"
            " ASCII characters other than '='"
        ],
    ),
    (
        "secret-key-not-a-config-key",
        {"lab.secrets.0.secretKey": "butler secret"},
        [
            "lab.secrets[0].secretKey: 'butler secret' is not a valid config key: at most 253"
            " letters, digits, '-', '_' and '.' (it becomes a key of the lab's Secret)"
        ],
    ),
    (
        "application-not-a-label-value",
        {
            "lab.application": "Nublado Users!",
            "fileserver.enabled": True,
            "fileserver.namespace": "fileservers",
            "fileserver.application": "-files",
        },
        [
            "fileserver.application: '-files' is not a label value (letters, digits, '-', '_'"
            " and '.', starting and ending alphanumeric); it becomes the"
            " argocd.argoproj.io/instance label",
            "lab.application: 'Nublado Users!' is not a label value (letters, digits, '-', '_'"
            " and '.', starting and ending alphanumeric); it becomes the"
            " argocd.argoproj.io/instance label",
        ],
    ),
    (
        "fileserver-path-prefix-relative",
        {"fileserver.pathPrefix": "files"},
        ["fileserver.pathPrefix: must start with /: 'files'"],
    ),
]


@pytest.mark.parametrize(("changes", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_invalid_configuration_is_reported_at_its_place(
    standard: dict[str, Any], problems: Problems, changes: dict[Any, Any], expected: list[str]
) -> None:
    for path, value in changes.items():
        _apply(standard, path, value)

    assert problems(standard) == expected


def test_sizes_may_be_omitted(standard: dict[str, Any], load: Loader) -> None:
    del standard["lab"]["sizes"]

    assert load(standard).lab.sizes == []


def test_lab_files_with_distinct_volume_names_load(standard: dict[str, Any], load: Loader) -> None:
    standard["lab"]["files"]["/etc/dask/config_2.yaml"] = "x"

    assert "/etc/dask/config_2.yaml" in load(standard).lab.files


def test_reserved_path_match_is_exact(standard: dict[str, Any], load: Loader) -> None:
    standard["lab"]["volumeMounts"][0]["containerPath"] = "/tmp/home"
    standard["lab"]["files"]["/tmp/x/notes"] = "x"

    lab = load(standard).lab

    assert lab.volume_mounts[0].container_path == "/tmp/home"


@pytest.mark.parametrize(
    "name", ["NUBLADO_TOKEN", "JUPYTERLAB_CONFIG_DIR", "REPERTOIRE_BASE_URL", "K8S_NODE_NAME"]
)
def test_unreserved_env_names_are_accepted(
    standard: dict[str, Any], load: Loader, name: str
) -> None:
    standard["lab"]["env"][name] = "x"

    assert load(standard).lab.env[name] == "x"


def test_a_secret_env_name_may_hold_spaces(standard: dict[str, Any], load: Loader) -> None:
    """Kubernetes accepts any printable ASCII but '=' in an env name since 1.32."""
    standard["lab"]["secrets"][0]["env"] = "BUTLER SECRET"

    assert load(standard).lab.secrets[0].env == "BUTLER SECRET"


def test_fsadmin_mount_may_name_an_extra_volume(standard: dict[str, Any], load: Loader) -> None:
    standard["fsadmin"]["extraVolumes"] = [{"name": "firefly", "source": NFS}]
    standard["fsadmin"]["extraVolumeMounts"] = [{"containerPath": "/f", "volumeName": "firefly"}]

    assert load(standard).fsadmin.extra_volume_mounts[0].volume_name == "firefly"


def test_disabled_fileserver_mounts_are_not_checked(standard: dict[str, Any], load: Loader) -> None:
    standard["fileserver"] = {
        "enabled": False,
        "volumeMounts": [{"containerPath": "/x", "volumeName": "nope"}],
    }

    assert load(standard).fileserver.volume_mounts == []
