"""API models of images: exact JSON of the spawner image list and prepuller status (api.md)."""

from __future__ import annotations

import json

from reference_cases import DATA

from nublado.config.images import ImagesConfig
from nublado.images.image import RSPImage, RSPImageCollection
from nublado.images.tag import RSPImageTag
from nublado.models.images import (
    MenuImage,
    NodeImage,
    PrepulledImage,
    PrepullerImages,
    PrepullerNode,
    PrepullerStatus,
    SpawnerImages,
)

L = "lighthouse.ceres/library/sketchbook"


def image(tag: str, digest: str, *, alias: bool = False, size: int | None = None) -> RSPImage:
    parsed = RSPImageTag.alias(tag) if alias else RSPImageTag.from_str(tag)
    return RSPImage.from_tag(
        parsed,
        registry="lighthouse.ceres",
        repository="library/sketchbook",
        digest=digest,
        size=size,
    )


def standard_to_prepull() -> RSPImageCollection:
    """The standard case's prepull list, marked as the reference nodes hold it."""
    collection = RSPImageCollection(
        [
            image("recommended", "sha256:5678", alias=True),
            image("w_2077_43", "sha256:5678"),
            image("d_2077_10_23", "sha256:1234"),
        ]
    )
    collection.mark_image_seen_on_node("sha256:1234", "node1", 69105)
    collection.mark_image_seen_on_node("sha256:5678", "node1", 65537)
    collection.mark_image_seen_on_node("sha256:5678", "node2", 65537)
    return collection


def test_prepulled_image_aliases_include_the_target_and_vacuous_prepulled() -> None:
    recommended = standard_to_prepull().image_for_tag_name("recommended")
    assert recommended is not None

    assert PrepulledImage.from_rsp_image(recommended, {"node1", "node3"}).to_json() == {
        "reference": f"{L}:recommended",
        "tag": "recommended",
        "name": "Recommended (Weekly 2077_43)",
        "digest": "sha256:5678",
        "aliases": ["w_2077_43"],
        "prepulled": False,
    }
    assert PrepulledImage.from_rsp_image(recommended, set()).prepulled  # no eligible node


def test_spawner_images_omit_nulls_at_every_level() -> None:
    images = SpawnerImages(
        all=[PrepulledImage(reference=f"{L}:latest_daily", tag="latest_daily", name="latest_daily")]
    )

    assert images.to_json() == {
        "all": [
            {
                "reference": f"{L}:latest_daily",
                "tag": "latest_daily",
                "name": "latest_daily",
                "aliases": [],
                "prepulled": False,
            }
        ]
    }


def test_menu_image_json() -> None:
    entry = MenuImage(reference=f"{L}:w_2077_43@sha256:5678", name="Weekly 2077_43")
    assert entry.model_dump(mode="json") == {
        "reference": f"{L}:w_2077_43@sha256:5678",
        "name": "Weekly 2077_43",
    }


def test_prepuller_status_matches_the_api_example() -> None:
    """api.md 4.11: the standard configuration and nodes."""
    config = ImagesConfig.model_validate(
        {
            "source": {
                "type": "docker",
                "registry": "lighthouse.ceres",
                "repository": "library/sketchbook",
            },
            "recommendedTag": "recommended",
            "numReleases": 1,
            "numWeeklies": 2,
            "numDailies": 3,
            "dockerCredentialsPath": "/somewhere/secret",
        }
    )
    to_prepull = standard_to_prepull()
    eligible = {"node1", "node2"}
    prepulled: list[NodeImage] = []
    pending: list[NodeImage] = []
    for each in to_prepull.all_images(hide_resolved_aliases=True):
        row = NodeImage.from_rsp_image(each, eligible)
        (pending if row.missing else prepulled).append(row)
    status = PrepullerStatus(
        config=config,
        images=PrepullerImages(prepulled=prepulled, pending=pending),
        nodes=[
            PrepullerNode(
                name="node1", eligible=True, cached=[f"{L}:w_2077_43", f"{L}:d_2077_10_23"]
            ),
            PrepullerNode(name="node2", eligible=True, cached=[f"{L}:w_2077_43"]),
        ],
    )

    assert status.to_json() == json.loads((DATA / "prepuller" / "prepulls.json").read_text())


def test_prepuller_status_shows_a_google_source_in_snake_case() -> None:
    config = ImagesConfig.model_validate(
        {
            "source": {
                "type": "google",
                "location": "us-central1",
                "projectId": "rubin-shared-services-71ec",
                "repository": "sciplat",
                "image": "sciplat-lab",
            },
            "refreshInterval": "1h",
        }
    )
    status = PrepullerStatus(config=config, images=PrepullerImages(), nodes=[])

    dumped = status.to_json()

    assert dumped["config"]["source"] == {
        "type": "google",
        "location": "us-central1",
        "project_id": "rubin-shared-services-71ec",
        "repository": "sciplat",
        "image": "sciplat-lab",
    }
    assert dumped["config"]["refresh_interval"] == 3600.0
    assert "docker_credentials_path" not in dumped["config"]
    assert dumped["images"] == {"prepulled": [], "pending": []}
