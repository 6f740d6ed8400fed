"""Siting on a study area: candidates, coverage matrix, solve, and what the sites change.

The GeoDataFrame door of the siting models (spopt's habit): it builds candidates (a user
file, OSM features, points sampled along the network), measures which population points
each candidate reaches on foot with the reach engine, solves the maximal covering problem
for new 普惠 facilities (people already within 15 minutes of a 普惠 facility bring no
gain) and recomputes the per-unit table with the chosen sites added.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import geopandas as gpd
import numpy as np
import pandas as pd

from tuoyu import OSM_ATTRIBUTION
from tuoyu.config.settings import Settings
from tuoyu.errors import InputValidationError
from tuoyu.indicators.targets import Profile
from tuoyu.layers.facilities import load_facilities
from tuoyu.layers.osm_features import load_osm_pois
from tuoyu.network.snap import snap_points
from tuoyu.progress import SILENT, Progress
from tuoyu.reach.engine import reach_matrix
from tuoyu.siting import (
    SitingProblem,
    SitingResult,
    min_sites_for_coverage,
    required_groups_from_labels,
    solve_mclp,
)
from tuoyu.siting.candidates import dedupe, sample_on_network
from tuoyu.workflow.core import AreaModel
from tuoyu.workflow.layers import AreaLayers
from tuoyu.workflow.run import AreaRun, analyse_area
from tuoyu.workflow.steps import (
    IndicatorResults,
    ReachResults,
    compute_indicators,
    population_with_walk,
)

CANDIDATE_SOURCES = {"user": "用户提供", "osm": "OSM设施", "network": "路网采样"}

SITE_COLUMNS = (
    "rank",
    "candidate_id",
    "source",
    "name",
    "category",
    "unit_code",
    "added_population",
    "added_under3",
    "cumulative_added_population",
    "covered_share_after_pct",
)


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


def _new_facilities(layers: AreaLayers, sites: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    rows = pd.DataFrame(
        {
            "id": sites["candidate_id"].astype(str).to_numpy(),
            "name": [f"新增普惠托育点 {r}" for r in sites["rank"]],
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
    chosen = result.chosen.astype(np.int64)
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
    sites = gpd.GeoDataFrame(
        {
            "rank": np.arange(1, len(chosen) + 1),
            "candidate_id": candidates["candidate_id"].to_numpy()[chosen],
            "source": candidates["source"].to_numpy()[chosen],
            "name": candidates["name"].to_numpy()[chosen],
            "category": candidates["category"].to_numpy()[chosen],
            "unit_code": unit_of_candidate[chosen],
            "added_population": np.round(added_pop, 1),
            "added_under3": np.round(added_u3, 1),
            "cumulative_added_population": np.round(cumulative, 1),
            "covered_share_after_pct": np.round(share_after, 2),
        },
        geometry=candidates.geometry.to_numpy()[chosen],
        crs=layers.metric_crs,
    )
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
    return SitingPlan(
        sites=sites,
        result=result,
        candidates=candidates,
        isochrones=isochrones,
        after=after,
        after_reach=after_reach,
        weight_column=weight_column,
    )


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
        "attribution": OSM_ATTRIBUTION,
    }


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

    Files: ``sites.csv``, ``sites.geojson``, ``site_isochrones.geojson``,
    ``jiedao_after.csv`` (the per-unit table with the sites added), ``siting.json``;
    with ``maps_dir`` also the planner's ``gaps.html`` showing the gaps before siting
    (from ``before``/``reach``) and the recommended sites with their isochrones.
    """
    from tuoyu.outputs.maps import build_gap_map, save_map
    from tuoyu.outputs.reports import write_csv, write_geojson, write_summary_json

    out = Path(out_dir)
    written = {
        "sites.csv": write_csv(plan.sites, out / "sites.csv"),
        "sites.geojson": write_geojson(
            plan.sites, out / "sites.geojson", attribution=OSM_ATTRIBUTION, name="sites"
        ),
        "jiedao_after.csv": write_csv(plan.after.table, out / "jiedao_after.csv"),
        "siting.json": write_summary_json(siting_summary(plan, layers), out / "siting.json"),
    }
    if plan.isochrones is not None:
        written["site_isochrones.geojson"] = write_geojson(
            plan.isochrones,
            out / "site_isochrones.geojson",
            attribution=OSM_ATTRIBUTION,
            name="site_isochrones",
        )
    if maps_dir is not None:
        walk = layers.area.walk
        gmap = build_gap_map(
            population_with_walk(layers, reach),
            before.gaps if before is not None else None,
            plan.sites,
            plan.isochrones,
            facilities=layers.facilities,
            units=layers.units,
            threshold_m=walk.metres_for(walk.max_minutes),
            area_name=layers.area.area.name,
            language=layers.settings.language,
            tianditu_key=layers.settings.tianditu_key,
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
    result = plan.result
    progress.info(
        f"solver {result.solver}: {'optimal' if result.optimal else 'not proven optimal'}"
        + (f", MIP gap {result.mip_gap:.2%}" if result.mip_gap is not None else "")
        + f", {result.wall_time_s:.2f} s"
    )
    label = "under-3 children" if plan.weight_column == "population_under3" else "residents"
    for row in plan.sites.itertuples():
        name = row.name if isinstance(row.name, str) and row.name else row.candidate_id
        progress.info(
            f"  #{row.rank} {name} ({CANDIDATE_SOURCES[str(row.source)]}): +{row.added_population:,.0f} "
            f"residents (+{row.added_under3:,.0f} under 3) → {row.covered_share_after_pct:.1f} % "
            "within 15 min"
        )
    progress.info(f"maximised: {label}")
    return run, plan
