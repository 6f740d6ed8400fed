"""Capacity-aware siting on a study area (the GeoDataFrame door of the capacitated model).

From the live :class:`~tuoyu.workflow.core.AreaModel` it takes the population points
(under-3 children ``population_under3``, or residents), the current facilities with
their 托位 (``slots``), their walking reach and the routing graph; it builds candidate
sites (:func:`tuoyu.siting.plan.candidate_sites`), measures which points each candidate
reaches on foot (:func:`tuoyu.reach.engine.reach_matrix`), solves the capacitated
maximal covering problem (:mod:`tuoyu.siting.capacitated`: children *served within
capacity inside 15 minutes*, one 托位 serving one child) and reports what the new sites
add and what they do to the 4.5 托位 per 1,000 residents and 60 % 普惠 targets per unit.

Existing facilities whose 托位 are unknown are **left out of the capacity model** by
default (``unknown_slots=None``): they serve nobody in it, and the result's notes say
how many were left out. Give ``unknown_slots`` to count each with that stated capacity
instead (the notes and the per-unit table then say the figure is assumed).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import geopandas as gpd
import numpy as np
import pandas as pd
import scipy.sparse as sp

from tuoyu.errors import InputValidationError
from tuoyu.layers.osm_network import check_osm_path
from tuoyu.network.snap import snap_points
from tuoyu.reach.engine import reach_matrix
from tuoyu.siting.capacitated import (
    DEFAULT_SIZE_MENU,
    CapacitatedProblem,
    CapacitatedResult,
    evaluate_sites,
    solve_capacitated_exact,
    solve_capacitated_greedy,
)
from tuoyu.siting.plan import candidate_sites
from tuoyu.workflow.core import AreaModel
from tuoyu.workflow.layers import AreaLayers
from tuoyu.workflow.steps import compute_indicators

CAPACITATED_SITE_COLUMNS = (
    "rank",
    "candidate_id",
    "source",
    "name",
    "unit_code",
    "slots",
    "added_children",
    "served_children",
    "catchment_residents",
    "catchment_under3",
)
"""Columns of :attr:`CapacitatedPlan.sites` (besides the point geometry)."""

TARGET_COLUMNS = (
    "code",
    "name",
    "population",
    "population_under3",
    "slots_before",
    "slots_after",
    "slots_per_1000_before",
    "slots_per_1000_after",
    "meets_slots_per_1000_before",
    "meets_slots_per_1000_after",
    "puhui_slot_share_before",
    "puhui_slot_share_after",
    "meets_puhui_slot_share_before",
    "meets_puhui_slot_share_after",
    "served_before",
    "served_after",
    "new_sites",
    "new_slots",
)
"""Columns of :attr:`CapacitatedPlan.targets`: per unit, before and after the new sites.
``served_*`` are weights (children by default) served within capacity inside 15 minutes."""


@dataclass(frozen=True)
class CapacitatedPlan:
    """Recommended capacity-aware sites and what they change.

    Attributes
    ----------
    sites
        Ranked sites (:data:`CAPACITATED_SITE_COLUMNS`, point geometry, metric CRS):
        托位, children each adds given the ones before it, children it serves in the
        assignment, residents and under-3 children within its 15-minute catchment.
    targets
        Per unit, before and after (:data:`TARGET_COLUMNS`).
    result
        The solver's answer (optimal flag, gap, bound, assignment).
    problem
        The capacitated problem that was solved (rows of ``existing_coverage`` are
        the facilities in ``existing_ids``).
    candidates
        Every candidate considered.
    existing_ids
        Ids of the existing facilities in the model, in problem order.
    weight_column
        The population column maximised.
    notes
        What was assumed or left out.
    """

    sites: gpd.GeoDataFrame
    targets: pd.DataFrame
    result: CapacitatedResult
    problem: CapacitatedProblem
    candidates: gpd.GeoDataFrame
    existing_ids: tuple[str, ...]
    weight_column: str
    notes: tuple[str, ...]


def _network_is_osm(layers: AreaLayers) -> bool:
    path = layers.files.get("network")
    if path is None:
        return False
    try:
        check_osm_path(path)
    except (InputValidationError, OSError):
        return False  # a road-line layer (GeoJSON …): no OSM features to offer
    return True


def _existing(
    model: AreaModel, unknown_slots: float | None
) -> tuple[tuple[str, ...], sp.csr_matrix, np.ndarray, gpd.GeoDataFrame | None, list[str]]:
    """Existing facilities in the capacity model: ids, coverage, 托位, frame, notes."""
    frame = model.facilities()
    matrix = model.reach_matrix()
    n_points = 0 if model.layers.population is None else len(model.layers.population)
    notes: list[str] = []
    if frame is None or matrix is None or not len(frame):
        return (), sp.csr_matrix((0, n_points)), np.empty(0), frame, notes
    ids = [str(i) for i in model.facility_ids()]
    frame = frame.set_index(frame["id"].astype(str)).loc[ids].reset_index(drop=True)
    slots = pd.to_numeric(frame["slots"], errors="coerce").to_numpy(dtype=float)
    unknown = ~np.isfinite(slots)
    if unknown.any():
        if unknown_slots is None:
            notes.append(
                f"{int(unknown.sum())} of {len(frame)} existing facilities have no 托位 "
                "registered: left out of the capacity model (they serve nobody in it)"
            )
        else:
            notes.append(
                f"{int(unknown.sum())} of {len(frame)} existing facilities have no 托位 "
                f"registered: counted with an assumed {unknown_slots:g} 托位 each"
            )
            slots = np.where(unknown, float(unknown_slots), slots)
    keep = np.isfinite(slots)
    cover = sp.csr_matrix(matrix)[np.flatnonzero(keep)]
    filled = frame.copy()
    filled["slots"] = pd.array(np.where(np.isfinite(slots), np.round(slots), np.nan), "Int64")
    if unknown.any() and unknown_slots is not None:
        previous = filled["assumed_fields"] if "assumed_fields" in filled else [None] * len(filled)
        filled["assumed_fields"] = [
            (f"{a},slots" if isinstance(a, str) and a else "slots") if u else a
            for a, u in zip(previous, unknown, strict=True)
        ]
    kept_ids = tuple(np.asarray(ids, dtype=object)[keep].tolist())
    return kept_ids, cover, slots[keep], filled, notes


def _new_facilities(layers: AreaLayers, sites: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    rows = pd.DataFrame(
        {
            "id": sites["candidate_id"].astype(str).to_numpy(),
            "name": [f"新增普惠托育点 {r}" for r in sites["rank"]],
            "kind": "社区托育点",
            "puhui": True,
            "slots": pd.array(np.round(sites["slots"].to_numpy(dtype=float)), "Int64"),
            "assumed_fields": "kind,puhui",
        }
    )
    new = gpd.GeoDataFrame(rows, geometry=sites.geometry.to_numpy(), crs=layers.metric_crs)
    wgs84 = new.geometry.to_crs(4326)
    new["lon"] = wgs84.x.to_numpy()
    new["lat"] = wgs84.y.to_numpy()
    return new


def _served_by_unit(layers: AreaLayers, served: np.ndarray, codes: pd.Series) -> np.ndarray:
    pop = layers.population
    assert pop is not None  # checked by the caller
    by = pd.Series(served, index=pop["unit_code"].astype(str).to_numpy()).groupby(level=0).sum()
    return by.reindex(codes.astype(str).to_numpy()).fillna(0.0).to_numpy(dtype=float)


def plan_capacitated_sites(
    model: AreaModel,
    *,
    p: int | None = 5,
    size_menu: Sequence[float] | None = DEFAULT_SIZE_MENU,
    site_slots: float | None = None,
    max_total_slots: float | None = None,
    unknown_slots: float | None = None,
    weight: Literal["under3", "population"] = "under3",
    solver: Literal["exact", "greedy"] = "exact",
    time_limit_s: float = 60.0,
    mip_gap: float = 0.0,
    candidates: gpd.GeoDataFrame | None = None,
) -> CapacitatedPlan:
    """Choose new 普惠 sites and their sizes that serve the most children within capacity.

    Parameters
    ----------
    model
        The study area's live model (needs a walking network and population points).
    p
        Largest number of new sites (``None``: only the slot budget limits them).
    size_menu
        Sizes (托位) the solver chooses from for each site; ignored with ``site_slots``.
    site_slots
        One fixed size for every candidate instead of a menu.
    max_total_slots
        Slot budget of the new sites.
    unknown_slots
        托位 assumed for an existing facility whose 托位 are unknown; ``None`` leaves
        such facilities out of the capacity model (stated in the notes).
    weight
        Serve under-3 children (``population_under3``) or residents (``population``).
    solver
        ``"exact"`` (HiGHS MILP) or ``"greedy"`` (max-flow greedy with the LP bound).
    time_limit_s, mip_gap
        Solver limits.
    candidates
        Candidate sites (metric CRS, ``candidate_id``, ``source``, ``name``); default
        :func:`~tuoyu.siting.plan.candidate_sites` (OSM features only when the network
        file is an OSM file).

    Returns
    -------
    CapacitatedPlan

    Raises
    ------
    InputValidationError
        Without a walking network or population points, or with a weight column that
        holds no usable values.
    """
    layers = model.current_layers()
    reach = model.reach()
    if (
        reach is None
        or reach.graph is None
        or reach.population_snapped is None
        or layers.population is None
    ):
        raise InputValidationError(
            f"{layers.area.source_path}: capacity-aware siting needs a walking network and "
            "population points (none in this study area)"
        )
    notes: list[str] = []
    weight_column = "population_under3" if weight == "under3" else "population"
    weights = pd.to_numeric(layers.population[weight_column], errors="coerce").to_numpy(float)
    missing = ~np.isfinite(weights)
    if missing.all():
        raise InputValidationError(
            f"population points have no '{weight_column}' values", field=weight_column
        )
    if missing.any():
        notes.append(f"{int(missing.sum())} population points without '{weight_column}': 0")
        weights = np.where(missing, 0.0, weights)
    if candidates is None:
        candidates = candidate_sites(layers, use_osm=_network_is_osm(layers))
    cand_snap = snap_points(
        reach.graph,
        candidates.geometry.x.to_numpy(),
        candidates.geometry.y.to_numpy(),
        max_snap_m=layers.area.walk.max_snap_m,
    )
    cand_cover = sp.csr_matrix(
        reach_matrix(reach.graph, cand_snap, reach.population_snapped, reach.threshold_m)
    ).astype(bool)
    ids, ex_cover, ex_slots, filled, ex_notes = _existing(model, unknown_slots)
    notes.extend(ex_notes)
    problem = CapacitatedProblem(
        cand_cover,
        weights,
        p=p,
        capacity=None if site_slots is None else np.full(len(candidates), float(site_slots)),
        size_menu=None if site_slots is not None else tuple(size_menu or DEFAULT_SIZE_MENU),
        max_total_slots=max_total_slots,
        existing_coverage=ex_cover,
        existing_capacity=ex_slots,
    )
    if solver == "exact":
        result = solve_capacitated_exact(problem, time_limit_s, mip_gap)
    elif solver == "greedy":
        result = solve_capacitated_greedy(problem, time_limit_s=time_limit_s)
    else:
        raise InputValidationError(
            f"solver must be 'exact' or 'greedy', got {solver!r}", field="solver"
        )

    chosen = result.chosen
    population = layers.population["population"].to_numpy(dtype=float)
    under3 = np.nan_to_num(layers.population["population_under3"].to_numpy(dtype=float))
    unit_of = np.full(len(candidates), None, dtype=object)
    if layers.units is not None and len(candidates):
        joined = gpd.sjoin(candidates[["geometry"]], layers.units[["code", "geometry"]], how="left")
        joined = joined[~joined.index.duplicated(keep="first")]
        unit_of = joined["code"].reindex(candidates.index).to_numpy(dtype=object)
    catch_pop = np.asarray(cand_cover[chosen] @ population).reshape(-1)
    catch_u3 = np.asarray(cand_cover[chosen] @ under3).reshape(-1)
    sites = gpd.GeoDataFrame(
        {
            "rank": np.arange(1, chosen.size + 1),
            "candidate_id": candidates["candidate_id"].to_numpy()[chosen],
            "source": candidates["source"].to_numpy()[chosen],
            "name": candidates["name"].to_numpy()[chosen],
            "unit_code": unit_of[chosen],
            "slots": result.chosen_slots,
            "added_children": np.round(result.added_by_site, 2),
            "served_children": np.round(result.served_by_site, 2),
            "catchment_residents": np.round(catch_pop, 1),
            "catchment_under3": np.round(catch_u3, 2),
        },
        geometry=candidates.geometry.to_numpy()[chosen],
        crs=layers.metric_crs,
    )
    targets = _targets(model, layers, filled, sites, problem, result)
    return CapacitatedPlan(
        sites=sites,
        targets=targets,
        result=result,
        problem=problem,
        candidates=candidates,
        existing_ids=ids,
        weight_column=weight_column,
        notes=(*notes, *result.notes),
    )


def _targets(
    model: AreaModel,
    layers: AreaLayers,
    existing: gpd.GeoDataFrame | None,
    sites: gpd.GeoDataFrame,
    problem: CapacitatedProblem,
    result: CapacitatedResult,
) -> pd.DataFrame:
    """Per unit: 托位 per 1,000 and 普惠 share (project definitions) before and after."""
    before_layers = dataclasses.replace(layers, facilities=existing)
    new = _new_facilities(layers, sites)
    after_frame = new if existing is None else pd.concat([existing, new], ignore_index=True)
    after_layers = dataclasses.replace(
        layers, facilities=gpd.GeoDataFrame(after_frame, crs=layers.metric_crs)
    )
    # Slots per 1,000 and the 普惠 share do not depend on walking: no reach needed.
    before = compute_indicators(before_layers, None, model.profile).table
    after = compute_indicators(after_layers, None, model.profile).table
    base = evaluate_sites(problem, [], [])
    served_before = np.asarray(base.existing_assignment.sum(axis=0)).reshape(-1)
    served_after = np.asarray(
        result.assignment.sum(axis=0) + result.existing_assignment.sum(axis=0)
    ).reshape(-1)
    out = pd.DataFrame(
        {
            "code": before["code"].astype(str),
            "name": before["name"],
            "population": before["population"],
            "population_under3": before["population_under3"],
        }
    )
    for col, key in (
        ("slots", "slots"),
        ("slots_per_1000", "slots_per_1000"),
        ("meets_slots_per_1000", "meets_slots_per_1000"),
        ("puhui_slot_share", "puhui_slot_share"),
        ("meets_puhui_slot_share", "meets_puhui_slot_share"),
    ):
        out[f"{col}_before"] = before[key].to_numpy()
        out[f"{col}_after"] = after[key].to_numpy()
    out["served_before"] = np.round(_served_by_unit(layers, served_before, out["code"]), 2)
    out["served_after"] = np.round(_served_by_unit(layers, served_after, out["code"]), 2)
    counts = sites.groupby(sites["unit_code"].astype(str))["slots"].agg(["size", "sum"])
    out["new_sites"] = counts["size"].reindex(out["code"]).fillna(0).astype(int).to_numpy()
    out["new_slots"] = counts["sum"].reindex(out["code"]).fillna(0.0).to_numpy()
    return out[list(TARGET_COLUMNS)].reset_index(drop=True)
