"""Quantity parsing and formatting, one row per example of spec/images-tools.md 5.2, 7.1, 7.3."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nublado.units import (
    bytes_to_si,
    cpu_to_cores,
    format_cpu,
    format_duration,
    human_size_to_bytes,
    memory_to_bytes,
    parse_cli_duration,
    parse_duration,
)

MEMORY = [
    (123456789, 123456789),
    ("123456789", 123456789),
    ("12K", 12000),
    ("12k", 12000),
    ("12KB", 12000),
    ("12Ki", 12288),
    ("12Kib", 12288),
    ("12M", 12000000),
    ("12m", 12000000),
    ("12Mi", 12582912),
    ("12MiB", 12582912),
    ("12 Mi", 12582912),
    ("1G", 1000000000),
    ("1Gi", 1073741824),
    ("1.5Gi", 1610612736),
    ("0.75Gi", 805306368),
    ("1T", 10**12),
    ("1Ti", 2**40),
    ("500B", 500),
    ("500b", 62),
    ("8b", 1),
    ("1kb", 1000),
    ("1e3", 1000),
    (1e3, 1000),
    (1.9, 1),
    ("-1Gi", -1073741824),
    ("3GiB", 3 * 2**30),
    ("4 bytes", 4),
]


@pytest.mark.parametrize(("given", "expected"), MEMORY)
def test_memory_to_bytes(given: str | int | float, expected: int) -> None:
    assert memory_to_bytes(given) == expected


@pytest.mark.parametrize("given", ["nope", "3Gx", "", "Gi", "1Qi", "1.2.3G", True, "inf"])
def test_memory_to_bytes_rejects(given: object) -> None:
    with pytest.raises(ValueError, match="not a quantity"):
        memory_to_bytes(given)  # type: ignore[arg-type]


def test_memory_error_names_value() -> None:
    with pytest.raises(ValueError) as exc:
        memory_to_bytes("3Gx")
    assert str(exc.value) == "not a quantity: '3Gx'"


BYTES_TO_SI = [
    (123456789, "117.738Mi"),
    (12288, "12Ki"),
    (12582912, "12Mi"),
    (1073741824, "1Gi"),
    (3221225472, "3Gi"),
    (1610612736, "1.5Gi"),
    (1000, "1000"),
    (10**15, "909.495Ti"),
    (0, "0b"),
    (1024, "1Ki"),
    (2**60, "1Ei"),
]


@pytest.mark.parametrize(("given", "expected"), BYTES_TO_SI)
def test_bytes_to_si(given: int, expected: str) -> None:
    assert bytes_to_si(given) == expected


CPU = [
    ("450m", 0.45),
    ("1450m", 1.45),
    (1, 1.0),
    ("1", 1.0),
    (1.234, 1.234),
    ("1.234", 1.234),
    ("1e3", 1000.0),
    (-1, -1.0),
    (0.5, 0.5),
]


@pytest.mark.parametrize(("given", "expected"), CPU)
def test_cpu_to_cores(given: str | int | float, expected: float) -> None:
    assert cpu_to_cores(given) == pytest.approx(expected)


@pytest.mark.parametrize("given", [1.2345, "1.2345", "1.2m", "nope", "", "nan"])
def test_cpu_to_cores_rejects(given: object) -> None:
    with pytest.raises(ValueError, match="CPU must be specified as a whole number of milli-cores"):
        cpu_to_cores(given)  # type: ignore[arg-type]


def test_cpu_error_names_value() -> None:
    with pytest.raises(ValueError, match=r"^not a CPU quantity: '1\.2m': CPU must"):
        cpu_to_cores("1.2m")


@pytest.mark.parametrize(
    ("cores", "text"), [(1, "1.0"), (0.25, "0.25"), (1.5, "1.5"), (4.0, "4.0")]
)
def test_format_cpu(cores: float, text: str) -> None:
    assert format_cpu(cores) == text


HUMAN_SIZES = [
    ("10B", 10),
    ("10 B", 10),
    ("10b", 10),
    (" 42 B ", 42),
    ("1k", 1000),
    ("1K", 1000),
    ("1kB", 1000),
    ("1.5k", 1500),
    ("1ki", 1024),
    ("1Ki", 1024),
    ("1KiB", 1024),
    ("1.5Mi", 1572864),
    ("1.0000001Mi", 1048576),
    ("1.5", 2),
    ("1.4", 1),
    ("2.5", 3),
    ("1e3", 1000),
    ("1 M", 1000000),
    ("1E", 10**18),
    ("1Ei", 2**60),
    (3.0, 3),
    (7, 7),
    ("1_000", 1000),
    ("0", 0),
]


@pytest.mark.parametrize(("given", "expected"), HUMAN_SIZES)
def test_human_size_to_bytes(given: str | int | float, expected: int) -> None:
    assert human_size_to_bytes(given) == expected


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ("1.2345k", "Could not convert '1.2345k' to integer"),
        ("1.001k", "Could not convert '1.001k' to integer"),
        ("abc", "Could not convert 'abc' to integer"),
        ("1m", "Could not convert '1m' to integer"),
        (3.5, "Could not convert 3.5 to integer"),
        # Fixed (spec/DECISIONS.md): upstream accepts these.
        (True, "not a size: True (a boolean)"),
        (False, "not a size: False (a boolean)"),
        ("-5", "size must not be negative: '-5'"),
        (-5, "size must not be negative: -5"),
        ("-1.5", "size must not be negative: '-1.5'"),
        ("-1k", "size must not be negative: '-1k'"),
    ],
)
def test_human_size_to_bytes_rejects(given: object, message: str) -> None:
    with pytest.raises(ValueError) as exc:
        human_size_to_bytes(given)  # type: ignore[arg-type]
    assert str(exc.value) == message


DURATIONS = [
    ("8d", timedelta(days=8)),
    ("4h 3minutes", timedelta(hours=4, minutes=3)),
    ("5w4d", timedelta(weeks=5, days=4)),
    ("1000w", timedelta(weeks=1000)),
    ("3650d", timedelta(days=3650)),
    ("1h", timedelta(hours=1)),
    ("1hr", timedelta(hours=1)),
    ("2 hours 30 mins", timedelta(hours=2, minutes=30)),
    ("1week 1day 1hour 1minute 1second", timedelta(weeks=1, days=1, hours=1, minutes=1, seconds=1)),
    ("90secs", timedelta(seconds=90)),
    ("5m", timedelta(minutes=5)),
    ("10s", timedelta(seconds=10)),
]


@pytest.mark.parametrize(("given", "expected"), DURATIONS)
def test_parse_duration_unit_form(given: str, expected: timedelta) -> None:
    assert parse_duration(given) == expected
    assert parse_cli_duration(given) == expected


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (60, timedelta(seconds=60)),
        (1.5, timedelta(seconds=1.5)),
        ("60", timedelta(seconds=60)),
        ("0.5", timedelta(seconds=0.5)),
        (timedelta(hours=2), timedelta(hours=2)),
    ],
)
def test_parse_duration_numbers_are_seconds(
    given: str | int | float | timedelta, expected: timedelta
) -> None:
    assert parse_duration(given) == expected


@pytest.mark.parametrize("given", ["3m4h", "1d1d", "1y", "h", "", "1.5h", "soon", True])
def test_parse_duration_rejects(given: object) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(given)  # type: ignore[arg-type]


@pytest.mark.parametrize("given", ["60", "1.5"])
def test_cli_duration_refuses_bare_numbers(given: str) -> None:
    with pytest.raises(ValueError, match=f"not a duration: '{given}'"):
        parse_cli_duration(given)


@pytest.mark.parametrize(
    "duration",
    [
        timedelta(0),
        timedelta(weeks=5, days=4, seconds=7),
        timedelta(minutes=90),
        timedelta(seconds=1.5),
    ],
)
def test_format_duration_round_trips(duration: timedelta) -> None:
    assert parse_duration(format_duration(duration)) == duration


@pytest.mark.parametrize(
    "parse", [memory_to_bytes, cpu_to_cores, parse_duration, human_size_to_bytes]
)
def test_booleans_are_never_quantities(parse: object) -> None:
    with pytest.raises(ValueError, match=r"True \(a boolean\)"):
        parse(True)  # type: ignore[operator]


@given(st.integers(min_value=1024, max_value=2**62))
def test_bytes_to_si_reads_back_within_six_digits(n: int) -> None:
    # Six significant digits, then truncation to whole bytes.
    assert abs(memory_to_bytes(bytes_to_si(n)) - n) <= n * 5e-6 + 1


@given(st.timedeltas(min_value=timedelta(days=-3650), max_value=timedelta(days=3650)))
def test_format_duration_reads_back(duration: timedelta) -> None:
    assert parse_duration(format_duration(duration)) == duration


@given(
    st.integers(min_value=0, max_value=10**6), st.sampled_from(["k", "M", "G", "Ki", "Mi", "Gi"])
)
def test_whole_human_sizes_are_exact(number: int, suffix: str) -> None:
    factor = {"k": 10**3, "M": 10**6, "G": 10**9, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30}[suffix]

    assert human_size_to_bytes(f"{number}{suffix}") == number * factor
    assert memory_to_bytes(f"{number}{suffix}") == number * factor


@pytest.mark.parametrize("given", ["99999999999w", 1e300, "1e300", "9999999999999999999999s"])
def test_durations_too_long_for_a_timedelta_are_value_errors(given: object) -> None:
    with pytest.raises(ValueError, match="duration too long"):
        parse_duration(given)  # type: ignore[arg-type]
