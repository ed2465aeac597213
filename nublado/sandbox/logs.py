"""``GET pods/NAME/log``: what ``kubectl logs`` reads, from a cluster that runs nothing.

The sandbox's kubelet moves pods through their phases but starts no
process, so there is no output to give. The answer says so in one plain line
(kubectl prints it as the log), after the checks kube-apiserver makes: the
pod must exist (404 otherwise, from the caller), and the container must be
one of the pod's, or be chosen when the pod has several.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import PlainTextResponse, Response

from .store import ApiError

__all__ = ["pod_log"]


def pod_log(pod: dict[str, Any], container: str | None, previous: bool = False) -> Response:
    """The log answer for one of ``pod``'s containers (400 for a container it lacks).

    ``previous`` (``kubectl logs -p``) asks for the last terminated instance,
    which a sandbox container never has: the real server's 400.
    """
    spec = pod.get("spec") or {}
    name = pod["metadata"]["name"]
    names = [
        c.get("name", "")
        for key in ("initContainers", "containers", "ephemeralContainers")
        for c in spec.get(key) or []
    ]
    main = [c.get("name", "") for c in spec.get("containers") or []]
    if not container:
        if len(main) != 1:
            choices = " ".join(main)
            raise ApiError.bad_request(
                f"a container name must be specified for pod {name}, choose one of: [{choices}]"
            )
        container = main[0]
    elif container not in names:
        raise ApiError.bad_request(f"container {container} is not valid for pod {name}")
    if previous:
        raise ApiError.bad_request(
            f'previous terminated container "{container}" in pod "{name}" not found'
        )
    namespace = pod["metadata"].get("namespace", "")
    return PlainTextResponse(
        f"nublado sandbox: no logs for container {container} of pod {namespace}/{name}: "
        "the sandbox runs no containers\n"
    )
