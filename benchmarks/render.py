"""Measure how fast a lab set goes from inputs to wire-ready dicts, and the CLI cold start.

Run from the repository root: ``python benchmarks/render.py [--renders 2000]``.

Every render uses a different user (name, uid, groups, token), so no value
repeats between renders; what stays the same is the shape of the set (the
configuration), which is what the engine caches. Printed figures:

* median and p95 of context build, template render + fill + decode, and the
  total per lab set, over the measured renders after a warm-up;
* lab sets per second (one core);
* what parsing the same rendered set as YAML would cost with PyYAML's C
  loader, the step the shape cache takes off the per-render path;
* the whole-process wall time of ``nublado render lab`` (median of several
  cold starts).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from nublado.config import load_config  # noqa: E402
from nublado.models.image import ResolvedImage  # noqa: E402
from nublado.models.lab import LabSpecification  # noqa: E402
from nublado.models.user import UserInfo  # noqa: E402
from nublado.render.cli import find_size  # noqa: E402
from nublado.render.engine import Renderer  # noqa: E402
from nublado.render.lab import LabContextBuilder, SourceSecret  # noqa: E402

INPUTS = ROOT / "tests" / "data" / "reference" / "inputs"
ENVIRON = {
    "NUBLADO_CONTROLLER_REPOSITORY": "ghcr.io/lsst-sqre/nublado",
    "NUBLADO_CONTROLLER_TAG": "11.1.1",
    "REPERTOIRE_BASE_URL": "https://example.com/repertoire",
}


def _ms(values: list[float]) -> str:
    ordered = sorted(values)
    p95 = ordered[int(len(ordered) * 0.95)]
    return f"median {statistics.median(ordered) * 1000:.3f} ms, p95 {p95 * 1000:.3f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--renders", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--cold-starts", type=int, default=7)
    args = parser.parse_args()

    config = load_config(INPUTS / "config" / "standard.yaml", environ=ENVIRON)
    spec = LabSpecification.model_validate_json((INPUTS / "lab-specification.json").read_text())
    size = find_size(config, spec)
    plain = json.loads((INPUTS / "secrets.json").read_text())
    secrets = {
        name: SourceSecret({k: base64.b64encode(v.encode()).decode() for k, v in values.items()})
        for name, values in plain.items()
    }
    discovery = json.loads((INPUTS / "discovery.json").read_text())
    image = ResolvedImage(
        "lighthouse.ceres", "library/sketchbook", "d_2077_10_23", "sha256:1234", "Daily 2077_10_23"
    )
    base_user = json.loads((INPUTS / "users" / "rachel.json").read_text())
    total = args.warmup + args.renders
    users = []
    for i in range(total):
        data = dict(base_user)
        data.update(
            username=f"user{i:05d}",
            name=f"User Number {i}",
            uid=10000 + i,
            gid=10000 + i,
            groups=[{"name": f"user{i:05d}", "id": 10000 + i}, *base_user["groups"][1:]],
        )
        users.append(UserInfo.model_validate(data))

    builder = LabContextBuilder(config)
    renderer = Renderer(config.template_dirs)
    build_times: list[float] = []
    render_times: list[float] = []
    totals: list[float] = []
    for i, user in enumerate(users):
        start = time.perf_counter()
        context = builder.build(
            user=user,
            spec=spec,
            image=image,
            size=size,
            secrets=secrets,
            token=f"token-{i}",
            discovery=discovery,
        )
        built = time.perf_counter()
        manifests = renderer.render("lab", context)
        done = time.perf_counter()
        if i >= args.warmup:
            build_times.append(built - start)
            render_times.append(done - built)
            totals.append(done - start)
    assert len(manifests) == 12

    text = yaml.safe_dump_all(manifests, sort_keys=False)
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    parse_times = []
    for _ in range(50):
        start = time.perf_counter()
        list(yaml.load_all(text, Loader=loader))
        parse_times.append(time.perf_counter() - start)

    print(f"lab set: {len(manifests)} objects, {len(json.dumps(manifests))} bytes as JSON")
    print(f"renders measured: {len(totals)} after {args.warmup} warm-up, each a different user")
    print(f"context build:             {_ms(build_times)}")
    print(f"render + fill + decode:    {_ms(render_times)}")
    print(f"total inputs -> dicts:     {_ms(totals)}")
    print(f"lab sets per second:       {1 / statistics.median(totals):.0f} (one core)")
    print(f"for comparison, PyYAML C parse of the same set: {_ms(parse_times)}")

    command = [
        sys.executable,
        "-m",
        "nublado",
        "render",
        "lab",
        "--config",
        str(INPUTS / "config" / "standard.yaml"),
        "--user",
        str(INPUTS / "users" / "rachel.json"),
        "--spec",
        str(INPUTS / "lab-specification.json"),
        "--image",
        "lighthouse.ceres/library/sketchbook:d_2077_10_23@sha256:1234",
        "--secrets",
        str(INPUTS / "secrets.json"),
        "--discovery",
        str(INPUTS / "discovery.json"),
    ]
    env = {**os.environ, **ENVIRON}
    cold = []
    for _ in range(args.cold_starts):
        start = time.perf_counter()
        subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL)
        cold.append(time.perf_counter() - start)
    print(
        f"cold start `nublado render lab` (whole process): median "
        f"{statistics.median(cold):.3f} s, min {min(cold):.3f} s over {len(cold)} runs"
    )


if __name__ == "__main__":
    main()
