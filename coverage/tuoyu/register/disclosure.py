"""The public view of a registered facility (信息公示) and the open-data export.

Policy 002 (京政办发〔2023〕6号, item 8) asks to "开发备案机构电子地图,向公众及时公开备案机构
信息,引导有需要的家庭就近选择符合标准规范的托育机构"; policy 001 asks for a 信息公示
system. What is disclosed is fixed here, once, for the API, the open-data files and the
pages: the facility's name, address, kind, 普惠 status, the ages it takes (from its
托位 by class), its service modes, 托位 (total and by class), the 备案 date and number
(:data:`PUBLIC_FIELDS`), and in GeoJSON its location (the point of its address, for
the map the policy asks for).

Never disclosed: the filing's documents, reviewer notes, return reasons, actors,
children enrolled, ownership details beyond the above, ids of the internal register, or
any personal data.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import geopandas as gpd
import pandas as pd
import shapely

from tuoyu.layers.schema import AGE_CLASSES
from tuoyu.outputs.atomic import write_bytes_atomic
from tuoyu.outputs.cells import neutralise_frame
from tuoyu.outputs.reports import write_geojson

PUBLIC_FIELDS: Final[dict[str, str]] = {
    "name": "机构名称",
    "address": "地址",
    "kind": "机构类型",
    "puhui": "普惠",
    "ages": "招收月龄",
    "slots_infant": "乳儿班托位",
    "slots_toddler": "托小班托位",
    "slots_preschool": "托大班托位",
    "service_modes": "服务模式",
    "slots": "托位数",
    "registered_on": "备案日期",
    "filing_number": "备案编号",
}
"""Every disclosed field, key → Chinese header of the CSV. Nothing else is published."""

OPEN_DATA_CSV: Final = "tuoyu_register_public.csv"
OPEN_DATA_GEOJSON: Final = "tuoyu_register_public.geojson"


def ages_text(record: Mapping[str, object]) -> str | None:
    """The ages a facility takes, from the classes with 托位 (``None`` when unknown).

    Examples
    --------
    >>> ages_text({"slots_toddler": 20, "slots_preschool": 30, "slots_infant": 0})
    '12–36个月'
    >>> ages_text({"slots": 30}) is None
    True
    """
    months = []
    for column, (_zh, start, end) in AGE_CLASSES.items():
        value = record.get(column)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            months.append((start, end))
    if not months:
        return None
    return f"{min(m[0] for m in months)}–{max(m[1] for m in months)}个月"


def _plain(value: object) -> Any:
    if value is None or (isinstance(value, float) and value != value):
        return None
    if isinstance(value, dt.datetime):
        return value.date().isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, pd.Timestamp):
        return value.date().isoformat()
    return value


def public_record(record: Mapping[str, object]) -> dict[str, Any]:
    """The disclosed fields of a facility record (JSON-ready), nothing else.

    Parameters
    ----------
    record
        A facility record in force (:func:`tuoyu.register.filings.facilities_as_of`);
        any other keys (documents, notes, enrolled, coordinates, ids, …) are dropped.

    Returns
    -------
    dict
        The keys of :data:`PUBLIC_FIELDS`, in that order (unknown values ``None``;
        dates as ``YYYY-MM-DD``).

    Examples
    --------
    >>> rec = {"name": "甲托育园", "enrolled": 25, "slots_toddler": 20, "note": "内部",
    ...        "registered_on": dt.date(2025, 3, 1), "filing_number": "B-1"}
    >>> out = public_record(rec)
    >>> list(out) == list(PUBLIC_FIELDS), out["ages"], out["registered_on"], "enrolled" in out
    (True, '12–24个月', '2025-03-01', False)
    """
    out = {key: _plain(record.get(key)) for key in PUBLIC_FIELDS}
    out["ages"] = ages_text(record)
    return out


@dataclass(frozen=True)
class OpenDataFiles:
    """The files :func:`write_open_data` wrote."""

    csv: Path
    geojson: Path


def public_frame(records: Iterable[Mapping[str, object]]) -> pd.DataFrame:
    """The public records as a table with the Chinese headers of :data:`PUBLIC_FIELDS`.

    普惠 is written 是/否 (empty when unknown); numbers stay numbers.
    """
    rows = [public_record(r) for r in records]
    frame = pd.DataFrame(rows, columns=list(PUBLIC_FIELDS))
    frame["puhui"] = [None if v is None else ("是" if v else "否") for v in frame["puhui"]]
    for column in ("slots_infant", "slots_toddler", "slots_preschool", "slots"):
        frame[column] = pd.array(
            [None if v is None or v != v else int(v) for v in frame[column]], dtype="Int64"
        )
    return frame.rename(columns=PUBLIC_FIELDS)


def public_csv_text(records: Iterable[Mapping[str, object]]) -> str:
    """The public records as CSV text (formula-safe; the caller adds the BOM)."""
    frame = neutralise_frame(public_frame(records))
    return str(frame.to_csv(index=False, lineterminator="\r\n", na_rep=""))


def public_layer(records: Iterable[Mapping[str, object]]) -> gpd.GeoDataFrame:
    """The public records as a WGS84 point layer (properties: :data:`PUBLIC_FIELDS` keys).

    A record without usable ``lon``/``lat`` gets no geometry (``null`` in GeoJSON).
    """
    items = list(records)
    props = pd.DataFrame([public_record(r) for r in items], columns=list(PUBLIC_FIELDS))
    points = [
        shapely.Point(float(str(r["lon"])), float(str(r["lat"])))
        if r.get("lon") is not None and r.get("lat") is not None
        else None
        for r in items
    ]
    return gpd.GeoDataFrame(props, geometry=gpd.GeoSeries(points, crs=4326), crs=4326)


def public_geojson_text(records: Iterable[Mapping[str, object]], *, name: str) -> str:
    """The public records as an RFC 7946 FeatureCollection (WGS84), as text."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = write_geojson(public_layer(records), Path(tmp) / "public.geojson", name=name)
        return path.read_text("utf-8")


def write_open_data(
    records: Iterable[Mapping[str, object]], out_dir: str | Path, *, name: str = "托育机构备案公示"
) -> OpenDataFiles:
    """Write the public register for a city's open-data portal.

    Parameters
    ----------
    records
        Facility records in force (:func:`tuoyu.register.filings.facilities_as_of`).
    out_dir
        Folder (created when missing).
    name
        Name member of the GeoJSON.

    Returns
    -------
    OpenDataFiles
        ``tuoyu_register_public.csv`` (UTF-8 with BOM, Chinese headers, text cells
        formula-safe via :func:`tuoyu.outputs.cells.neutralise_frame`) and
        ``tuoyu_register_public.geojson`` (WGS84 points, the :data:`PUBLIC_FIELDS`
        keys as properties). Both hold only the disclosed fields.

    Examples
    --------
    >>> import tempfile, json
    >>> rec = {"name": "=甲", "lon": 116.4, "lat": 39.9, "slots": 30, "enrolled": 9}
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     files = write_open_data([rec], tmp)
    ...     csv_text = files.csv.read_text("utf-8-sig")
    ...     feature = json.loads(files.geojson.read_text())["features"][0]
    >>> csv_text.splitlines()[1].split(",")[0], "enrolled" in feature["properties"]
    ("'=甲", False)
    """
    items = list(records)
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    csv_path = write_bytes_atomic(
        folder / OPEN_DATA_CSV, public_csv_text(items).encode("utf-8-sig")
    )
    geojson_path = write_geojson(public_layer(items), folder / OPEN_DATA_GEOJSON, name=name)
    return OpenDataFiles(csv=csv_path, geojson=geojson_path)


__all__ = [
    "OPEN_DATA_CSV",
    "OPEN_DATA_GEOJSON",
    "PUBLIC_FIELDS",
    "OpenDataFiles",
    "ages_text",
    "public_csv_text",
    "public_frame",
    "public_geojson_text",
    "public_layer",
    "public_record",
    "write_open_data",
]
