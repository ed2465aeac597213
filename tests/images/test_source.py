"""Image sources: refresh, menus, image lookups and the spawner image list (spec 2.6-2.9, 3.9).

The registries are fakes with the clients' methods, built from JSON files:
tag to digest for Docker (the reference format), versions for Artifact
Registry. The four worked examples of section 2.9 are checked end to end.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from nublado.config.images import (
    DockerSourceConfig,
    GARSourceConfig,
    ImageFilterPolicy,
    ImagesConfig,
)
from nublado.images.image import RSPImageCollection
from nublado.images.reference import DockerReference, InvalidDockerReferenceError
from nublado.images.source import (
    DockerImageSource,
    GARImageSource,
    ImageSource,
    NodeCache,
    StaticImageSource,
    UnknownImageError,
    image_for_class,
    image_source,
    prepulled_menu_images,
)
from nublado.models.images import MenuImage
from nublado.models.lab import ImageClass

DATA = Path(__file__).resolve().parents[1] / "data"
REFERENCE = DATA / "reference"
L = "lighthouse.ceres/library/sketchbook"
GAR_HOST = "us-central1-docker.pkg.dev/rubin-shared-services-71ec/sciplat/sciplat-lab"
EMPTY_POLICY = ImageFilterPolicy()


class RegistryDownError(Exception):
    """What the fake registry raises when told to fail."""


class FakeDockerRegistry:
    """A Docker registry client over a tag -> digest mapping that counts HEAD requests."""

    def __init__(self, tags: dict[str, str]) -> None:
        self.tags = dict(tags)
        self.heads: list[str] = []
        self.failing = False

    async def list_tags(self, source: DockerSourceConfig) -> list[str]:
        return list(self.tags)

    async def get_digest(self, source: DockerSourceConfig, tag: str) -> str:
        self.heads.append(tag)
        if self.failing:
            raise RegistryDownError(tag)
        return self.tags[tag]

    async def delete_image(self, source: DockerSourceConfig, digest: str) -> None:
        raise AssertionError("an image source never deletes")


@dataclass(frozen=True)
class Version:
    """Same shape as nublado.images.gar.GARVersion."""

    tags: tuple[str, ...]
    digest: str
    size: int | None


class FakeGAR:
    """An Artifact Registry client listing the versions of one image, as the real one does."""

    def __init__(self, versions: list[dict[str, Any]]) -> None:
        self.versions = versions
        self.calls = 0

    async def list_versions(self, source: GARSourceConfig) -> list[Version]:
        self.calls += 1
        return [
            Version(tuple(entry["tags"]), entry["digest"], entry["size"])
            for entry in self.versions
            if entry["image"] == source.image
        ]


def load(path: Path) -> Any:
    return json.loads(path.read_text())


def digest(prefix: str, tail: str = "") -> str:
    """The full test digest for a prefix of the spec's tables."""
    return "sha256:" + prefix + "0" * (64 - len(prefix) - len(tail)) + tail


def node_cache_from_reference(path: Path) -> dict[str, list[tuple[str, int | None]]]:
    """Each node's cached (digest, size): the digest of the first reference that has one."""
    cache: dict[str, list[tuple[str, int | None]]] = {}
    for node, data in load(path).items():
        entries: list[tuple[str, int | None]] = []
        for cached in data.get("images", []):
            for name in cached["names"]:
                reference = DockerReference.from_str(name)
                if reference.digest:
                    entries.append((reference.digest, cached.get("size_bytes")))
                    break
        cache[node] = entries
    return cache


def config(source: dict[str, Any], **options: Any) -> ImagesConfig:
    return ImagesConfig.model_validate({"source": source, **options})


def menu(entries: Iterable[MenuImage]) -> list[tuple[str, str]]:
    return [(entry.name, entry.reference) for entry in entries]


def listing(collection: RSPImageCollection) -> list[str]:
    return [image.tag for image in collection.all_images(hide_arch_specific=False)]


STANDARD_SOURCE = {
    "type": "docker",
    "registry": "lighthouse.ceres",
    "repository": "library/sketchbook",
}


def standard_config() -> ImagesConfig:
    return config(
        STANDARD_SOURCE, recommendedTag="recommended", numReleases=1, numWeeklies=2, numDailies=3
    )


async def standard() -> tuple[DockerImageSource, FakeDockerRegistry, RSPImageCollection]:
    registry = FakeDockerRegistry(load(REFERENCE / "inputs" / "registry" / "docker.json"))
    source = DockerImageSource(standard_config(), registry)
    cache = node_cache_from_reference(REFERENCE / "inputs" / "nodes" / "standard.json")
    to_prepull = await source.update_images(cache)
    return source, registry, to_prepull


# (a) standard: Docker


async def test_standard_to_prepull_and_head_requests() -> None:
    _, registry, to_prepull = await standard()

    assert listing(to_prepull) == ["recommended", "w_2077_43", "d_2077_10_23"]
    assert sorted(registry.heads) == ["d_2077_10_23", "recommended", "w_2077_43"]
    recommended = to_prepull.image_for_tag_name("recommended")
    assert recommended is not None
    assert recommended.alias_target == "w_2077_43"
    assert recommended.nodes == {"node1", "node2"}
    daily = to_prepull.image_for_tag_name("d_2077_10_23")
    assert daily is not None
    assert (daily.nodes, daily.size) == ({"node1"}, 69105)


async def test_standard_menus() -> None:
    source, _, to_prepull = await standard()

    assert menu(prepulled_menu_images(to_prepull, "recommended", {"node1", "node2"})) == [
        ("Recommended (Weekly 2077_43)", f"{L}:recommended@sha256:5678"),
    ]
    assert menu(source.menu_images(EMPTY_POLICY)) == [
        ("Recommended (Weekly 2077_43)", f"{L}:recommended@sha256:5678"),
        ("Weekly 2077_43", f"{L}:w_2077_43@sha256:5678"),
        ("Daily 2077_10_23", f"{L}:d_2077_10_23@sha256:1234"),
        ("latest_weekly", f"{L}:latest_weekly"),
        ("latest_daily", f"{L}:latest_daily"),
    ]


async def test_standard_spawner_images_match_the_reference() -> None:
    source, _, to_prepull = await standard()

    images = source.spawner_images(to_prepull, {"node1", "node2"})

    expected = load(REFERENCE / "expected" / "images" / "standard.json")
    assert images.to_json() == expected
    assert [entry.model_dump(mode="json", exclude_none=True) for entry in images.all] == (
        expected["all"]
    )


async def test_dropdown_follows_the_policy() -> None:
    source, _, _ = await standard()
    policy = ImageFilterPolicy.model_validate(
        {"daily": {"number": 0}, "weekly": {"cutoffBuild": 1}}
    )
    only_aliases = ImageFilterPolicy.model_validate({"weekly": {"cutoffDate": "2078-01-01"}})

    assert [name for name, _ in menu(source.menu_images(policy))] == [
        "Recommended (Weekly 2077_43)",
        "Weekly 2077_43",
        "Daily 2077_10_23",
        "latest_weekly",
        "latest_daily",
    ]
    assert [name for name, _ in menu(source.menu_images(only_aliases))] == [
        "Recommended (Weekly 2077_43)",
        "Daily 2077_10_23",
        "latest_weekly",
        "latest_daily",
    ]


async def test_docker_digests_are_reread_on_every_refresh() -> None:
    source, registry, _ = await standard()
    registry.tags["recommended"] = "sha256:1234"  # the tag moved to the daily
    registry.heads.clear()

    to_prepull = await source.update_images({})

    assert len(registry.heads) == 3
    recommended = to_prepull.image_for_tag_name("recommended")
    assert recommended is not None
    assert recommended.display_name == "Recommended (Daily 2077_10_23)"
    assert recommended.nodes == set()  # node presence comes from this refresh only


@pytest.mark.parametrize(("releases", "target"), [(1, "r23_0_0"), (0, "w_2077_43")])
async def test_docker_alias_targets_agree_with_lookups_by_digest(
    releases: int, target: str
) -> None:
    """The Docker source resolves only the subset, each refresh into images of its own.

    So the alias target may depend on what is prepulled (spec 2.6: aliases
    resolve against subset members only), but never disagrees with the image
    a digest gives, and a refresh never renames the images of the last one.
    """
    digest = "sha256:" + "7" * 64
    registry = FakeDockerRegistry({"w_2077_43": digest, "r23_0_0": digest, "recommended": digest})
    source = DockerImageSource(
        config(STANDARD_SOURCE, numReleases=releases, numWeeklies=1, numDailies=0), registry
    )

    first = await source.update_images({})
    second = await source.update_images({"node1": [(digest, None)]})

    recommended = await source.image_for_tag_name("recommended")
    by_digest = await source.image_for_reference(DockerReference.from_str(f"{L}@{digest}"))
    assert (recommended.alias_target, by_digest.tag) == (target, target)
    assert second.image_for_tag_name("recommended") is recommended
    assert recommended.nodes == {"node1"}
    earlier = first.image_for_tag_name("recommended")
    assert earlier is not None
    assert earlier is not recommended
    assert (earlier.alias_target, earlier.nodes) == (target, set())


class SlowDockerRegistry(FakeDockerRegistry):
    """Digest lookups that take a while, recording how many run at once."""

    def __init__(self, tags: dict[str, str]) -> None:
        super().__init__(tags)
        self.in_flight = 0
        self.most_in_flight = 0

    async def get_digest(self, source: DockerSourceConfig, tag: str) -> str:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        await asyncio.sleep(0.01)
        self.in_flight -= 1
        return await super().get_digest(source, tag)


async def test_docker_digests_are_looked_up_in_parallel_within_a_bound() -> None:
    weeklies = {f"w_2077_{week:02d}": f"sha256:{week:04x}" for week in range(1, 21)}
    registry = SlowDockerRegistry(weeklies)
    source = DockerImageSource(config(STANDARD_SOURCE, pin=list(weeklies)), registry)

    to_prepull = await source.update_images({})

    assert len(to_prepull) == 20
    assert sorted(registry.heads) == sorted(weeklies)
    assert registry.most_in_flight == 8


async def test_a_failed_refresh_keeps_the_previous_images() -> None:
    source, registry, _ = await standard()
    registry.tags["w_2077_43"] = "sha256:9999"
    registry.failing = True

    with pytest.raises(RegistryDownError):
        await source.update_images({})

    assert (await source.image_for_tag_name("w_2077_43")).digest == "sha256:5678"
    assert len(source.prepulled_images(set())) == 5


@pytest.mark.parametrize(
    ("reference", "tag", "digest", "heads"),
    [
        # Resolved by tag: no request.
        (f"{L}:recommended", "recommended", "sha256:5678", 0),
        # A known digest gives the digest's primary image, whatever the tag says.
        (f"{L}:latest_weekly@sha256:5678", "w_2077_43", "sha256:5678", 0),
        (f"{L}@sha256:1234", "d_2077_10_23", "sha256:1234", 0),
        # A listed but unresolved tag costs a HEAD, unless the digest is given.
        (f"{L}:latest_daily", "latest_daily", "sha256:1234", 1),
        (f"{L}:w_2077_44-amd64@sha256:abcd", "w_2077_44-amd64", "sha256:abcd", 0),
    ],
)
async def test_docker_image_for_reference(
    reference: str, tag: str, digest: str, heads: int
) -> None:
    source, registry, _ = await standard()
    registry.heads.clear()

    image = await source.image_for_reference(DockerReference.from_str(reference))

    assert (image.tag, image.digest) == (tag, digest)
    assert len(registry.heads) == heads


@pytest.mark.parametrize(
    ("reference", "error", "message"),
    [
        (
            "lighthouse.ceres/library/other:recommended",
            UnknownImageError,
            'Docker reference "lighthouse.ceres/library/other:recommended" not found',
        ),
        (
            "elsewhere.example/library/sketchbook:recommended",
            UnknownImageError,
            'Docker reference "elsewhere.example/library/sketchbook:recommended" not found',
        ),
        (f"{L}:w_2099_01", UnknownImageError, f'Docker reference "{L}:w_2099_01" not found'),
        (f"{L}", InvalidDockerReferenceError, f'Docker reference "{L}" has no tag'),
        (
            f"{L}@sha256:ffff",
            InvalidDockerReferenceError,
            f'Docker reference "{L}@sha256:ffff" has no tag',
        ),
    ],
)
async def test_docker_image_for_reference_errors(
    reference: str, error: type[Exception], message: str
) -> None:
    source, _, _ = await standard()

    with pytest.raises(error) as caught:
        await source.image_for_reference(DockerReference.from_str(reference))

    assert str(caught.value) == message


async def test_error_types_for_the_api() -> None:
    assert UnknownImageError.error == "unknown_image"
    assert InvalidDockerReferenceError.error == "invalid_docker_reference"


async def test_docker_image_for_tag_name() -> None:
    source, registry, _ = await standard()
    registry.heads.clear()

    resolved = await source.image_for_tag_name("w_2077_43")
    assert (resolved.digest, registry.heads) == ("sha256:5678", [])

    listed = await source.image_for_tag_name("latest_weekly")
    assert (listed.digest, listed.display_name, registry.heads) == (
        "sha256:5678",
        "latest_weekly",
        ["latest_weekly"],
    )

    with pytest.raises(UnknownImageError, match=r'^Docker tag "w_2099_01" not found$'):
        await source.image_for_tag_name("w_2099_01")


async def test_mark_prepulled_marks_the_image_and_its_aliases() -> None:
    source, _, to_prepull = await standard()
    daily = to_prepull.image_for_tag_name("d_2077_10_23")
    assert daily is not None

    source.mark_prepulled(daily, "node2")

    assert daily.nodes == {"node1", "node2"}
    assert menu(prepulled_menu_images(to_prepull, "recommended", {"node1", "node2"})) == [
        ("Recommended (Weekly 2077_43)", f"{L}:recommended@sha256:5678"),
        ("Daily 2077_10_23", f"{L}:d_2077_10_23@sha256:1234"),
    ]


@pytest.mark.parametrize(
    ("image_class", "tag"),
    [
        (ImageClass.RECOMMENDED, "recommended"),
        (ImageClass.LATEST_WEEKLY, "w_2077_43"),
        (ImageClass.LATEST_DAILY, "d_2077_10_23"),
    ],
)
async def test_image_for_class(image_class: ImageClass, tag: str) -> None:
    _, _, to_prepull = await standard()

    assert image_for_class(to_prepull, image_class, "recommended").tag == tag


@pytest.mark.parametrize(
    ("image_class", "recommended_tag", "message"),
    [
        (ImageClass.LATEST_RELEASE, "recommended", "No latest-release image found"),
        (ImageClass.RECOMMENDED, "recommended_c0050", "No recommended image found"),
    ],
)
async def test_image_for_class_errors(
    image_class: ImageClass, recommended_tag: str, message: str
) -> None:
    _, _, to_prepull = await standard()

    with pytest.raises(UnknownImageError) as caught:
        image_for_class(to_prepull, image_class, recommended_tag)

    assert str(caught.value) == message


@pytest.mark.parametrize(
    ("image_class", "message"),
    [
        (ImageClass.RECOMMENDED, "No recommended image found"),
        (ImageClass.LATEST_RELEASE, "No latest-release image found"),
        (ImageClass.LATEST_WEEKLY, "No latest-weekly image found"),
        (ImageClass.LATEST_DAILY, "No latest-daily image found"),
    ],
)
def test_image_for_class_in_an_empty_list(image_class: ImageClass, message: str) -> None:
    with pytest.raises(UnknownImageError, match=f"^{message}$"):
        image_for_class(RSPImageCollection(), image_class, "recommended")


# (b) cycle: Docker

CYCLE_OPTIONS: dict[str, Any] = {
    "recommendedTag": "recommended_c0050",
    "aliasTags": ["latest_c0050"],
    "cycle": 50,
    "numReleases": 0,
    "numWeeklies": 3,
    "numDailies": 0,
}
CYCLE_NODES: NodeCache = {"node1": [(digest(p), None) for p in ("49d6", "b14b", "9401")]}
WEEKLY_43 = "Weekly 2077_43 (SAL Cycle 0050, Build {})"
CYCLE_RECOMMENDED = "Recommended (Weekly 2077_43, SAL Cycle 0050, Build 002)"


async def test_cycle_docker() -> None:
    registry = FakeDockerRegistry(load(DATA / "registry" / "docker-cycle.json"))
    source = DockerImageSource(config(STANDARD_SOURCE, **CYCLE_OPTIONS), registry)

    to_prepull = await source.update_images(CYCLE_NODES)

    assert listing(to_prepull) == [
        "recommended_c0050",
        "w_2077_43_c0050.004",
        "w_2077_43_c0050.003",
        "w_2077_43_c0050.002",
    ]
    assert len(registry.heads) == 4
    assert menu(prepulled_menu_images(to_prepull, "recommended_c0050", {"node1"})) == [
        (CYCLE_RECOMMENDED, f"{L}:recommended_c0050@{digest('49d6')}"),
        (WEEKLY_43.format("004"), f"{L}:w_2077_43_c0050.004@{digest('b14b')}"),
        (WEEKLY_43.format("003"), f"{L}:w_2077_43_c0050.003@{digest('9401')}"),
    ]
    assert menu(source.menu_images(EMPTY_POLICY)) == [
        (CYCLE_RECOMMENDED, f"{L}:recommended_c0050@{digest('49d6')}"),
        ("Latest (SAL Cycle 0050)", f"{L}:latest_c0050"),
        (WEEKLY_43.format("004"), f"{L}:w_2077_43_c0050.004@{digest('b14b')}"),
        (WEEKLY_43.format("003"), f"{L}:w_2077_43_c0050.003@{digest('9401')}"),
        (WEEKLY_43.format("002"), f"{L}:w_2077_43_c0050.002@{digest('49d6')}"),
        (WEEKLY_43.format("001"), f"{L}:w_2077_43_c0050.001"),
        (
            "Experimental Weekly 2077_41 (SAL Cycle 0050, Build 002) [testing]",
            f"{L}:exp_w_2077_41_c0050.002_testing",
        ),
    ]
    rows = [
        (row.tag, row.digest is not None, row.aliases, row.prepulled)
        for row in source.prepulled_images({"node1"})
    ]
    assert rows == [
        ("recommended_c0050", True, ["w_2077_43_c0050.002"], True),
        ("latest_c0050", False, [], False),
        ("w_2077_43_c0050.004", True, [], True),
        ("w_2077_43_c0050.003", True, [], True),
        ("w_2077_43_c0050.002", True, ["recommended_c0050"], True),
        ("w_2077_43_c0050.001", False, [], False),
        ("exp_w_2077_41_c0050.002_testing", False, [], False),
    ]
    images = source.spawner_images(to_prepull, {"node1"}).to_json()
    assert images["latest_weekly"]["tag"] == "w_2077_43_c0050.004"
    assert "latest_daily" not in images
    assert "latest_release" not in images


# (c) gar: before and after prepulling

GAR_SOURCE = {
    "type": "google",
    "location": "us-central1",
    "projectId": "rubin-shared-services-71ec",
    "repository": "sciplat",
    "image": "sciplat-lab",
}
GAR_DROPDOWN = [
    ("Recommended (Weekly 2077_43)", f"{GAR_HOST}:recommended@{digest('49d6')}"),
    ("Latest Weekly (Weekly 2077_43)", f"{GAR_HOST}:latest_weekly@{digest('49d6')}"),
    ("Weekly 2077_43", f"{GAR_HOST}:w_2077_43@{digest('49d6')}"),
    ("Weekly 2077_42", f"{GAR_HOST}:w_2077_42@{digest('5151', 'b9')}"),
    ("Weekly 2077_41", f"{GAR_HOST}:w_2077_41@{digest('a02d')}"),
    ("Experimental Weekly 2077_41 [testing]", f"{GAR_HOST}:exp_w_2077_41_testing@{digest('9c57')}"),
]
GAR_ALIASES = {
    "recommended": ["latest_weekly", "w_2077_43"],
    "latest_weekly": ["recommended", "w_2077_43"],
    "w_2077_43": ["latest_weekly", "recommended"],
}


async def test_gar_before_and_after_prepulling() -> None:
    client = FakeGAR(load(DATA / "registry" / "gar.json"))
    source = GARImageSource(
        config(GAR_SOURCE, recommendedTag="recommended", numReleases=1, numWeeklies=2), client
    )
    nodes = {"node1", "node2"}

    to_prepull = await source.update_images({"node1": [], "node2": []})

    assert client.calls == 1
    assert listing(to_prepull) == ["recommended", "w_2077_43", "w_2077_42"]
    assert menu(source.menu_images(EMPTY_POLICY)) == GAR_DROPDOWN
    assert menu(prepulled_menu_images(to_prepull, "recommended", nodes)) == GAR_DROPDOWN[:1]
    before = source.prepulled_images(nodes)
    assert [(row.tag, row.aliases, row.prepulled) for row in before] == [
        (tag, GAR_ALIASES.get(tag, []), False)
        for tag in ("recommended", "latest_weekly", "w_2077_43", "w_2077_42", "w_2077_41")
    ] + [("exp_w_2077_41_testing", [], False)]
    assert [row.name for row in before] == [name for name, _ in GAR_DROPDOWN]
    assert [row.reference for row in before] == [ref.split("@")[0] for _, ref in GAR_DROPDOWN]

    # What the prepuller does: each node pulls what it misses, one image per digest.
    missing = to_prepull.subtract(RSPImageCollection())
    assert [image.tag for image in missing.all_images()] == ["w_2077_43", "w_2077_42"]
    for node in sorted(nodes):
        for image in missing.all_images():
            source.mark_prepulled(image, node)

    assert menu(source.menu_images(EMPTY_POLICY)) == GAR_DROPDOWN
    assert menu(prepulled_menu_images(to_prepull, "recommended", nodes)) == [
        GAR_DROPDOWN[0],
        GAR_DROPDOWN[3],
    ]
    assert [(row.tag, row.prepulled) for row in source.prepulled_images(nodes)] == [
        ("recommended", True),
        ("latest_weekly", True),
        ("w_2077_43", True),
        ("w_2077_42", True),
        ("w_2077_41", False),
        ("exp_w_2077_41_testing", False),
    ]
    images = source.spawner_images(to_prepull, nodes)
    assert images.latest_weekly is not None
    assert images.latest_weekly.tag == "w_2077_43"
    assert images.recommended is not None
    assert images.recommended.aliases == ["latest_weekly", "w_2077_43"]
    assert images.recommended.digest == digest("49d6")


@pytest.mark.parametrize(
    ("reference", "tag"),
    [
        (f"{GAR_HOST}:latest_weekly", "latest_weekly"),
        (f"{GAR_HOST}:anything@{digest('49d6')}", "w_2077_43"),
        (f"{GAR_HOST}@{digest('5151', 'b9')}", "w_2077_42"),
    ],
)
async def test_gar_image_for_reference(reference: str, tag: str) -> None:
    source = GARImageSource(config(GAR_SOURCE), FakeGAR(load(DATA / "registry" / "gar.json")))
    await source.update_images({})

    image = await source.image_for_reference(DockerReference.from_str(reference))

    assert image.tag == tag
    assert image.size is not None  # the listing's size


@pytest.mark.parametrize(
    ("reference", "error", "message"),
    [
        (
            f"{GAR_HOST}:bogus",
            UnknownImageError,
            f'Docker reference "{GAR_HOST}:bogus" not found',
        ),
        (
            f"{GAR_HOST}:w_2077_43@sha256:ffff",
            UnknownImageError,
            f'Docker reference "{GAR_HOST}:w_2077_43@sha256:ffff" not found',
        ),
        (
            "us-central1-docker.pkg.dev/other/sciplat/sciplat-lab:w_2077_43",
            UnknownImageError,
            'Docker reference "us-central1-docker.pkg.dev/other/sciplat/sciplat-lab:w_2077_43"'
            " not found",
        ),
        (GAR_HOST, InvalidDockerReferenceError, f'Docker reference "{GAR_HOST}" has no tag'),
    ],
)
async def test_gar_image_for_reference_errors(
    reference: str, error: type[Exception], message: str
) -> None:
    source = GARImageSource(config(GAR_SOURCE), FakeGAR(load(DATA / "registry" / "gar.json")))
    await source.update_images({})

    with pytest.raises(error) as caught:
        await source.image_for_reference(DockerReference.from_str(reference))

    assert str(caught.value) == message


async def test_gar_image_for_tag_name() -> None:
    source = GARImageSource(config(GAR_SOURCE), FakeGAR(load(DATA / "registry" / "gar.json")))
    await source.update_images({})

    assert (await source.image_for_tag_name("w_2077_41")).digest == digest("a02d")
    with pytest.raises(UnknownImageError, match=r'^Docker tag "bogus" not found$'):
        await source.image_for_tag_name("bogus")  # a tag of another image


# (d) gar-cycle


async def test_gar_cycle() -> None:
    source_config = dict(GAR_SOURCE, projectId="lighthouse-71ec", repository="library")
    source_config["image"] = "sketchbook"
    host = "us-central1-docker.pkg.dev/lighthouse-71ec/library/sketchbook"
    source = GARImageSource(
        config(
            source_config,
            cycle=50,
            recommendedTag="recommended_c0050",
            numReleases=0,
            numWeeklies=3,
            numDailies=0,
        ),
        FakeGAR(load(DATA / "registry" / "gar-cycle.json")),
    )

    to_prepull = await source.update_images(CYCLE_NODES)

    latest = "Latest (Weekly 2077_43, SAL Cycle 0050, Build 004)"
    assert listing(to_prepull) == [
        "recommended_c0050",
        "w_2077_43_c0050.004",
        "w_2077_43_c0050.003",
        "w_2077_43_c0050.002",
    ]
    assert menu(prepulled_menu_images(to_prepull, "recommended_c0050", {"node1"})) == [
        (CYCLE_RECOMMENDED, f"{host}:recommended_c0050@{digest('49d6')}"),
        (WEEKLY_43.format("004"), f"{host}:w_2077_43_c0050.004@{digest('b14b')}"),
        (WEEKLY_43.format("003"), f"{host}:w_2077_43_c0050.003@{digest('9401')}"),
    ]
    assert menu(source.menu_images(EMPTY_POLICY)) == [
        (CYCLE_RECOMMENDED, f"{host}:recommended_c0050@{digest('49d6')}"),
        (latest, f"{host}:latest_c0050@{digest('b14b')}"),
        (WEEKLY_43.format("004"), f"{host}:w_2077_43_c0050.004@{digest('b14b')}"),
        (WEEKLY_43.format("003"), f"{host}:w_2077_43_c0050.003@{digest('9401')}"),
        (WEEKLY_43.format("002"), f"{host}:w_2077_43_c0050.002@{digest('49d6')}"),
        (WEEKLY_43.format("001"), f"{host}:w_2077_43_c0050.001@{digest('7d89')}"),
        (
            "Experimental Weekly 2077_41 (SAL Cycle 0050, Build 002) [testing]",
            f"{host}:exp_w_2077_41_c0050.002_testing@{digest('9c57')}",
        ),
    ]
    rows = [(row.tag, row.aliases, row.prepulled) for row in source.prepulled_images({"node1"})]
    assert rows == [
        ("recommended_c0050", ["w_2077_43_c0050.002"], True),
        ("latest_c0050", ["w_2077_43_c0050.004"], True),
        ("w_2077_43_c0050.004", ["latest_c0050"], True),
        ("w_2077_43_c0050.003", [], True),
        ("w_2077_43_c0050.002", ["recommended_c0050"], True),
        ("w_2077_43_c0050.001", [], False),
        ("exp_w_2077_41_c0050.002_testing", [], False),
    ]


# The static source (our extension)

STATIC_SOURCE = {
    "type": "static",
    "registry": "lighthouse.ceres",
    "repository": "library/sketchbook",
    "tags": load(REFERENCE / "inputs" / "registry" / "docker.json"),
}


async def test_static_source_knows_every_digest() -> None:
    source = StaticImageSource(config(STATIC_SOURCE))
    cache = node_cache_from_reference(REFERENCE / "inputs" / "nodes" / "standard.json")

    to_prepull = await source.update_images(cache)

    assert listing(to_prepull) == ["recommended", "w_2077_43", "d_2077_10_23"]
    assert menu(source.menu_images(EMPTY_POLICY)) == [
        ("Recommended (Weekly 2077_43)", f"{L}:recommended@sha256:5678"),
        ("Latest Weekly (Weekly 2077_43)", f"{L}:latest_weekly@sha256:5678"),
        ("Latest Daily (Daily 2077_10_23)", f"{L}:latest_daily@sha256:1234"),
        ("Weekly 2077_43", f"{L}:w_2077_43@sha256:5678"),
        ("Daily 2077_10_23", f"{L}:d_2077_10_23@sha256:1234"),
    ]
    rows = [(row.tag, row.aliases, row.prepulled) for row in source.prepulled_images({"node2"})]
    assert rows == [
        ("recommended", ["latest_weekly", "w_2077_43"], True),
        ("latest_weekly", ["recommended", "w_2077_43"], True),
        ("latest_daily", ["d_2077_10_23"], False),
        ("w_2077_43", ["latest_weekly", "recommended"], True),
        ("d_2077_10_23", ["latest_daily"], False),
    ]
    image = await source.image_for_reference(DockerReference.from_str(f"{L}:latest_daily"))
    assert image.digest == "sha256:1234"
    with pytest.raises(UnknownImageError, match=r'^Docker tag "w_2077_44" not found$'):
        await source.image_for_tag_name("w_2077_44")


ONE_DIGEST = "sha256:" + "7" * 64


@pytest.mark.parametrize(("releases", "weeklies"), [(1, 1), (1, 0), (0, 1), (0, 0)])
async def test_static_source_names_an_alias_whatever_is_prepulled(
    releases: int, weeklies: int
) -> None:
    """A weekly, a release and ``recommended`` on one digest: the listing's first is the target.

    Building the prepull subset used to re-link the images it shares with the
    full collection, re-pointing ``recommended`` at the release whenever
    releases were prepulled, while ``image_for_digest`` still chose the weekly.
    """
    tags = {"w_2077_43": ONE_DIGEST, "r23_0_0": ONE_DIGEST, "recommended": ONE_DIGEST}
    source = StaticImageSource(
        config(
            dict(STATIC_SOURCE, tags=tags),
            numReleases=releases,
            numWeeklies=weeklies,
            numDailies=0,
        )
    )

    for _ in range(2):  # the second refresh builds a subset over a fresh collection again
        to_prepull = await source.update_images({"node1": [(ONE_DIGEST, None)]})

        assert menu(source.menu_images(EMPTY_POLICY)) == [
            ("Recommended (Weekly 2077_43)", f"{L}:recommended@{ONE_DIGEST}"),
            ("Release r23.0.0", f"{L}:r23_0_0@{ONE_DIGEST}"),
            ("Weekly 2077_43", f"{L}:w_2077_43@{ONE_DIGEST}"),
        ]
        by_digest = await source.image_for_reference(DockerReference.from_str(f"{L}@{ONE_DIGEST}"))
        recommended = await source.image_for_tag_name("recommended")
        assert (by_digest.tag, recommended.alias_target) == ("w_2077_43", "w_2077_43")
        assert to_prepull.image_for_tag_name("recommended") is recommended
        assert menu(prepulled_menu_images(to_prepull, "recommended", {"node1"}))[0] == (
            "Recommended (Weekly 2077_43)",
            f"{L}:recommended@{ONE_DIGEST}",
        )

        # A prepull marks the full collection; the prepull list sees it, names unchanged.
        source.mark_prepulled(by_digest, "node2")
        for image in to_prepull.all_images():
            assert image.nodes == {"node1", "node2"}
        assert recommended.display_name == "Recommended (Weekly 2077_43)"


@pytest.mark.parametrize(
    "bad", ["5678", "sha256:", "SHA256:abcd", "sha256:ab cd", ":abcd", "sha256:abcd\n"]
)
def test_static_source_refuses_a_malformed_digest(bad: str) -> None:
    with pytest.raises(ValidationError, match="not an image digest"):
        config(dict(STATIC_SOURCE, tags={"w_2077_43": bad}))


@pytest.mark.parametrize("bad", ["", "-amd64", ".hidden", "a b", "a:b", "x" * 129, "w_2077_43\n"])
def test_static_source_refuses_a_malformed_tag(bad: str) -> None:
    with pytest.raises(ValidationError, match="not a Docker tag"):
        config(dict(STATIC_SOURCE, tags={bad: "sha256:5678"}))


def test_static_source_accepts_oci_digests_and_camel_case() -> None:
    parsed = config(
        {"type": "static", "repository": "r", "tags": {"a": "sha256:0a", "b": "sha512+x.y:A_b="}}
    )
    assert parsed.source.model_dump(mode="json") == {
        "type": "static",
        "registry": "docker.io",
        "repository": "r",
        "tags": {"a": "sha256:0a", "b": "sha512+x.y:A_b="},
    }


def test_image_source_picks_the_kind_for_the_config() -> None:
    docker = FakeDockerRegistry({})
    gar = FakeGAR([])
    chosen: list[ImageSource] = [
        image_source(standard_config(), docker=docker),
        image_source(config(GAR_SOURCE), gar=gar),
        image_source(config(STATIC_SOURCE)),
    ]
    assert [type(each) for each in chosen] == [
        DockerImageSource,
        GARImageSource,
        StaticImageSource,
    ]
    with pytest.raises(TypeError, match="needs a Docker registry client"):
        image_source(standard_config())
    with pytest.raises(TypeError, match="needs a static source"):
        StaticImageSource(standard_config())


@pytest.mark.parametrize("kind", ["google", "static"])
async def test_listed_sources_keep_their_size_when_nodes_report_one(kind: str) -> None:
    if kind == "google":
        source: ImageSource = GARImageSource(
            config(GAR_SOURCE), FakeGAR(load(DATA / "registry" / "gar.json"))
        )
    else:
        source = StaticImageSource(config(STATIC_SOURCE))
    listed = {"google": 1001, "static": None}[kind]
    digest_43 = {"google": digest("49d6"), "static": "sha256:5678"}[kind]

    to_prepull = await source.update_images({"node1": [(digest_43, 99)]})

    image = to_prepull.image_for_tag_name("w_2077_43")
    assert image is not None
    assert (image.nodes, image.size) == ({"node1"}, listed)
