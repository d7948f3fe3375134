"""The value parsers: every format Azure was seen to send, and properties over generated input."""

from __future__ import annotations

import contextlib
import math
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from exporter.parsing import format_filter_time, parse_duration, parse_size, parse_timestamp


@pytest.mark.parametrize(("text", "seconds"), [
    ("PT41M17.9270278S", 41 * 60 + 17.9270278),   # azure-cli recording
    ("PT12.4272909S", 12.4272909),                 # spec example
    ("PT0S", 0.0),
    ("P1DT2H", 26 * 3600.0),
    ("P4W", 4 * 7 * 86400.0),                      # week designator, seen rejected by the .NET SDK
    ("00:20:23.0896697", 20 * 60 + 23.0896697),    # .NET TimeSpan (docs, 2017-07-01)
    ("1.02:03:04.5", 86400 + 2 * 3600 + 3 * 60 + 4.5),
    ("3.17:25:30.5000000", 3 * 86400 + 17 * 3600 + 25 * 60 + 30.5),
    ("00:00:00", 0.0),
])
def test_duration_formats_seen_on_the_wire(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "P", "PT", "P1DT", "abc", "25:00:00", "00:61:00", "12", "PT-5S", "1 hour"])
def test_duration_rejects_what_it_cannot_read(text: str) -> None:
    with pytest.raises(ValueError, match=r"duration|TimeSpan"):
        parse_duration(text)


@pytest.mark.parametrize(("text", "size"), [
    ("11370 MB", 11370 * 1024**2),   # azure-cli recording
    ("2332 MB", 2332 * 1024**2),     # docs
    ("0 MB", 0.0),
    ("1.5 GB", 1.5 * 1024**3),
    ("1,024 KB", 1024 * 1024.0),
    ("3 TB", 3 * 1024**4),
    ("512 B", 512.0),
    ("7GiB", 7 * 1024**3),
])
def test_size_formats(text: str, size: float) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "MB", "12 XB", "lots", "-5 MB"])
def test_size_rejects_garbage(text: str) -> None:
    with pytest.raises(ValueError, match="size"):
        parse_size(text)


def test_timestamps_with_seven_fractional_digits() -> None:
    assert parse_timestamp("2022-05-13T10:09:27.2801342Z") == pytest.approx(
        datetime(2022, 5, 13, 10, 9, 27, 280134, tzinfo=UTC).timestamp())
    assert parse_timestamp("2017-08-03T05:31:07.014604Z") == pytest.approx(
        datetime(2017, 8, 3, 5, 31, 7, 14604, tzinfo=UTC).timestamp())


def test_filter_time_uses_the_services_twelve_hour_format() -> None:
    assert format_filter_time(datetime(2026, 1, 1, 13, 5, tzinfo=UTC)) == "2026-01-01 01:05:00 PM"
    assert format_filter_time(datetime(2026, 1, 1, 0, 30, tzinfo=UTC)) == "2026-01-01 12:30:00 AM"


durations = st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=999))


def _iso(delta: timedelta) -> str:
    days, rest = delta.days, delta.seconds
    text = f"P{days}DT{rest // 3600}H{rest % 3600 // 60}M{rest % 60}.{delta.microseconds:06d}S"
    return text


def _dotnet(delta: timedelta) -> str:
    rest = delta.seconds
    return f"{delta.days}.{rest // 3600:02d}:{rest % 3600 // 60:02d}:{rest % 60:02d}.{delta.microseconds:06d}0"


@given(durations)
def test_iso_and_dotnet_forms_of_one_duration_agree(delta: timedelta) -> None:
    expected = delta.total_seconds()
    assert parse_duration(_iso(delta)) == pytest.approx(expected, abs=1e-6)
    assert parse_duration(_dotnet(delta)) == pytest.approx(expected, abs=1e-6)


@given(st.text(max_size=30))
def test_duration_parser_never_fails_other_than_valueerror(text: str) -> None:
    try:
        result = parse_duration(text)
    except ValueError:
        return
    assert math.isfinite(result)


@given(st.decimals(min_value=0, max_value=10**6, places=2), st.sampled_from(["KB", "MB", "GB", "TB"]))
def test_size_scales_by_1024(number: object, unit: str) -> None:
    power = ["KB", "MB", "GB", "TB"].index(unit) + 1
    assert parse_size(f"{number} {unit}") == pytest.approx(float(str(number)) * 1024**power)


@given(st.text(max_size=20))
def test_size_parser_never_fails_other_than_valueerror(text: str) -> None:
    with contextlib.suppress(ValueError):
        assert parse_size(text) >= 0
