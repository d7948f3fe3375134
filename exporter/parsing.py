"""Parsers for the value formats Azure Backup puts on the wire.

Azure is inconsistent: durations come as ISO-8601 or as .NET TimeSpans, sizes as
free text such as "2332 MB", timestamps with 6 or 7 fractional digits. Every
parser raises ValueError on input it does not understand, so the caller can drop
that one field and count it instead of failing the page.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

_ISO_DURATION = re.compile(
    r"^(?P<sign>-)?P(?!$)"
    r"(?:(?P<weeks>\d+(?:\.\d+)?)W)?"
    r"(?:(?P<days>\d+(?:\.\d+)?)D)?"
    r"(?:T(?=\d)"
    r"(?:(?P<hours>\d+(?:\.\d+)?)H)?"
    r"(?:(?P<minutes>\d+(?:\.\d+)?)M)?"
    r"(?:(?P<seconds>\d+(?:\.\d+)?)S)?)?$",
    re.IGNORECASE,
)
# .NET TimeSpan "c" format: [-][d.]hh:mm:ss[.fffffff]
_ISO_UNIT_SECONDS = {"weeks": 604800.0, "days": 86400.0, "hours": 3600.0, "minutes": 60.0, "seconds": 1.0}
_DOTNET_TIMESPAN = re.compile(
    r"^(?P<sign>-)?(?:(?P<days>\d+)\.)?(?P<hours>\d{1,2}):(?P<minutes>\d{2}):(?P<seconds>\d{2}(?:\.\d{1,7})?)$"
)
_SIZE = re.compile(r"^(?P<number>\d[\d,]*(?:\.\d+)?|\.\d+)\s*(?P<unit>[KMGTP]?I?B|BYTES?)?$", re.IGNORECASE)
_UNIT_POWERS = {"": 0, "B": 0, "BYTE": 0, "BYTES": 0, "KB": 1, "MB": 2, "GB": 3, "TB": 4, "PB": 5}


def parse_duration(text: str) -> float:
    """Seconds in an ISO-8601 duration (PT41M17.9S, P1DT2H) or a .NET TimeSpan (1.02:03:04.5)."""
    value = text.strip()
    iso = _ISO_DURATION.match(value)
    if iso:
        parts = iso.group(*_ISO_UNIT_SECONDS)
        if not any(parts):
            raise ValueError(f"empty duration {text!r}")
        units = zip(parts, _ISO_UNIT_SECONDS.values(), strict=True)
        seconds = sum(float(part) * factor for part, factor in units if part)
        return -seconds if iso.group("sign") else seconds
    dotnet = _DOTNET_TIMESPAN.match(value)
    if dotnet:
        hours, minutes = int(dotnet.group("hours")), int(dotnet.group("minutes"))
        if hours > 23 or minutes > 59 or float(dotnet.group("seconds")) >= 60:
            raise ValueError(f"out-of-range TimeSpan {text!r}")
        seconds = (int(dotnet.group("days") or 0) * 86400 + hours * 3600 + minutes * 60
                   + float(dotnet.group("seconds")))
        return -seconds if dotnet.group("sign") else seconds
    raise ValueError(f"unrecognised duration {text!r}")


def parse_size(text: str) -> float:
    """Bytes in a size such as '2332 MB', '1.5 GB', '0 MB' or '1,024 KB' (1024-based units)."""
    match = _SIZE.match(text.strip())
    if not match:
        raise ValueError(f"unrecognised size {text!r}")
    unit = (match.group("unit") or "").upper().replace("IB", "B")
    if unit not in _UNIT_POWERS:
        raise ValueError(f"unknown size unit in {text!r}")
    return float(match.group("number").replace(",", "")) * float(1024 ** _UNIT_POWERS[unit])


def parse_timestamp(text: str) -> float:
    """Unix seconds of an ARM date-time ('2022-05-13T10:09:27.2801342Z', 6 or 7 fractional digits)."""
    value = text.strip()
    try:
        # Python 3.11's fromisoformat takes Azure's form as it is (Z, 7 digits): every job has two of these.
        parsed = datetime.fromisoformat(value)
    except ValueError:
        parsed = datetime.fromisoformat(_FRACTION_BEYOND_MICROSECONDS.sub(r"\1", value.replace("z", "Z")))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


_FRACTION_BEYOND_MICROSECONDS = re.compile(r"(\.\d{6})\d+")


def format_filter_time(moment: datetime) -> str:
    """A UTC time in the Backup service's $filter format, 'yyyy-MM-dd hh:mm:ss tt'."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %I:%M:%S %p")
