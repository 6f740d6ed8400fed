"""What may leave the service: absolute server paths are reduced to their file names.

The library's results describe their inputs with the paths it read (data sources,
population assumptions such as "unit totals from /srv/data/…/stats.csv", error messages
naming a missing file). A client needs the file name, never the server's folder layout,
so every summary and error the service sends passes through :func:`scrub_paths`.
"""

from __future__ import annotations

import re
from typing import Any, Final

_POSIX_PATH: Final = re.compile(
    # A "/" not preceded by a word character, dot, colon or slash ("km/h", "../x",
    # "https://"), then two or more "/segment"s: /srv/data/x.csv, /tmp/x/
    r"(?<![\w.:/~\\-])(?:/[^\s/\\\"'<>|,;()\[\]{}]+){2,}/?"
)
_WINDOWS_PATH: Final = re.compile(r"(?<![\w])[A-Za-z]:\\(?:[^\s\\\"'<>|,;()\[\]{}]+\\?)+")


def _name(match: re.Match[str]) -> str:
    parts = [p for p in re.split(r"[/\\]", match.group(0)) if p]
    return parts[-1] if parts else ""


def scrub_text(text: str) -> str:
    """``text`` with every absolute path replaced by its last component.

    Examples
    --------
    >>> scrub_text("unit totals from /work/shared/data/yz/stats.csv / 单元人口")
    'unit totals from stats.csv / 单元人口'
    >>> scrub_text(r"read C:\\data\\yz.osm.pbf")
    'read yz.osm.pbf'
    >>> scrub_text("4 km/h, see https://example.org/a/b and ../data/x.csv")
    '4 km/h, see https://example.org/a/b and ../data/x.csv'
    """
    if "/" not in text and "\\" not in text:
        return text
    return _WINDOWS_PATH.sub(_name, _POSIX_PATH.sub(_name, text))


def scrub_paths(value: Any) -> Any:
    """``value`` (JSON-ready: dicts, lists, strings, numbers) with absolute paths in every
    string reduced to file names; other values are returned unchanged.

    Examples
    --------
    >>> scrub_paths({"files": [{"path": "/srv/d/a.pbf"}], "n": 3})
    {'files': [{'path': 'a.pbf'}], 'n': 3}
    """
    if isinstance(value, str):
        return scrub_text(value)
    if isinstance(value, dict):
        return {k: scrub_paths(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [scrub_paths(v) for v in value]
    return value


def absolute_paths_in(value: Any) -> list[str]:
    """Every absolute path found in the strings of ``value`` (for tests and checks).

    Examples
    --------
    >>> absolute_paths_in({"a": ["x", "from /srv/data/a.csv"]})
    ['/srv/data/a.csv']
    """
    found: list[str] = []
    if isinstance(value, str):
        found += [m.group(0) for m in _POSIX_PATH.finditer(value)]
        found += [m.group(0) for m in _WINDOWS_PATH.finditer(value)]
    elif isinstance(value, dict):
        for v in value.values():
            found += absolute_paths_in(v)
    elif isinstance(value, list | tuple):
        for v in value:
            found += absolute_paths_in(v)
    return found
