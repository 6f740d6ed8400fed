"""The vectorised gap-zone steps give what the per-point / per-zone loops gave, bit for bit.

``uncovered_areas`` draws one disc per uncovered point, unions each zone's discs and lists
each zone's units; on a big city (64,000 zones) these were 64,000 ``union_all`` calls and
a Python loop per point. The vectorised versions are checked here against those loops.
"""

from __future__ import annotations

from collections.abc import Mapping

import geopandas as gpd
import numpy as np
import numpy.typing as npt
import pandas as pd
import pytest
import shapely
from tuoyu.indicators.gaps import _DISC_QUAD_SEGS, _discs, _dissolve, _unit_lists, uncovered_areas

CRS = "EPSG:32650"


def _reference_lists(
    owner: npt.NDArray[np.int64],
    codes: npt.NDArray[np.object_],
    people: npt.NDArray[np.float64],
    n_groups: int,
    names: Mapping[str, str],
) -> tuple[list[str], list[str]]:
    """The former per-point loop of ``uncovered_areas``."""
    code_people: list[dict[str, float]] = [{} for _ in range(n_groups)]
    for code, group, here in zip(codes, owner, people, strict=True):
        if not pd.isna(code):
            share = code_people[group]
            share[str(code)] = share.get(str(code), 0.0) + float(here)
    ordered = [sorted(s, key=lambda c, s=s: (-s[c], c)) for s in code_people]  # type: ignore[misc]
    return (
        [",".join(o) for o in ordered],
        [",".join(names[c] for c in o if c in names) for o in ordered],
    )


@pytest.mark.parametrize("radius_m", [75.0, 12.5, 333.3])
def test_discs_are_the_buffers_bit_for_bit(radius_m: float) -> None:
    rng = np.random.default_rng(7)
    xy = np.column_stack([rng.uniform(2e5, 8e5, 5000), rng.uniform(2e6, 5e6, 5000)])
    xy[:500] = np.round(xy[:500])  # whole metres too
    expected = shapely.buffer(shapely.points(xy), radius_m, quad_segs=_DISC_QUAD_SEGS)
    got = _discs(xy, radius_m)
    assert got.dtype == object and got.shape == (5000,)
    assert (shapely.to_wkb(got) == shapely.to_wkb(expected)).all()


def test_dissolve_is_one_union_per_group_in_cell_order() -> None:
    rng = np.random.default_rng(3)
    n_cells, n_groups = 400, 120
    xy = rng.uniform(0, 3000, (n_cells, 2))
    cells = np.asarray(shapely.buffer(shapely.points(xy), 180.0, quad_segs=4), dtype=object)
    group = rng.integers(0, n_groups - 1, n_cells).astype(np.int64)  # last group has no cell
    got = _dissolve(cells, group, n_groups)
    expected = [
        shapely.union_all([c for c, g in zip(cells, group, strict=True) if g == k])
        for k in range(n_groups)
    ]
    assert got.shape == (n_groups,)
    assert (
        shapely.to_wkb(got).tolist() == shapely.to_wkb(np.asarray(expected, dtype=object)).tolist()
    )
    assert got[-1].is_empty


def test_unit_lists_match_the_point_loop() -> None:
    rng = np.random.default_rng(11)
    n, n_groups = 3000, 400
    owner = rng.integers(0, n_groups, n).astype(np.int64)
    pool: list[object] = ["500101", "500102", "500103", "=evil", 1, "1", None, np.nan, pd.NA]
    codes = np.empty(n, dtype=object)
    codes[:] = [pool[i] for i in rng.integers(0, len(pool), n)]
    people = rng.choice([1.0, 2.0, 0.5, 0.1, 0.2, 0.3], n)  # ties and float sums
    names = {"500101": "甲街道", "500103": "丙街道", "1": "一"}
    got = _unit_lists(owner, codes, people, n_groups, names)
    assert got == _reference_lists(owner, codes, people, n_groups, names)


def test_unit_lists_without_codes() -> None:
    codes = np.array([None, np.nan], dtype=object)
    got = _unit_lists(np.array([0, 1]), codes, np.array([1.0, 2.0]), 3, {})
    assert got == (["", "", ""], ["", "", ""])


@pytest.mark.parametrize("method", ["zones", "grid"])
def test_zones_match_the_per_zone_union(method: str) -> None:
    rng = np.random.default_rng(5)
    n = 1500
    xy = rng.uniform(0, 6000, (n, 2)) + np.array([450_000.0, 4_420_000.0])
    codes = rng.choice(["A", "B", "C"], n)
    pop = gpd.GeoDataFrame(
        {"population": rng.uniform(1, 20, n), "unit_code": codes},
        geometry=gpd.points_from_xy(xy[:, 0], xy[:, 1]),
        crs=CRS,
    )
    walk = np.where(rng.random(n) < 0.7, np.inf, 10.0)
    zones = uncovered_areas(
        pop, walk, threshold_m=1000.0, method=method,  # type: ignore[arg-type]
        spacing_m=60.0, unit_names={"A": "甲", "B": "乙"},
    )  # fmt: skip
    # each zone's polygon is the union of its points' cells, people and units kept
    uncovered = pop[walk > 1000.0]
    assert zones["population"].sum() == pytest.approx(uncovered["population"].sum())
    assert zones["points"].sum() == len(uncovered)
    joined = gpd.sjoin(uncovered, zones[["gap_id", "geometry"]], predicate="within")
    assert joined.index.is_unique and len(joined) == len(uncovered)
    for gap_id, members in joined.sort_index().groupby("gap_id"):
        zone = zones.loc[zones["gap_id"] == gap_id].iloc[0]
        if method == "zones":
            cells = shapely.buffer(members.geometry.values, 75.0, quad_segs=_DISC_QUAD_SEGS)
            expected = shapely.union_all(np.asarray(cells, dtype=object))
            assert shapely.to_wkb(zone.geometry) == shapely.to_wkb(expected)
        share = members.groupby("unit_code")["population"].sum()
        top = sorted(share.index, key=lambda c: (-share[c], c))
        assert zone["unit_codes"] == ",".join(top)
        assert zone["unit_names"] == ",".join({"A": "甲", "B": "乙"}[c] for c in top if c != "C")
