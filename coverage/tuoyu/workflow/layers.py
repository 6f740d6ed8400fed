"""Step 1 of a study area: its validated input layers, all in one metric CRS.

:func:`load_layers` reads every layer the study area declares (walking network, 街道
units, facility registry, population) and returns one immutable :class:`AreaLayers`.
Each loader is a function of its inputs; what a layer could not give is recorded in
``skipped`` with the reason, warnings and rejected rows travel with the layers.
:func:`study_area_polygon` is the one rule for the area's extent, used by the facility
check, the point-in-area check of queries and the service.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import CRS, Transformer
from shapely.geometry.base import BaseGeometry

from tuoyu.config.data_registry import resolve_data_file
from tuoyu.config.settings import Settings, get_settings
from tuoyu.config.study_area import FacilitiesSection, StudyArea
from tuoyu.crs.projection import WGS84, estimate_metric_crs, gdf_to_wgs84
from tuoyu.errors import AreaConfigError
from tuoyu.layers.facilities import FacilityLoadResult, load_facilities
from tuoyu.layers.h3units import h3_units
from tuoyu.layers.network_file import load_network_file
from tuoyu.layers.osm_features import load_osm_buildings
from tuoyu.layers.population import (
    assign_units,
    building_points,
    dasymetric_points,
    landuse_population_points,
    load_land_use,
    load_weight_points,
    plausibility,
    read_unit_totals,
)
from tuoyu.layers.rejects import rejects_frame
from tuoyu.layers.units import load_unit_table, load_units, match_units
from tuoyu.network.walk_network import WalkNetwork
from tuoyu.progress import Progress


@dataclass(frozen=True)
class AreaLayers:
    """The validated input layers of a study area, all in one metric CRS (immutable).

    Attributes
    ----------
    area
        The study area definition.
    settings
        Settings the layers were loaded with.
    metric_crs
        The projected CRS of every layer.
    files
        ``{role: path}`` of the external files read.
    outline, network, units, facilities, population
        The layers (``None`` when the area has none).
    units_kind
        ``"jiedao"`` (街道 polygons), ``"jiedao_table"`` (街道 codes and names without
        polygons: facilities placed by their ``jiedao`` field), ``"h3"`` (hexagons) or
        ``"none"``.
    rejects
        Rejected rows/fields of the loaders (one frame per loader).
    warnings
        What a user must know about the data.
    skipped
        ``{what: reason}`` for each step the layers cannot support.
    """

    area: StudyArea
    settings: Settings
    metric_crs: CRS
    files: Mapping[str, Path] = field(default_factory=dict)
    outline: gpd.GeoDataFrame | None = None
    network: WalkNetwork | None = None
    units: gpd.GeoDataFrame | None = None
    units_kind: str = "none"
    facilities: gpd.GeoDataFrame | None = None
    population: gpd.GeoDataFrame | None = None
    rejects: tuple[pd.DataFrame, ...] = ()
    warnings: tuple[str, ...] = ()
    skipped: Mapping[str, str] = field(default_factory=dict)

    @property
    def osm_used(self) -> bool:
        """True when an OpenStreetMap layer (network or buildings) was used."""
        return self.network is not None and bool(self.network.metadata.get("osm", True))

    def with_notes(
        self,
        *,
        warnings: tuple[str, ...] = (),
        skipped: Mapping[str, str] | None = None,
        rejects: tuple[pd.DataFrame, ...] = (),
    ) -> AreaLayers:
        """A copy with more warnings, skips and rejects (the original is unchanged)."""
        return dataclasses.replace(
            self,
            warnings=(*self.warnings, *warnings),
            skipped={**self.skipped, **(skipped or {})},
            rejects=(*self.rejects, *rejects),
        )


def study_area_polygon(layers: AreaLayers) -> BaseGeometry | None:
    """The study area in the metric CRS: the outline, else the union of its 街道 units.

    H3 hexagons are not an extent (they are built from the outline or the network);
    ``None`` when the area has neither an outline nor 街道 polygons.
    """
    if layers.outline is not None and not layers.outline.empty:
        return cast(
            BaseGeometry, shapely.make_valid(layers.outline.to_crs(layers.metric_crs).union_all())
        )
    if layers.units is not None and layers.units_kind == "jiedao" and not layers.units.empty:
        return cast(
            BaseGeometry, shapely.make_valid(layers.units.to_crs(layers.metric_crs).union_all())
        )
    return None


def study_area_polygon_wgs84(layers: AreaLayers) -> BaseGeometry | None:
    """:func:`study_area_polygon` in WGS84 lon/lat (for checking registry records)."""
    polygon = study_area_polygon(layers)
    if polygon is None:
        return None
    return cast(BaseGeometry, gpd.GeoSeries([polygon], crs=layers.metric_crs).to_crs(WGS84).iloc[0])


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

    Raises
    ------
    AreaConfigError
        Nothing places the study area (no network, units or outline), or a section
        lacks a field it needs.
    """
    settings = settings or get_settings()
    progress = progress or Progress()
    files: dict[str, Path] = {}
    outline = _load_outline(area, settings, files)
    network = _load_network(area, settings, files, progress)
    metric_crs: CRS | None = network.crs if network is not None else None
    units, units_kind = _load_units(area, settings, files, metric_crs, progress)
    if metric_crs is None and units is not None and units.crs is not None:
        metric_crs = CRS.from_user_input(units.crs)
    if metric_crs is None:
        if outline is None:
            raise AreaConfigError(
                f"{area.source_path}: no network, units or outline to place the study area; "
                "give at least [network] path, [units] path or [area] outline"
            )
        metric_crs = estimate_metric_crs(outline)
    if units is not None and units_kind == "jiedao_table":
        units = units.set_crs(metric_crs, allow_override=True)
    layers = AreaLayers(
        area=area,
        settings=settings,
        metric_crs=metric_crs,
        files=files,
        outline=outline.to_crs(metric_crs) if outline is not None else None,
        network=network,
        units=units,
        units_kind=units_kind,
    )
    layers = _with_facilities(layers, progress)
    layers = _with_population(layers, progress)
    if layers.units is None:
        layers = _with_h3_units(layers, progress)
    if (
        layers.population is not None
        and layers.units is not None
        and layers.units_kind != "jiedao_table"  # no polygons: points get no 街道
    ):
        layers = dataclasses.replace(
            layers,
            population=assign_units(layers.population, layers.units),
            files=dict(layers.files),
        )
    return layers


def _load_outline(
    area: StudyArea, settings: Settings, files: dict[str, Path]
) -> gpd.GeoDataFrame | None:
    if not area.area.outline:
        return None
    path = resolve_data_file(area.area.outline, settings)
    files["outline"] = path
    return gdf_to_wgs84(gpd.read_file(path), area.area.outline_crs)


def _load_network(
    area: StudyArea, settings: Settings, files: dict[str, Path], progress: Progress
) -> WalkNetwork | None:
    section = area.network
    if section is None or not section.path or section.mode != "network":
        return None
    path = resolve_data_file(section.path, settings)
    files["network"] = path
    with progress.step(f"walking network {path.name}"):
        network = load_network_file(path, section, settings, progress)
    progress.info(
        f"  {network.n_nodes:,} nodes, {network.n_edges:,} segments, "
        f"{network.total_length_m / 1000:.1f} km walkable"
    )
    return network


def _load_units(
    area: StudyArea,
    settings: Settings,
    files: dict[str, Path],
    metric_crs: CRS | None,
    progress: Progress,
) -> tuple[gpd.GeoDataFrame | None, str]:
    section = area.units
    if section is not None and section.table:
        table_path = resolve_data_file(section.table, settings)
        files["units"] = table_path
        with progress.step(f"街道 table {table_path.name}"):
            table = load_unit_table(
                table_path,
                code_field=section.code_field,
                name_field=section.name_field,
                population_field=section.population_field,
                under3_field=section.under3_field,
                crs=metric_crs,
            )
        known = int(table["population"].notna().sum())
        progress.info(
            f"  {len(table)} 街道 without polygons (population given for {known}); "
            "facilities placed by their 街道 field"
        )
        return table, "jiedao_table"
    if section is None or not section.path:
        return None, "none"
    path = resolve_data_file(section.path, settings)
    files["units"] = path
    with progress.step(f"街道 units {path.name}"):
        units = load_units(
            path,
            crs=section.crs,
            code_field=section.code_field,
            name_field=section.name_field,
            metric_crs=metric_crs,
        )
    progress.info(f"  {len(units)} units, {units['area_m2'].sum() / 1e6:.2f} km²")
    return units, "jiedao"


def _resolve(layers: AreaLayers, role: str, rel: str) -> tuple[AreaLayers, Path]:
    path = resolve_data_file(rel, layers.settings)
    return dataclasses.replace(layers, files={**layers.files, role: path}), path


def load_registry_snapshot(
    layers: AreaLayers, path: Path, progress: Progress | None = None
) -> FacilityLoadResult:
    """Load another registry file of the area (e.g. a baseline) with its [facilities] rules.

    The file is read like the area's own facility file: the same declared CRS, defaults,
    column names and value map, the same study-area check.
    """
    return _load_registry(layers, path, progress or Progress())


def _load_registry(layers: AreaLayers, path: Path, progress: Progress) -> FacilityLoadResult:
    section = layers.area.facilities
    if section is None:
        section = FacilitiesSection()
    reference = None
    if layers.network is not None:
        # The transform GeoSeries.to_crs applies, on the arrays: no million point objects.
        to_wgs84 = Transformer.from_crs(layers.network.crs, WGS84, always_xy=True)
        lon, lat = to_wgs84.transform(layers.network.node_x_m, layers.network.node_y_m)
        reference = np.column_stack([np.asarray(lon, np.float64), np.asarray(lat, np.float64)])
    value_map: dict[str, Mapping[object, object]] = {
        name: {key: value for key, value in mapping.items()}  # widen the key type
        for name, mapping in section.value_map.items()
    }
    extent = layers.units if layers.units_kind == "jiedao" else layers.outline
    with progress.step(f"facility registry {path.name}"):
        return load_facilities(
            path,
            crs=section.crs,
            defaults=section.defaults or None,
            columns=section.columns or None,
            value_map=value_map or None,
            area_polygon=extent,
            metric_crs=layers.metric_crs,
            reference_points_wgs84=reference,
            area_code=layers.area.area.code,
        )


def _with_facilities(layers: AreaLayers, progress: Progress) -> AreaLayers:
    section = layers.area.facilities
    if section is None or not section.path:
        return layers.with_notes(
            skipped={"facilities": "no [facilities] file: no registered facilities"}
        )
    layers, path = _resolve(layers, "facilities", section.path)
    result = _load_registry(layers, path, progress)
    progress.info(
        f"  {len(result.facilities)} facilities, {len(result.rejects)} rejected fields/rows"
    )
    for warning in result.warnings:
        progress.info(f"  ! {warning}")
    warnings = tuple(result.warnings)
    if layers.units is not None and layers.units_kind == "jiedao_table":
        unmatched = unmatched_jiedao_warning(result.facilities, layers.units)
        if unmatched:
            progress.info(f"  ! {unmatched}")
            warnings = (*warnings, unmatched)
    layers = dataclasses.replace(layers, facilities=result.facilities)
    return layers.with_notes(warnings=warnings, rejects=(result.rejects,))


def unmatched_jiedao_warning(facilities: pd.DataFrame, units: pd.DataFrame) -> str | None:
    """The warning for facilities whose ``jiedao`` names no 街道 of the table (else ``None``).

    Such facilities are kept with no 街道: they count in the district totals, not in any
    街道's row.

    Examples
    --------
    >>> fac = pd.DataFrame({"name": ["甲", "乙", "丙"], "jiedao": ["解放碑", "外星", None]})
    >>> units = pd.DataFrame({"code": ["500103003"], "name": ["解放碑街道"]})
    >>> print(unmatched_jiedao_warning(fac, units))
    2 of 3 facilities name no 街道 of the table (乙 '外星'; 丙 (no 街道)): kept with no 街道 / 2 家机构的街道无法匹配，未计入任何街道
    """
    if not len(facilities):
        return None
    values = list(facilities["jiedao"]) if "jiedao" in facilities else [None] * len(facilities)
    positions = match_units(values, units["code"].astype(str).tolist(), units["name"].tolist())
    bad = np.flatnonzero(positions < 0)
    if not bad.size:
        return None
    names = list(facilities["name"]) if "name" in facilities else [str(i) for i in facilities.index]
    listed = []
    for i in (int(k) for k in bad[:20]):
        value = values[i]
        given = "(no 街道)" if value is None or bool(pd.isna(value)) else f"'{value}'"
        listed.append(f"{names[i]} {given}")
    more = f"; … {bad.size - 20} more" if bad.size > 20 else ""
    return (
        f"{bad.size} of {len(facilities)} facilities name no 街道 of the table "
        f"({'; '.join(listed)}{more}): kept with no 街道 / "
        f"{bad.size} 家机构的街道无法匹配，未计入任何街道"
    )


def _with_population(layers: AreaLayers, progress: Progress) -> AreaLayers:
    section = layers.area.population
    if section is None:
        return layers.with_notes(skipped={"population": "no [population] section"})
    rejects: tuple[pd.DataFrame, ...] = ()
    if section.cells and section.land_use and layers.units is not None:
        layers, cells_path = _resolve(layers, "population cells", section.cells)
        layers, land_use_path = _resolve(layers, "land use", section.land_use)
        totals = None
        if section.totals and section.totals_field:
            layers, totals_path = _resolve(layers, "population totals", section.totals)
            totals = read_unit_totals(
                totals_path, section.totals_code_field, section.totals_field, section.under3_field
            )
        with progress.step("population (grid residents spread over residential land)"):
            cells = load_weight_points(
                cells_path,
                crs=section.cells_crs,
                weight_field=section.cells_field,
                metric_crs=layers.metric_crs,
            )
            parcels = load_land_use(
                land_use_path,
                crs=section.land_use_crs,
                field=section.land_use_field,
                metric_crs=layers.metric_crs,
            )
            population = landuse_population_points(
                cells,
                parcels,
                layers.units,
                totals,
                district_total=section.total,
                residential_values=tuple(section.residential_values),
                under3_share=section.under3_share,
            )
        cell_rejects = cells.attrs.get("rejects")
        if cell_rejects:
            rejects = (rejects_frame(cell_rejects),)
    elif section.weights and section.totals and layers.units is not None:
        if not section.totals_field:
            raise AreaConfigError(
                f"{layers.area.source_path}: [population] totals needs totals_field"
            )
        layers, weights_path = _resolve(layers, "population weights", section.weights)
        layers, totals_path = _resolve(layers, "population totals", section.totals)
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
        weight_rejects = weights.attrs.get("rejects")
        if weight_rejects:
            rejects = (rejects_frame(weight_rejects),)
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
                min_m2_per_person=section.min_m2_per_person,
            )
    else:
        return layers.with_notes(
            skipped={
                "population": "no population layer usable: give totals+weights with units, "
                "or a district total with an OSM network file holding buildings"
            }
        )
    progress.info(
        f"  {len(population):,} population points, {np.nansum(population['population']):,.0f} "
        f"people — {population.attrs.get('population_method', '')}"
    )
    residential = population.attrs.get("residential_area_m2")
    check = plausibility(
        population,
        layers.units,
        float(residential) if isinstance(residential, int | float) else None,
    )
    lines = tuple(check.lines())
    for line in lines:
        progress.info(f"  {line}")
    population.attrs["plausibility"] = list(lines)
    return dataclasses.replace(layers, population=population).with_notes(
        rejects=rejects, warnings=check.warnings
    )


def _with_h3_units(layers: AreaLayers, progress: Progress) -> AreaLayers:
    section = layers.area.units
    resolution = section.h3_resolution if section is not None else 8
    warnings: tuple[str, ...] = ()
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
        warnings = ("no district outline: H3 units cover the network's convex hull",)
    else:
        return layers.with_notes(
            skipped={"units": "no 街道 polygons, outline or network to build units on"}
        )
    with progress.step(f"H3 units (resolution {resolution})"):
        units = h3_units(outline, resolution, layers.metric_crs)
    progress.info(f"  {len(units)} hexagons (no 街道 polygons in the data)")
    return dataclasses.replace(layers, units=units, units_kind="h3").with_notes(warnings=warnings)
