"""The end-to-end run of a study area (``tuoyu run``).

Data flows one way: sources → validated layers → walking network → reach → indicators
→ outputs. Each step is a function of its own (the walkthrough notebook calls them one
by one); :func:`run_area` chains them. A step runs when its layers are present; what is
skipped is printed and recorded in ``summary.json`` with the reason.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import geopandas as gpd
import numpy as np
import numpy.typing as npt
import pandas as pd
import scipy.sparse as sp
from pyproj import CRS
from scipy.spatial import cKDTree

from tuoyu.config.data_registry import resolve_data_dir, resolve_data_file
from tuoyu.config.settings import Settings, get_settings
from tuoyu.config.study_area import StudyArea, load_area
from tuoyu.crs.projection import WGS84, estimate_metric_crs, gdf_to_wgs84
from tuoyu.errors import AreaConfigError
from tuoyu.indicators.gaps import failing_units, slot_shortfall_table, uncovered_areas
from tuoyu.indicators.summary import district_summary, unit_table
from tuoyu.indicators.targets import Profile, load_profile
from tuoyu.isochrones.grid import area_isochrones
from tuoyu.layers.facilities import load_facilities
from tuoyu.layers.h3units import h3_units
from tuoyu.layers.osm_features import load_osm_buildings
from tuoyu.layers.osm_network import load_walk_network
from tuoyu.layers.population import (
    assign_units,
    building_points,
    dasymetric_points,
    load_weight_points,
    read_unit_totals,
)
from tuoyu.layers.rejects import write_rejects
from tuoyu.layers.units import load_units
from tuoyu.network.graph import WalkGraph, build_graph
from tuoyu.network.snap import snap_points
from tuoyu.network.walk_network import WalkNetwork
from tuoyu.outputs.reports import write_reports
from tuoyu.progress import Progress
from tuoyu.reach.engine import (
    all_facility_reach,
    nearest_facility_times,
    point_times,
    reach_matrix,
)
from tuoyu.types import LocalReach, SnappedPoints

FloatArray = npt.NDArray[np.float64]


@dataclass
class AreaLayers:
    """The validated input layers of a study area, all in one metric CRS."""

    area: StudyArea
    settings: Settings
    metric_crs: CRS
    files: dict[str, Path] = field(default_factory=dict)
    outline: gpd.GeoDataFrame | None = None
    network: WalkNetwork | None = None
    units: gpd.GeoDataFrame | None = None
    units_kind: str = "none"
    facilities: gpd.GeoDataFrame | None = None
    population: gpd.GeoDataFrame | None = None
    rejects: list[pd.DataFrame] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)

    @property
    def osm_used(self) -> bool:
        """True when an OpenStreetMap layer (network or buildings) was used."""
        return self.network is not None


@dataclass
class ReachResults:
    """Walking reach of the facilities (or its straight-line stand-in)."""

    mode: str
    threshold_m: float
    walk_m_all: FloatArray | None
    walk_m_puhui: FloatArray | None
    matrix: sp.csr_array | None
    graph: WalkGraph | None = None
    facilities_snapped: SnappedPoints | None = None
    population_snapped: SnappedPoints | None = None
    isochrones: gpd.GeoDataFrame | None = None
    facility_reaches: list[LocalReach] | None = None


@dataclass
class IndicatorResults:
    """Per-unit table, district summary and gaps."""

    table: pd.DataFrame
    summary: dict[str, object]
    gaps: gpd.GeoDataFrame
    failing: pd.DataFrame
    shortfall: pd.DataFrame


# --- step 1: layers ---------------------------------------------------------------------


def _resolve(layers: AreaLayers, role: str, rel: str) -> Path:
    path = resolve_data_file(rel, layers.settings)
    layers.files[role] = path
    return path


def _load_outline(
    area: StudyArea, settings: Settings, files: dict[str, Path]
) -> gpd.GeoDataFrame | None:
    if not area.area.outline:
        return None
    path = resolve_data_file(area.area.outline, settings)
    files["outline"] = path
    raw = gpd.read_file(path)
    return gdf_to_wgs84(raw, area.area.outline_crs)


def load_layers(
    area: StudyArea, settings: Settings | None = None, progress: Progress | None = None
) -> AreaLayers:
    """Load and validate every layer the study area declares.

    Parameters
    ----------
    area
        The study area (see :func:`tuoyu.config.study_area.load_area`).
    settings
        Data directory, cache and snapping settings.
    progress
        Progress reporter.

    Returns
    -------
    AreaLayers
    """
    settings = settings or get_settings()
    progress = progress or Progress()
    files: dict[str, Path] = {}
    outline = _load_outline(area, settings, files)
    network: WalkNetwork | None = None
    if area.network and area.network.path and area.network.mode == "network":
        path = resolve_data_file(area.network.path, settings)
        files["network"] = path
        with progress.step(f"walking network {path.name}"):
            network = load_walk_network(path, settings=settings, progress=progress)
        progress.info(
            f"  {network.n_nodes:,} nodes, {network.n_edges:,} segments, "
            f"{network.total_length_m / 1000:.1f} km walkable"
        )

    metric_crs: CRS | None = network.crs if network is not None else None
    units = None
    units_kind = "none"
    if area.units and area.units.path:
        path = resolve_data_file(area.units.path, settings)
        files["units"] = path
        with progress.step(f"街道 units {path.name}"):
            units = load_units(
                path,
                crs=area.units.crs,
                code_field=area.units.code_field,
                name_field=area.units.name_field,
                metric_crs=metric_crs,
            )
        units_kind = "jiedao"
        metric_crs = metric_crs or CRS.from_user_input(units.crs)
        progress.info(f"  {len(units)} units, {units['area_m2'].sum() / 1e6:.2f} km²")
    if metric_crs is None:
        if outline is not None:
            metric_crs = estimate_metric_crs(outline)
        else:
            raise AreaConfigError(
                f"{area.source_path}: no network, units or outline to place the study area; "
                "give at least [network] path, [units] path or [area] outline"
            )
    outline_m = outline.to_crs(metric_crs) if outline is not None else None

    layers = AreaLayers(
        area=area,
        settings=settings,
        metric_crs=metric_crs,
        files=files,
        outline=outline_m,
        network=network,
        units=units,
        units_kind=units_kind,
    )
    _load_facilities(layers, progress)
    _load_population(layers, progress)
    if layers.units is None:
        _make_h3_units(layers, progress)
    if layers.population is not None and layers.units is not None:
        layers.population = assign_units(layers.population, layers.units)
    return layers


def _area_polygon(layers: AreaLayers) -> gpd.GeoDataFrame | None:
    if layers.units is not None:
        return layers.units
    return layers.outline


def _load_facilities(layers: AreaLayers, progress: Progress) -> None:
    section = layers.area.facilities
    if section is None or not section.path:
        layers.skipped["facilities"] = "no [facilities] file: no registered facilities"
        return
    path = _resolve(layers, "facilities", section.path)
    reference = None
    if layers.network is not None:
        nodes = gpd.GeoSeries.from_xy(
            layers.network.node_x_m, layers.network.node_y_m, crs=layers.network.crs
        ).to_crs(WGS84)
        reference = np.column_stack([nodes.x.to_numpy(), nodes.y.to_numpy()])
    value_map: dict[str, Mapping[object, object]] = {
        name: {key: value for key, value in mapping.items()}  # widen the key type
        for name, mapping in section.value_map.items()
    }
    with progress.step(f"facility registry {path.name}"):
        result = load_facilities(
            path,
            crs=section.crs,
            defaults=section.defaults or None,
            columns=section.columns or None,
            value_map=value_map or None,
            area_polygon=_area_polygon(layers),
            metric_crs=layers.metric_crs,
            reference_points_wgs84=reference,
        )
    layers.facilities = result.facilities
    layers.rejects.append(result.rejects)
    layers.warnings.extend(result.warnings)
    progress.info(
        f"  {len(result.facilities)} facilities, {len(result.rejects)} rejected fields/rows"
    )
    for warning in result.warnings:
        progress.info(f"  ! {warning}")


def _load_population(layers: AreaLayers, progress: Progress) -> None:
    section = layers.area.population
    if section is None:
        layers.skipped["population"] = "no [population] section"
        return
    if section.weights and section.totals and layers.units is not None:
        weights_path = _resolve(layers, "population weights", section.weights)
        totals_path = _resolve(layers, "population totals", section.totals)
        if not section.totals_field:
            raise AreaConfigError(
                f"{layers.area.source_path}: [population] totals needs totals_field"
            )
        with progress.step("population (unit totals spread by point weights)"):
            weights = load_weight_points(
                weights_path,
                crs=section.weights_crs,
                weight_field=section.weights_field,
                metric_crs=layers.metric_crs,
            )
            totals = read_unit_totals(
                totals_path, section.totals_code_field, section.totals_field, section.under3_field
            )
            under3_by_unit = (
                totals.set_index("code")["population_under3"] if section.under3_field else None
            )
            population = dasymetric_points(
                weights,
                layers.units,
                totals,
                district_total=section.total,
                under3_share=section.under3_share,
                under3_by_unit=under3_by_unit,
            )
        rejects = weights.attrs.get("rejects")
        if rejects:
            from tuoyu.layers.rejects import rejects_frame

            layers.rejects.append(rejects_frame(rejects))
    elif section.total and section.buildings and layers.network is not None:
        pbf = layers.files["network"]
        with progress.step("population (district total spread over OSM buildings)"):
            buildings = load_osm_buildings(pbf, layers.metric_crs)
            population = building_points(
                buildings,
                section.total,
                outline=layers.outline,
                under3_share=section.under3_share,
                unknown_levels=section.unknown_levels,
            )
    else:
        layers.skipped["population"] = (
            "no population layer usable: give totals+weights with units, or a district total "
            "with an OSM network file holding buildings"
        )
        return
    layers.population = population
    progress.info(
        f"  {len(population):,} population points, {np.nansum(population['population']):,.0f} people "
        f"— {population.attrs.get('population_method', '')}"
    )


def _make_h3_units(layers: AreaLayers, progress: Progress) -> None:
    section = layers.area.units
    resolution = section.h3_resolution if section is not None else 8
    if layers.outline is not None:
        outline = layers.outline
    elif layers.network is not None:
        hull = (
            gpd.GeoSeries.from_xy(
                layers.network.node_x_m, layers.network.node_y_m, crs=layers.metric_crs
            )
            .union_all()
            .convex_hull
        )
        outline = gpd.GeoDataFrame(geometry=[hull], crs=layers.metric_crs)
        layers.warnings.append("no district outline: H3 units cover the network's convex hull")
    else:
        layers.skipped["units"] = "no 街道 polygons, outline or network to build units on"
        return
    with progress.step(f"H3 units (resolution {resolution})"):
        layers.units = h3_units(outline, resolution, layers.metric_crs)
    layers.units_kind = "h3"
    progress.info(f"  {len(layers.units)} hexagons (no 街道 polygons in the data)")


# --- step 2: reach ----------------------------------------------------------------------


def _puhui_mask(facilities: gpd.GeoDataFrame) -> npt.NDArray[np.bool_]:
    values = (
        facilities["puhui"] if "puhui" in facilities else pd.Series(pd.NA, index=facilities.index)
    )
    return np.asarray(values.fillna(False).astype(bool).to_numpy(), dtype=bool)


def _xy(gdf: gpd.GeoDataFrame) -> tuple[FloatArray, FloatArray]:
    return gdf.geometry.x.to_numpy(dtype=float), gdf.geometry.y.to_numpy(dtype=float)


def compute_reach(layers: AreaLayers, progress: Progress | None = None) -> ReachResults | None:
    """Walking distance from every population point to the nearest facility (all, 普惠).

    Uses the OSM walking network; with ``[network] mode = "straight_line"`` uses straight
    lines × the detour factor, labelled approximate. Without either, returns ``None``
    (the 15-minute indicators stay empty with the reason).
    """
    progress = progress or Progress()
    walk = layers.area.walk
    threshold_m = walk.metres_for(walk.max_minutes)
    if layers.population is None:
        layers.skipped["reach"] = "no population points to measure walking times for"
        return None
    facilities = layers.facilities
    n_fac = 0 if facilities is None else len(facilities)
    net_section = layers.area.network
    if net_section is not None and net_section.mode == "straight_line":
        return _straight_line_reach(layers, threshold_m, progress)
    if layers.network is None:
        return None

    with progress.step("routing graph and snapping"):
        graph = build_graph(layers.network)
        px, py = _xy(layers.population)
        pop_snap = snap_points(graph, px, py, max_snap_m=walk.max_snap_m)
        if facilities is not None and n_fac:
            fx, fy = _xy(facilities)
        else:
            fx = fy = np.empty(0)
        fac_snap = snap_points(graph, fx, fy, max_snap_m=walk.max_snap_m)
    off_pop = int(pop_snap.off_network.sum())
    off_fac = int(fac_snap.off_network.sum())
    if off_pop:
        layers.warnings.append(
            f"{off_pop} population points farther than {walk.max_snap_m:.0f} m from any walkable "
            "edge: counted as not covered (off-network)"
        )
    if off_fac:
        layers.warnings.append(
            f"{off_fac} facilities farther than {walk.max_snap_m:.0f} m from any walkable edge: "
            "they reach nobody on foot (off-network)"
        )
    progress.info(
        f"  snapped {len(pop_snap):,} population points ({off_pop} off-network), {n_fac} facilities ({off_fac} off-network)"
    )

    with progress.step(f"walking times to the nearest facility (≤ {threshold_m:.0f} m)"):
        reach_all = nearest_facility_times(graph, fac_snap, threshold_m)
        walk_all, _ = point_times(graph, reach_all, pop_snap)
        puhui = _puhui_mask(facilities) if facilities is not None and n_fac else np.zeros(0, bool)
        reach_puhui = nearest_facility_times(graph, fac_snap, threshold_m, active=puhui)
        walk_puhui, _ = point_times(graph, reach_puhui, pop_snap)
        matrix = reach_matrix(graph, fac_snap, pop_snap, threshold_m)

    isochrones = None
    max_reach: list[LocalReach] | None = None
    if facilities is not None and n_fac:
        with progress.step(f"isochrones {walk.minutes} min for {n_fac} facilities"):
            max_reach = all_facility_reach(graph, fac_snap, threshold_m)
            isochrones = area_isochrones(
                layers.network,
                max_reach,
                facilities["id"].astype(str).tolist(),
                walk,
                points=fac_snap,
            )
    return ReachResults(
        mode="network",
        threshold_m=threshold_m,
        walk_m_all=walk_all,
        walk_m_puhui=walk_puhui,
        matrix=matrix,
        graph=graph,
        facilities_snapped=fac_snap,
        population_snapped=pop_snap,
        isochrones=isochrones,
        facility_reaches=max_reach,
    )


def _straight_line_reach(
    layers: AreaLayers, threshold_m: float, progress: Progress
) -> ReachResults:
    section = layers.area.network
    detour = section.detour_factor if section is not None else None
    if detour is None:
        raise AreaConfigError(
            f'{layers.area.source_path}: [network] mode = "straight_line" needs detour_factor '
            "(e.g. 1.3): straight lines underestimate walking distance"
        )
    assert layers.population is not None
    px, py = _xy(layers.population)
    n_pop = len(px)
    facilities = layers.facilities
    with progress.step(f"straight-line distances × {detour} (APPROXIMATE)"):
        if facilities is None or not len(facilities):
            inf = np.full(n_pop, np.inf)
            return ReachResults(
                "straight_line", threshold_m, inf, inf.copy(), sp.csr_array((0, n_pop))
            )
        fx, fy = _xy(facilities)
        puhui = _puhui_mask(facilities)
        pop_xy = np.column_stack([px, py])

        def nearest(mask: npt.NDArray[np.bool_]) -> FloatArray:
            if not mask.any():
                return np.full(n_pop, np.inf)
            tree = cKDTree(np.column_stack([fx[mask], fy[mask]]))
            dist, _ = tree.query(pop_xy)
            out = np.asarray(dist, dtype=float) * detour
            out[out > threshold_m] = np.inf
            return out

        walk_all = nearest(np.ones(len(fx), dtype=bool))
        walk_puhui = nearest(puhui)
        fac_tree = cKDTree(np.column_stack([fx, fy]))
        pop_tree = cKDTree(pop_xy)
        coo = fac_tree.sparse_distance_matrix(
            pop_tree, threshold_m / detour, output_type="coo_matrix"
        )
        matrix = sp.csr_array(
            (coo.data * detour + 1e-9, (coo.row, coo.col)), shape=(len(fx), n_pop)
        )
    return ReachResults("straight_line", threshold_m, walk_all, walk_puhui, matrix)


# --- step 3: indicators ------------------------------------------------------------------


def _empty_facilities(crs: CRS) -> gpd.GeoDataFrame:
    from tuoyu.layers.schema import ASSUMED_COLUMN, FACILITY_FIELDS

    columns = {name: pd.Series(dtype="object") for name in FACILITY_FIELDS}
    columns[ASSUMED_COLUMN] = pd.Series(dtype="object")
    return gpd.GeoDataFrame(columns, geometry=gpd.GeoSeries([], crs=crs), crs=crs)


def compute_indicators(
    layers: AreaLayers, reach: ReachResults | None, profile: Profile
) -> IndicatorResults:
    """Per-unit table, district summary and gaps against ``profile``."""
    walk = layers.area.walk
    threshold_m = walk.metres_for(walk.max_minutes)
    if layers.units is None or layers.population is None:
        missing = "units" if layers.units is None else "population"
        raise AreaConfigError(
            f"{layers.area.source_path}: cannot compute indicators without {missing} "
            f"({layers.skipped.get(missing, 'not given')})"
        )
    facilities = (
        layers.facilities if layers.facilities is not None else _empty_facilities(layers.metric_crs)
    )
    walk_all = reach.walk_m_all if reach is not None else None
    walk_puhui = reach.walk_m_puhui if reach is not None else None
    matrix = reach.matrix if reach is not None else None
    no_network = (
        "no walking network in the study area's data ([network] path): 15-minute "
        'indicators not computed; give an OSM file, or [network] mode = "straight_line" '
        "with a detour_factor for a labelled approximation"
    )
    table = unit_table(
        layers.units,
        facilities,
        layers.population,
        walk_all,
        walk_puhui,
        profile=profile,
        threshold_m=threshold_m,
        speed_kmh=walk.speed_kmh,
        reach_matrix=matrix,
        no_network_reason=no_network,
        units_are_jiedao=layers.units_kind == "jiedao",
    )
    summary = district_summary(
        layers.units,
        facilities,
        layers.population,
        walk_all,
        walk_puhui,
        profile=profile,
        threshold_m=threshold_m,
        speed_kmh=walk.speed_kmh,
        reach_matrix=matrix,
        table=table,
        area=layers.area,
        data_files={role: path for role, path in layers.files.items()},
        settings=layers.settings,
        osm_used=layers.osm_used,
        no_network_reason=no_network,
        units_are_jiedao=layers.units_kind == "jiedao",
        extra_skipped=layers.skipped,
    )
    if layers.warnings:
        summary["warnings"] = list(layers.warnings)
    gaps = uncovered_areas(
        layers.population,
        walk_all,
        threshold_m=threshold_m,
        unit_codes=layers.population["unit_code"].to_numpy()
        if "unit_code" in layers.population
        else None,
    )
    return IndicatorResults(
        table=table,
        summary=summary,
        gaps=gaps,
        failing=failing_units(table, profile),
        shortfall=slot_shortfall_table(table, profile),
    )


# --- step 4: outputs ---------------------------------------------------------------------


def write_outputs(
    layers: AreaLayers,
    reach: ReachResults | None,
    results: IndicatorResults,
    out_dir: Path,
    *,
    month: str | None = None,
    progress: Progress | None = None,
) -> dict[str, Path]:
    """Write tables, GeoJSON, GeoPackage, the progress sheet and rejects into ``out_dir``."""
    progress = progress or Progress()
    population = population_with_walk(layers, reach)
    isochrones = reach.isochrones if reach is not None else None
    if isochrones is None and layers.network is not None:
        isochrones = gpd.GeoDataFrame(
            {"facility_id": [], "minutes": [], "area_m2": []},
            geometry=gpd.GeoSeries([], crs=layers.metric_crs),
            crs=layers.metric_crs,
        )
    extra = {}
    if len(results.failing):
        extra["未达标街道"] = results.failing
    if len(results.shortfall):
        extra["托位缺口"] = results.shortfall
    with progress.step(f"writing reports to {out_dir}"):
        written = write_reports(
            out_dir,
            table=results.table,
            summary=results.summary,
            month=month or dt.date.today().strftime("%Y-%m"),
            units=layers.units,
            facilities=layers.facilities,
            population=population,
            gaps=results.gaps,
            isochrones=isochrones,
            extra_sheets=extra or None,
        )
        if layers.rejects:
            written["rejects.csv"] = write_rejects(layers.rejects, out_dir)
    return written


def population_with_walk(layers: AreaLayers, reach: ReachResults | None) -> gpd.GeoDataFrame | None:
    """Population points with their walking distances (``walk_m_all``, ``walk_m_puhui``)."""
    population = layers.population
    if population is not None and reach is not None and reach.walk_m_all is not None:
        population = population.copy()
        population["walk_m_all"] = reach.walk_m_all
        population["walk_m_puhui"] = reach.walk_m_puhui
    return population


def write_maps(
    layers: AreaLayers,
    reach: ReachResults | None,
    results: IndicatorResults,
    profile: Profile,
    maps_dir: Path,
    *,
    sites: gpd.GeoDataFrame | None = None,
    site_isochrones: gpd.GeoDataFrame | None = None,
    progress: Progress | None = None,
) -> dict[str, Path]:
    """Write the public facility map, the committee dashboard and the planner's gap map."""
    from tuoyu.outputs.maps import (
        build_dashboard_map,
        build_facility_map,
        build_gap_map,
        save_map,
    )
    from tuoyu.outputs.maps.facility_map import walk_lookup_from_reaches

    progress = progress or Progress()
    settings = layers.settings
    walk = layers.area.walk
    threshold_m = walk.metres_for(walk.max_minutes)
    language, tianditu_key = settings.language, settings.tianditu_key
    written: dict[str, Path] = {}
    with progress.step(f"maps into {maps_dir}"):
        facilities = layers.facilities
        if facilities is not None and len(facilities):
            lookup = None
            if (
                reach is not None
                and reach.facility_reaches is not None
                and layers.network is not None
            ):
                lookup = walk_lookup_from_reaches(
                    layers.network,
                    reach.facility_reaches,
                    facilities["id"].astype(str).tolist(),
                    walk.speed_kmh,
                    walk.max_minutes,
                )
            fmap = build_facility_map(
                facilities,
                reach.isochrones if reach is not None else None,
                lookup,
                area_name=layers.area.area.name,
                speed_kmh=walk.speed_kmh,
                walk_minutes=walk.max_minutes,
                max_snap_m=walk.max_snap_m,
                language=language,
                tianditu_key=tianditu_key,
            )
            written["facilities.html"] = save_map(fmap, maps_dir / "facilities.html")
        else:
            layers.skipped["facility map"] = "no registered facilities to show"
        if layers.units is not None:
            units = gpd.GeoDataFrame(
                results.table.reset_index(drop=True),
                geometry=layers.units.geometry.reset_index(drop=True),
                crs=layers.units.crs,
            )
            dmap = build_dashboard_map(
                units,
                profile,
                results.summary,
                area_name=layers.area.area.name,
                language=language,
                tianditu_key=tianditu_key,
            )
            written["dashboard.html"] = save_map(dmap, maps_dir / "dashboard.html")
        population = population_with_walk(layers, reach)
        gmap = build_gap_map(
            population if reach is not None else None,
            results.gaps,
            sites,
            site_isochrones,
            facilities=facilities,
            units=layers.units,
            threshold_m=threshold_m,
            area_name=layers.area.area.name,
            language=language,
            tianditu_key=tianditu_key,
        )
        written["gaps.html"] = save_map(gmap, maps_dir / "gaps.html")
    return written


@dataclass
class AreaRun:
    """Everything one analysis of a study area produced (see :func:`analyse_area`)."""

    layers: AreaLayers
    reach: ReachResults | None
    results: IndicatorResults
    profile: Profile
    out_dir: Path
    maps_dir: Path
    written: dict[str, Path] = field(default_factory=dict)


def analyse_area(
    name_or_path: str | Path,
    out_dir: Path | None = None,
    settings: Settings | None = None,
    progress: Progress | None = None,
    *,
    month: str | None = None,
    maps_dir: Path | None = None,
    write_map_files: bool = True,
) -> AreaRun:
    """Load, route, compute indicators and write every output of one study area.

    Tables and layers go to ``out_dir`` (default ``out/<area>``), the three maps to
    ``maps_dir`` (default ``maps/<area>``).
    """
    settings = settings or get_settings()
    progress = progress or Progress()
    area = load_area(name_or_path, settings.project_data_dir)
    out = Path(out_dir) if out_dir is not None else Path("out") / area.slug
    maps_out = Path(maps_dir) if maps_dir is not None else Path("maps") / area.slug
    progress.info(f"study area: {area.area.name} ({area.area.code}) — {area.source_path}")
    progress.info(f"data directory: {resolve_data_dir(settings)}")
    progress.info(
        f"walking speed {area.walk.speed_kmh} km/h, thresholds {area.walk.minutes} min "
        f"(15 min = {area.walk.metres_for(area.walk.max_minutes):.0f} m), snapping ≤ "
        f"{area.walk.max_snap_m:.0f} m"
    )
    profile = load_profile(area.area.target_profile, settings.project_data_dir)
    progress.info(f"target profile: {area.area.target_profile}")
    layers = load_layers(area, settings, progress)
    reach = compute_reach(layers, progress)
    results = compute_indicators(layers, reach, profile)
    written = write_outputs(layers, reach, results, out, month=month, progress=progress)
    if write_map_files:
        maps = write_maps(layers, reach, results, profile, maps_out, progress=progress)
        written.update({f"maps/{k}": v for k, v in maps.items()})
    for what, reason in layers.skipped.items():
        progress.info(f"skipped {what}: {reason}")
    return AreaRun(layers, reach, results, profile, out, maps_out, written)


def report_written(run: AreaRun, progress: Progress) -> None:
    """Print where each output file went."""
    progress.info(f"wrote {len(run.written)} files:")
    for name, path in sorted(run.written.items()):
        progress.info(f"  {name}: {path}")


def run_area(
    name_or_path: str | Path,
    out_dir: Path | None = None,
    settings: Settings | None = None,
    progress: Progress | None = None,
    *,
    month: str | None = None,
    maps_dir: Path | None = None,
) -> Path:
    """Run the analysis of one study area end to end; return the output folder."""
    progress = progress or Progress()
    run = analyse_area(name_or_path, out_dir, settings, progress, month=month, maps_dir=maps_dir)
    report_written(run, progress)
    return run.out_dir
