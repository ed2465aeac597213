"""Tag collections, priority ordering, subsets and filter policies (images-tools.md 1.9-1.10)."""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nublado.config.images import ImageFilterPolicy
from nublado.images.collection import (
    RSPImageTagCollection,
    filter_for_type,
    parse_semantic_version,
    sort_tags,
)
from nublado.images.tag import RSPImageTag, RSPImageType, SemanticVersion, clear_parse_caches

# images-tools.md 1.10: the 20-tag collection, in its arch-inclusive order.
TWENTY = [
    "r21_0_1",
    "r20_0_1_c0027.001",
    "w_2077_46",
    "w_2077_46-amd64",
    "w_2077_45",
    "w_2077_44",
    "w_2077_43",
    "w_2077_42",
    "w_2077_40_c0027.001",
    "w_2077_40_c0026.001",
    "w_2077_40_c0026.001-amd64",
    "d_2077_10_21",
    "d_2077_10_20",
    "r22_0_1_rc1-arm64",
    "r22_0_0_rc1",
    "exp_w_2021_22",
    "recommended_c0027",
    "recommended",
    "latest_c0027-arm64",
    "latest-arm64",
]
SHUFFLED = TWENTY[7:] + TWENTY[:7][::-1]


def names(tags: Iterable[RSPImageTag]) -> list[str]:
    return [tag.tag for tag in tags]


def test_collection_sorts_by_priority_then_newest_first() -> None:
    collection = RSPImageTagCollection.from_names(SHUFFLED)

    assert names(collection.all_tags(hide_arch_specific=False)) == TWENTY
    assert names(collection.all_tags()) == [tag for tag in TWENTY if "-" not in tag]
    assert names(sort_tags(RSPImageTag.from_str(tag) for tag in SHUFFLED)) == TWENTY


@pytest.mark.parametrize(
    ("aliases", "cycle", "expected"),
    [
        (set(), 27, ["r20_0_1_c0027.001", "w_2077_40_c0027.001", "recommended_c0027"]),
        ({"recommended", "recommended_c0027"}, 27, ["recommended_c0027", "r20_0_1_c0027.001"]),
        ({"recommended"}, 26, ["w_2077_40_c0026.001"]),
    ],
)
def test_cycle_keeps_only_that_cycle_aliases_included(
    aliases: set[str], cycle: int, expected: list[str]
) -> None:
    collection = RSPImageTagCollection.from_names(SHUFFLED, aliases, cycle=cycle)

    assert names(collection.all_tags())[: len(expected)] == expected
    assert "recommended" not in collection  # no cycle: dropped when one is asked for


def test_declared_aliases_come_first_with_cycle_above_none() -> None:
    collection = RSPImageTagCollection.from_names(SHUFFLED, {"recommended", "recommended_c0027"})

    assert names(collection.all_tags())[:2] == ["recommended_c0027", "recommended"]
    assert collection.latest(RSPImageType.ALIAS) == RSPImageTag.alias("recommended_c0027")


def test_lookups_latest_and_add() -> None:
    collection = RSPImageTagCollection.from_names(SHUFFLED)

    assert len(collection) == 20
    assert collection.latest(RSPImageType.WEEKLY) == RSPImageTag.from_str("w_2077_46")
    assert collection.latest(RSPImageType.CANDIDATE) == RSPImageTag.from_str("r22_0_1_rc1-arm64")
    assert collection.latest(RSPImageType.ALIAS) is None
    assert collection.tag_for_tag_name("d_2077_10_20") == RSPImageTag.from_str("d_2077_10_20")
    assert collection.tag_for_tag_name("w_1999_01") is None

    collection.add(RSPImageTag.from_str("w_2077_47"))
    assert collection.latest(RSPImageType.WEEKLY) == RSPImageTag.from_str("w_2077_47")
    assert names(collection.all_tags())[2:4] == ["w_2077_47", "w_2077_46"]


def test_later_duplicate_name_overwrites_earlier() -> None:
    collection = RSPImageTagCollection(
        [RSPImageTag.from_str("recommended"), RSPImageTag.alias("recommended")]
    )

    assert len(collection) == 1
    assert collection.tag_for_tag_name("recommended") == RSPImageTag.alias("recommended")


@pytest.mark.parametrize(
    ("aliases", "kwargs", "expected"),
    [
        (
            set(),
            {"releases": 1, "weeklies": 3, "dailies": 1, "remove_arch_specific": False},
            ["r21_0_1", "w_2077_46", "w_2077_46-amd64", "w_2077_45", "d_2077_10_21"],
        ),
        (
            {"recommended"},
            {"releases": 1, "weeklies": 3, "dailies": 1, "include": {"recommended"}},
            ["recommended", "r21_0_1", "w_2077_46", "w_2077_45", "w_2077_44", "d_2077_10_21"],
        ),
        # Upstream listed a tag both newest and named twice; we list it once (DECISIONS.md).
        (set(), {"weeklies": 1, "include": ["w_2077_46", "nope"]}, ["w_2077_46"]),
        # Named tags are included even when arch-specific.
        (set(), {"include": {"latest-arm64"}}, ["latest-arm64"]),
        (set(), {}, []),
    ],
)
def test_subset(aliases: set[str], kwargs: dict[str, object], expected: list[str]) -> None:
    collection = RSPImageTagCollection.from_names(SHUFFLED, aliases)

    subset = collection.subset(**kwargs)  # type: ignore[arg-type]

    assert names(subset.all_tags(hide_arch_specific=False)) == expected
    assert len(subset) == len(expected)


def test_subset_of_subset() -> None:
    collection = RSPImageTagCollection.from_names(SHUFFLED, {"recommended"})
    subset = collection.subset(releases=1, weeklies=3, dailies=1, include={"recommended"})

    assert names(subset.subset(dailies=1).all_tags()) == ["d_2077_10_21"]


# images-tools.md 1.10, filter test: the kept tags are the spec's; the dropped ones are ours.
FILTER_TAGS = [
    "recommended",
    "recommended-amd64",
    "r29_2_1_rsp2742",
    "r29_2_0_rsp2500",  # build below 2600
    "r28_0_1",
    "r28_0_1-amd64",
    "r28_0_0",
    "r27_0_0",
    "r26_0_0",  # version below 27.0.0
    "w_2025_07",
    "w_2025_07-arm64",
    "w_2025_06",
    "w_2025_05",  # older than two weeks
    "d_2025_02_19",
    "d_2025_02_18",
    "d_2025_02_17",  # older than two days
    "r28_0_0_rc2-amd64",
    "r28_0_0_rc1",
    "r25_0_0_rc1",  # version below 25.3.1
    "exp_w_2025_07",
    "exp_w_2025_05",  # before the cutoff date
    "unknown",
]
FILTER_POLICY = ImageFilterPolicy.model_validate(
    {
        "release": {"cutoffBuild": 2600, "cutoffVersion": "27.0.0"},
        "weekly": {"age": "2w"},
        "daily": {"age": "2d", "number": 4},
        "releaseCandidate": {"cutoffVersion": "25.3.1", "number": 1},
        "experimental": {"cutoffDate": "2025-02-07"},
    }
)
AGE_BASIS = datetime(2025, 2, 19, 17, tzinfo=UTC)
KEPT = [
    "recommended",
    "r29_2_1_rsp2742",
    "r28_0_1",
    "r28_0_0",
    "r27_0_0",
    "w_2025_07",
    "w_2025_06",
    "d_2025_02_19",
    "d_2025_02_18",
    "r28_0_0_rc1",
    "exp_w_2025_07",
    "unknown",
]
KEPT_WITH_ARCH = [
    "recommended",
    "recommended-amd64",
    "r29_2_1_rsp2742",
    "r28_0_1",
    "r28_0_1-amd64",
    "r28_0_0",
    "r27_0_0",
    "w_2025_07",
    "w_2025_07-arm64",
    "w_2025_06",
    "d_2025_02_19",
    "d_2025_02_18",
    "r28_0_0_rc2-amd64",
    "exp_w_2025_07",
    "unknown",
]


@pytest.mark.parametrize(("remove_arch", "kept"), [(True, KEPT), (False, KEPT_WITH_ARCH)])
def test_filter_policy_and_its_inverse(remove_arch: bool, kept: list[str]) -> None:
    collection = RSPImageTagCollection.from_names(FILTER_TAGS, {"recommended", "recommended-amd64"})
    everything = names(collection.all_tags(hide_arch_specific=remove_arch))

    result = collection.filter(FILTER_POLICY, AGE_BASIS, remove_arch_specific=remove_arch)
    dropped = collection.filter(
        FILTER_POLICY, AGE_BASIS, invert=True, remove_arch_specific=remove_arch
    )

    assert names(result) == kept
    assert names(dropped) == [tag for tag in everything if tag not in kept]
    assert "unknown" not in names(dropped)  # no policy: never returned inverted


def test_semver_cutoff_applies_only_to_semantic_tags() -> None:
    tags = [
        "r28_0_1",
        "r28_0_0",
        "w_2025_07",
        "w_2025_06",
        "r28_0_2_rc1",
        "r27_0_1_rc1",
        "exp_w_2025_07",
        "exp_r28_0_1_exp",
        "exp_r28_0_0_exp",
    ]
    cutoff = {"cutoffVersion": "28.0.1"}
    policy = ImageFilterPolicy.model_validate(
        {"release": cutoff, "releaseCandidate": cutoff, "weekly": cutoff, "experimental": cutoff}
    )

    result = RSPImageTagCollection.from_names(tags).filter(policy, AGE_BASIS)

    assert names(result) == [
        "r28_0_1",
        "w_2025_07",
        "w_2025_06",
        "r28_0_2_rc1",
        "exp_w_2025_07",
        "exp_r28_0_1_exp",
    ]


@pytest.mark.parametrize(
    ("image_filter", "expected"),
    [
        ({}, ["w_2025_08", "w_2025_07_rsp5", "w_2025_07_rsp0", "w_2025_06", "w_2025_05"]),
        (
            {"number": 0},
            ["w_2025_08", "w_2025_07_rsp5", "w_2025_07_rsp0", "w_2025_06", "w_2025_05"],
        ),
        ({"number": 2}, ["w_2025_08", "w_2025_07_rsp5"]),
        # No build and build 0 are never dropped by the build cutoff.
        ({"cutoffBuild": 6}, ["w_2025_08", "w_2025_07_rsp0", "w_2025_06", "w_2025_05"]),
        # Dated exactly at the threshold (Thursday 2025-02-06 00:00) is kept.
        (
            {"cutoffDate": "2025-02-06"},
            ["w_2025_08", "w_2025_07_rsp5", "w_2025_07_rsp0", "w_2025_06"],
        ),
        # The later of age and cutoff date wins, whichever it is.
        (
            {"age": "3w", "cutoffDate": "2025-02-10"},
            ["w_2025_08", "w_2025_07_rsp5", "w_2025_07_rsp0"],
        ),
        ({"age": "1d", "cutoffDate": "2024-01-01"}, ["w_2025_08"]),
        # The count applies after the cutoffs.
        ({"cutoffBuild": 6, "number": 2}, ["w_2025_08", "w_2025_07_rsp0"]),
    ],
)
def test_weekly_filter_rules(image_filter: dict[str, object], expected: list[str]) -> None:
    tags = ["w_2025_05", "w_2025_06", "w_2025_07_rsp0", "w_2025_07_rsp5", "w_2025_08"]
    policy = ImageFilterPolicy.model_validate({"weekly": image_filter})

    result = RSPImageTagCollection.from_names(tags).filter(policy, AGE_BASIS)

    assert names(result) == expected


def test_filter_policy_per_type() -> None:
    policy = ImageFilterPolicy.model_validate({"releaseCandidate": {"number": 3}})

    assert filter_for_type(policy, RSPImageType.CANDIDATE) is policy.release_candidate
    assert filter_for_type(policy, RSPImageType.RELEASE) is policy.release
    assert filter_for_type(policy, RSPImageType.WEEKLY) is policy.weekly
    assert filter_for_type(policy, RSPImageType.DAILY) is policy.daily
    assert filter_for_type(policy, RSPImageType.EXPERIMENTAL) is policy.experimental
    assert filter_for_type(policy, RSPImageType.ALIAS) is None
    assert filter_for_type(policy, RSPImageType.UNKNOWN) is None


@pytest.mark.parametrize(
    ("text", "version"),
    [
        ("27.0.0", SemanticVersion(27, 0, 0)),
        ("28.0.2-rc1", SemanticVersion(28, 0, 2, "rc1")),
        ("1.2.3-rc.1+build.5", SemanticVersion(1, 2, 3, "rc.1")),
    ],
)
def test_parse_semantic_version(text: str, version: SemanticVersion) -> None:
    assert parse_semantic_version(text) == version


def test_parse_semantic_version_refuses_other_text() -> None:
    with pytest.raises(ValueError, match="not a semantic version"):
        parse_semantic_version("27.0")


def test_semantic_version_orders_by_semver() -> None:
    ordered = [parse_semantic_version(v) for v in ("28.0.1", "28.0.2-rc1", "28.0.2-rc10")]
    ordered += [parse_semantic_version(v) for v in ("28.0.2-rc2", "28.0.2", "28.1.0")]

    for lower, higher in itertools.pairwise(ordered):
        assert lower < higher
        assert lower <= higher
        assert higher > lower
        assert higher >= lower


_ANY_TAG = st.one_of(
    st.from_regex(
        r"(exp_)?(r2[0-9]_[0-2]_[0-9](_rc1[0-2]?)?|w_202[0-5]_[0-5][0-9]|d_2024_0[1-9]_[12][0-9])"
        r"(_c00[0-9]{2}\.00[0-9])?(_rsp[0-9]{1,3})?(_[a-z]{1,3})?(-(amd64|arm64))?",
        fullmatch=True,
    ),
    st.from_regex(r"(exp_)?[a-z_]{0,8}(_c[0-9]{1,4})?(-[a-z0-9]{1,5})?", fullmatch=True),
)


@settings(max_examples=200)
@given(st.lists(_ANY_TAG, min_size=1, max_size=12, unique=True))
def test_precomputed_key_is_the_key_of_the_fields(tags: list[str]) -> None:
    """The parser's stored sort key equals the key computed from the fields alone."""
    clear_parse_caches()
    for tag in tags:
        for parsed in (RSPImageTag.from_str(tag), RSPImageTag.alias(tag)):
            assert parsed.order is not None
            assert parsed._replace(order=None).sort_key == parsed.sort_key
    by_hand = [RSPImageTag.from_str(tag)._replace(order=None) for tag in tags]
    assert sort_tags(by_hand) == sort_tags(RSPImageTag.from_str(tag) for tag in tags)
