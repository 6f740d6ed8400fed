"""Siting on a study area: candidates, coverage matrix, solve, and what the sites change.

The GeoDataFrame door of the siting models (spopt's habit): it builds candidates (a user
file, OSM features, points sampled along the network), measures which population points
each candidate reaches on foot with the reach engine, solves the maximal covering problem
for new 普惠 facilities (people already within 15 minutes of a 普惠 facility bring no
gain) and recomputes the per-unit table with the chosen sites added.

Every recommended site can be found on the ground: it carries WGS84 and GCJ-02
coordinates, its 街道, the nearest named street, a readable label and the 15-minute
catchment's area; ``rank`` is the order in which the chosen set adds value
(:data:`RANK_NOTE`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import geopandas as gpd
import numpy as np
import numpy.typing as npt
import pandas as pd
import scipy.sparse as sp

from tuoyu import OSM_ATTRIBUTION
from tuoyu.config.settings import Settings
from tuoyu.crs.china import convert
from tuoyu.errors import InputValidationError
from tuoyu.indicators.targets import Profile
from tuoyu.layers.facilities import load_facilities
from tuoyu.layers.osm_features import load_osm_pois
from tuoyu.network.snap import snap_points
from tuoyu.outputs.cells import neutralise_frame, neutralise_text
from tuoyu.progress import SILENT, Progress
from tuoyu.reach.engine import reach_matrix
from tuoyu.siting import (
    SitingProblem,
    SitingResult,
    min_sites_for_coverage,
    required_groups_from_labels,
    solve_mclp,
)
from tuoyu.siting.candidates import (
    DEFAULT_ROAD_SEARCH_M,
    dedupe,
    nearest_named_road,
    sample_on_network,
)
from tuoyu.workflow.core import AreaModel
from tuoyu.workflow.layers import AreaLayers
from tuoyu.workflow.run import AreaRun, analyse_area
from tuoyu.workflow.steps import (
    IndicatorResults,
    ReachResults,
    compute_indicators,
)

CANDIDATE_SOURCES = {"user": "用户提供", "osm": "OSM设施", "network": "路网采样"}

CANDIDATE_KINDS_ZH = {"user": "候选点", "osm": "设施点", "network": "路网采样点"}
"""How an unnamed candidate of each source is called in its label."""

SITE_COLUMNS = (
    "rank",
    "label",
    "candidate_id",
    "source",
    "name",
    "category",
    "unit_code",
    "unit_name",
    "road_name",
    "road_distance_m",
    "lon_wgs84",
    "lat_wgs84",
    "lon_gcj02",
    "lat_gcj02",
    "added_population",
    "added_under3",
    "slots",
    "cumulative_added_population",
    "covered_share_after_pct",
    "catchment_km2",
)

ON_ROAD_M = 25.0
"""A site farther than this from its nearest named street is labelled "near" it."""

RANK_NOTE = (
    "rank: the order in which the chosen set adds value — site 1 brings the most new "
    "people (of the maximised weight) on its own, each next site the most of those not yet "
    "reached by the sites ranked above it (greedy order of marginal gains within the chosen "
    "set). Another p can choose another set, so ranks of runs with different p differ / "
    "排序：所选点位依次带来的新增覆盖——第1名单独新增最多，之后每一名新增排在其前各点尚未"
    "覆盖的人数最多（所选集合内按边际增益的贪心顺序）；点位数p不同，所选集合可能不同，排序随之变化"
)
"""What ``rank`` means (written into sites.geojson, sites.xlsx and siting.json)."""

SITE_HEADERS_ZH = {
    "rank": "排序",
    "label": "点位名称",
    "unit_name": "所在街道",
    "unit_code": "街道代码",
    "road_name": "最近道路",
    "road_distance_m": "距最近道路（米）",
    "lon_wgs84": "经度（WGS84）",
    "lat_wgs84": "纬度（WGS84）",
    "lon_gcj02": "经度（GCJ-02，高德/腾讯）",
    "lat_gcj02": "纬度（GCJ-02，高德/腾讯）",
    "added_population": "新增15分钟覆盖常住人口（人）",
    "added_under3": "新增覆盖3岁以下儿童（人）",
    "slots": "托位（个；待定＝未确定）",
    "cumulative_added_population": "累计新增覆盖人口（人）",
    "covered_share_after_pct": "选址后15分钟覆盖率（%）",
    "catchment_km2": "15分钟服务圈面积（平方公里）",
    "source": "候选来源",
    "candidate_id": "候选编号",
}
"""Chinese headers of sites.xlsx, in column order."""


@dataclass
class SitingPlan:
    """Recommended sites and what they change.

    Attributes
    ----------
    sites
        Ranked sites (columns :data:`SITE_COLUMNS`, point geometry, metric CRS).
    result
        The solver's answer (solver name, optimal, gap, bound, timings).
    candidates
        Every candidate considered.
    isochrones
        The new sites' 5/10/15-minute isochrones.
    after
        Indicators with the sites added as 普惠 facilities.
    weight_column
        Which population column was maximised.
    """

    sites: gpd.GeoDataFrame
    result: SitingResult
    candidates: gpd.GeoDataFrame
    isochrones: gpd.GeoDataFrame | None
    after: IndicatorResults
    after_reach: ReachResults | None
    weight_column: str


def candidate_sites(
    layers: AreaLayers,
    *,
    user_file: Path | None = None,
    user_crs: str = "wgs84",
    use_osm: bool = True,
    spacing_m: float = 150.0,
    progress: Progress = SILENT,
) -> gpd.GeoDataFrame:
    """Candidate sites: a user file first, then OSM features, then network samples.

    Parameters
    ----------
    layers
        The study area's layers.
    user_file
        CSV/XLSX/GeoJSON of candidate places (idle buildings, community centres) with
        coordinates; read with the facility loader (its rejected rows are in the
        result's ``attrs["rejects"]``).
    user_crs
        Coordinate system of the user file.
    use_osm
        Add OSM community centres, schools, kindergartens … from the network file.
    spacing_m
        Spacing of candidates sampled along the network (used when a network exists).

    Returns
    -------
    geopandas.GeoDataFrame
        ``candidate_id``, ``source``, ``name``, ``category``, point geometry (metric CRS),
        duplicates within 1 m merged (the earlier source wins).
    """
    frames: list[gpd.GeoDataFrame] = []
    crs = layers.metric_crs
    user_rejects: pd.DataFrame | None = None
    if user_file is not None:
        loaded = load_facilities(
            user_file,
            crs=user_crs,
            area_polygon=layers.units if layers.units_kind == "jiedao" else layers.outline,
            metric_crs=crs,
        )
        user_rejects = loaded.rejects
        user = loaded.facilities
        frames.append(
            gpd.GeoDataFrame(
                {
                    "candidate_id": "user-" + user["id"].astype(str),
                    "source": "user",
                    "name": user["name"],
                    "category": user["kind"],
                    "slots": pd.to_numeric(user["slots"], errors="coerce")
                    if "slots" in user
                    else np.nan,
                },
                geometry=user.geometry.to_numpy(),
                crs=crs,
            )
        )
    network_file = layers.files.get("network")
    if use_osm and network_file is not None and layers.osm_used:
        pois = load_osm_pois(network_file, crs)
        if layers.outline is not None and len(pois):
            pois = pois[pois.within(layers.outline.union_all())]
        frames.append(
            gpd.GeoDataFrame(
                {
                    "candidate_id": "osm-"
                    + pois["osm_type"].astype(str)
                    + pois["osm_id"].astype(str),
                    "source": "osm",
                    "name": pois["name"],
                    "category": pois["category"],
                },
                geometry=pois.geometry.to_numpy(),
                crs=crs,
            )
        )
    if layers.network is not None and spacing_m > 0:
        sampled = sample_on_network(layers.network, spacing_m)
        points = gpd.GeoSeries.from_xy(sampled["x_m"], sampled["y_m"], crs=crs)
        keep = np.ones(len(points), dtype=bool)
        if layers.outline is not None:
            keep = points.within(layers.outline.union_all()).to_numpy()
        frames.append(
            gpd.GeoDataFrame(
                {
                    "candidate_id": [f"net-{i}" for i in np.flatnonzero(keep)],
                    "source": "network",
                    "name": None,
                    "category": None,
                },
                geometry=points[keep].to_numpy(),
                crs=crs,
            )
        )
    if not frames:
        raise InputValidationError(
            "no candidate sites: give a candidates file, or a study area with an OSM network"
        )
    candidates = gpd.GeoDataFrame(pd.concat(frames, ignore_index=True), crs=crs)
    kept, _ = dedupe(candidates.geometry.x.to_numpy(), candidates.geometry.y.to_numpy(), 1.0)
    candidates = candidates.iloc[np.sort(kept)].reset_index(drop=True)
    if user_rejects is not None:
        candidates.attrs["rejects"] = user_rejects
    counts = candidates["source"].value_counts().to_dict()
    progress.info(
        "  candidates: "
        + ", ".join(f"{CANDIDATE_SOURCES[k]} {counts.get(k, 0)}" for k in CANDIDATE_SOURCES)
    )
    return candidates


def greedy_order(
    coverage: sp.csr_matrix | sp.csr_array,
    chosen: npt.ArrayLike,
    weights: npt.ArrayLike,
    already_covered: npt.ArrayLike,
) -> npt.NDArray[np.int64]:
    """The chosen sites in the order they add value (:data:`RANK_NOTE`).

    First the site reaching the most weight not yet covered, then the one adding the most
    of what is left, …; ties keep the solver's order.

    Parameters
    ----------
    coverage
        Candidates × population points, non-zero where a candidate reaches a point.
    chosen
        Indices of the chosen candidates.
    weights
        Weight of each population point (what was maximised).
    already_covered
        Points already within reach (they add nothing).

    Returns
    -------
    numpy.ndarray
        ``chosen`` reordered.

    Examples
    --------
    >>> import scipy.sparse as sp
    >>> reach = sp.csr_matrix(np.array([[1, 1, 0, 0], [0, 1, 1, 1], [1, 0, 0, 0]]))
    >>> greedy_order(reach, [0, 1, 2], [5.0, 5.0, 1.0, 1.0], [False] * 4).tolist()
    [0, 1, 2]
    >>> greedy_order(reach, [2, 1], [5.0, 5.0, 1.0, 1.0], [False] * 4).tolist()
    [1, 2]
    """
    matrix = sp.csr_matrix(coverage)
    w = np.asarray(weights, dtype=float)
    covered = np.asarray(already_covered, dtype=bool).copy()
    remaining = [int(j) for j in np.asarray(chosen, dtype=np.int64).reshape(-1)]
    order: list[int] = []
    while remaining:
        gains = []
        for j in remaining:
            reached = matrix[[j]].indices
            gains.append(float(w[reached[~covered[reached]]].sum()))
        pick = remaining.pop(int(np.argmax(gains)))
        covered[matrix[[pick]].indices] = True
        order.append(pick)
    return np.asarray(order, dtype=np.int64)


def place_label(
    name: object,
    road: object,
    unit_name: object,
    source: str = "network",
    road_distance_m: float = 0.0,
) -> str:
    """A label a planner can read: the site's own name, else street, kind and 街道.

    A street farther than :data:`ON_ROAD_M` is written as "…附近" (near it).

    Examples
    --------
    >>> place_label(None, "东四十条", "东四街道")
    '东四十条 路网采样点 (东四街道)'
    >>> place_label(None, "东四十条", "东四街道", road_distance_m=80.0)
    '东四十条附近 路网采样点 (东四街道)'
    >>> place_label("东四社区服务中心", "东四十条", "东四街道", "osm")
    '东四社区服务中心 (东四街道)'
    >>> place_label(None, None, None)
    '路网采样点'
    """
    where = f" ({unit_name})" if isinstance(unit_name, str) and unit_name else ""
    if isinstance(name, str) and name.strip():
        return f"{name.strip()}{where}"
    kind = CANDIDATE_KINDS_ZH.get(source, "候选点")
    near = "附近" if road_distance_m > ON_ROAD_M else ""
    street = f"{road}{near} " if isinstance(road, str) and road else ""
    return f"{street}{kind}{where}"


def describe_places(
    layers: AreaLayers,
    points: gpd.GeoDataFrame,
    unit_codes: npt.ArrayLike,
    *,
    road_search_m: float = DEFAULT_ROAD_SEARCH_M,
) -> pd.DataFrame:
    """Where each point is: coordinates in WGS84 and GCJ-02, 街道, nearest named street.

    Parameters
    ----------
    layers
        The study area's layers (units for 街道 names, network for street names).
    points
        Candidate rows (``name``, ``source``, point geometry in the metric CRS).
    unit_codes
        The unit code of each point (``None`` outside every unit).
    road_search_m
        How far to look for a named street.

    Returns
    -------
    pandas.DataFrame
        ``label``, ``unit_name``, ``road_name``, ``road_distance_m``, ``lon_wgs84``,
        ``lat_wgs84``, ``lon_gcj02``, ``lat_gcj02`` (degrees, 7 decimals), one row per
        point in order.
    """
    n = len(points)
    x = points.geometry.x.to_numpy()
    y = points.geometry.y.to_numpy()
    wgs = points.geometry.to_crs(4326)
    lon, lat = wgs.x.to_numpy(), wgs.y.to_numpy()
    lon_gcj, lat_gcj = convert(lon, lat, "wgs84", "gcj02")
    codes = np.asarray(unit_codes, dtype=object).reshape(-1)
    names_of: dict[str, str] = {}
    if layers.units is not None and "name" in layers.units:
        names_of = dict(
            zip(layers.units["code"].astype(str), layers.units["name"].astype(str), strict=True)
        )
    unit_name = [None if pd.isna(c) else names_of.get(str(c)) for c in codes]
    if layers.network is not None and n:
        roads = nearest_named_road(layers.network, x, y, road_search_m)
    else:
        roads = pd.DataFrame(
            {"road_name": pd.Series([None] * n, dtype=object), "road_distance_m": np.nan}
        )
    road = roads["road_name"].to_numpy(dtype=object)
    labels = [
        place_label(nm, rd, un, str(src), float(dist) if dist == dist else 0.0)
        for nm, rd, un, src, dist in zip(
            points["name"].to_numpy(dtype=object),
            road,
            unit_name,
            points["source"].to_numpy(dtype=object),
            roads["road_distance_m"].to_numpy(dtype=float),
            strict=True,
        )
    ]
    return pd.DataFrame(
        {
            "label": pd.Series(labels, dtype=object),
            "unit_name": pd.Series(unit_name, dtype=object),
            "road_name": pd.Series(road, dtype=object),
            "road_distance_m": roads["road_distance_m"].to_numpy(dtype=float),
            "lon_wgs84": np.round(lon, 7),
            "lat_wgs84": np.round(lat, 7),
            "lon_gcj02": np.round(np.asarray(lon_gcj, dtype=float), 7),
            "lat_gcj02": np.round(np.asarray(lat_gcj, dtype=float), 7),
        }
    )


def catchment_km2(sites: pd.DataFrame, isochrones: gpd.GeoDataFrame) -> npt.NDArray[np.float64]:
    """Area of each site's largest isochrone (its 15-minute catchment), km², by ``rank``."""
    out = np.full(len(sites), np.nan)
    if not len(isochrones):
        return out
    widest = isochrones[isochrones["minutes"] == isochrones["minutes"].max()]
    area = dict(zip(widest["rank"], widest.geometry.area / 1e6, strict=True))
    for i, rank in enumerate(sites["rank"].tolist()):
        if rank in area:
            out[i] = round(float(area[rank]), 3)
    return out


def _new_facilities(layers: AreaLayers, sites: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    rows = pd.DataFrame(
        {
            "id": sites["candidate_id"].astype(str).to_numpy(),
            "name": [
                f"新增普惠托育点 {r}：{lbl}"
                for r, lbl in zip(sites["rank"], sites["label"], strict=True)
            ],
            "kind": "社区托育点",
            "puhui": True,
            "assumed_fields": "kind,puhui",
        }
    )
    new = gpd.GeoDataFrame(rows, geometry=sites.geometry.to_numpy(), crs=layers.metric_crs)
    wgs84 = new.geometry.to_crs(4326)
    new["lon"] = wgs84.x.to_numpy()
    new["lat"] = wgs84.y.to_numpy()
    if layers.facilities is None or not len(layers.facilities):
        return new
    return gpd.GeoDataFrame(
        pd.concat([layers.facilities, new], ignore_index=True), crs=layers.metric_crs
    )


def plan_sites(
    layers: AreaLayers,
    reach: ReachResults,
    profile: Profile,
    p: int,
    *,
    candidates: gpd.GeoDataFrame | None = None,
    solver: Literal["greedy", "exact"] = "exact",
    weight: Literal["under3", "population"] = "under3",
    require_puhui_per_jiedao: bool = False,
    min_spacing_m: float | None = None,
    time_limit_s: float = 60.0,
    local_search: bool = True,
    goal_share: float | None = None,
    progress: Progress = SILENT,
) -> SitingPlan:
    """Choose up to ``p`` new 普惠 sites that bring the most people inside the circle.

    Parameters
    ----------
    layers, reach
        The study area's layers and walking reach (a network is required).
    profile
        Target profile (for the indicators after siting).
    p
        Number of new sites.
    candidates
        From :func:`candidate_sites` (built with defaults when ``None``).
    solver
        ``"exact"`` (HiGHS MILP, proven optimum within ``time_limit_s``) or ``"greedy"``
        (lazy greedy; with ``local_search`` a 1-swap improvement follows).
    weight
        Maximise under-3 children (``population_under3``) or all residents.
    require_puhui_per_jiedao
        Every 街道 without a 普惠 facility must receive a site (administrative target).
    min_spacing_m
        No two new sites closer than this.
    goal_share
        The inverse question: instead of ``p`` sites, the fewest sites so that this
        share (0–1) of all weight (people already covered included) is within reach.

    Returns
    -------
    SitingPlan
    """
    if reach.graph is None or reach.population_snapped is None or layers.population is None:
        raise InputValidationError(
            "siting needs a walking network and population points (none in this study area)"
        )
    threshold_m = reach.threshold_m
    if candidates is None:
        candidates = candidate_sites(layers, progress=progress)
    cand_snap = snap_points(
        reach.graph,
        candidates.geometry.x.to_numpy(),
        candidates.geometry.y.to_numpy(),
        max_snap_m=layers.area.walk.max_snap_m,
        min_component_nodes=layers.area.walk.min_component_nodes,
    )
    weight_column = "population_under3" if weight == "under3" else "population"
    weights = layers.population[weight_column].to_numpy(dtype=float)
    if np.isnan(weights).any():
        weight_column = "population"
        weights = layers.population["population"].to_numpy(dtype=float)
    weights = np.nan_to_num(weights, nan=0.0)
    matrix = reach_matrix(reach.graph, cand_snap, reach.population_snapped, threshold_m)
    coverage = matrix.astype(bool).tocsr()
    walk_puhui = reach.walk_m_puhui if reach.walk_m_puhui is not None else None
    already = (
        np.asarray(walk_puhui <= threshold_m)
        if walk_puhui is not None
        else np.zeros(len(weights), bool)
    )
    groups: tuple[np.ndarray, ...] = ()
    group_names: tuple[str, ...] | None = None
    unit_of_candidate = np.full(len(candidates), None, dtype=object)
    if layers.units is not None and len(candidates):
        joined = gpd.sjoin(
            candidates[["geometry"]],
            layers.units[["code", "geometry"]],
            how="left",
            predicate="within",
        )
        joined = joined[~joined.index.duplicated(keep="first")]
        unit_of_candidate = joined["code"].reindex(candidates.index).to_numpy(dtype=object)
    if require_puhui_per_jiedao and layers.units_kind == "jiedao":
        before = compute_indicators(layers, reach, profile).table
        lacking = before.loc[before["has_puhui"].fillna(False) == False, "code"].tolist()  # noqa: E712
        groups, group_names = required_groups_from_labels(unit_of_candidate, lacking)
    problem = SitingProblem(
        coverage=coverage,
        weights=weights,
        already_covered=already,
        candidate_x_m=candidates.geometry.x.to_numpy(),
        candidate_y_m=candidates.geometry.y.to_numpy(),
        required_groups=groups,
        required_group_names=group_names,
        min_spacing_m=min_spacing_m,
    )
    if goal_share is not None:
        with progress.step(
            f"siting: fewest sites for {goal_share:.0%} coverage among {len(candidates)} "
            f"candidates ({solver})"
        ):
            result = min_sites_for_coverage(
                problem, goal_share, solver=solver, time_limit_s=time_limit_s
            )
    else:
        with progress.step(f"siting: {p} sites among {len(candidates)} candidates ({solver})"):
            result = solve_mclp(
                problem, p, solver=solver, time_limit_s=time_limit_s, local_search=local_search
            )
    chosen = greedy_order(coverage, result.chosen.astype(np.int64), weights, already)
    population = layers.population["population"].to_numpy(dtype=float)
    under3 = layers.population["population_under3"].to_numpy(dtype=float)
    newly = already.copy()
    added_pop, added_u3, cumulative = [], [], []
    for j in chosen:
        reached = coverage[[int(j)]].indices
        gain = reached[~newly[reached]]
        newly[gain] = True
        added_pop.append(float(population[gain].sum()))
        added_u3.append(float(np.nansum(under3[gain])))
        cumulative.append(float(sum(added_pop)))
    covered_all_before = (
        np.asarray(reach.walk_m_all <= threshold_m)
        if reach.walk_m_all is not None
        else np.zeros(len(weights), bool)
    )
    total = float(population.sum())
    share_after = []
    mask = covered_all_before.copy()
    for j in chosen:
        mask[coverage[[int(j)]].indices] = True
        share_after.append(100.0 * float(population[mask].sum()) / total if total else np.nan)
    place = describe_places(layers, candidates.iloc[chosen], unit_of_candidate[chosen])
    slots = (
        candidates["slots"].to_numpy()[chosen]
        if "slots" in candidates
        else np.full(len(chosen), np.nan)
    )
    sites = gpd.GeoDataFrame(
        {
            "rank": np.arange(1, len(chosen) + 1),
            "label": place["label"].to_numpy(),
            "candidate_id": candidates["candidate_id"].to_numpy()[chosen],
            "source": candidates["source"].to_numpy()[chosen],
            "name": candidates["name"].to_numpy()[chosen],
            "category": candidates["category"].to_numpy()[chosen],
            "unit_code": unit_of_candidate[chosen],
            "unit_name": place["unit_name"].to_numpy(),
            "road_name": place["road_name"].to_numpy(),
            "road_distance_m": np.round(place["road_distance_m"].to_numpy(dtype=float), 1),
            "lon_wgs84": place["lon_wgs84"].to_numpy(),
            "lat_wgs84": place["lat_wgs84"].to_numpy(),
            "lon_gcj02": place["lon_gcj02"].to_numpy(),
            "lat_gcj02": place["lat_gcj02"].to_numpy(),
            "added_population": np.round(added_pop, 1),
            "added_under3": np.round(added_u3, 1),
            "slots": pd.to_numeric(pd.Series(slots), errors="coerce").to_numpy(
                dtype=float, na_value=np.nan
            ),
            "cumulative_added_population": np.round(cumulative, 1),
            "covered_share_after_pct": np.round(share_after, 2),
            "catchment_km2": np.full(len(chosen), np.nan),
        },
        geometry=candidates.geometry.to_numpy()[chosen],
        crs=layers.metric_crs,
    )
    sites.attrs["rank_note"] = RANK_NOTE
    with progress.step("indicators with the new sites"):
        after_layers = dataclasses.replace(layers, facilities=_new_facilities(layers, sites))
        after_model = AreaModel.from_layers(after_layers, profile)
        after_reach = after_model.reach()
        after = after_model.results()
        after_isochrones = after_model.isochrones()
    isochrones = None
    if after_isochrones is not None:
        rank_of = dict(zip(sites["candidate_id"].astype(str), sites["rank"], strict=True))
        iso = after_isochrones
        isochrones = iso[iso["facility_id"].isin(rank_of)].copy()
        isochrones["rank"] = isochrones["facility_id"].map(rank_of).astype(int)
        label_of = dict(zip(sites["rank"], sites["label"], strict=True))
        isochrones["label"] = isochrones["rank"].map(label_of)
        sites = sites.assign(catchment_km2=catchment_km2(sites, isochrones))
    return SitingPlan(
        sites=sites,
        result=result,
        candidates=candidates,
        isochrones=isochrones,
        after=after,
        after_reach=after_reach,
        weight_column=weight_column,
    )


def data_credit(layers: AreaLayers) -> str:
    """The credit the siting outputs carry: the road layer's own origin when the network
    is not OpenStreetMap, else "© OpenStreetMap contributors"."""
    network = layers.network
    if network is not None and network.metadata.get("osm") is False:
        credit = network.metadata.get("attribution")
        if credit:
            return str(credit)
    return OSM_ATTRIBUTION


def siting_summary(plan: SitingPlan, layers: AreaLayers) -> dict[str, object]:
    """JSON-ready description of a siting run: solver, optimality, sites and effect."""
    result = plan.result
    before = layers.population
    after_cov = plan.after.summary.get("indicators", {})
    return {
        "area": layers.area.area.name,
        "solver": result.solver,
        "optimal": bool(result.optimal),
        "status": result.status,
        "mip_gap": None if result.mip_gap is None else float(result.mip_gap),
        "objective": float(result.objective),
        "upper_bound": None if result.upper_bound is None else float(result.upper_bound),
        "wall_time_s": round(float(result.wall_time_s), 3),
        "maximised": plan.weight_column,
        "candidates": {
            source: int((plan.candidates["source"] == source).sum()) for source in CANDIDATE_SOURCES
        },
        "sites": len(plan.sites),
        "added_population": float(plan.sites["added_population"].sum()),
        "added_under3": float(plan.sites["added_under3"].sum()),
        "coverage_pct_after": after_cov.get("coverage_pct", {}).get("value")
        if isinstance(after_cov, dict)
        else None,
        "population_total": float(before["population"].sum()) if before is not None else None,
        "notes": list(result.notes),
        "column_notes": {"rank": RANK_NOTE},
        "attribution": data_credit(layers),
    }


def write_sites_csv(sites: pd.DataFrame, path: Path) -> Path:
    """``sites.csv``: UTF-8 with BOM, column keys as headers, formula-safe text.

    As :func:`tuoyu.outputs.reports.write_csv`, but coordinates keep 7 decimals (1 cm)
    where other numbers are rounded to 4.
    """
    from tuoyu.outputs.atomic import write_bytes_atomic

    frame = pd.DataFrame(sites).drop(columns=["geometry"], errors="ignore")
    coords = [c for c in ("lon_wgs84", "lat_wgs84", "lon_gcj02", "lat_gcj02") if c in frame]
    others = frame.select_dtypes("float").columns.difference(coords)
    frame[others] = frame[others].round(4)
    frame[coords] = frame[coords].round(7)
    text = neutralise_frame(frame).to_csv(index=False, lineterminator="\n", na_rep="")
    return write_bytes_atomic(Path(path), text.encode("utf-8-sig"))


def sites_sheet(sites: pd.DataFrame) -> pd.DataFrame:
    """The sites as the planner's table: Chinese headers, whole people, fixed order.

    People are apportioned to whole numbers (their sum stays the rounded total) and the
    cumulative column is the running sum of those whole numbers; text is formula-safe.
    """
    from tuoyu.outputs.reports import apportion

    frame = pd.DataFrame(sites).drop(columns=["geometry"], errors="ignore")
    columns = [c for c in SITE_HEADERS_ZH if c in frame]
    out = frame[columns].copy()
    for column in ("added_population", "added_under3"):
        if column in out:
            values = [None if pd.isna(v) else float(v) for v in out[column].tolist()]
            out[column] = pd.Series(apportion(values), index=out.index, dtype=object)
    if "cumulative_added_population" in out and "added_population" in out:
        whole = [0 if v is None else int(v) for v in out["added_population"].tolist()]
        out["cumulative_added_population"] = np.cumsum(whole).tolist()
    if "source" in out:
        out["source"] = [CANDIDATE_SOURCES.get(str(v), v) for v in out["source"]]
    if "slots" in out:
        out["slots"] = ["待定" if pd.isna(v) else round(float(v)) for v in out["slots"]]
    out = out.astype(object).where(pd.notna(out), None)
    out.columns = pd.Index([SITE_HEADERS_ZH[c] for c in columns])
    return neutralise_frame(out)


def write_sites_xlsx(sites: pd.DataFrame, path: Path, *, area_name: str = "") -> Path:
    """``sites.xlsx``: one row per recommended site, A4 landscape, with a 说明 sheet.

    The header row is repeated on every printed page and frozen; the 排序 header carries
    a comment with :data:`RANK_NOTE`.
    """
    from openpyxl import Workbook
    from openpyxl.comments import Comment
    from openpyxl.styles import Alignment, Font
    from openpyxl.utils import get_column_letter

    from tuoyu.outputs.reports import _save_workbook, print_setup

    sheet = sites_sheet(sites)
    wb = Workbook()
    ws = wb.active
    ws.title = "建议选址"
    ws.append(list(sheet.columns))
    for row in sheet.itertuples(index=False, name=None):
        ws.append(list(row))
    for cell in ws[1]:
        cell.font = Font(bold=True)
        cell.alignment = Alignment(horizontal="center", vertical="center", wrap_text=True)
    ws["A1"].comment = Comment(RANK_NOTE.split(" / ")[-1], "tuoyu")
    for idx, header in enumerate(sheet.columns, start=1):
        values = [str(v) for v in sheet.iloc[:, idx - 1].tolist() if v is not None]
        longest = max([_display_width(v) for v in values], default=4)
        width = max(8, min(40, longest + 2), min(_display_width(str(header)), 24) / 2 + 2)
        ws.column_dimensions[get_column_letter(idx)].width = width
        header_text = str(header)
        number_format = "0.000000" if "经度" in header_text or "纬度" in header_text else None
        if number_format:
            for (cell,) in ws.iter_rows(min_row=2, min_col=idx, max_col=idx):
                cell.number_format = number_format
    ws.row_dimensions[1].height = 48
    print_setup(ws, freeze="C2")
    info = wb.create_sheet("说明")
    info.append(["说明"])
    info["A1"].font = Font(bold=True)
    for line in (
        f"{area_name} 建议新增普惠托育点位".strip(),
        RANK_NOTE.split(" / ")[-1],
        "坐标：WGS84 为国际通用坐标（GPS、OpenStreetMap）；GCJ-02 为高德、腾讯地图坐标。",
        "最近道路：路网中距点位最近的有名称道路（直线距离）。",
        "服务圈：点位15分钟步行可达范围，图形见 site_isochrones.geojson。",
        "人数为整数（按最大余数法取整，合计与总数一致）。",
    ):
        info.append([neutralise_text(line)])
    info.column_dimensions["A"].width = 120
    for (cell,) in info.iter_rows(min_row=2, min_col=1, max_col=1):
        cell.alignment = Alignment(wrap_text=True, vertical="top")
    print_setup(info, freeze=None)
    return _save_workbook(wb, Path(path))


def _display_width(text: str) -> int:
    return sum(2 if ord(ch) > 0x2E80 else 1 for ch in text)


def write_siting_outputs(
    plan: SitingPlan,
    layers: AreaLayers,
    out_dir: Path,
    *,
    before: IndicatorResults | None = None,
    reach: ReachResults | None = None,
    maps_dir: Path | None = None,
) -> dict[str, Path]:
    """Write the siting results.

    Files: ``sites.csv`` (UTF-8 with BOM), ``sites.geojson``, ``sites.xlsx`` (Chinese
    headers, whole people, A4 landscape), ``site_isochrones.geojson``,
    ``jiedao_after.csv`` (the per-unit table with the sites added), ``siting.json``;
    with ``maps_dir`` also the planner's ``gaps.html`` showing the gaps before siting
    (from ``before``/``reach``) and the recommended sites with their isochrones.
    """
    from tuoyu.outputs.maps import save_map
    from tuoyu.outputs.reports import write_csv, write_geojson, write_summary_json
    from tuoyu.workflow.area_maps import build_area_map

    out = Path(out_dir)
    written = {
        "sites.csv": write_sites_csv(plan.sites, out / "sites.csv"),
        "sites.geojson": write_geojson(
            plan.sites,
            out / "sites.geojson",
            attribution=data_credit(layers),
            name="sites",
            notes=(RANK_NOTE,),
        ),
        "sites.xlsx": write_sites_xlsx(
            plan.sites, out / "sites.xlsx", area_name=layers.area.area.name
        ),
        "jiedao_after.csv": write_csv(plan.after.table, out / "jiedao_after.csv"),
        "siting.json": write_summary_json(siting_summary(plan, layers), out / "siting.json"),
    }
    if plan.isochrones is not None:
        written["site_isochrones.geojson"] = write_geojson(
            plan.isochrones,
            out / "site_isochrones.geojson",
            attribution=data_credit(layers),
            name="site_isochrones",
        )
    if maps_dir is not None:
        # the same builder as every other map (credits, language, layers)
        gmap = build_area_map(
            "gaps",
            layers,
            None,
            before if before is not None else plan.after,
            reach,
            None,
            None,
            language=layers.settings.language,
            sites=plan.sites,
            site_isochrones=plan.isochrones,
        )
        written["maps/gaps.html"] = save_map(gmap, Path(maps_dir) / "gaps.html")
    return written


def run_site(
    name_or_path: str | Path,
    p: int,
    out_dir: Path | None = None,
    *,
    settings: Settings | None = None,
    progress: Progress | None = None,
    solver: Literal["greedy", "exact"] = "exact",
    weight: Literal["under3", "population"] = "under3",
    candidates_file: Path | None = None,
    candidates_crs: str = "wgs84",
    spacing_m: float = 150.0,
    require_puhui_per_jiedao: bool = False,
    min_spacing_m: float | None = None,
    time_limit_s: float = 60.0,
    goal_share: float | None = None,
    month: str | None = None,
    maps_dir: Path | None = None,
) -> tuple[AreaRun, SitingPlan]:
    """``tuoyu site``: analyse the area, recommend ``p`` new 普惠 sites, write everything."""
    progress = progress or Progress()
    run = analyse_area(
        name_or_path,
        out_dir,
        settings,
        progress,
        month=month,
        maps_dir=maps_dir,
        write_map_files=True,
    )
    if run.reach is None or run.reach.graph is None:
        raise InputValidationError(
            f"{run.layers.area.source_path}: siting needs a walking network ([network] path); "
            "this study area has none"
        )
    candidates = candidate_sites(
        run.layers,
        user_file=candidates_file,
        user_crs=candidates_crs,
        spacing_m=spacing_m,
        progress=progress,
    )
    user_rejects = candidates.attrs.get("rejects")
    if isinstance(user_rejects, pd.DataFrame) and len(user_rejects):
        from tuoyu.layers.rejects import write_rejects

        # The run wrote rejects.csv before the candidates were read: rewrite it with both.
        run.written["rejects.csv"] = write_rejects([*run.layers.rejects, user_rejects], run.out_dir)
    plan = plan_sites(
        run.layers,
        run.reach,
        run.profile,
        p,
        candidates=candidates,
        solver=solver,
        weight=weight,
        require_puhui_per_jiedao=require_puhui_per_jiedao,
        min_spacing_m=min_spacing_m,
        time_limit_s=time_limit_s,
        goal_share=goal_share,
        progress=progress,
    )
    run.written.update(
        write_siting_outputs(
            plan,
            run.layers,
            run.out_dir,
            before=run.results,
            reach=run.reach,
            maps_dir=run.maps_dir,
        )
    )
    run.seal()
    result = plan.result
    progress.info(
        f"solver {result.solver}: {'optimal' if result.optimal else 'not proven optimal'}"
        + (f", MIP gap {result.mip_gap:.2%}" if result.mip_gap is not None else "")
        + f", {result.wall_time_s:.2f} s"
    )
    label = "under-3 children" if plan.weight_column == "population_under3" else "residents"
    for row in plan.sites.itertuples():
        progress.info(
            f"  #{row.rank} {row.label} [{row.candidate_id}, {CANDIDATE_SOURCES[str(row.source)]}]"
            f" WGS84 {row.lon_wgs84:.6f},{row.lat_wgs84:.6f} / GCJ-02 "
            f"{row.lon_gcj02:.6f},{row.lat_gcj02:.6f}: +{row.added_population:,.0f} residents "
            f"(+{row.added_under3:,.0f} under 3) → {row.covered_share_after_pct:.1f} % within 15 min"
        )
    progress.info(f"rank = {RANK_NOTE.split(' / ')[0].removeprefix('rank: ')}")
    progress.info(f"maximised: {label}")
    return run, plan
