"""Month on month: new 托位 and new 普惠 facilities per unit against a previous registry.

Pure computation on two facility snapshots of the same registry (the baseline, e.g. the
registry at the start of the year or of last month, and the current one), matched by
facility ``id``:

* a facility's new slots are ``slots now − slots before`` (``slots before`` = 0 when the
  id is not in the baseline: a new facility); a facility that left the registry adds
  ``− slots before`` to the unit it was in. A slot count unknown in either snapshot makes
  the facility's change unknown, and a unit's ``new_slots`` is unknown as soon as one of its
  facilities' changes is (unknown is never read as 0);
* a new 普惠 facility is one that is 普惠 now and was not (or was not registered) before;
  unknown when its 普惠 status is unknown now, or it is 普惠 now and its status before is
  unknown.

Facilities are placed in units by :func:`tuoyu.indicators.summary.
assign_facilities_to_units` (polygons, or the ``jiedao`` field for a 街道 table); each
snapshot is placed by its own location.

The district indicator ``new_slots_per_unit`` (Yubei: 每个镇街新建托位40个以上) reads
"every 街道": its value is the smallest ``new_slots`` of the 街道, so it passes only when
each 街道 reaches the target.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import geopandas as gpd
import numpy as np
import numpy.typing as npt
import pandas as pd

from tuoyu.errors import InputValidationError
from tuoyu.indicators.summary import assign_facilities_to_units
from tuoyu.indicators.targets import INDICATORS, Profile

CHANGE_COLUMNS: Final = (
    "id",
    "unit_code",
    "status",
    "slots_before",
    "slots_now",
    "new_slots",
    "puhui_before",
    "puhui_now",
    "new_puhui",
)
"""Columns of :attr:`BaselineChanges.facilities` (one row per facility id)."""

NEW_COLUMNS: Final = ("new_slots", "new_puhui_facilities")
"""Columns added to the unit table by :func:`with_baseline`."""

NOT_JIEDAO_REASON: Final = (
    "units are H3 hexagons, not 镇街: new slots per 镇街 need 街道 units / "
    "统计单元为六边形网格而非镇街，无法计算每个镇街新建托位"
)


@dataclass(frozen=True)
class BaselineChanges:
    """New slots and new 普惠 facilities per unit (see the module docstring).

    Attributes
    ----------
    units
        One row per unit (units' index): ``code``, ``new_slots`` (Int64, NA = unknown),
        ``new_puhui_facilities`` (Int64, NA = unknown).
    facilities
        :data:`CHANGE_COLUMNS`, one row per facility id of either snapshot; ``status`` is
        ``new``, ``kept`` or ``closed``.
    district_new_slots
        Net new slots over all facilities (NaN when any change is unknown).
    unknown
        Counts of facilities whose change is unknown (``slots``, ``puhui``).
    """

    units: pd.DataFrame
    facilities: pd.DataFrame
    district_new_slots: float
    unknown: Mapping[str, int]


def _ids(frame: pd.DataFrame, what: str) -> list[str]:
    if "id" not in frame:
        raise InputValidationError(f"{what} facilities have no 'id' column", field="id")
    ids = [str(v) for v in frame["id"]]
    seen: set[str] = set()
    for row, fid in enumerate(ids, 1):
        if fid in seen:
            raise InputValidationError(f"{what} facilities repeat id '{fid}'", row=row, field="id")
        seen.add(fid)
    return ids


def _slots(frame: pd.DataFrame) -> npt.NDArray[np.float64]:
    if "slots" not in frame:
        return np.full(len(frame), np.nan)
    return pd.to_numeric(frame["slots"], errors="coerce").to_numpy(dtype=float, na_value=np.nan)


def _puhui(frame: pd.DataFrame) -> list[bool | None]:
    if "puhui" not in frame:
        return [None] * len(frame)
    return [None if v is None or bool(pd.isna(v)) else bool(v) for v in frame["puhui"]]


def _strict_unit_sum(values: list[float], units: list[int], n: int) -> npt.NDArray[np.float64]:
    total = np.zeros(n)
    for value, unit in zip(values, units, strict=True):
        if unit >= 0:
            total[unit] += value  # NaN propagates: any unknown → unknown
    return total


def _int_array(values: npt.NDArray[np.float64]) -> pd.arrays.IntegerArray:
    return pd.array([None if math.isnan(v) else round(v) for v in values], dtype="Int64")


def baseline_changes(
    baseline: gpd.GeoDataFrame, current: gpd.GeoDataFrame, units: gpd.GeoDataFrame
) -> BaselineChanges:
    """New 托位 and new 普惠 facilities per unit between two registry snapshots.

    Parameters
    ----------
    baseline, current
        Facilities (``id``, ``slots``, ``puhui``, ``jiedao`` and points) of the previous
        and the current registry, in the units' CRS.
    units
        Units (``code``, ``name``; polygons, or none for a 街道 table).

    Returns
    -------
    BaselineChanges

    Raises
    ------
    InputValidationError
        A snapshot without ``id`` or with a repeated id.

    Examples
    --------
    >>> import shapely
    >>> units = gpd.GeoDataFrame({"code": ["A"], "name": ["甲街道"]},
    ...                          geometry=[None], crs="EPSG:32648")
    >>> def snap(rows):
    ...     ids, slots, puhui = zip(*rows)
    ...     return gpd.GeoDataFrame({"id": ids, "slots": slots, "puhui": puhui,
    ...                              "jiedao": ["甲"] * len(ids)},
    ...                             geometry=shapely.points([(0, 0)] * len(ids)),
    ...                             crs="EPSG:32648")
    >>> before = snap([("1", 40, False), ("2", 20, True)])
    >>> now = snap([("1", 60, True), ("3", 30, True)])
    >>> out = baseline_changes(before, now, units)
    >>> out.units[["new_slots", "new_puhui_facilities"]].values.tolist()  # 20 + 30 − 20
    [[30, 2]]
    """
    before_ids = _ids(baseline, "baseline")
    now_ids = _ids(current, "current")
    n = len(units)
    codes = units["code"].astype(str).to_numpy()
    unit_before = assign_facilities_to_units(units, baseline).tolist()
    unit_now = assign_facilities_to_units(units, current).tolist()
    slots_before = dict(zip(before_ids, _slots(baseline).tolist(), strict=True))
    puhui_before = dict(zip(before_ids, _puhui(baseline), strict=True))
    rows: list[dict[str, Any]] = []
    for fid, unit, slots_now, puhui_now in zip(
        now_ids, unit_now, _slots(current).tolist(), _puhui(current), strict=True
    ):
        kept = fid in slots_before
        before = slots_before[fid] if kept else 0.0
        was_puhui = puhui_before[fid] if kept else False
        if puhui_now is None or (puhui_now and was_puhui is None):
            new_puhui: bool | None = None
        else:
            new_puhui = bool(puhui_now and not was_puhui)
        rows.append(
            {"id": fid, "unit": unit, "status": "kept" if kept else "new",
             "slots_before": before if kept else math.nan, "slots_now": slots_now,
             "new_slots": slots_now - before, "puhui_before": was_puhui if kept else None,
             "puhui_now": puhui_now, "new_puhui": new_puhui}
        )  # fmt: skip
    now_set = set(now_ids)
    for fid, unit in zip(before_ids, unit_before, strict=True):
        if fid not in now_set:
            rows.append(
                {"id": fid, "unit": unit, "status": "closed", "slots_before": slots_before[fid],
                 "slots_now": math.nan, "new_slots": -slots_before[fid],
                 "puhui_before": puhui_before[fid], "puhui_now": None, "new_puhui": False}
            )  # fmt: skip
    placed = [int(r["unit"]) for r in rows]
    new_slots = _strict_unit_sum([float(r["new_slots"]) for r in rows], placed, n)
    new_puhui_values = [math.nan if r["new_puhui"] is None else float(r["new_puhui"]) for r in rows]
    new_puhui_count = _strict_unit_sum(new_puhui_values, placed, n)
    table = pd.DataFrame(
        {"code": codes, "new_slots": _int_array(new_slots),
         "new_puhui_facilities": _int_array(new_puhui_count)},
        index=units.index,
    )  # fmt: skip
    facilities = pd.DataFrame(rows, columns=["unit", *CHANGE_COLUMNS])
    facilities["unit_code"] = [codes[u] if u >= 0 else None for u in placed]
    facilities = facilities[list(CHANGE_COLUMNS)]
    for column in ("slots_before", "slots_now", "new_slots"):
        facilities[column] = _int_array(facilities[column].to_numpy(dtype=float))
    deltas = np.array([float(r["new_slots"]) for r in rows])
    return BaselineChanges(
        units=table,
        facilities=facilities,
        district_new_slots=float(deltas.sum()) if len(deltas) else 0.0,
        unknown={
            "facilities_new_slots_unknown": int(np.isnan(deltas).sum()),
            "facilities_new_puhui_unknown": int(sum(r["new_puhui"] is None for r in rows)),
        },
    )


def with_baseline(
    table: pd.DataFrame,
    summary: Mapping[str, Any],
    changes: BaselineChanges,
    profile: Profile,
    *,
    units_are_jiedao: bool = True,
    baseline_name: str | None = None,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The unit table and summary with the baseline's new slots (new objects).

    The table gains :data:`NEW_COLUMNS` (and ``meets_new_slots_per_unit`` when the profile
    has that target); the summary's ``new_slots_per_unit`` indicator gets the smallest
    ``new_slots`` of the units, its pass/fail and gap, and ``totals`` gain ``new_slots``
    and ``new_puhui_facilities``.

    Raises
    ------
    InputValidationError
        ``changes`` does not match the table's units.
    """
    if list(changes.units["code"]) != [str(c) for c in table["code"]]:
        raise InputValidationError("baseline changes are for other units", field="code")
    out = table.copy()
    out.attrs = dict(table.attrs)
    for column in NEW_COLUMNS:
        out[column] = changes.units[column].to_numpy()
    target = profile.target_for("new_slots_per_unit")
    if target is not None:
        out["meets_new_slots_per_unit"] = pd.array(
            [
                None if not units_are_jiedao or v is pd.NA else target.passes(float(v))
                for v in out["new_slots"]
            ],
            dtype="boolean",
        )
    new = dict(summary)
    indicators = {k: dict(v) for k, v in dict(summary.get("indicators", {})).items()}
    values = out["new_slots"]
    entry = dict(indicators.get("new_slots_per_unit", {}))
    ind = INDICATORS["new_slots_per_unit"]
    entry.update(label_zh=ind.label_zh, label_en=ind.label_en, unit=ind.unit)
    reason: str | None = None
    value: float | None = None
    if not units_are_jiedao:
        reason = NOT_JIEDAO_REASON
    elif not len(values):
        reason = "no units / 无统计单元"
    elif bool(values.isna().any()):
        n_unknown = int(values.isna().sum())
        reason = (
            f"new slots unknown in {n_unknown} 街道 (托位数 unknown in one of the snapshots) "
            f"/ {n_unknown} 个街道新增托位不详（某期托位数不详）"
        )
    else:
        value = float(values.min())
    entry["value"] = value
    entry["note"] = (
        "smallest new slots of the 街道 against the baseline registry"
        + (f" {baseline_name}" if baseline_name else "")
        + ": every 街道 must reach the target / 各街道新增托位的最小值"
    )
    if target is not None:
        entry["pass"] = target.passes(value)
        entry["gap"] = (
            None if value is None or target.value is None else max(target.value - value, 0.0)
        )
    skipped = [
        s for s in list(summary.get("skipped") or []) if s.get("indicator") != "new_slots_per_unit"
    ]
    if reason is not None:
        entry["reason"] = reason
        skipped.append({"indicator": "new_slots_per_unit", "reason": reason})
    else:
        entry.pop("reason", None)
    indicators["new_slots_per_unit"] = entry
    new["indicators"] = indicators
    new["skipped"] = skipped
    puhui = out["new_puhui_facilities"]
    new["totals"] = {
        **dict(summary.get("totals", {})),
        "new_slots": None
        if math.isnan(changes.district_new_slots)
        else int(changes.district_new_slots),
        "new_puhui_facilities": None if bool(puhui.isna().any()) else int(puhui.sum()),
    }
    new["unusable"] = {**dict(summary.get("unusable", {})), **changes.unknown}
    if baseline_name is not None:
        new["baseline"] = baseline_name
    return out, new
