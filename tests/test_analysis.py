"""AreaAnalysis: nearest facilities, isochrones, incremental updates, what-if scenarios.

Hand-checked fixture (metric CRS EPSG:32648, local origin X0, Y0): one straight road
of 16 nodes from x = 0 to 1,500 m at y = 0, two 街道 split at x = 750 m::

    甲街道 (A)                     | 乙街道 (B)
    P1 (300, 0) 100 people         | P2 (900, 0) 100 people, P3 (1300, 0) 200 people

Walking 4 km/h: 15 min = 1,000 m. With F1 at x = 0 the walks are 300, 900 and 1,300 m
(beyond the circle), so coverage is 200 / 400 = 50 %; adding F2 at x = 1,500 gives 300,
600, 200 m (100 %); removing F1 then leaves 1,200 (outside), 600, 200 m (75 %).

The real-data tests run the incremental updates on Yuzhong's OSM network and compare
each step with a full recomputation (one multi-source search, independent of the
incremental bookkeeping), and the last step with the pipeline itself.
"""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from pyproj import CRS, Transformer
from tuoyu.config.settings import Settings
from tuoyu.config.study_area import NetworkSection, StudyArea, load_area
from tuoyu.crs.china import convert
from tuoyu.errors import (
    ConflictError,
    InputValidationError,
    NoNetworkError,
    NotFoundError,
    OffNetworkError,
)
from tuoyu.indicators.targets import load_profile
from tuoyu.isochrones.walk_field import DEFAULT_FIELD_CELL_M, margin_m
from tuoyu.network.graph import build_graph
from tuoyu.network.snap import snap_points
from tuoyu.network.walk_network import WalkNetwork
from tuoyu.progress import SILENT
from tuoyu.reach.engine import ReachState, nearest_facility_times, point_times, reach_matrix
from tuoyu.workflow.core import AreaModel as AreaAnalysis
from tuoyu.workflow.facility_records import facilities_frame
from tuoyu.workflow.layers import AreaLayers, load_layers
from tuoyu.workflow.steps import ReachResults, compute_indicators

from tests.conftest import area_without_network

X0, Y0 = 500_000.0, 3_270_000.0
METRIC = CRS.from_epsg(32648)
TO_WGS = Transformer.from_crs(METRIC, 4326, always_xy=True)


def _lonlat(x: float, y: float) -> tuple[float, float]:
    lon, lat = TO_WGS.transform(X0 + x, Y0 + y)
    return float(lon), float(lat)


def _record(fid: str, x: float, y: float = 0.0, **extra: Any) -> dict[str, Any]:
    lon, lat = _lonlat(x, y)
    return {"id": fid, "lon": lon, "lat": lat, **extra}


def _box(x0: float, y0: float, x1: float, y1: float) -> shapely.Polygon:
    return shapely.box(X0 + x0, Y0 + y0, X0 + x1, Y0 + y1)


@pytest.fixture()
def road_layers(tmp_path: Path) -> AreaLayers:
    """The one-road fixture of the module docstring."""
    area = StudyArea.model_validate(
        {
            "area": {"name": "测试区", "code": "999999", "target_profile": "chongqing-2025"},
            "walk": {"speed_kmh": 4.0, "minutes": [5, 10, 15], "max_snap_m": 50},
        }
    ).model_copy(update={"source_path": tmp_path / "road.toml"})
    n = 16
    network = WalkNetwork(
        node_id=np.arange(n, dtype=np.int64),
        node_x_m=X0 + 100.0 * np.arange(n),
        node_y_m=np.full(n, Y0),
        edge_u=np.arange(n - 1, dtype=np.int64),
        edge_v=np.arange(1, n, dtype=np.int64),
        edge_length_m=np.full(n - 1, 100.0),
        edge_way_id=np.full(n - 1, -1, dtype=np.int64),
        crs=METRIC,
        source="synthetic road",
    )
    units = gpd.GeoDataFrame(
        {"code": ["A", "B"], "name": ["甲街道", "乙街道"], "area_m2": [750.0 * 400, 750.0 * 400]},
        geometry=[_box(0, -200, 750, 200), _box(750, -200, 1500, 200)],
        crs=METRIC,
    )
    population = gpd.GeoDataFrame(
        {
            "point_id": [1, 2, 3],
            "unit_code": ["A", "B", "B"],
            "population": [100.0, 100.0, 200.0],
            "population_under3": [1.5, 1.5, 3.0],
        },
        geometry=gpd.points_from_xy([X0 + 300, X0 + 900, X0 + 1300], [Y0, Y0, Y0]),
        crs=METRIC,
    )
    outline = gpd.GeoDataFrame(geometry=[_box(-50, -200, 1550, 200)], crs=METRIC)
    settings = Settings(cache_dir=tmp_path / "cache", state_dir=tmp_path / "state")
    return AreaLayers(
        area=area,
        settings=settings,
        metric_crs=METRIC,
        outline=outline,
        network=network,
        units=units,
        units_kind="jiedao",
        population=population,
    )


def _coverage(analysis: AreaAnalysis) -> dict[str, float]:
    table = analysis.units().set_index("code")
    return {code: float(table.loc[code, "coverage_pct"]) for code in ("A", "B")}


# --- hand-checked -------------------------------------------------------------------------


def test_road_nearest_and_incremental_coverage(road_layers: AreaLayers) -> None:
    analysis = AreaAnalysis.from_layers(road_layers, facilities=[_record("F1", 0, puhui=True)])
    all_m, puhui_m = analysis.walk_distances()
    assert all_m is not None and puhui_m is not None
    np.testing.assert_allclose(all_m[:2], [300.0, 900.0], atol=1e-6)
    assert np.isinf(all_m[2])
    assert _coverage(analysis) == pytest.approx({"A": 100.0, "B": 100.0 / 3.0})

    # A point 10 m beside the road at x = 700: 10 m access + 700 m along it.
    lon, lat = _lonlat(700, 10)
    (row,) = analysis.nearest(lon, lat)
    assert row.facility_id == "F1" and row.walk_m == pytest.approx(710.0, abs=0.1)
    assert row.walk_min == pytest.approx(710.0 / (4000 / 60), abs=0.01)
    assert row.puhui is True and row.approximate is False

    assert analysis.add_facility(_record("F2", 1500, puhui=False)) == 1
    all_m, puhui_m = analysis.walk_distances()
    assert all_m is not None and puhui_m is not None
    np.testing.assert_allclose(all_m, [300.0, 600.0, 200.0], atol=1e-6)
    assert np.isinf(puhui_m[2])  # F2 is not 普惠
    assert _coverage(analysis) == pytest.approx({"A": 100.0, "B": 100.0})
    rows = analysis.nearest(lon, lat)
    assert [(r.facility_id, r.walk_m) for r in rows] == [("F1", 710.0), ("F2", 810.0)]
    assert analysis.nearest(lon, lat, minutes=11) == rows[:1]  # 11 min = 733 m
    assert analysis.nearest(lon, lat, k=1) == rows[:1]

    analysis.remove_facility("F1")
    all_m, _ = analysis.walk_distances()
    assert all_m is not None
    assert np.isinf(all_m[0]) and all_m[1:] == pytest.approx([600.0, 200.0])
    assert _coverage(analysis) == pytest.approx({"A": 0.0, "B": 100.0})
    assert [r.facility_id for r in analysis.nearest(lon, lat)] == ["F2"]
    assert analysis.version == 2 and analysis.facility_ids() == ["F2"]


def test_update_moves_or_keeps_the_reach(road_layers: AreaLayers) -> None:
    analysis = AreaAnalysis.from_layers(
        road_layers, facilities=[_record("F1", 0, puhui=True, slots=10)]
    )
    before = analysis.facility("F1")
    # Attributes only: the reach is unchanged, the table follows the new slots.
    analysis.update_facility(before, {**before, "slots": 40})
    assert analysis.units().set_index("code").loc["A", "slots"] == 40
    np.testing.assert_allclose(analysis.walk_distances()[0][:2], [300.0, 900.0])  # type: ignore[index]
    # Moved to x = 1,000: walks 700, 100, 300.
    analysis.update_facility(before, {**_record("F1", 1000, puhui=True), "slots": 40})
    all_m, puhui_m = analysis.walk_distances()
    np.testing.assert_allclose(all_m, [700.0, 100.0, 300.0], atol=1e-6)  # type: ignore[arg-type]
    np.testing.assert_allclose(puhui_m, [700.0, 100.0, 300.0], atol=1e-6)  # type: ignore[arg-type]
    # No longer 普惠: the 普惠 distances empty, all distances stay.
    analysis.update_facility(None, {**_record("F1", 1000, puhui=False)})
    assert np.isinf(analysis.walk_distances()[1]).all()  # type: ignore[arg-type]
    with pytest.raises(InputValidationError):
        analysis.update_facility({"id": "F1"}, {**_record("F9", 0)})
    with pytest.raises(NotFoundError):
        analysis.update_facility(None, _record("F9", 0))


def test_bad_queries_and_writes(road_layers: AreaLayers) -> None:
    analysis = AreaAnalysis.from_layers(road_layers, facilities=[_record("F1", 0)])
    lon, lat = _lonlat(700, 0)
    with pytest.raises(OffNetworkError, match="snapping limit"):
        analysis.nearest(*_lonlat(700, 120))  # 120 m from the road, limit 50 m
    with pytest.raises(InputValidationError, match="outside study area"):
        analysis.nearest(*_lonlat(700, 500))
    for kwargs in ({"minutes": 0}, {"minutes": float("nan")}, {"k": 0}, {"crs": "epsg:3857"}):
        with pytest.raises(InputValidationError):
            analysis.nearest(lon, lat, **kwargs)
    with pytest.raises(InputValidationError, match="lat"):
        analysis.nearest(lon, float("nan"))
    with pytest.raises(ConflictError):
        analysis.add_facility(_record("F1", 10))
    with pytest.raises(InputValidationError, match="no id"):
        analysis.add_facility({"lon": lon, "lat": lat})
    with pytest.raises(NotFoundError):
        analysis.remove_facility("F9")
    with pytest.raises(NotFoundError):
        analysis.facility_isochrone("F9")
    with pytest.raises(NotFoundError):
        analysis.unit("Z")
    with pytest.raises(ConflictError):
        AreaAnalysis.from_layers(road_layers, facilities=[_record("F1", 0), _record("F1", 5)])
    assert analysis.version == 0  # failed writes change nothing


def test_a_failed_change_leaves_the_state(
    road_layers: AreaLayers, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A move fails half-way (removed, not re-added): nothing of it is published."""
    analysis = AreaAnalysis.from_layers(road_layers, facilities=[_record("F1", 0)])
    before = analysis.walk_distances()[0]
    lon, lat = _lonlat(700, 10)

    def boom(self: ReachState, point: object) -> int:
        raise InputValidationError("simulated failure")

    monkeypatch.setattr(ReachState, "add_facility", boom)
    with pytest.raises(InputValidationError, match="simulated"):
        analysis.update_facility(None, _record("F1", 1000))
    monkeypatch.undo()
    assert analysis.version == 0
    np.testing.assert_array_equal(analysis.walk_distances()[0], before)  # type: ignore[arg-type]
    assert analysis.nearest(lon, lat)[0].walk_m == pytest.approx(710.0, abs=0.1)
    analysis.update_facility(None, _record("F1", 1000))
    np.testing.assert_allclose(analysis.walk_distances()[0], [700.0, 100.0, 300.0], atol=1e-6)  # type: ignore[arg-type]


def test_off_network_facility_reaches_nobody(road_layers: AreaLayers) -> None:
    """A facility 120 m from the road (limit 50 m) is kept, listed nowhere, said so."""
    analysis = AreaAnalysis.from_layers(
        road_layers, facilities=[_record("F1", 0), _record("OFF", 700, 120)]
    )
    assert [r.facility_id for r in analysis.nearest(*_lonlat(700, 0))] == ["F1"]
    feature = analysis.facility_isochrone("OFF", 15)
    assert feature.off_network is True
    assert feature.area_m2 == 0.0
    assert any("1 facilities farther than 50 m" in w for w in analysis.summary()["warnings"])
    assert analysis.units().set_index("code").loc["A", "facilities"] == 2  # still counted
    analysis.remove_facility("OFF")  # never in the reach state: removal still works
    assert analysis.facility_ids() == ["F1"]


def test_gcj02_and_bd09_points_give_the_same_answer(road_layers: AreaLayers) -> None:
    analysis = AreaAnalysis.from_layers(road_layers, facilities=[_record("F1", 0)])
    lon, lat = _lonlat(700, 10)
    expected = analysis.nearest(lon, lat)
    for datum in ("gcj02", "bd09"):
        glon, glat = convert(lon, lat, "wgs84", datum)
        got = analysis.nearest(float(glon), float(glat), crs=datum)
        assert got[0].walk_m == pytest.approx(expected[0].walk_m, abs=0.01)
    # The same numbers read as WGS84 are hundreds of metres away: outside the area.
    glon, glat = convert(lon, lat, "wgs84", "gcj02")
    with pytest.raises(InputValidationError):
        analysis.nearest(float(glon), float(glat), crs="wgs84")


def _with_method(layers: AreaLayers, method: str) -> AreaLayers:
    walk = layers.area.walk.model_copy(update={"isochrone_method": method})
    return dataclasses.replace(layers, area=layers.area.model_copy(update={"walk": walk}))


def test_walk_field_isochrone_on_the_road(road_layers: AreaLayers) -> None:
    """The default polygon: the points whose walk (access leg + road) is ≤ 333.3 m."""
    analysis = AreaAnalysis.from_layers(road_layers, facilities=[_record("F1", 500)])
    feature = analysis.facility_isochrone("F1", 5)
    assert feature.method == "walk_field" and feature.geometry_wgs84.geom_type == "Polygon"
    # Inside |along| + |across| ≤ 333.3 and |across| ≤ 25 (area 666.7 × 50 − 2 · 25²),
    # short of it by the conservative margin only (a band of 2·rho ≈ 25 m of walking
    # on the default 5 m lattice).
    band_m = 2 * margin_m(DEFAULT_FIELD_CELL_M)
    full = 666.67 * 50 - 2 * 625
    shrunk = 4 * (333.3 - band_m) * 25 - 2 * 625  # the same region for 333.3 − band_m
    assert 0.85 * shrunk < feature.area_m2 < full
    lons = [c[0] for c in feature.geometry_wgs84.exterior.coords]
    west, _ = _lonlat(500 - 333.3, 0)
    east, _ = _lonlat(500 + 333.3, 0)
    inner_west, _ = _lonlat(500 - 333.3 + band_m + 1, 0)
    inner_east, _ = _lonlat(500 + 333.3 - band_m - 1, 0)
    assert west < min(lons) < inner_west and inner_east < max(lons) < east
    # A point 20 m off the road walks 20 m more: inside near the facility, not near the tip.
    assert feature.geometry_wgs84.contains(shapely.Point(*_lonlat(500 + 200, 20)))
    assert not feature.geometry_wgs84.contains(shapely.Point(*_lonlat(500 + 320, 20)))


@pytest.mark.parametrize("method", ["walk_field", "exact"])
def test_planned_point_isochrone_is_the_facility_one(road_layers: AreaLayers, method: str) -> None:
    """A planned site (scenario, workbench) is drawn as the same site registered would be."""
    analysis = AreaAnalysis.from_layers(
        _with_method(road_layers, method), facilities=[_record("F1", 500, 10)]
    )
    registered = analysis.facility_isochrone("F1", 5)
    [planned], [off], label = analysis.point_isochrones([X0 + 500], [Y0 + 10], 5)
    assert label == registered.method and off is registered.off_network is False
    assert planned.area == pytest.approx(registered.area_m2, abs=0.1)


def test_isochrone_on_the_road(road_layers: AreaLayers) -> None:
    exact_layers = _with_method(road_layers, "exact")
    analysis = AreaAnalysis.from_layers(exact_layers, facilities=[_record("F1", 500)])
    feature = analysis.facility_isochrone("F1", 5)  # 333.3 m each way
    assert feature.geometry_wgs84.geom_type == "Polygon"
    props = dataclasses.asdict(feature)
    assert props["walk_m"] == pytest.approx(333.3, abs=0.1) and props["method"] == "edge_buffer"
    # A 666.7 m stretch buffered by 25 m: 666.7 × 50 + π·25² (round ends, ±1 %).
    assert props["area_m2"] == pytest.approx(666.67 * 50 + np.pi * 625, rel=0.01)
    lons = [c[0] for c in feature.geometry_wgs84.exterior.coords]
    west, _ = _lonlat(500 - 333.3 - 25, 0)
    east, _ = _lonlat(500 + 333.3 + 25, 0)
    assert min(lons) == pytest.approx(west, abs=2e-6) and max(lons) == pytest.approx(east, abs=2e-6)
    revision = analysis.facility_revision("F1")  # the service's cache key
    assert analysis.facility_isochrone("F1", 5) == feature
    analysis.update_facility(None, _record("F1", 600))
    assert analysis.facility_revision("F1") != revision
    assert analysis.facility_isochrone("F1", 5) != feature  # the facility moved


def test_scenario_leaves_the_state_alone(road_layers: AreaLayers) -> None:
    analysis = AreaAnalysis.from_layers(road_layers, facilities=[_record("F1", 0, puhui=True)])
    before = analysis.units()
    result = analysis.scenario(add=[_record("", 1500, puhui=True)], remove=["F1"])
    assert result.added == ("scenario-1",) and result.removed == ("F1",)
    table = result.results.table.set_index("code")
    assert table.loc["A", "coverage_pct"] == 0.0 and table.loc["B", "coverage_pct"] == 100.0
    assert result.results.summary["scenario"] == {"added": ["scenario-1"], "removed": ["F1"]}
    pd.testing.assert_frame_equal(analysis.units(), before)
    assert analysis.version == 0 and analysis.facility_ids() == ["F1"]
    # Replacing a facility: remove its id and add a record with the same id.
    moved = analysis.scenario(add=[_record("F1", 1500)], remove=["F1"])
    assert moved.results.table.set_index("code").loc["B", "coverage_pct"] == 100.0
    with pytest.raises(InputValidationError, match="remove"):
        analysis.scenario(remove=["nope"])
    with pytest.raises(ConflictError, match=r"add\[0\]"):
        analysis.scenario(add=[_record("F1", 100)])


def test_straight_line_mode_is_labelled_approximate(road_layers: AreaLayers) -> None:
    area = road_layers.area.model_copy(
        update={"network": NetworkSection(mode="straight_line", detour_factor=1.3)}
    )
    layers = dataclasses.replace(road_layers, area=area, network=None)
    analysis = AreaAnalysis.from_layers(layers, facilities=[_record("F1", 0)])
    assert analysis.mode == "straight_line"
    (row,) = analysis.nearest(*_lonlat(600, 80))
    assert row.approximate is True
    assert row.walk_m == pytest.approx(np.hypot(600, 80) * 1.3, abs=0.1)
    assert analysis.summary()["approximate"] is True
    assert analysis.facility_isochrone("F1", 5).method == "straight_line_circle"


def test_no_network_area(road_layers: AreaLayers) -> None:
    layers = dataclasses.replace(road_layers, network=None)
    analysis = AreaAnalysis.from_layers(layers, facilities=[_record("F1", 0, puhui=True)])
    assert analysis.mode == "none"
    with pytest.raises(NoNetworkError, match="no walking network"):
        analysis.nearest(*_lonlat(700, 0))
    with pytest.raises(NoNetworkError):
        analysis.facility_isochrone("F1")
    table = analysis.units().set_index("code")
    assert table.loc["A", "facilities"] == 1 and bool(table.loc["A", "has_puhui"]) is True
    assert pd.isna(table.loc["A", "coverage_pct"])
    analysis.add_facility(_record("F2", 1000, puhui=True))
    assert analysis.units().set_index("code").loc["B", "facilities"] == 1


def test_concurrent_reads_during_writes(road_layers: AreaLayers) -> None:
    """Readers see either the state before or after each write, never an error."""
    analysis = AreaAnalysis.from_layers(road_layers, facilities=[_record("F1", 0)])
    lon, lat = _lonlat(700, 0)
    seen: set[tuple[str, ...]] = set()
    errors: list[BaseException] = []
    stop = threading.Event()

    def reader() -> None:
        try:
            while not stop.is_set():
                seen.add(tuple(r.facility_id for r in analysis.nearest(lon, lat)))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(3)]
    for t in threads:
        t.start()
    for i in range(30):
        analysis.add_facility(_record(f"G{i}", 1300))  # 600 m from the point: first
        analysis.remove_facility(f"G{i}")
    stop.set()
    for t in threads:
        t.join()
    assert not errors
    assert ("F1",) in seen
    assert seen <= {("F1",)} | {(f"G{i}", "F1") for i in range(30)}
    assert analysis.version == 60


# --- real data ----------------------------------------------------------------------------


def test_facilities_frame_matches_the_loader(settings: Settings) -> None:
    """Registry-shaped records (lists, ISO dates) give the loader's frame back."""
    layers = load_layers(load_area("beijing-dongcheng"), settings, SILENT)
    loaded = layers.facilities
    assert loaded is not None
    records = []
    for row in loaded.drop(columns="geometry").to_dict("records"):
        record = {k: (None if pd.isna(v) else v) for k, v in row.items()}
        record["assumed_fields"] = str(record["assumed_fields"]).split(",")
        records.append(record)
    frame = facilities_frame(records, layers.metric_crs)
    pd.testing.assert_frame_equal(
        pd.DataFrame(frame.drop(columns="geometry")), pd.DataFrame(loaded.drop(columns="geometry"))
    )
    assert np.allclose(frame.geometry.x, loaded.geometry.x)


@pytest.fixture(scope="module")
def yuzhong_layers(settings: Settings) -> AreaLayers:
    return load_layers(load_area("chongqing-yuzhong"), settings, SILENT)


def _random_records(layers: AreaLayers, n: int, seed: int) -> list[dict[str, Any]]:
    """``n`` facilities at random points of the district (some 普惠, some with slots)."""
    rng = np.random.default_rng(seed)
    assert layers.outline is not None
    outline = layers.outline.to_crs(4326).union_all()
    minx, miny, maxx, maxy = outline.bounds
    out: list[dict[str, Any]] = []
    while len(out) < n:
        lon, lat = rng.uniform(minx, maxx), rng.uniform(miny, maxy)
        if outline.contains(shapely.Point(lon, lat)):
            k = len(out)
            out.append(
                {
                    "id": f"R{k:02d}",
                    "lon": float(lon),
                    "lat": float(lat),
                    "puhui": [True, False, None][k % 3],
                    "slots": int(rng.integers(10, 80)) if k % 4 else None,
                    "enrolled": 5,
                }
            )
    return out


def _full(layers: AreaLayers, records: list[dict[str, Any]]) -> tuple[ReachResults, pd.DataFrame]:
    """Walking distances, reach matrix and table recomputed from scratch."""
    assert layers.network is not None and layers.population is not None
    graph = build_graph(layers.network)
    cutoff = layers.area.walk.metres_for(15)
    snap = layers.area.walk.max_snap_m
    pop = snap_points(
        graph,
        layers.population.geometry.x.to_numpy(),
        layers.population.geometry.y.to_numpy(),
        snap,
    )
    frame = facilities_frame(records, layers.metric_crs) if records else None
    fx = frame.geometry.x.to_numpy() if frame is not None else np.empty(0)
    fy = frame.geometry.y.to_numpy() if frame is not None else np.empty(0)
    fac = snap_points(graph, fx, fy, snap)
    puhui = np.array([bool(r.get("puhui") or False) for r in records], dtype=bool)
    walk_all = point_times(graph, nearest_facility_times(graph, fac, cutoff), pop)[0]
    walk_puhui = point_times(graph, nearest_facility_times(graph, fac, cutoff, active=puhui), pop)[
        0
    ]
    reach = ReachResults(
        "network", cutoff, walk_all, walk_puhui, reach_matrix(graph, fac, pop, cutoff)
    )
    lay = dataclasses.replace(layers, facilities=frame, warnings=[], skipped={})
    profile = load_profile(layers.area.area.target_profile, layers.settings.project_data_dir)
    return reach, compute_indicators(lay, reach, profile).table


def _assert_same(analysis: AreaAnalysis, layers: AreaLayers, records: list[dict[str, Any]]) -> None:
    reach, table = _full(layers, records)
    walk_all, walk_puhui = analysis.walk_distances()
    np.testing.assert_allclose(walk_all, reach.walk_m_all, rtol=1e-12, atol=1e-9)  # type: ignore[arg-type]
    np.testing.assert_allclose(walk_puhui, reach.walk_m_puhui, rtol=1e-12, atol=1e-9)  # type: ignore[arg-type]
    matrix = analysis.reach_matrix()
    assert matrix is not None and reach.matrix is not None
    assert matrix.shape == reach.matrix.shape
    assert (matrix != 0).toarray().tolist() == (reach.matrix != 0).toarray().tolist()
    np.testing.assert_allclose(matrix.toarray(), reach.matrix.toarray(), rtol=1e-12, atol=1e-9)
    pd.testing.assert_frame_equal(analysis.units(), table, check_exact=False, rtol=1e-9)


@pytest.mark.slow  # ~5 s: ten full recomputations on the real network
def test_yuzhong_incremental_equals_full_recomputation(yuzhong_layers: AreaLayers) -> None:
    records = _random_records(yuzhong_layers, 14, seed=6)
    current = records[:8]
    analysis = AreaAnalysis.from_layers(yuzhong_layers, facilities=current)
    _assert_same(analysis, yuzhong_layers, current)
    covered = []
    for record in records[8:11]:  # additions
        analysis.add_facility(record)
        current = [*current, record]
        _assert_same(analysis, yuzhong_layers, current)
        covered.append(analysis.summary()["indicators"]["coverage_pct"]["value"])
    assert covered == sorted(covered)  # adding never lowers coverage
    for fid in ("R02", "R09", "R00"):  # removals (one added later, two initial)
        analysis.remove_facility(fid)
        current = [r for r in current if r["id"] != fid]
        _assert_same(analysis, yuzhong_layers, current)
    # Moves, a 普惠 change, and an attribute-only change (order stays: updates in place).
    # The 普惠 change goes to the facility that reaches the most population points.
    matrix = analysis.reach_matrix()
    assert matrix is not None
    busiest = analysis.facility_ids()[int(np.argmax(np.diff(matrix.indptr)))]
    assert np.diff(matrix.indptr).max() > 0
    toggled = next(r for r in current if r["id"] == busiest)
    for new in (
        {**records[3], "lon": records[11]["lon"], "lat": records[11]["lat"]},
        {**toggled, "puhui": not toggled["puhui"]},
        {**records[5], "slots": 99},
    ):
        analysis.update_facility(None, new)
        current = [new if r["id"] == new["id"] else r for r in current]
        _assert_same(analysis, yuzhong_layers, current)
    assert analysis.version == 9


def test_yuzhong_matches_the_pipeline_and_scenarios(yuzhong_layers: AreaLayers) -> None:
    records = _random_records(yuzhong_layers, 10, seed=11)
    analysis = AreaAnalysis.from_layers(yuzhong_layers, facilities=records[:6])
    for record in records[6:]:
        analysis.add_facility(record)
    analysis.remove_facility("R01")
    current = [r for r in records if r["id"] != "R01"]
    # A model built from scratch (one multi-source search) on the same facilities.
    lay = dataclasses.replace(
        yuzhong_layers, facilities=facilities_frame(current, yuzhong_layers.metric_crs)
    )
    reach = AreaAnalysis.from_layers(lay).reach()
    assert reach is not None and reach.walk_m_all is not None
    np.testing.assert_allclose(analysis.walk_distances()[0], reach.walk_m_all, atol=1e-9)  # type: ignore[arg-type]
    # A scenario equals applying its changes to a fresh analysis.
    extra = _random_records(yuzhong_layers, 13, seed=12)[10:]
    extra = [{**r, "id": f"X{i}"} for i, r in enumerate(extra)]
    scenario = analysis.scenario(add=extra, remove=["R02", "R07"])
    fresh = AreaAnalysis.from_layers(
        yuzhong_layers, facilities=[r for r in current if r["id"] not in ("R02", "R07")] + extra
    )
    pd.testing.assert_frame_equal(
        scenario.results.table, fresh.units(), check_exact=False, rtol=1e-9
    )
    value = scenario.results.summary["indicators"]["coverage_pct"]["value"]
    assert value == pytest.approx(fresh.summary()["indicators"]["coverage_pct"]["value"])
    assert analysis.facility_ids() == [r["id"] for r in current]  # state untouched


def test_yuzhong_nearest_finds_a_facility_beside_the_point(yuzhong_layers: AreaLayers) -> None:
    analysis = AreaAnalysis.from_layers(yuzhong_layers, facilities=[])
    assert analysis.nearest(106.5785, 29.5583) == []
    analysis.add_facility({"id": "YZ-1", "name": "解放碑托育", "lon": 106.5775, "lat": 29.5583})
    rows = analysis.nearest(106.5785, 29.5583)  # ~100 m east
    assert [r.facility_id for r in rows] == ["YZ-1"]
    assert 0 < rows[0].walk_m <= 1000 and rows[0].name == "解放碑托育"
    with pytest.raises(InputValidationError, match="outside"):
        analysis.nearest(106.40, 29.50)  # west of the district


def test_dongcheng_has_units_but_no_network(settings: Settings, tmp_path: Path) -> None:
    area = load_area(area_without_network("beijing-dongcheng", tmp_path))
    analysis = AreaAnalysis.build(area, settings)
    assert analysis.mode == "none" and len(analysis.facility_ids()) == 64
    with pytest.raises(NoNetworkError):
        analysis.nearest(116.41, 39.91)
    with pytest.raises(NoNetworkError):
        analysis.recommend_sites(2)
    table = analysis.units()
    assert len(table) == 17 and table["facilities"].sum() == 64
    assert analysis.unit(str(table["code"].iloc[0]))["name"] == table["name"].iloc[0]
    assert analysis.summary()["indicators"]["puhui_jiedao_coverage"]["value"] is not None
    gaps = analysis.gaps()
    assert gaps.empty and gaps.crs is not None and gaps.crs.to_epsg() == 4326


def test_the_core_never_writes_into_its_layers(road_layers: AreaLayers) -> None:
    """Layers are immutable; building a model and changing it leaves them as they were."""
    with pytest.raises(dataclasses.FrozenInstanceError):
        road_layers.warnings = ("x",)  # type: ignore[misc]
    before = (road_layers.warnings, dict(road_layers.skipped), road_layers.rejects)
    model = AreaAnalysis.from_layers(road_layers, facilities=[_record("F1", 0)])
    model.add_facility(_record("F2", 1500))
    model.results()
    assert (road_layers.warnings, dict(road_layers.skipped), road_layers.rejects) == before
    assert road_layers.facilities is None or "F2" not in set(road_layers.facilities["id"])
