"""What a map draws around a facility, the search gives that facility (issue 12).

For every facility and 200 random points inside its drawn 15-minute isochrone,
``nearest(minutes=15)`` lists the facility, or the point is off-network. On Dongcheng
(the road-centreline layer and its 64 kindergartens) and on Yuzhong (the OSM network)
with a test registry of 40 facilities placed beside its streets. The drawn polygon is
the one the service's isochrone endpoint returns (``AreaModel.facility_isochrone``); the
offline map's copy, simplified for display, is checked too.

The edge-buffer polygon the maps drew before failed this (about one point in six on
Yuzhong: points nearer to a parallel way the walk had not reached, or 25 m beyond the
frontier of a way reached at exactly 15 minutes); the first test shows it still would.
"""

from __future__ import annotations

from typing import Any

import geopandas as gpd
import numpy as np
import pytest
import shapely
from tuoyu.config.settings import Settings
from tuoyu.config.study_area import load_area
from tuoyu.errors import InputValidationError, OffNetworkError
from tuoyu.isochrones.exact import isochrone_polygons
from tuoyu.network.graph import build_graph
from tuoyu.network.snap import snap_points
from tuoyu.outputs.maps.common import DEFAULT_SIMPLIFY_M, display_geometries, display_tolerance
from tuoyu.reach.engine import facility_reach, k_nearest_facilities
from tuoyu.synthetic import random_facilities, synthetic_city
from tuoyu.workflow.core import AreaModel
from tuoyu.workflow.layers import load_layers, study_area_polygon

POINTS_PER_FACILITY = 200
MINUTES = 15.0


def _inside(geom: shapely.Geometry, n: int, rng: np.random.Generator) -> list[tuple[float, float]]:
    """``n`` uniform random points inside ``geom`` (rejection sampling in its bounds)."""
    x0, y0, x1, y1 = geom.bounds
    out: list[tuple[float, float]] = []
    while len(out) < n:
        x = rng.uniform(x0, x1, 4 * n)
        y = rng.uniform(y0, y1, 4 * n)
        ok = shapely.contains_xy(geom, x, y)
        out += list(zip(x[ok].tolist(), y[ok].tolist(), strict=True))
    return out[:n]


def _check_points(
    model: AreaModel, fid: str, points: list[tuple[float, float]], counts: dict[str, int]
) -> list[str]:
    """Query each WGS84 point; return the failures (listed neither on nor off network)."""
    failures = []
    for lon, lat in points:
        try:
            rows = model.nearest(lon, lat, "wgs84", MINUTES, k=200)
        except OffNetworkError:
            counts["off_network"] += 1
            continue
        except InputValidationError as err:
            if err.field == "lon":  # outside the study area: the search takes no query
                counts["outside_area"] += 1
                continue
            raise
        counts["checked"] += 1
        if fid not in [r.facility_id for r in rows]:
            got = {r.facility_id: r.walk_min for r in rows}
            failures.append(f"{fid} at ({lon:.6f}, {lat:.6f}): got {got}")
    return failures


def _yuzhong_registry(settings: Settings) -> list[dict[str, Any]]:
    """40 test facilities beside Yuzhong's streets (WGS84 records), placed reproducibly."""
    layers = load_layers(load_area("chongqing-yuzhong"), settings)
    assert layers.network is not None
    x, y = random_facilities(layers.network, 120, seed=12, max_offset_m=20.0)
    polygon = study_area_polygon(layers)
    assert polygon is not None
    keep = np.flatnonzero(shapely.contains_xy(polygon, x, y))[:40]
    pts = gpd.GeoSeries(shapely.points(x[keep], y[keep]), crs=layers.metric_crs).to_crs(4326)
    return [
        {"id": f"YZ-TEST-{i:02d}", "name": f"测试托育点{i:02d}", "lon": p.x, "lat": p.y}
        for i, p in enumerate(pts)
    ]


def test_edge_buffer_polygons_disagree_and_walk_field_agrees() -> None:
    """On a synthetic city the old polygon fails the check and the new one passes it."""
    net = synthetic_city(6000, seed=4)
    graph = build_graph(net)
    x, y = random_facilities(net, 3, seed=5)
    fac = snap_points(graph, x, y, min_component_nodes=40)
    from tuoyu.isochrones.walk_field import WalkFieldIndex, walk_field_polygons

    index = WalkFieldIndex.build(graph, 40)
    rng = np.random.default_rng(6)
    failures = {"edge_buffer": 0, "walk_field": 0}
    for i in range(len(fac)):
        reach = facility_reach(graph, fac, i, 1000.0)
        drawn = {
            "edge_buffer": isochrone_polygons(net, reach, [1000.0], 25.0, points=fac)[0],
            "walk_field": walk_field_polygons(index, [reach], [1000.0])[0][0],
        }
        for method, geom in drawn.items():
            for px, py in _inside(geom, POINTS_PER_FACILITY, rng):
                p = snap_points(graph, [px], [py], min_component_nodes=40)
                if p.off_network[0]:
                    continue
                slots, _ = k_nearest_facilities(graph, fac, p, 1000.0, 50)
                failures[method] += int(i not in slots.tolist())
    assert failures["edge_buffer"] > 0  # the check can fail
    assert failures["walk_field"] == 0


@pytest.mark.slow
@pytest.mark.parametrize("area_name", ["beijing-dongcheng", "chongqing-yuzhong"])
def test_every_point_of_a_drawn_isochrone_is_listed_by_nearest(
    area_name: str, settings: Settings
) -> None:
    facilities = _yuzhong_registry(settings) if area_name == "chongqing-yuzhong" else None
    model = AreaModel.build(load_area(area_name), settings, facilities=facilities)
    ids = model.facility_ids()
    assert len(ids) >= (64 if area_name == "beijing-dongcheng" else 40)
    rng = np.random.default_rng(2026)
    counts = {"checked": 0, "off_network": 0, "outside_area": 0}
    failures: list[str] = []
    for fid in ids:
        iso = model.facility_isochrone(fid, MINUTES)
        assert iso.method == "walk_field"
        if iso.off_network or iso.geometry_wgs84.is_empty:
            continue
        failures += _check_points(model, fid, _inside(iso.geometry_wgs84, 200, rng), counts)
    # The offline map's copy (simplified for display): 20 points per facility.
    table = model.isochrones()
    assert table is not None
    rows = table[table["minutes"] == MINUTES]
    shown = display_geometries(rows, display_tolerance(rows, DEFAULT_SIMPLIFY_M))
    for fid, geom in zip(rows["facility_id"], shown, strict=True):
        if not geom.is_empty:
            failures += _check_points(model, str(fid), _inside(geom, 20, rng), counts)
    print(f"{area_name}: {counts}")
    assert counts["checked"] > 0.9 * POINTS_PER_FACILITY * len(ids)
    assert failures == [], f"{len(failures)} points: {failures[:5]}"


def _just_inside_boundary(
    geom: shapely.Geometry, n: int, rng: np.random.Generator
) -> list[tuple[float, float]]:
    """``n`` points on the drawn boundary, nudged 1 cm to whichever side is inside."""
    rings = shapely.get_rings(shapely.get_parts(geom))
    lengths = shapely.length(rings)
    out: list[tuple[float, float]] = []
    while len(out) < n:
        k = rng.choice(len(rings), p=lengths / lengths.sum())
        p = shapely.line_interpolate_point(rings[k], rng.uniform(0, lengths[k]))
        for dx, dy in ((0.01, 0), (-0.01, 0), (0, 0.01), (0, -0.01)):
            if shapely.contains_xy(geom, p.x + dx, p.y + dy):
                out.append((p.x + dx, p.y + dy))
                break
    return out


def test_points_at_the_drawn_edge_are_listed_too() -> None:
    """The margin's proof is tested where it is tight: just inside the drawn boundary,
    at the frontier and along the 25 m band, for the default lattice and a coarse one."""
    net = synthetic_city(6000, seed=8)
    graph = build_graph(net)
    x, y = random_facilities(net, 4, seed=9)
    fac = snap_points(graph, x, y, min_component_nodes=40)
    from tuoyu.isochrones.walk_field import (
        DEFAULT_FIELD_CELL_M,
        WalkFieldIndex,
        walk_field_polygons,
    )

    index = WalkFieldIndex.build(graph, 40)
    rng = np.random.default_rng(10)
    checked = failures = 0
    for cell in (DEFAULT_FIELD_CELL_M, 10.0):
        for i in range(len(fac)):
            reach = facility_reach(graph, fac, i, 1000.0)
            budgets = [500.0, 1000.0]
            geom = walk_field_polygons(index, [reach], budgets, cell_m=cell)[0]
            for poly, budget in zip(geom, budgets, strict=True):
                for px, py in _just_inside_boundary(poly, 150, rng):
                    p = snap_points(graph, [px], [py], min_component_nodes=40)
                    if p.off_network[0]:
                        continue
                    slots, walk_m = k_nearest_facilities(graph, fac, p, budget, 50)
                    checked += 1
                    failures += int(i not in slots[walk_m <= budget].tolist())
    assert checked > 2000 and failures == 0
