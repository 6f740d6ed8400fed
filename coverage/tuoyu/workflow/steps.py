"""Steps 2–3 of a study area as pure functions: typed reach and indicator results.

:class:`ReachResults` is what the reach engine gives the indicators (walking metres from
each population point to the nearest facility, all and 普惠, and the sparse facility ×
population matrix); :func:`compute_indicators` turns layers and reach into the per-unit
table, district summary and gaps. The live model (:mod:`tuoyu.workflow.core`) produces
the reach and calls these; ``tuoyu run``, batch runs and the service all go through it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import geopandas as gpd
import numpy as np
import numpy.typing as npt
import pandas as pd
import scipy.sparse as sp
from pyproj import CRS
from scipy.spatial import cKDTree

from tuoyu.errors import AreaConfigError
from tuoyu.indicators.gaps import failing_units, slot_shortfall_table, uncovered_areas
from tuoyu.indicators.summary import district_summary, unit_table
from tuoyu.indicators.targets import Profile
from tuoyu.layers.schema import ASSUMED_COLUMN, FACILITY_FIELDS
from tuoyu.network.graph import WalkGraph
from tuoyu.types import SnappedPoints
from tuoyu.workflow.layers import AreaLayers

FloatArray = npt.NDArray[np.float64]
ReachMode = Literal["network", "straight_line", "none"]


@dataclass(frozen=True)
class ReachResults:
    """Walking reach of the facilities (or its straight-line stand-in).

    Attributes
    ----------
    mode
        ``"network"`` or ``"straight_line"`` (approximate).
    threshold_m
        The service-circle walking distance.
    walk_m_all, walk_m_puhui
        Metres from each population point to the nearest facility (all / 普惠), ``inf``
        beyond ``threshold_m``.
    matrix
        Facility × population walking metres (+1e-9) within the threshold.
    graph, facilities_snapped, population_snapped
        The routing graph and snapped points (network mode).
    """

    mode: str
    threshold_m: float
    walk_m_all: FloatArray | None
    walk_m_puhui: FloatArray | None
    matrix: sp.csr_array | None
    graph: WalkGraph | None = None
    facilities_snapped: SnappedPoints | None = None
    population_snapped: SnappedPoints | None = None


@dataclass(frozen=True)
class IndicatorResults:
    """Per-unit table, district summary, gaps, failing units and slot shortfall."""

    table: pd.DataFrame
    summary: Mapping[str, Any]
    gaps: gpd.GeoDataFrame
    failing: pd.DataFrame
    shortfall: pd.DataFrame
    notes: tuple[str, ...] = field(default=())


NO_NETWORK_REASON = (
    "no walking network in the study area's data ([network] path): 15-minute "
    "indicators not computed; give an OSM file or a road line layer, or "
    '[network] mode = "straight_line" with a detour_factor for a labelled approximation'
)


def empty_facilities(crs: CRS) -> gpd.GeoDataFrame:
    """A facility frame with the registry's columns and no rows."""
    columns = {name: pd.Series(dtype="object") for name in FACILITY_FIELDS}
    columns[ASSUMED_COLUMN] = pd.Series(dtype="object")
    return gpd.GeoDataFrame(columns, geometry=gpd.GeoSeries([], crs=crs), crs=crs)


def puhui_mask(facilities: gpd.GeoDataFrame) -> npt.NDArray[np.bool_]:
    """普惠 facilities as the indicators count them (unknown is not 普惠)."""
    values = (
        facilities["puhui"] if "puhui" in facilities else pd.Series(pd.NA, index=facilities.index)
    )
    return np.asarray(values.fillna(False).astype(bool).to_numpy(), dtype=bool)


def straight_line_reach(layers: AreaLayers, threshold_m: float) -> ReachResults:
    """Straight-line distances × the area's detour factor (labelled approximate).

    Raises
    ------
    AreaConfigError
        No detour factor, or no population points.
    """
    section = layers.area.network
    detour = section.detour_factor if section is not None else None
    if detour is None:
        raise AreaConfigError(
            f'{layers.area.source_path}: [network] mode = "straight_line" needs detour_factor '
            "(e.g. 1.3): straight lines underestimate walking distance"
        )
    if layers.population is None:
        raise AreaConfigError(f"{layers.area.source_path}: no population points to measure")
    pop = layers.population.geometry
    pop_xy = np.column_stack([pop.x.to_numpy(dtype=float), pop.y.to_numpy(dtype=float)])
    n_pop = pop_xy.shape[0]
    facilities = layers.facilities
    if facilities is None or not len(facilities):
        inf = np.full(n_pop, np.inf)
        return ReachResults("straight_line", threshold_m, inf, inf.copy(), sp.csr_array((0, n_pop)))
    fac_xy = np.column_stack(
        [facilities.geometry.x.to_numpy(dtype=float), facilities.geometry.y.to_numpy(dtype=float)]
    )
    puhui = puhui_mask(facilities)

    def nearest(mask: npt.NDArray[np.bool_]) -> FloatArray:
        if not mask.any():
            return np.full(n_pop, np.inf)
        dist, _ = cKDTree(fac_xy[mask]).query(pop_xy)
        out = np.asarray(dist, dtype=float) * detour
        out[out > threshold_m] = np.inf
        return out

    coo = cKDTree(fac_xy).sparse_distance_matrix(
        cKDTree(pop_xy), threshold_m / detour, output_type="coo_matrix"
    )
    matrix = sp.csr_array(
        (coo.data * detour + 1e-9, (coo.row, coo.col)), shape=(fac_xy.shape[0], n_pop)
    )
    return ReachResults(
        "straight_line",
        threshold_m,
        nearest(np.ones(fac_xy.shape[0], dtype=bool)),
        nearest(puhui),
        matrix,
    )


def population_with_walk(layers: AreaLayers, reach: ReachResults | None) -> gpd.GeoDataFrame | None:
    """Population points with their walking distances (``walk_m_all``, ``walk_m_puhui``)."""
    population = layers.population
    if population is not None and reach is not None and reach.walk_m_all is not None:
        population = population.copy()
        population["walk_m_all"] = reach.walk_m_all
        population["walk_m_puhui"] = reach.walk_m_puhui
    return population


def compute_indicators(
    layers: AreaLayers,
    reach: ReachResults | None,
    profile: Profile,
    *,
    data_sources: Iterable[Mapping[str, Any]] = (),
    facility_source: str | None = None,
) -> IndicatorResults:
    """Per-unit table, district summary and gaps against ``profile``.

    Parameters
    ----------
    layers
        The area's layers (with the facility set to measure).
    reach
        Walking distances (``None``: the 15-minute columns stay empty with the reason).
    profile
        The target profile.
    data_sources
        Provenance records of the input files (:func:`tuoyu.workflow.provenance.
        file_records`), recorded in the summary.
    facility_source
        Where the facility set comes from (``file``, ``registry``, ``records``).

    Raises
    ------
    AreaConfigError
        The area has no units or no population.
    """
    walk = layers.area.walk
    threshold_m = walk.metres_for(walk.max_minutes)
    if layers.units is None or layers.population is None:
        missing = "units" if layers.units is None else "population"
        raise AreaConfigError(
            f"{layers.area.source_path}: cannot compute indicators without {missing} "
            f"({layers.skipped.get(missing, 'not given')})"
        )
    facilities = (
        layers.facilities if layers.facilities is not None else empty_facilities(layers.metric_crs)
    )
    walk_all = reach.walk_m_all if reach is not None else None
    walk_puhui = reach.walk_m_puhui if reach is not None else None
    matrix = reach.matrix if reach is not None else None
    jiedao = layers.units_kind in ("jiedao", "jiedao_table")
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
        no_network_reason=NO_NETWORK_REASON,
        units_are_jiedao=jiedao,
    )
    network = layers.network
    credits = []
    if network is not None and network.metadata.get("attribution"):
        credits.append(str(network.metadata["attribution"]))
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
        data_sources=data_sources,
        attributions=credits,
        osm_used=layers.osm_used,
        no_network_reason=NO_NETWORK_REASON,
        units_are_jiedao=jiedao,
        extra_skipped=layers.skipped,
    )
    if layers.warnings:
        summary["warnings"] = list(layers.warnings)
    checks = layers.population.attrs.get("plausibility")
    if checks:
        summary["data"] = {**summary["data"], "plausibility": list(checks)}
    if facility_source is not None:
        summary["facility_source"] = facility_source
    gaps = uncovered_areas(
        layers.population,
        walk_all,
        threshold_m=threshold_m,
        unit_codes=layers.population["unit_code"].to_numpy()
        if "unit_code" in layers.population
        else None,
        unit_names=(
            dict(
                zip(
                    layers.units["code"].astype(str),
                    layers.units["name"].astype(str),
                    strict=True,
                )
            )
            if {"code", "name"} <= set(layers.units.columns)
            else None
        ),
    )
    return IndicatorResults(
        table=table,
        summary=summary,
        gaps=gaps,
        failing=failing_units(table, profile),
        shortfall=slot_shortfall_table(table, profile),
        notes=tuple(layers.warnings),
    )
