"""docs/operations.md lists exactly the metrics the controller registers.

The guide's metrics table is what operators build dashboards and alerts
from; a metric added, renamed or relabelled without it fails here.
"""

from __future__ import annotations

import re
from pathlib import Path

from prometheus_client.metrics import MetricWrapperBase

from nublado.metrics import JOB_OUTCOMES, SPAWN_OUTCOMES, Metrics

ROOT = Path(__file__).resolve().parents[1]
GUIDE = ROOT / "docs" / "operations.md"

# Prometheus' exposition name of a metric: counters gain ``_total``.
_SUFFIX = {"counter": "_total", "gauge": "", "histogram": ""}


def _documented() -> dict[str, tuple[str, tuple[str, ...], str]]:
    """Name -> (type, label names, meaning) from the guide's metrics table."""
    text = GUIDE.read_text(encoding="utf-8")
    table = text[text.index("| metric | type | labels | meaning |") :].split("\n\n")[0]
    rows: dict[str, tuple[str, tuple[str, ...], str]] = {}
    for line in table.splitlines()[2:]:
        cells = re.split(r"(?<!\\)\|", line.strip().strip("|"))  # a cell may hold ``\|``
        name, kind, labels, meaning = (cell.strip() for cell in cells)
        rows[name.strip("`")] = (kind, tuple(re.findall(r"`([^`]+)`", labels)), meaning)
    return rows


def _registered() -> dict[str, tuple[str, tuple[str, ...]]]:
    """Name -> (type, label names) of every metric a controller registers."""
    metrics = Metrics()
    found: dict[str, tuple[str, tuple[str, ...]]] = {}
    for metric in vars(metrics).values():
        if isinstance(metric, MetricWrapperBase):
            kind = str(metric._type)  # prometheus_client keeps these two only privately
            labels = tuple(metric._labelnames)
            found[metric._name + _SUFFIX[kind]] = (kind, labels)
    return found


def test_the_guide_lists_every_registered_metric_with_its_type_and_labels() -> None:
    documented = {name: (kind, labels) for name, (kind, labels, _) in _documented().items()}

    assert documented == _registered()


def test_the_registry_holds_nothing_the_metrics_class_does_not_name() -> None:
    metrics = Metrics()
    exported = {family.name for family in metrics.registry.collect()}

    assert exported == {name.removesuffix("_total") for name in _registered()}


def test_the_guide_names_every_outcome() -> None:
    rows = _documented()

    for name, outcomes in (
        ("nublado_spawns_total", SPAWN_OUTCOMES),
        ("nublado_job_runs_total", JOB_OUTCOMES),
    ):
        meaning = rows[name][2]
        assert [o for o in outcomes if f"`{o}`" not in meaning] == [], name


def _slugs(markdown: str) -> set[str]:
    """GitHub's anchors for a document's headings (fenced code left out)."""
    text = re.sub(r"^```.*?^```", "", markdown, flags=re.M | re.S)
    headings = re.findall(r"^#+ (.+)$", text, flags=re.M)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


def test_every_link_of_the_guide_resolves() -> None:
    text = GUIDE.read_text(encoding="utf-8")
    readme = _slugs((ROOT / "README.md").read_text(encoding="utf-8"))

    broken = []
    for link in re.findall(r"\]\(([^)\s]+)\)", text):
        target, _, anchor = link.partition("#")
        if not target:
            ok = anchor in _slugs(text)
        elif target == "../README.md":
            ok = not anchor or anchor in readme
        else:
            ok = (GUIDE.parent / target).exists()
        if not ok:
            broken.append(link)

    assert broken == []
