"""The parser's order-key strings order tags exactly as their `sort_key` tuples do.

Parsed tags sort by `RSPImageTag.order`, a string (fast); tags built by hand
sort by `sort_key`, a tuple (upstream's key, spelled out). These tests hold
the two to the same order, including the strings that need escaping, and check
the parse cache that sits in front of the parser.
"""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nublado.images import tag as tag_module
from nublado.images.collection import sort_tags
from nublado.images.tag import RSPImageTag, RSPImageType, clear_parse_caches

# Tags in every production's shape, with the parts that make keys differ:
# digit counts, leading zeros, prereleases, cycles, RSP builds, extras with NULs
# and other low characters, architectures.
_NUMBER = st.from_regex(r"0?[0-9]{1,3}", fullmatch=True)
_EXTRA = st.text(alphabet="\x00\x01\x02_a-z.Z", min_size=1, max_size=4)
_SUFFIX = st.tuples(
    st.sampled_from(["", "_c0020.001", "_c0020.01", "_c0021.000", "_c9.9"]),
    st.sampled_from(["", "_rsp9", "_rsp10", "_rsp09", "_rsp100"]),
    st.one_of(st.just(""), _EXTRA.map(lambda extra: "_" + extra)),
    st.sampled_from(["", "-amd64", "-arm64", "-a"]),
).map("".join)
_VERSIONED = st.one_of(
    st.builds(lambda a, b, c: f"r{a}_{b}_{c}", _NUMBER, _NUMBER, _NUMBER),
    st.builds(lambda a, b, c, rc: f"r{a}_{b}_{c}_rc{rc}", _NUMBER, _NUMBER, _NUMBER, _NUMBER),
    st.builds(lambda year, week: f"w_{year}_{week}", st.sampled_from(["2021", "2022"]), _NUMBER),
    st.builds(lambda day: f"d_2023_02_{day}", st.sampled_from(["1", "01", "9", "10", "28", "30"])),
)
_NAMED = st.one_of(
    st.text(alphabet="\x00\x01\n_cab-z0", max_size=8),
    st.from_regex(r"[a-z_]{0,6}(_c[0-9]{1,3})?(-[a-z0-9]{1,3})?", fullmatch=True),
)
_TAG = st.one_of(
    st.builds(lambda head, suffix: head + suffix, _VERSIONED, _SUFFIX),
    _NAMED,
    st.builds(lambda inner: "exp_" + inner, st.one_of(_VERSIONED, _NAMED)),
    st.sampled_from(["r213", "r21", "recommended"]),
)


def _parse(name: str, alias: bool) -> RSPImageTag:
    return RSPImageTag.alias(name) if alias else RSPImageTag.from_str(name)


def _sign(left: object, right: object) -> int:
    return (left > right) - (left < right)  # type: ignore[operator]


@settings(max_examples=300)
@given(st.lists(st.tuples(_TAG, st.booleans()), min_size=2, max_size=10, unique=True))
def test_order_strings_compare_as_sort_keys(names: list[tuple[str, bool]]) -> None:
    clear_parse_caches()
    tags = [_parse(name, alias) for name, alias in names]
    for left, right in itertools.permutations(tags, 2):
        assert left.order is not None
        assert right.order is not None
        if left.image_type is right.image_type:
            assert _sign(left.order, right.order) == _sign(left.sort_key, right.sort_key)
        else:  # a descending sort lists types in priority order
            assert (left.order > right.order) == (
                left.image_type.priority < right.image_type.priority
            )


@settings(max_examples=200)
@given(st.lists(st.tuples(_TAG, st.booleans()), min_size=1, max_size=12, unique=True))
def test_sorting_by_order_string_equals_sorting_by_sort_key(
    names: list[tuple[str, bool]],
) -> None:
    parsed = [_parse(name, alias) for name, alias in names]
    by_hand = [tag._replace(order=None) for tag in parsed]

    assert [tag.tag for tag in sort_tags(parsed)] == [tag.tag for tag in sort_tags(by_hand)]


@settings(max_examples=200)
@given(_TAG, st.booleans())
def test_parsers_build_the_spelled_out_key(name: str, alias: bool) -> None:
    """The versioned and plain-name parsers' piecewise keys equal `_order_text` of the fields."""
    tag = _parse(name, alias)
    if tag.image_type is RSPImageType.EXPERIMENTAL:
        return  # its key is the inner tag's, checked when that tag is drawn
    spelled_out = tag_module._order_text(
        tag.image_type,
        tag.base,
        tag.version,
        tag.cycle,
        tag.cycle_build,
        tag.build,
        tag.extra,
        tag.architecture,
        tag.tag,
    )

    assert tag.order == spelled_out


@pytest.mark.parametrize(
    "ascending",
    [
        [
            "w_2021_22_a",
            "w_2021_22_a\x00",
            "w_2021_22_a\x00\x00",
            "w_2021_22_a\x01",
            "w_2021_22_ab",
        ],
        ["w_2021_22_rsp9", "w_2021_22_rsp10", "w_2021_22_rsp100"],
        ["w_2021_022", "w_2021_22"],  # equal keys: the tag string breaks the tie
        ["r9_0_0", "r10_0_0", "r10_0_0_c0009.001", "r10_0_0_c0010.000"],
        ["a\x00", "a\x00b", "a\x01"],
        ["exp_w_2021_22", "exp_w_2021_22_x", "exp_random"],
    ],
)
def test_escaped_strings_and_digit_counts_order(ascending: list[str]) -> None:
    tags = [RSPImageTag.from_str(name) for name in ascending]

    for lower, higher in itertools.pairwise(tags):
        assert lower.sort_key < higher.sort_key
        assert lower.order is not None
        assert higher.order is not None
        assert lower.order < higher.order
        assert lower < higher


def test_sort_tags_falls_back_to_sort_key_when_a_tag_has_no_order() -> None:
    parsed = [RSPImageTag.from_str(name) for name in ("w_2021_21", "w_2021_23", "recommended")]
    by_hand = RSPImageTag(
        tag="w_2021_22",
        image_type=RSPImageType.WEEKLY,
        display_name="Weekly 2021_22",
        version=RSPImageTag.from_str("w_2021_22").version,
    )

    ordered = sort_tags([*parsed, by_hand])

    assert [tag.tag for tag in ordered] == ["w_2021_23", "w_2021_22", "w_2021_21", "recommended"]
    assert by_hand < parsed[1]  # compare falls back to sort_key too
    assert parsed[0] < by_hand


def test_parse_cache_returns_the_same_tag_and_empties_when_full(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clear_parse_caches()
    monkeypatch.setattr(tag_module, "_PARSED_LIMIT", 2)

    first = RSPImageTag.from_str("w_2021_22")
    assert RSPImageTag.from_str("w_2021_22") is first
    RSPImageTag.from_str("w_2021_23")
    assert len(tag_module._PARSED) == 2
    RSPImageTag.from_str("w_2021_24")  # full: forget the others, keep this one

    assert list(tag_module._PARSED) == ["w_2021_24"]
    assert RSPImageTag.from_str("w_2021_22") == first
    clear_parse_caches()
    assert not tag_module._PARSED
