"""RSP tag parsing reproduces upstream's fields, display names and ordering exactly."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nublado.images.tag import RSPImageTag, RSPImageType, SemanticVersion

EXPECTED = Path(__file__).resolve().parents[1] / "data" / "reference" / "expected" / "rspimagetag"
FIXTURES = sorted(EXPECTED.glob("*.json"))


def _expected(
    tag: str,
    image_type: str,
    display_name: str,
    *,
    base: str | None = None,
    version: tuple[int, int, int, str | None] | None = None,
    semantic: bool = False,
    cycle: int | None = None,
    cycle_build: int | None = None,
    build: int | None = None,
    architecture: str | None = None,
    extra: str | None = None,
    date: str | None = None,
) -> dict[str, Any]:
    """Build an expected `to_dict` result from a row of the spec's tables."""
    return {
        "tag": tag,
        "image_type": image_type,
        "display_name": display_name,
        "version": (
            None
            if version is None
            else dict(zip(("major", "minor", "patch", "prerelease"), version, strict=True))
            | {"build": None}
        ),
        "semantic": semantic,
        "base": base,
        "cycle": cycle,
        "cycle_build": cycle_build,
        "build": build,
        "architecture": architecture,
        "extra": extra,
        "date": date,
    }


JUNE_3 = "2021-06-03 00:00:00"

# images-tools.md 1.8: the fixture table, the inline cases and the verified edge cases.
SPEC_TABLE = [
    _expected(
        "d_2021_05_27",
        "Daily",
        "Daily 2021_05_27",
        version=(2021, 5, 27, None),
        date="2021-05-27 00:00:00",
    ),
    _expected("exp_random", "Experimental", "Experimental random", base="random"),
    _expected(
        "exp_random_c0027-amd64",
        "Experimental",
        "Experimental random (SAL Cycle 0027) [amd64]",
        base="random",
        cycle=27,
        architecture="amd64",
    ),
    _expected(
        "exp_w_2021_22_c0020.001_rsp19_foo-amd64",
        "Experimental",
        "Experimental Weekly 2021_22 (SAL Cycle 0020, Build 001) (RSP Build 19) [foo] [amd64]",
        version=(2021, 22, 0, None),
        cycle=20,
        cycle_build=1,
        build=19,
        architecture="amd64",
        extra="foo",
        date=JUNE_3,
    ),
    _expected("latest-amd64", "Unknown", "latest [amd64]", base="latest", architecture="amd64"),
    _expected(
        "latest_c0027-amd64",
        "Unknown",
        "latest (SAL Cycle 0027) [amd64]",
        base="latest",
        cycle=27,
        architecture="amd64",
    ),
    _expected("not_a_normal_format", "Unknown", "not_a_normal_format", base="not_a_normal_format"),
    _expected("r21_0_1", "Release", "Release r21.0.1", version=(21, 0, 1, None), semantic=True),
    _expected(
        "r22_0_0_rc1",
        "Release Candidate",
        "Release Candidate r22.0.0-rc1",
        version=(22, 0, 0, "rc1"),
        semantic=True,
    ),
    _expected("recommended", "Unknown", "recommended", base="recommended"),
    _expected(
        "recommended_c0027-arm64",
        "Unknown",
        "recommended (SAL Cycle 0027) [arm64]",
        base="recommended",
        cycle=27,
        architecture="arm64",
    ),
    _expected(
        "recommended_c0027",
        "Unknown",
        "recommended (SAL Cycle 0027)",
        base="recommended",
        cycle=27,
    ),
    _expected("w_2021_22", "Weekly", "Weekly 2021_22", version=(2021, 22, 0, None), date=JUNE_3),
    _expected(
        "w_2021_22_rsp19-arm64",
        "Weekly",
        "Weekly 2021_22 (RSP Build 19) [arm64]",
        version=(2021, 22, 0, None),
        build=19,
        architecture="arm64",
        date=JUNE_3,
    ),
    _expected("MiXeD_CaSe_TaG", "Unknown", "MiXeD_CaSe_TaG", base="MiXeD_CaSe_TaG"),
    _expected(
        "r22_0_0_rc1-amd64",
        "Release Candidate",
        "Release Candidate r22.0.0-rc1 [amd64]",
        version=(22, 0, 0, "rc1"),
        semantic=True,
        architecture="amd64",
    ),
    _expected(
        "w_2021_22_foo-amd64",
        "Weekly",
        "Weekly 2021_22 [foo] [amd64]",
        version=(2021, 22, 0, None),
        extra="foo",
        architecture="amd64",
        date=JUNE_3,
    ),
    _expected(
        "r22_0_1_extra_stuff",
        "Release",
        "Release r22.0.1 [extra_stuff]",
        version=(22, 0, 1, None),
        semantic=True,
        extra="extra_stuff",
    ),
    _expected(
        "exp_w_2021_22-amd64",
        "Experimental",
        "Experimental Weekly 2021_22 [amd64]",
        version=(2021, 22, 0, None),
        architecture="amd64",
        date=JUNE_3,
    ),
    _expected(
        "w_2021_22_c0020.001-amd64",
        "Weekly",
        "Weekly 2021_22 (SAL Cycle 0020, Build 001) [amd64]",
        version=(2021, 22, 0, None),
        cycle=20,
        cycle_build=1,
        architecture="amd64",
        date=JUNE_3,
    ),
    _expected(
        "latest_weekly-arm64",
        "Unknown",
        "latest_weekly [arm64]",
        base="latest_weekly",
        architecture="arm64",
    ),
    _expected("latest_c0046", "Unknown", "latest (SAL Cycle 0046)", base="latest", cycle=46),
    _expected("r170", "Release", "Release r17.0.0", version=(17, 0, 0, None), semantic=True),
    # images-tools.md 1.2: consequences of the grammar's order and laziness.
    _expected(
        "w_2021_22_rsp19_c0020.001",
        "Weekly",
        "Weekly 2021_22 (RSP Build 19) [c0020.001]",
        version=(2021, 22, 0, None),
        build=19,
        extra="c0020.001",
        date=JUNE_3,
    ),
    _expected(
        "r23_0_0_rc1_rsp19_c0020.001_20210513",
        "Release Candidate",
        "Release Candidate r23.0.0-rc1 (RSP Build 19) [c0020.001_20210513]",
        version=(23, 0, 0, "rc1"),
        semantic=True,
        build=19,
        extra="c0020.001_20210513",
    ),
    _expected(
        "w_2021_22_c0020",
        "Weekly",
        "Weekly 2021_22 [c0020]",
        version=(2021, 22, 0, None),
        extra="c0020",
        date=JUNE_3,
    ),
    _expected("foo-bar-baz", "Unknown", "foo-bar [baz]", base="foo-bar", architecture="baz"),
    _expected("w_2021_22-AMD64", "Unknown", "w_2021_22-AMD64", base="w_2021_22-AMD64"),
    _expected("exp_", "Unknown", "exp_", base="exp_"),
    _expected("r2", "Unknown", "r2", base="r2"),
    _expected("w_2021_60", "Unknown", "w_2021_60", base="w_2021_60"),
    _expected("d_2021_13_45", "Unknown", "d_2021_13_45", base="d_2021_13_45"),
    _expected(
        "recommended_c0027_c0028",
        "Unknown",
        "recommended_c0027 (SAL Cycle 0028)",
        base="recommended_c0027",
        cycle=28,
    ),
    _expected(
        "d_2021_5_3",
        "Daily",
        "Daily 2021_5_3",
        version=(2021, 5, 3, None),
        date="2021-05-03 00:00:00",
    ),
    _expected(
        "exp_r22_0_0_rc1",
        "Experimental",
        "Experimental Release Candidate r22.0.0-rc1",
        version=(22, 0, 0, "rc1"),
        semantic=True,
    ),
    _expected("exp_exp_random", "Experimental", "Experimental Experimental random", base="random"),
    _expected(
        "w_2021_0022", "Weekly", "Weekly 2021_0022", version=(2021, 22, 0, None), date=JUNE_3
    ),
    _expected(
        "r21_0_1_c0000.000",
        "Release",
        "Release r21.0.1 (SAL Cycle 0000, Build 000)",
        version=(21, 0, 1, None),
        semantic=True,
        cycle=0,
        cycle_build=0,
    ),
    # Digits are ASCII digits only; a newline matches no production at all.
    _expected("w_2021_\u0662\u0662", "Unknown", "w_2021_\u0662\u0662", base="w_2021_\u0662\u0662"),
    _expected("bad\ntag", "Unknown", "bad\ntag"),
]


@pytest.mark.parametrize("path", FIXTURES, ids=lambda path: path.stem)
def test_parse_matches_upstream_fixture(path: Path) -> None:
    assert RSPImageTag.from_str(path.stem).to_dict() == json.loads(path.read_text())


def test_upstream_fixtures_are_present() -> None:
    assert len(FIXTURES) >= 6


@pytest.mark.parametrize("expected", SPEC_TABLE, ids=lambda expected: repr(expected["tag"]))
def test_parse_matches_spec_examples(expected: dict[str, Any]) -> None:
    assert RSPImageTag.from_str(expected["tag"]).to_dict() == expected


def test_empty_tag_parses_as_latest() -> None:
    assert RSPImageTag.from_str("").to_dict() == _expected(
        "latest", "Unknown", "latest", base="latest"
    )


def _variants() -> list[tuple[str, dict[str, Any]]]:
    """Upstream's variant matrix: 4 bases x experimental x cycle x build x extra x arch."""
    cases = []
    for path in (
        EXPECTED / f"{name}.json"
        for name in ("d_2021_05_27", "w_2021_22", "r22_0_0_rc1", "r21_0_1")
    ):
        base = json.loads(path.read_text())
        for experimental, cycle, build, extra, arch in itertools.product(
            (False, True), (False, True), (False, True), (None, "20210527", "random"), (False, True)
        ):
            tag = base["tag"]
            expected = dict(base)
            if experimental:
                tag = f"exp_{tag}"
                expected["image_type"] = "Experimental"
                expected["display_name"] = "Experimental " + expected["display_name"]
            if cycle:
                tag += "_c0020.001"
                expected |= {"cycle": 20, "cycle_build": 1}
                expected["display_name"] += " (SAL Cycle 0020, Build 001)"
            if build:
                tag += "_rsp19"
                expected["build"] = 19
                expected["display_name"] += " (RSP Build 19)"
            if extra:
                tag += f"_{extra}"
                expected["extra"] = extra
                expected["display_name"] += f" [{extra}]"
            if arch:
                tag += "-amd64"
                expected["architecture"] = "amd64"
                expected["display_name"] += " [amd64]"
            expected["tag"] = tag
            cases.append((tag, expected))
    return cases


VARIANTS = _variants()


def test_variant_matrix_has_upstream_size() -> None:
    assert len(VARIANTS) == 192


@pytest.mark.parametrize(("tag", "expected"), VARIANTS, ids=[tag for tag, _ in VARIANTS])
def test_parse_variant(tag: str, expected: dict[str, Any]) -> None:
    assert RSPImageTag.from_str(tag).to_dict() == expected


@pytest.mark.parametrize(
    ("tag", "display_name", "base", "cycle", "architecture"),
    [
        ("recommended", "Recommended", "recommended", None, None),
        ("latest_weekly_c0046", "Latest Weekly (SAL Cycle 0046)", "latest_weekly", 46, None),
        ("latest-amd64", "Latest [amd64]", "latest", None, "amd64"),
        ("latest_c0046-arm64", "Latest (SAL Cycle 0046) [arm64]", "latest", 46, "arm64"),
        ("abc2def", "Abc2Def", "abc2def", None, None),
        ("LATEST_weekly", "Latest Weekly", "LATEST_weekly", None, None),
    ],
)
def test_alias_title_cases_base(
    tag: str, display_name: str, base: str, cycle: int | None, architecture: str | None
) -> None:
    alias = RSPImageTag.alias(tag)

    assert alias.to_dict() == _expected(
        tag, "Alias", display_name, base=base, cycle=cycle, architecture=architecture
    )


def test_alias_never_carries_version_fields() -> None:
    alias = RSPImageTag.alias("w_2021_22")

    assert (alias.image_type, alias.version, alias.date, alias.semantic) == (
        RSPImageType.ALIAS,
        None,
        None,
        False,
    )
    assert alias.display_name == "W 2021 22"


def test_image_types_are_in_priority_order() -> None:
    assert [image_type.value for image_type in RSPImageType] == [
        "Alias",
        "Release",
        "Weekly",
        "Daily",
        "Release Candidate",
        "Experimental",
        "Unknown",
    ]
    assert [image_type.priority for image_type in RSPImageType] == list(range(7))


ASCENDING_CHAINS = [
    [
        "r21_0_1",
        "r21_0_1_rsp29",
        "r21_0_1_rsp103",
        "r21_0_1_rsp103_extra",
        "r21_0_1_rsp103_foo-amd64",
        "r21_0_1_rsp103_foo-arm64",
        "r21_0_1_rsp103_foo",
        "r21_0_1_c0031.004",
        "r21_0_1_c0031.004_rsp103",
        "r21_0_1_c0032.004_rsp102",
        "r21_0_1_c0032.004_rsp103",
        "r21_0_1_c0032.005_rsp101",
    ],
    ["d_2023_02_09", "d_2023_02_10_c0030.004", "d_2023_02_10_c0031.004", "d_2023_02_10_c0031.005"],
    ["exp_20230209", "exp_random"],
    ["r21_0_1", "r21_0_2", "r22_0_0"],
    ["r22_0_0_rc1", "r22_0_0_rc10", "r22_0_0_rc2"],
    ["w_2021_9", "w_2021_10", "w_2022_1"],
]


@pytest.mark.parametrize("chain", ASCENDING_CHAINS, ids=lambda chain: chain[0])
def test_ordering_follows_upstream_key(chain: list[str]) -> None:
    tags = [RSPImageTag.from_str(tag) for tag in chain]

    for lower, higher in itertools.pairwise(tags):
        assert lower < higher
        assert lower <= higher
        assert higher > lower
        assert higher >= lower
        assert lower != higher
    assert sorted(reversed(tags)) == tags


def test_prerelease_sorts_below_release_across_types_of_experimental() -> None:
    assert RSPImageTag.from_str("exp_r22_0_0_rc1") < RSPImageTag.from_str("exp_r22_0_0")


def test_experimental_with_and_without_version_compares_by_base() -> None:
    versioned = RSPImageTag.from_str("exp_w_2021_22")  # no base: null sorts lowest
    unversioned = RSPImageTag.from_str("exp_anything")

    assert versioned < unversioned


def test_tags_of_different_types_do_not_compare() -> None:
    weekly = RSPImageTag.from_str("w_2021_22")
    daily = RSPImageTag.from_str("d_2021_05_27")

    assert weekly != daily
    assert RSPImageTag.alias("recommended") != RSPImageTag.from_str("recommended")
    with pytest.raises(TypeError, match="Weekly tag 'w_2021_22'"):
        assert weekly < daily


def test_equal_tags_have_equal_hashes() -> None:
    first = RSPImageTag.from_str("w_2021_22")
    again = RSPImageTag.from_str("w_2021_22")

    assert first == again
    assert hash(first) == hash(again) == hash("w_2021_22")
    assert len({first, again}) == 1


def test_tag_string_breaks_ties_of_upstream_key() -> None:
    # Upstream says these are equal although their hashes differ; we order them
    # by tag string so that equality and hashing agree.
    padded = RSPImageTag.from_str("w_2021_022")
    plain = RSPImageTag.from_str("w_2021_22")

    assert padded != plain
    assert padded < plain


def test_comparison_with_other_objects_is_not_supported() -> None:
    tag = RSPImageTag.from_str("w_2021_22")

    assert tag != "w_2021_22"
    with pytest.raises(TypeError):
        assert tag < "w_2021_23"


def test_date_serializes_milliseconds_only_when_present() -> None:
    tag = RSPImageTag(
        tag="x",
        image_type=RSPImageType.UNKNOWN,
        display_name="x",
        date=datetime(2021, 6, 3, 12, 30, 5, 123456, tzinfo=UTC),
    )

    assert tag.to_dict()["date"] == "2021-06-03 12:30:05.123"


def test_weekly_date_is_thursday_of_iso_week() -> None:
    # ISO week 1 of 2021 starts on Monday 2021-01-04.
    assert RSPImageTag.from_str("w_2021_1").date == datetime(2021, 1, 7, tzinfo=UTC)
    assert RSPImageTag.from_str("w_2020_53").date == datetime(2020, 12, 31, tzinfo=UTC)


def test_semantic_version_string() -> None:
    assert str(SemanticVersion(22, 0, 0, "rc1")) == "22.0.0-rc1"
    assert str(SemanticVersion(21, 0, 1)) == "21.0.1"
    assert SemanticVersion(1, 0, 0, "rc.2").compare(SemanticVersion(1, 0, 0, "rc.10")) == -1
    assert SemanticVersion(1, 0, 0, "rc.1").compare(SemanticVersion(1, 0, 0, "rc.1.1")) == -1
    assert SemanticVersion(1, 0, 0, "1").compare(SemanticVersion(1, 0, 0, "rc")) == -1


@given(st.text(max_size=40))
def test_any_string_parses_without_error(tag: str) -> None:
    parsed = RSPImageTag.from_str(tag)

    assert parsed.tag == (tag or "latest")
    assert parsed.image_type is not RSPImageType.ALIAS
    if parsed.image_type is not RSPImageType.EXPERIMENTAL:
        assert (parsed.version is None) == (parsed.image_type is RSPImageType.UNKNOWN)
    assert parsed == RSPImageTag.from_str(tag)


_VERSIONED = st.builds(
    lambda prefix, a, b, c, rest: f"{prefix}{a}_{b}{c}{rest}",
    st.sampled_from(["r", "w_", "d_2021_", "r2_"]),
    st.integers(0, 40),
    st.integers(1, 28),
    st.sampled_from(["", "_1", "_rc3", "_rc12"]),
    st.sampled_from(["", "_c0020.001", "_rsp3", "_rsp12_x", "-arm64", "-amd64", "_zz"]),
)


# The space of these tags is small: a few hundred lists cover it, even in CI.
@settings(max_examples=300)
@given(st.lists(_VERSIONED, min_size=2, max_size=8, unique=True))
def test_ordering_is_total_within_a_type(tags: list[str]) -> None:
    parsed = [RSPImageTag.from_str(tag) for tag in tags]
    by_type: dict[RSPImageType, list[RSPImageTag]] = {}
    for tag in parsed:
        by_type.setdefault(tag.image_type, []).append(tag)

    for group in by_type.values():
        ordered = sorted(group)
        assert sorted(reversed(ordered)) == ordered
        for lower, higher in itertools.pairwise(ordered):
            assert lower < higher
            assert not higher < lower


@pytest.mark.parametrize("build", [RSPImageTag.from_str, RSPImageTag.alias])
def test_a_cycle_longer_than_int_reads_is_part_of_the_name(
    build: Callable[[str], RSPImageTag],
) -> None:
    tag = "recommended_c" + "9" * 5000

    parsed = build(tag)

    assert parsed.cycle is None
    assert parsed.base == tag
