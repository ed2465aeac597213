"""Images and image collections: alias resolution by digest, listings, nodes (spec 1.11)."""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from datetime import UTC, datetime

import pytest

from nublado.config.images import ImageFilterPolicy
from nublado.images.image import RSPImage, RSPImageCollection
from nublado.images.tag import RSPImageTag, RSPImageType

REGISTRY = "lighthouse.ceres"
REPOSITORY = "library/sketchbook"


def image(tag: str, digest: str, *, alias: bool = False, size: int | None = None) -> RSPImage:
    """An image of the test repository; ``alias`` parses the tag as a declared alias."""
    parsed = RSPImageTag.alias(tag) if alias else RSPImageTag.from_str(tag)
    return RSPImage.from_tag(
        parsed, registry=REGISTRY, repository=REPOSITORY, digest=digest, size=size
    )


def tags(images: Iterable[RSPImage]) -> list[str]:
    return [each.tag for each in images]


def test_image_fields_and_references() -> None:
    daily = image("d_2077_10_23", "sha256:1234", size=12345)

    assert daily.tag == "d_2077_10_23"
    assert daily.image_type is RSPImageType.DAILY
    assert daily.display_name == "Daily 2077_10_23"
    assert daily.date == datetime(2077, 10, 23, tzinfo=UTC)
    assert (daily.size, daily.aliases, daily.alias_target, daily.nodes) == (
        12345,
        set(),
        None,
        set(),
    )
    assert daily.reference == "lighthouse.ceres/library/sketchbook:d_2077_10_23"
    assert daily.reference_with_digest == (
        "lighthouse.ceres/library/sketchbook:d_2077_10_23@sha256:1234"
    )
    assert not daily.is_possible_alias
    assert image("recommended", "sha256:1").is_possible_alias
    assert image("recommended", "sha256:1", alias=True).is_possible_alias


@pytest.mark.parametrize(
    ("alias", "target", "display_name", "cycle", "arch"),
    [
        (
            "recommended",
            "d_2077_10_23_c0045.003",
            "Recommended (Daily 2077_10_23, SAL Cycle 0045, Build 003)",
            45,
            None,
        ),
        (
            "latest",
            "r21_0_2_rsp64_stuff-amd64",
            "Latest (Release r21.0.2, RSP Build 64 [stuff]) [amd64]",
            None,
            "amd64",
        ),
        ("latest_c0040", "w_2077_45-amd64", "Latest (Weekly 2077_45) [amd64]", None, "amd64"),
        (
            "latest_weekly-arm64",
            "w_2077_45-amd64",
            "Latest Weekly (Weekly 2077_45 [amd64]) [arm64]",
            None,
            "arm64",
        ),
    ],
)
def test_resolve_alias_display_names(
    alias: str, target: str, display_name: str, cycle: int | None, arch: str | None
) -> None:
    primary = image(target, "sha256:1234")
    pointer = image(alias, "sha256:1234")

    pointer.resolve_alias(primary)

    assert pointer.image_type is RSPImageType.ALIAS
    assert pointer.alias_target == target
    assert pointer.display_name == display_name
    assert pointer.cycle == cycle
    assert pointer.architecture == arch
    assert pointer.date == primary.date
    assert pointer.version is None
    assert not pointer.semantic
    assert primary.aliases == {alias}


def test_resolve_alias_of_a_declared_alias_keeps_target_aliases() -> None:
    primary = image("d_2077_10_23_c0045.003", "sha256:1234")
    image("recommended", "sha256:1234").resolve_alias(primary)
    latest_daily = image("latest_daily_c0045", "sha256:1234", alias=True)

    latest_daily.resolve_alias(primary)

    assert latest_daily.display_name == "Latest Daily (Daily 2077_10_23, SAL Cycle 0045, Build 003)"
    assert latest_daily.aliases == {"recommended"}
    assert primary.aliases == {"recommended", "latest_daily_c0045"}


def test_resolve_alias_refuses_a_versioned_image() -> None:
    weekly = image("w_2077_46", "sha256:1")
    with pytest.raises(ValueError, match="^Can only resolve alias and unknown images"):
        weekly.resolve_alias(image("recommended", "sha256:1"))


# The one-digest end state of section 1.11, with the primary (alias target)
# and the other weekly as named.
def expected_state(primary: str, secondary: str) -> dict[str, tuple[set[str], str | None]]:
    return {
        primary: ({"recommended", "latest_weekly", secondary}, None),
        secondary: ({"recommended", "latest_weekly", primary}, None),
        "recommended": ({"latest_weekly", secondary}, primary),
        "latest_weekly": ({"recommended", secondary}, primary),
    }


def one_digest_images() -> dict[str, RSPImage]:
    return {
        "w_2077_46": image("w_2077_46", "sha256:aa"),
        "w_2077_45": image("w_2077_45", "sha256:aa"),
        "recommended": image("recommended", "sha256:aa", alias=True),
        "latest_weekly": image("latest_weekly", "sha256:aa"),
    }


def state(images: dict[str, RSPImage]) -> dict[str, tuple[set[str], str | None]]:
    return {name: (each.aliases, each.alias_target) for name, each in images.items()}


ORDERS = list(itertools.permutations(["w_2077_46", "w_2077_45", "recommended", "latest_weekly"]))


@pytest.mark.parametrize("order", ORDERS, ids="-".join)
def test_one_digest_built_at_once(order: tuple[str, ...]) -> None:
    images = one_digest_images()

    collection = RSPImageCollection(images[name] for name in order)

    # The first non-alias in input order is the primary.
    primary, secondary = [name for name in order if name.startswith("w_")]
    assert state(images) == expected_state(primary, secondary)
    assert collection.image_for_digest("sha256:aa") is images[primary]
    assert images["latest_weekly"].image_type is RSPImageType.ALIAS


@pytest.mark.parametrize("order", ORDERS, ids="-".join)
def test_one_digest_built_by_add(order: tuple[str, ...]) -> None:
    images = one_digest_images()
    collection = RSPImageCollection()

    for name in order:
        collection.add(images[name])

    # The last non-alias added is the primary: an added image takes over.
    secondary, primary = [name for name in order if name.startswith("w_")]
    assert state(images) == expected_state(primary, secondary)
    assert collection.image_for_digest("sha256:aa") is images[primary]
    assert images["recommended"].display_name == (
        f"Recommended (Weekly {primary.removeprefix('w_')})"
    )


def test_spec_end_state_in_the_spec_orders() -> None:
    images = one_digest_images()
    RSPImageCollection(images.values())
    assert state(images) == expected_state("w_2077_46", "w_2077_45")

    images = one_digest_images()
    collection = RSPImageCollection()
    for name in ("w_2077_45", "w_2077_46", "recommended", "latest_weekly"):
        collection.add(images[name])
    assert state(images) == expected_state("w_2077_46", "w_2077_45")
    assert tags(collection.all_images(hide_aliased=True)) == [
        "recommended",
        "latest_weekly",
        "w_2077_45",
    ]


def test_unresolved_aliases_link_each_other_then_resolve_when_the_image_arrives() -> None:
    recommended = image("recommended", "sha256:aa", alias=True)
    latest_weekly = image("latest_weekly", "sha256:aa")
    collection = RSPImageCollection([recommended, latest_weekly])

    assert (recommended.aliases, recommended.alias_target) == ({"latest_weekly"}, None)
    assert (latest_weekly.aliases, latest_weekly.alias_target) == ({"recommended"}, None)
    assert latest_weekly.image_type is RSPImageType.UNKNOWN  # stays unknown until resolved
    assert collection.image_for_digest("sha256:aa") is recommended

    weekly = image("w_2077_46", "sha256:aa")
    collection.add(weekly)

    assert weekly.aliases == {"recommended", "latest_weekly"}
    assert (recommended.aliases, recommended.alias_target) == ({"latest_weekly"}, "w_2077_46")
    assert (latest_weekly.aliases, latest_weekly.alias_target) == ({"recommended"}, "w_2077_46")
    assert tags(collection.all_images(hide_aliased=True)) == ["recommended", "latest_weekly"]

    newer = image("w_2077_47", "sha256:aa")
    collection.add(newer)

    assert weekly.aliases == {"recommended", "latest_weekly", "w_2077_47"}
    assert newer.aliases == {"recommended", "latest_weekly", "w_2077_46"}
    assert (recommended.aliases, recommended.alias_target) == (
        {"latest_weekly", "w_2077_46"},
        "w_2077_47",
    )
    assert recommended.display_name == "Recommended (Weekly 2077_47)"
    assert tags(collection.all_images(hide_aliased=True)) == [
        "recommended",
        "latest_weekly",
        "w_2077_46",
    ]


def test_added_alias_does_not_replace_the_unresolved_entry() -> None:
    first = image("recommended", "sha256:bb")
    collection = RSPImageCollection([first])
    assert list(collection.all_images(hide_resolved_aliases=True)) == [first]

    second = image("latest_weekly", "sha256:bb", alias=True)
    collection.add(second)

    assert second.alias_target is None
    assert collection.image_for_digest("sha256:bb") is first
    assert list(collection.all_images()) == [second, first]
    assert list(collection.all_images(hide_resolved_aliases=True)) == [second, first]

    third = image("w_2077_44", "sha256:bb")
    collection.add(third)

    assert first.alias_target == second.alias_target == "w_2077_44"
    assert third.aliases == {"recommended", "latest_weekly"}
    assert collection.image_for_digest("sha256:bb") is third
    assert list(collection.all_images(hide_resolved_aliases=True)) == [third]
    assert list(collection.all_images()) == [first, second, third]  # first is now an alias


def test_add_resolving_aliases_keeps_arch_specific_images() -> None:
    """DECISIONS.md: upstream's rebuild on add dropped arch-specific images."""
    arch = image("w_2077_45-amd64", "sha256:cc")
    pending = image("latest_weekly", "sha256:dd")
    collection = RSPImageCollection([arch, pending])

    collection.add(image("w_2077_46", "sha256:dd"))

    assert collection.image_for_tag_name("w_2077_45-amd64") is arch
    assert tags(collection.all_images(hide_arch_specific=False)) == [
        "latest_weekly",
        "w_2077_46",
        "w_2077_45-amd64",
    ]


def test_aliases_outside_the_collection_are_ignored() -> None:
    recommended = image("recommended", "sha256:ee", alias=True)
    recommended.aliases.add("latest_daily")
    latest_weekly = image("latest_weekly", "sha256:ee", alias=True)
    latest_weekly.aliases.add("latest_daily")
    collection = RSPImageCollection([recommended])

    collection.add(latest_weekly)

    assert recommended.aliases == {"latest_daily", "latest_weekly"}
    assert latest_weekly.aliases == {"latest_daily", "recommended"}


ORDERING_TAGS = [
    "w_2077_46",
    "w_2077_45",
    "w_2077_45-amd64",
    "w_2077_44",
    "w_2077_43",
    "d_2077_10_21",
]


def ordering_collection() -> tuple[RSPImageCollection, dict[str, RSPImage]]:
    images = {name: image(name, f"sha256:{index}") for index, name in enumerate(ORDERING_TAGS)}
    images["recommended"] = image("recommended", "sha256:0", alias=True)
    images["latest_weekly"] = image("latest_weekly", "sha256:0")
    images["latest_c0040"] = image("latest_c0040", "sha256:2")
    images["latest_weekly-arm64"] = image("latest_weekly-arm64", "sha256:2")
    return RSPImageCollection(images.values()), images


@pytest.mark.parametrize("reverse", [False, True])
def test_ordering_example(reverse: bool) -> None:
    _, images = ordering_collection()
    values = list(images.values())
    collection = RSPImageCollection(reversed(values) if reverse else values)

    assert tags(collection.all_images(hide_arch_specific=False)) == [
        "recommended",
        "latest_weekly",
        "latest_weekly-arm64",
        "latest_c0040",
        *ORDERING_TAGS,
    ]
    plain = [name for name in ORDERING_TAGS if "-" not in name]
    assert tags(collection.all_images()) == ["recommended", "latest_weekly", *plain]
    assert tags(collection.all_images(hide_aliased=True)) == [
        "recommended",
        "latest_weekly",
        "w_2077_45",
        "w_2077_44",
        "w_2077_43",
        "d_2077_10_21",
    ]
    assert tags(collection.all_images(hide_resolved_aliases=True)) == plain
    latest_cycle = images["latest_c0040"]
    assert (latest_cycle.cycle, latest_cycle.architecture) == (None, "amd64")
    assert latest_cycle.display_name == "Latest (Weekly 2077_45) [amd64]"
    assert images["latest_weekly-arm64"].display_name == (
        "Latest Weekly (Weekly 2077_45 [amd64]) [arm64]"
    )


def test_lookups() -> None:
    collection, images = ordering_collection()

    assert collection.image_for_tag_name("recommended") is images["recommended"]
    assert collection.image_for_tag_name("nope") is None
    assert collection.latest(RSPImageType.WEEKLY) is images["w_2077_46"]
    assert collection.latest(RSPImageType.DAILY) is images["d_2077_10_21"]
    assert collection.latest(RSPImageType.RELEASE) is None
    assert collection.image_for_digest("sha256:0") is images["w_2077_46"]  # not the alias
    assert collection.image_for_digest("sha256:nope") is None
    assert "w_2077_43" in collection
    assert len(collection) == 10


def test_hide_aliased_needs_the_alias_in_the_collection() -> None:
    weekly = image("w_2077_46", "sha256:1")
    weekly.aliases.add("nonexistent_tag")
    assert tags(RSPImageCollection([weekly]).all_images(hide_aliased=True)) == ["w_2077_46"]


def test_hide_resolved_aliases_needs_the_target_in_the_collection() -> None:
    weekly = image("w_2077_46", "sha256:1")
    recommended = image("recommended", "sha256:1", alias=True)
    RSPImageCollection([recommended, weekly])

    alone = RSPImageCollection([recommended])

    assert recommended.alias_target == "w_2077_46"
    assert tags(alone.all_images(hide_resolved_aliases=True)) == ["recommended"]


def test_cycle_drops_other_cycles_before_resolving() -> None:
    images = [
        image("recommended", "sha256:1"),
        image("recommended_c0050", "sha256:2"),
        image("w_2077_43_c0050.002", "sha256:2"),
        image("w_2077_44", "sha256:3"),
        image("w_2077_45_c0049.001", "sha256:4"),
    ]

    collection = RSPImageCollection(images, cycle=50)

    assert tags(collection.all_images()) == ["recommended_c0050", "w_2077_43_c0050.002"]
    resolved = collection.image_for_tag_name("recommended_c0050")
    assert resolved is not None
    assert resolved.display_name == "Recommended (Weekly 2077_43, SAL Cycle 0050, Build 002)"
    assert resolved.cycle == 50


def test_subset() -> None:
    collection, _ = ordering_collection()

    with_arch = collection.subset(releases=1, weeklies=3, dailies=1, remove_arch_specific=False)
    assert tags(with_arch.all_images(hide_arch_specific=False)) == [
        "w_2077_46",
        "w_2077_45",
        "w_2077_45-amd64",
        "d_2077_10_21",
    ]
    named = collection.subset(releases=1, weeklies=3, dailies=1, include={"recommended"})
    assert tags(named.all_images()) == [
        "recommended",
        "w_2077_46",
        "w_2077_45",
        "w_2077_44",
        "d_2077_10_21",
    ]
    assert tags(named.subset(weeklies=1).all_images()) == ["w_2077_46"]


def test_subset_lists_a_tag_both_newest_and_named_once() -> None:
    """DECISIONS.md: upstream listed it twice, giving duplicate menu entries."""
    collection, images = ordering_collection()

    subset = collection.subset(weeklies=2, include=["w_2077_46", "recommended", "w_2077_46"])

    assert tags(subset.all_images()) == ["recommended", "w_2077_46", "w_2077_45"]
    assert "w_2077_46" not in images["w_2077_46"].aliases  # no image aliases itself
    assert images["recommended"].aliases == {"latest_weekly"}
    assert images["recommended"].alias_target == "w_2077_46"


def test_subset_shares_image_objects() -> None:
    collection, images = ordering_collection()
    subset = collection.subset(weeklies=1)

    subset.mark_image_seen_on_node("sha256:0", "node1")

    assert subset.image_for_tag_name("w_2077_46") is images["w_2077_46"]
    assert images["w_2077_46"].nodes == {"node1"}


def alias_data(images: Iterable[RSPImage]) -> dict[str, tuple[object, ...]]:
    """What alias resolution writes on each image: type, target, aliases, name, cycle, arch."""
    return {
        each.tag: (
            each.image_type,
            each.alias_target,
            sorted(each.aliases),
            each.display_name,
            each.cycle,
            each.architecture,
        )
        for each in images
    }


def shared_digest_collection() -> tuple[RSPImageCollection, dict[str, RSPImage]]:
    """One digest with a weekly listed first (its primary), a release and two possible aliases.

    The release sorts before the weekly, so a subset that re-linked its images
    would make the release the primary and re-point the aliases at it: the
    weekly's cycle and arch are there to show what re-pointing would change.
    """
    listed = [
        image("w_2077_45_c0045.001-amd64", "sha256:1"),
        image("r23_0_0", "sha256:1"),
        image("recommended", "sha256:1", alias=True),
        image("latest_weekly", "sha256:1"),
        image("w_2077_44", "sha256:2"),
    ]
    return RSPImageCollection(listed), {each.tag: each for each in listed}


SUBSETS: list[dict[str, object]] = [
    {"releases": 1, "weeklies": 1, "include": ["recommended"], "remove_arch_specific": False},
    {"releases": 1, "include": ["recommended", "latest_weekly"]},
    {"weeklies": 1, "include": ["recommended"]},
    {"include": ["recommended"]},
]


@pytest.mark.parametrize("kwargs", SUBSETS)
def test_a_subset_leaves_the_alias_data_of_shared_images_alone(kwargs: dict[str, object]) -> None:
    collection, images = shared_digest_collection()
    before = alias_data(images.values())
    assert images["recommended"].display_name == (
        "Recommended (Weekly 2077_45, SAL Cycle 0045, Build 001) [amd64]"
    )

    subset = collection.subset(**kwargs)  # type: ignore[arg-type]
    subset.subset(releases=1, include=["recommended"])
    collection.subtract(subset)
    RSPImageCollection(reversed(images.values()))  # any collection built from its images

    assert alias_data(images.values()) == before
    assert collection.image_for_digest("sha256:1") is images["w_2077_45_c0045.001-amd64"]


@pytest.mark.parametrize(
    ("kwargs", "primary"),
    [
        # The parent's primary when the subset has it...
        (SUBSETS[0], "w_2077_45_c0045.001-amd64"),
        # ...else the subset's first non-alias...
        (SUBSETS[1], "r23_0_0"),
        # ...else its first alias, so that the digest is still prepulled.
        (SUBSETS[3], "recommended"),
    ],
)
def test_a_subset_primary_is_the_parents_when_it_can(
    kwargs: dict[str, object], primary: str
) -> None:
    collection, images = shared_digest_collection()

    subset = collection.subset(**kwargs)  # type: ignore[arg-type]

    assert subset.image_for_digest("sha256:1") is images[primary]
    remainder = subset.subtract(RSPImageCollection())
    assert tags(remainder.all_images(hide_arch_specific=False)) == [
        primary,
        *(["w_2077_44"] if "w_2077_44" in subset else []),
    ]


def test_a_node_marked_on_a_subset_is_seen_by_the_parent() -> None:
    collection, images = shared_digest_collection()
    subset = collection.subset(releases=1, include=["recommended", "latest_weekly"])

    subset.mark_image_seen_on_node("sha256:1", "node1", 4096)

    for tag in ("r23_0_0", "recommended", "latest_weekly"):
        seen = collection.image_for_tag_name(tag)
        assert seen is not None
        assert (seen.nodes, seen.size) == ({"node1"}, 4096)
    assert images["w_2077_44"].nodes == set()


def test_filter_uses_the_policy_per_type() -> None:
    collection, _ = ordering_collection()
    policy = ImageFilterPolicy.model_validate({"weekly": {"number": 2}, "daily": {"number": 0}})

    assert tags(collection.filter(policy)) == [
        "recommended",
        "latest_weekly",
        "w_2077_46",
        "w_2077_45",
        "d_2077_10_21",
    ]
    assert tags(collection.filter(policy, invert=True)) == ["w_2077_44", "w_2077_43"]


def test_subtract() -> None:
    collection, images = ordering_collection()
    other = RSPImageCollection([images["w_2077_46"], images["w_2077_45"]])

    remainder = collection.subtract(other)

    # One image per digest, the non-alias preferred; w_2077_45-amd64 is kept but hidden.
    assert tags(remainder.all_images(hide_arch_specific=False)) == [
        "w_2077_45-amd64",
        "w_2077_44",
        "w_2077_43",
        "d_2077_10_21",
    ]
    assert tags(remainder.all_images()) == ["w_2077_44", "w_2077_43", "d_2077_10_21"]


def test_subtract_keeps_an_unresolved_alias_digest() -> None:
    lone = image("latest_daily", "sha256:9")
    collection = RSPImageCollection([lone, image("w_2077_46", "sha256:1")])

    remainder = collection.subtract(RSPImageCollection([image("w_2077_46", "sha256:1")]))

    assert list(remainder.all_images()) == [lone]


def test_mark_image_seen_on_node() -> None:
    weekly = image("w_2077_46", "sha256:1")
    weekly.aliases.add("nonexistent_tag")
    recommended = image("recommended", "sha256:1", alias=True)
    other = image("w_2077_45", "sha256:2")
    collection = RSPImageCollection([recommended, weekly, other])

    collection.mark_image_seen_on_node("sha256:unknown", "node1", 123456)
    assert (weekly.nodes, recommended.nodes, other.nodes) == (set(), set(), set())

    collection.mark_image_seen_on_node("sha256:1", "node1")
    assert (weekly.nodes, weekly.size) == ({"node1"}, None)
    assert (recommended.nodes, recommended.size) == ({"node1"}, None)

    collection.mark_image_seen_on_node("sha256:1", "node2", 123456)
    assert (weekly.nodes, weekly.size) == ({"node1", "node2"}, 123456)
    assert (recommended.nodes, recommended.size) == ({"node1", "node2"}, 123456)

    collection.mark_image_seen_on_node("sha256:1", "node3", 0)  # zero is no size
    assert weekly.size == 123456
    assert other.nodes == set()


def test_a_later_image_with_the_same_tag_replaces_the_earlier() -> None:
    old = image("w_2077_46", "sha256:1")
    new = image("w_2077_46", "sha256:2")

    collection = RSPImageCollection([old, new])

    assert collection.image_for_tag_name("w_2077_46") is new
    assert len(collection) == 1


def test_the_same_image_twice_does_not_alias_itself() -> None:
    weekly = image("w_2077_46", "sha256:1")
    recommended = image("recommended", "sha256:1", alias=True)

    collection = RSPImageCollection([weekly, recommended, weekly, recommended])

    assert weekly.aliases == {"recommended"}
    assert recommended.aliases == set()
    assert tags(collection.all_images()) == ["recommended", "w_2077_46"]
