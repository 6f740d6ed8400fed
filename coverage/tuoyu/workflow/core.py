"""The one core model of a study area: layers in, typed results out, kept up to date.

:class:`AreaModel` is built once per study area from its layers
(:func:`tuoyu.workflow.layers.load_layers`): the routing graph, the population snapped
to it and the facility set with its incremental reach. ``tuoyu run`` reads its results
and writes them out, batch runs do the same per area, and the service keeps one per
area and follows registry writes:

* the walking network, population points and units never change;
* the facility set changes by :meth:`AreaModel.add_facility`,
  :meth:`~AreaModel.update_facility` and :meth:`~AreaModel.remove_facility`. Each
  change updates the per-node nearest-facility distances only in the neighbourhood it
  touches (:class:`tuoyu.reach.engine.ReachState`, one for all facilities and one for
  普惠), recomputes one row of the facility × population reach matrix, and re-derives
  the population walking distances from the node distances (one vectorised pass); the
  indicators are re-aggregated from those on the next read;
* :meth:`AreaModel.scenario` applies additions and removals to a copy and returns the
  new results without touching the model.

Every answer is a typed, immutable value (:class:`NearestFacility`,
:class:`FacilityIsochrone`, :class:`ScenarioResult`, :class:`IndicatorResults`, …);
turning them into JSON, HTTP limits and caching belong to the service.

Thread safety: writes take a lock; every write publishes a new immutable *view*
(facility points, walking distances, reach matrix) that readers pick up with one
attribute read, so queries never wait for a write and never see half of one.

Areas without a walking network give :class:`NoNetworkError` for walking-time queries;
areas in ``[network] mode = "straight_line"`` answer with straight-line distances × the
detour factor, labelled approximate.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import math
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

import folium
import geopandas as gpd
import numpy as np
import numpy.typing as npt
import pandas as pd
import scipy.sparse as sp
import shapely
from pyproj import Transformer
from scipy.spatial import cKDTree
from shapely.geometry.base import BaseGeometry

from tuoyu.config.settings import Settings, get_settings
from tuoyu.config.study_area import StudyArea
from tuoyu.crs.china import convert, parse_crs_name
from tuoyu.crs.projection import WGS84
from tuoyu.errors import (
    AreaConfigError,
    ConflictError,
    InputValidationError,
    NoNetworkError,
    NotFoundError,
    OffNetworkError,
)
from tuoyu.indicators.targets import Profile, load_profile
from tuoyu.isochrones.exact import METHOD_WALK_FIELD, IsochroneBuilder, isochrone_polygons
from tuoyu.isochrones.grid import area_isochrones
from tuoyu.isochrones.walk_field import (
    DEFAULT_FIELD_CELL_M,
    WalkFieldIndex,
    walk_field_polygons,
)
from tuoyu.layers.schema import FACILITY_KINDS
from tuoyu.network.graph import WalkGraph, build_graph
from tuoyu.network.snap import snap_points
from tuoyu.progress import SILENT, Progress
from tuoyu.reach.engine import (
    ReachState,
    all_facility_reach,
    facility_reach,
    k_nearest_facilities,
    point_times,
    reach_matrix,
)
from tuoyu.types import LocalReach, SnappedPoints
from tuoyu.workflow.facility_records import (
    check_record,
    facilities_frame,
    is_puhui,
    plain_value,
    records_from,
)
from tuoyu.workflow.layers import AreaLayers, load_layers, study_area_polygon
from tuoyu.workflow.provenance import file_records
from tuoyu.workflow.steps import (
    IndicatorResults,
    ReachMode,
    ReachResults,
    compute_indicators,
    straight_line_reach,
)

if TYPE_CHECKING:
    from tuoyu.siting.plan import SitingPlan

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
MapName = Literal["facilities", "dashboard", "gaps"]
MAP_NAMES: tuple[MapName, ...] = ("facilities", "dashboard", "gaps")
"""Maps :meth:`AreaModel.build_map` builds."""


def no_network_message(area: StudyArea) -> str:
    """The explanation given when an area has no walking network."""
    return (
        f"study area '{area.slug}' has no walking network (无步行路网): walking times and "
        "isochrones cannot be computed; give an OSM file or a road line layer as "
        '[network] path, or [network] mode = "straight_line" with a detour_factor for '
        "approximate results"
    )


# --- typed answers ------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class LocatedPoint:
    """A query point in WGS84 and in the metric CRS."""

    lon_wgs84: float
    lat_wgs84: float
    x_m: float
    y_m: float


@dataclasses.dataclass(frozen=True)
class NearestFacility:
    """One facility within walking reach of a point."""

    facility_id: str
    name: str | None
    kind: str | None
    kind_en: str | None
    puhui: bool | None
    walk_m: float
    walk_min: float
    lon: float
    lat: float
    approximate: bool


@dataclasses.dataclass(frozen=True)
class FacilityIsochrone:
    """The area one facility reaches on foot within ``minutes`` (geometry in WGS84)."""

    facility_id: str
    name: str | None
    minutes: float
    walk_m: float
    speed_kmh: float
    method: str
    buffer_m: float | None
    area_m2: float
    off_network: bool
    approximate: bool
    geometry_wgs84: BaseGeometry


@dataclasses.dataclass(frozen=True)
class ScenarioResult:
    """A what-if: the results with facilities added and removed (model unchanged)."""

    results: IndicatorResults
    added: tuple[str, ...]
    removed: tuple[str, ...]
    version: int


@dataclasses.dataclass(frozen=True)
class _Context:
    """What never changes: layers, graph, snapped population, walking parameters."""

    layers: AreaLayers
    profile: Profile
    mode: ReachMode
    graph: WalkGraph | None
    population_snapped: SnappedPoints | None
    cutoff_m: float
    max_snap_m: float
    min_component_nodes: int
    to_metric: Transformer
    to_wgs84: Transformer
    polygon_m: BaseGeometry | None
    detour_factor: float | None
    facility_source: str
    data_sources: tuple[Mapping[str, Any], ...]

    @functools.cached_property
    def field_index(self) -> WalkFieldIndex:
        """The graph's walk-field isochrone index under the area's snapping rule (once)."""
        assert self.graph is not None  # network mode only (internal invariant)
        return WalkFieldIndex.build(self.graph, self.min_component_nodes)

    def project(self, lon: float, lat: float) -> tuple[float, float]:
        """WGS84 lon/lat → metric x/y; refuses points the metric CRS cannot hold."""
        x, y = self.to_metric.transform(lon, lat)
        if not (math.isfinite(x) and math.isfinite(y)):
            raise InputValidationError(
                f"lon={lon}, lat={lat} cannot be placed in {self.layers.metric_crs.name}",
                field="lon",
            )
        return float(x), float(y)


def _fork_state(state: ReachState) -> ReachState:
    """An independent copy of ``state`` sharing the (read-only) graph.

    ``copy.deepcopy`` would copy the graph too; instead every numpy array attribute is
    copied (the per-node distances, nearest facility and the active mask); the
    snapped-point arrays are never written in place (an addition builds new ones).
    """
    fork = copy.copy(state)
    for name, value in vars(state).items():
        if isinstance(value, np.ndarray):
            setattr(fork, name, value.copy())
    return fork


class _FacilitySet:
    """The current facilities with their incremental reach (network mode) — mutable."""

    def __init__(self, ctx: _Context, records: Sequence[Mapping[str, Any]]) -> None:
        self.ctx = ctx
        self.records: dict[str, dict[str, Any]] = {}
        self.xy_m: dict[str, tuple[float, float]] = {}
        self.revision: dict[str, int] = {}
        self._next_revision = 0
        self.state_all: ReachState | None = None
        self.state_puhui: ReachState | None = None
        self.slot_all: dict[str, int] = {}
        self.slot_puhui: dict[str, int] = {}
        self.ids_all: list[str | None] = []
        self.rows: dict[str, tuple[IntArray, FloatArray]] = {}
        for record in records:
            fid, lon, lat = check_record(record)
            if fid in self.records:
                raise ConflictError(f"duplicate facility id '{fid}'")
            self.records[fid] = dict(record)
            self.xy_m[fid] = ctx.project(lon, lat)
            self.revision[fid] = self._bump()
        if ctx.mode == "network":
            self._init_reach()

    def _bump(self) -> int:
        self._next_revision += 1
        return self._next_revision

    def _init_reach(self) -> None:
        ctx = self.ctx
        graph = ctx.graph
        assert graph is not None  # network mode has a graph (internal invariant)
        ids = list(self.records)
        xy = np.array([self.xy_m[i] for i in ids], dtype=float).reshape(-1, 2)
        points = snap_points(
            graph,
            xy[:, 0],
            xy[:, 1],
            max_snap_m=ctx.max_snap_m,
            min_component_nodes=ctx.min_component_nodes,
        )
        puhui = np.array([is_puhui(self.records[i]) for i in ids], dtype=bool)
        self.state_all = ReachState(graph, points, ctx.cutoff_m)
        self.state_puhui = ReachState(graph, points, ctx.cutoff_m, active=puhui)
        self.slot_all = {fid: k for k, fid in enumerate(ids)}
        self.slot_puhui = {fid: k for k, fid in enumerate(ids) if puhui[k]}
        self.ids_all = list(ids)
        if ctx.population_snapped is not None and ids:
            matrix = reach_matrix(graph, points, ctx.population_snapped, ctx.cutoff_m)
            for k, fid in enumerate(ids):
                lo, hi = int(matrix.indptr[k]), int(matrix.indptr[k + 1])
                self.rows[fid] = (
                    matrix.indices[lo:hi].astype(np.int64),
                    matrix.data[lo:hi].copy(),
                )

    def fork(self) -> _FacilitySet:
        """An independent copy (for what-if scenarios)."""
        other = copy.copy(self)
        other.records = dict(self.records)
        other.xy_m = dict(self.xy_m)
        other.revision = dict(self.revision)
        other.slot_all = dict(self.slot_all)
        other.slot_puhui = dict(self.slot_puhui)
        other.ids_all = list(self.ids_all)
        other.rows = dict(self.rows)
        other.state_all = _fork_state(self.state_all) if self.state_all is not None else None
        other.state_puhui = _fork_state(self.state_puhui) if self.state_puhui is not None else None
        return other

    # -- changes -------------------------------------------------------------------------

    def add(self, record: Mapping[str, Any]) -> None:
        fid, lon, lat = check_record(record)
        if fid in self.records:
            raise ConflictError(f"facility '{fid}' is already in the analysis")
        self.records[fid] = dict(record)
        self.xy_m[fid] = self.ctx.project(lon, lat)
        self.revision[fid] = self._bump()
        self._add_reach(fid)

    def _add_reach(self, fid: str) -> None:
        if self.state_all is None or self.state_puhui is None:
            return
        ctx = self.ctx
        graph = ctx.graph
        assert graph is not None
        x, y = self.xy_m[fid]
        point = snap_points(
            graph,
            [x],
            [y],
            max_snap_m=ctx.max_snap_m,
            min_component_nodes=ctx.min_component_nodes,
        )
        self.slot_all[fid] = self.state_all.add_facility(point)
        self.ids_all.append(fid)
        if is_puhui(self.records[fid]):
            self.slot_puhui[fid] = self.state_puhui.add_facility(point)
        if ctx.population_snapped is not None:
            row = reach_matrix(graph, point, ctx.population_snapped, ctx.cutoff_m)
            self.rows[fid] = (row.indices.astype(np.int64), row.data.copy())

    def remove(self, fid: str) -> None:
        if fid not in self.records:
            raise NotFoundError(f"facility '{fid}' is not in the analysis")
        self._remove_reach(fid)
        del self.records[fid]
        del self.xy_m[fid]
        del self.revision[fid]

    def _remove_reach(self, fid: str) -> None:
        if self.state_all is None or self.state_puhui is None:
            return
        slot = self.slot_all.pop(fid)
        self.ids_all[slot] = None
        # Off-network facilities never counted in a ReachState: nothing to remove.
        if self.state_all.active[slot]:
            self.state_all.remove_facility(slot)
        slot_p = self.slot_puhui.pop(fid, None)
        if slot_p is not None and self.state_puhui.active[slot_p]:
            self.state_puhui.remove_facility(slot_p)
        self.rows.pop(fid, None)

    def update(self, record: Mapping[str, Any]) -> None:
        fid, lon, lat = check_record(record)
        old = self.records.get(fid)
        if old is None:
            raise NotFoundError(f"facility '{fid}' is not in the analysis")
        xy = self.ctx.project(lon, lat)
        moved = xy != self.xy_m[fid] or is_puhui(old) != is_puhui(record)
        if moved:
            self._remove_reach(fid)
        self.records[fid] = dict(record)  # keeps the facility's place in the order
        self.xy_m[fid] = xy
        self.revision[fid] = self._bump()
        if moved:
            self._add_reach(fid)

    # -- results ---------------------------------------------------------------------------

    def snapshot(self, version: int) -> _View:
        ctx = self.ctx
        ids = list(self.records)
        xy = np.array([self.xy_m[i] for i in ids], dtype=float).reshape(-1, 2)
        view = _View(
            version=version,
            ctx=ctx,
            ids=ids,
            records=dict(self.records),
            xy_m=xy,
            revision=dict(self.revision),
        )
        if self.state_all is not None and self.state_puhui is not None:
            graph = ctx.graph
            assert graph is not None
            view.points = self.state_all.facilities
            view.active = self.state_all.active
            view.slot_ids = list(self.ids_all)
            view.slot_of = dict(self.slot_all)
            pop = ctx.population_snapped
            if pop is not None:
                view.walk_m_all = point_times(graph, self.state_all.node_reach(), pop)[0]
                view.walk_m_puhui = point_times(graph, self.state_puhui.node_reach(), pop)[0]
                view.matrix = self._matrix(ids, len(pop))
        return view

    def _matrix(self, ids: Sequence[str], n_points: int) -> sp.csr_array:
        """The facility × population reach matrix, rows in ``ids`` order."""
        parts = [self.rows[i] for i in ids]
        counts = np.array([p[0].shape[0] for p in parts], dtype=np.int64)
        indptr = np.zeros(len(ids) + 1, dtype=np.int64)
        np.cumsum(counts, out=indptr[1:])
        indices = np.concatenate([p[0] for p in parts]) if parts else np.empty(0, np.int64)
        data = np.concatenate([p[1] for p in parts]) if parts else np.empty(0)
        return sp.csr_array((data, indices, indptr), shape=(len(ids), n_points))


@dataclasses.dataclass
class _View:
    """The state after one change; never modified once published (results are cached)."""

    version: int
    ctx: _Context
    ids: list[str]
    records: dict[str, dict[str, Any]]
    xy_m: FloatArray
    revision: dict[str, int]
    points: SnappedPoints | None = None
    active: BoolArray | None = None
    slot_ids: list[str | None] = dataclasses.field(default_factory=list)
    slot_of: dict[str, int] = dataclasses.field(default_factory=dict)
    walk_m_all: FloatArray | None = None
    walk_m_puhui: FloatArray | None = None
    matrix: sp.csr_array | None = None
    _frame: gpd.GeoDataFrame | None = None
    _reach: ReachResults | None = None
    _results: IndicatorResults | None = None
    _reaches: list[LocalReach] | None = None
    _isochrones: gpd.GeoDataFrame | None = None
    lock: threading.RLock = dataclasses.field(default_factory=threading.RLock)

    def frame(self) -> gpd.GeoDataFrame | None:
        """The facilities as a GeoDataFrame (metric CRS), ``None`` when there are none."""
        if not self.ids:
            return None
        if self._frame is None:
            self._frame = facilities_frame(
                [self.records[i] for i in self.ids], self.ctx.layers.metric_crs
            )
        return self._frame

    def layers(self) -> AreaLayers:
        """The area's layers with this view's facilities (and its reach warnings)."""
        base = self.ctx.layers
        warnings: tuple[str, ...] = ()
        if self.points is not None and self.active is not None:
            off = int(self.points.off_network[[self.slot_of[i] for i in self.ids]].sum())
            if off:
                warnings = (
                    f"{off} facilities farther than {self.ctx.max_snap_m:.0f} m from any "
                    "walkable edge: they reach nobody on foot (off-network)",
                )
        return dataclasses.replace(base, facilities=self.frame()).with_notes(warnings=warnings)

    def reach(self) -> ReachResults | None:
        """The walking reach of this view (``None`` without walking distances)."""
        ctx = self.ctx
        if ctx.mode == "network" and self.walk_m_all is not None:
            return ReachResults(
                mode="network",
                threshold_m=ctx.cutoff_m,
                walk_m_all=self.walk_m_all,
                walk_m_puhui=self.walk_m_puhui,
                matrix=self.matrix,
                graph=ctx.graph,
                facilities_snapped=self.points,
                population_snapped=ctx.population_snapped,
            )
        if ctx.mode == "straight_line":
            if self._reach is None:
                # Straight lines need no graph: one KD-tree pass over every facility is
                # cheaper than any bookkeeping.
                self._reach = straight_line_reach(self.layers(), ctx.cutoff_m)
            return self._reach
        return None

    def results(self) -> IndicatorResults:
        """Per-unit table, summary and gaps of this view (computed once)."""
        with self.lock:
            if self._results is None:
                self._results = compute_indicators(
                    self.layers(),
                    self.reach(),
                    self.ctx.profile,
                    data_sources=self.ctx.data_sources,
                    facility_source=self.ctx.facility_source,
                )
            return self._results

    def facility_reaches(self) -> list[LocalReach] | None:
        """Each current facility's local reach up to the service circle (computed once)."""
        ctx = self.ctx
        if ctx.mode != "network" or self.points is None or not self.ids:
            return None
        with self.lock:
            if self._reaches is None:
                graph = ctx.graph
                assert graph is not None  # network mode has a graph (internal invariant)
                self._reaches = all_facility_reach(graph, self.current_points(), ctx.cutoff_m)
            return self._reaches

    def current_points(self) -> SnappedPoints:
        """The snapped points of the current facilities, in :attr:`ids` order."""
        assert self.points is not None  # network mode only (internal invariant)
        slots = np.array([self.slot_of[i] for i in self.ids], dtype=np.int64)
        return _subset_points(self.points, slots)

    def isochrones(self) -> gpd.GeoDataFrame | None:
        """The area's isochrones (every threshold) of the current facilities (once)."""
        reaches = self.facility_reaches()
        if reaches is None:
            return None
        with self.lock:
            if self._isochrones is None:
                graph = self.ctx.graph
                assert graph is not None
                walk = self.ctx.layers.area.walk
                self._isochrones = area_isochrones(
                    graph.network,
                    reaches,
                    self.ids,
                    walk,
                    points=self.current_points(),
                    field_index=(
                        self.ctx.field_index if walk.isochrone_method == "walk_field" else None
                    ),
                )
            return self._isochrones


# --- the model ----------------------------------------------------------------------------


def with_snapping_notes(
    layers: AreaLayers, population: SnappedPoints, progress: Progress
) -> AreaLayers:
    """Print how the population snapped and add the warnings a run records about it.

    One wording for every run (whole or tiled), so their summaries are equal.
    """
    off = int(population.off_network.sum())
    moved = population.n_moved_from_island
    progress.info(
        f"  snapped {len(population):,} population points ({off} off-network, "
        f"{moved} moved off network islands of < {population.min_component_nodes} nodes)"
    )
    if moved:
        layers = layers.with_notes(
            warnings=(
                f"{moved} population points were nearer to a small disconnected "
                f"piece of the network (< {population.min_component_nodes} nodes) "
                "and were joined to the main network instead / "
                f"{moved} 个人口点改为吸附到主路网",
            )
        )
    if off:
        layers = layers.with_notes(
            warnings=(
                f"{off} population points farther than {layers.area.walk.max_snap_m:.0f} m "
                "from any walkable edge: counted as not covered (off-network)",
            )
        )
    return layers


class AreaModel:
    """The live model of one study area (see the module docstring).

    Build with :meth:`build` (or :meth:`from_layers`); do not call the constructor.
    """

    def __init__(self, ctx: _Context, facilities: _FacilitySet) -> None:
        self._ctx = ctx
        self._set = facilities
        self._write_lock = threading.RLock()
        self._version = 0
        self._view = facilities.snapshot(0)
        # The network index of single-facility isochrones, prepared on first request
        # (incidence arrays and the clean-edge pass: seconds on 10⁶ nodes) and kept.
        self._isochrone_builder: IsochroneBuilder | None = None
        self._builder_lock = threading.Lock()

    # -- construction ------------------------------------------------------------------------

    @classmethod
    def build(
        cls,
        area: StudyArea,
        settings: Settings | None = None,
        facilities: Any | None = None,
        *,
        progress: Progress = SILENT,
    ) -> AreaModel:
        """Load the area's layers and build its model.

        Parameters
        ----------
        area
            The study area.
        settings
            Data directory and cache settings.
        facilities
            The facility set: registry records (mappings with WGS84 ``lon``/``lat``) or
            a (Geo)DataFrame with those columns. ``None``: the area's facility file.
        progress
            Progress reporter.
        """
        settings = settings or get_settings()
        layers = load_layers(area, settings, progress)
        return cls.from_layers(layers, facilities=facilities, progress=progress)

    @classmethod
    def from_layers(
        cls,
        layers: AreaLayers,
        profile: Profile | None = None,
        facilities: Any | None = None,
        *,
        facility_source: str | None = None,
        progress: Progress = SILENT,
    ) -> AreaModel:
        """Build the model from layers already loaded (:func:`load_layers`).

        Parameters
        ----------
        layers
            The area's layers; ``layers.facilities`` is used when ``facilities`` is
            ``None``.
        profile
            Target profile (default: the area's ``target_profile``).
        facilities
            See :meth:`build`.
        facility_source
            Where the facility set comes from, recorded in the summary as
            ``facility_source`` (default ``"file"`` or ``"records"``; the service says
            ``"registry"``).
        progress
            Progress reporter.

        Raises
        ------
        ConflictError
            Two facilities share an id.
        InputValidationError
            A facility without id or with unusable coordinates.
        AreaConfigError
            ``straight_line`` mode without a detour factor, or an unknown profile.
        """
        area = layers.area
        settings = layers.settings
        if profile is None:
            profile = load_profile(area.area.target_profile, settings.project_data_dir)
        walk = area.walk
        section = area.network
        mode = _reach_mode(layers)
        graph = None
        pop_snap = None
        if mode == "network":
            assert layers.network is not None  # what _reach_mode checked
            with progress.step("routing graph and snapping"):
                graph = build_graph(layers.network)
                if layers.population is not None:
                    pop = layers.population.geometry
                    pop_snap = snap_points(
                        graph,
                        pop.x.to_numpy(dtype=float),
                        pop.y.to_numpy(dtype=float),
                        max_snap_m=walk.max_snap_m,
                        min_component_nodes=walk.min_component_nodes,
                    )
            if pop_snap is not None:
                layers = with_snapping_notes(layers, pop_snap, progress)
        polygon = study_area_polygon(layers)
        if polygon is not None:
            shapely.prepare(polygon)
        ctx = _Context(
            layers=layers,
            profile=profile,
            mode=mode,
            graph=graph,
            population_snapped=pop_snap,
            cutoff_m=walk.metres_for(walk.max_minutes),
            max_snap_m=walk.max_snap_m,
            min_component_nodes=walk.min_component_nodes,
            to_metric=Transformer.from_crs(WGS84, layers.metric_crs, always_xy=True),
            to_wgs84=Transformer.from_crs(layers.metric_crs, WGS84, always_xy=True),
            polygon_m=polygon,
            detour_factor=section.detour_factor if section is not None else None,
            facility_source=facility_source or ("file" if facilities is None else "records"),
            data_sources=tuple(file_records(layers.files, settings)),
        )
        records = records_from(facilities if facilities is not None else _file_facilities(layers))
        with progress.step(f"reach of {len(records)} facilities"):
            facility_set = _FacilitySet(ctx, records)
        return cls(ctx, facility_set)

    # -- properties --------------------------------------------------------------------------

    @property
    def area(self) -> StudyArea:
        """The study area."""
        return self._ctx.layers.area

    @property
    def profile(self) -> Profile:
        """The target profile."""
        return self._ctx.profile

    @property
    def mode(self) -> ReachMode:
        """How walking distances are computed (``network``, ``straight_line``, ``none``)."""
        return self._ctx.mode

    @property
    def layers(self) -> AreaLayers:
        """The area's layers (the facilities in them are the initial set, not the current)."""
        return self._ctx.layers

    @property
    def graph(self) -> WalkGraph | None:
        """The routing graph (``None`` without a network)."""
        return self._ctx.graph

    @property
    def version(self) -> int:
        """Number of facility changes applied since the build."""
        return self._view.version

    @property
    def speed_kmh(self) -> float:
        """Walking speed."""
        return self.area.walk.speed_kmh

    @property
    def cutoff_m(self) -> float:
        """The service-circle walking distance (largest threshold) in metres."""
        return self._ctx.cutoff_m

    @property
    def data_sources(self) -> tuple[Mapping[str, Any], ...]:
        """Provenance of the input files (role, path, sha256, origin, licence)."""
        return self._ctx.data_sources

    def facility_ids(self) -> list[str]:
        """Ids of the current facilities, in order."""
        return list(self._view.ids)

    def facility(self, facility_id: str) -> dict[str, Any]:
        """The current record of one facility.

        Raises
        ------
        NotFoundError
            No such facility.
        """
        record = self._view.records.get(facility_id)
        if record is None:
            raise NotFoundError(f"no facility '{facility_id}' in area '{self.area.slug}'")
        return dict(record)

    def facility_revision(self, facility_id: str) -> int:
        """A number that changes whenever the facility's record changes (cache key).

        Raises
        ------
        NotFoundError
            No such facility.
        """
        revision = self._view.revision.get(facility_id)
        if revision is None:
            raise NotFoundError(f"no facility '{facility_id}' in area '{self.area.slug}'")
        return revision

    def facilities(self) -> gpd.GeoDataFrame | None:
        """The current facilities (metric CRS), ``None`` when there are none."""
        frame = self._view.frame()
        return frame.copy() if frame is not None else None

    def current_layers(self) -> AreaLayers:
        """The layers with the current facility set (and its reach warnings)."""
        return self._view.layers()

    def reach(self) -> ReachResults | None:
        """The current walking reach (``None`` without walking distances)."""
        return self._view.reach()

    def walk_distances(self) -> tuple[FloatArray | None, FloatArray | None]:
        """Walking metres from each population point to the nearest facility (all, 普惠).

        ``inf`` beyond the circle; ``(None, None)`` without walking distances.
        """
        reach = self._view.reach()
        if reach is None:
            return None, None
        return reach.walk_m_all, reach.walk_m_puhui

    def reach_matrix(self) -> sp.csr_array | None:
        """Facility × population walking distances (+1e-9) within the circle, rows in
        :meth:`facility_ids` order; ``None`` without walking distances."""
        reach = self._view.reach()
        return reach.matrix if reach is not None else None

    def facility_reaches(self) -> list[LocalReach] | None:
        """Each current facility's local reach up to the circle (network mode)."""
        return self._view.facility_reaches()

    def isochrones(self) -> gpd.GeoDataFrame | None:
        """The current facilities' isochrones at every threshold of the area (network mode).

        Method and accuracy follow ``[walk] isochrone_method``; computed once per state.
        """
        return self._view.isochrones()

    # -- queries ------------------------------------------------------------------------------

    def locate(self, lon: float, lat: float, crs: str = "wgs84") -> LocatedPoint:
        """A point given in WGS84/GCJ-02/BD-09 in WGS84 lon/lat and metric x/y.

        Raises
        ------
        InputValidationError
            Non-finite or out-of-range coordinates, or a point outside the study area.
        CRSError
            An unknown ``crs``.
        """
        datum = parse_crs_name(crs)
        if not isinstance(datum, str):
            raise InputValidationError(
                f"crs must be wgs84, gcj02 or bd09, got {crs!r}", field="crs"
            )
        if not (math.isfinite(lon) and -180.0 <= lon <= 180.0):
            raise InputValidationError(f"lon {lon!r} is not a longitude", field="lon")
        if not (math.isfinite(lat) and -90.0 <= lat <= 90.0):
            raise InputValidationError(f"lat {lat!r} is not a latitude", field="lat")
        wlon, wlat = convert(lon, lat, datum, "wgs84")
        lon84, lat84 = float(wlon), float(wlat)
        x, y = self._ctx.project(lon84, lat84)
        polygon = self._ctx.polygon_m
        if polygon is not None and not bool(shapely.contains_xy(polygon, x, y)):
            raise InputValidationError(
                f"point lon={lon}, lat={lat} ({datum}) lies outside study area "
                f"'{self.area.slug}' ({self.area.area.name}) / 该点不在研究区内",
                field="lon",
            )
        return LocatedPoint(lon84, lat84, x, y)

    def nearest(
        self,
        lon: float,
        lat: float,
        crs: str = "wgs84",
        minutes: float = 15.0,
        k: int = 20,
    ) -> list[NearestFacility]:
        """Facilities within a walk of ``minutes`` from a point, nearest first.

        Parameters
        ----------
        lon, lat
            The point, in the system named by ``crs``.
        crs
            ``wgs84``, ``gcj02`` (Amap/Tencent) or ``bd09`` (Baidu).
        minutes
            Walk limit (> 0).
        k
            Most facilities returned (≥ 1).

        Returns
        -------
        list of NearestFacility
            Sorted by walking distance, then id order.

        Raises
        ------
        InputValidationError
            Bad ``minutes``/``k``/coordinates, or a point outside the study area.
        OffNetworkError
            The point is farther than the snapping limit from every walkable edge.
        NoNetworkError
            The area has no walking network.
        """
        _check_minutes(minutes)
        if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
            raise InputValidationError(f"k must be an integer ≥ 1, got {k!r}", field="k")
        view = self._view
        ctx = self._ctx
        if ctx.mode == "none":
            raise NoNetworkError(no_network_message(self.area))
        point_m = self.locate(lon, lat, crs)
        cutoff = self.area.walk.metres_for(minutes)
        if ctx.mode == "straight_line":
            idx, dist = _straight_nearest(
                view, point_m.x_m, point_m.y_m, cutoff, ctx.detour_factor or 1.0, int(k)
            )
            ids = [view.ids[i] for i in idx.tolist()]
            return [
                self._row(view, fid, d, approximate=True) for fid, d in zip(ids, dist, strict=True)
            ]
        graph = ctx.graph
        assert graph is not None  # network mode has a graph (internal invariant)
        point = snap_points(
            graph,
            [point_m.x_m],
            [point_m.y_m],
            max_snap_m=ctx.max_snap_m,
            min_component_nodes=ctx.min_component_nodes,
        )
        if point.off_network[0]:
            raise OffNetworkError(
                f"point lon={lon}, lat={lat} ({crs}) is {float(point.access_m[0]):.0f} m from the "
                f"nearest walkable way, beyond the {ctx.max_snap_m:.0f} m snapping limit "
                "(off-network) / 该点距最近步行道路超过吸附距离"
            )
        if view.points is None or not view.ids:
            return []
        slots, dist = k_nearest_facilities(
            graph, view.points, point, cutoff, int(k), active=view.active
        )
        out = []
        for slot, d in zip(slots.tolist(), dist.tolist(), strict=True):
            fid = view.slot_ids[slot]
            if fid is not None:
                out.append(self._row(view, fid, d, approximate=False))
        return out

    def _row(self, view: _View, fid: str, dist_m: float, *, approximate: bool) -> NearestFacility:
        record = view.records[fid]
        m_per_min = self.speed_kmh * 1000.0 / 60.0
        kind = plain_value(record.get("kind"))
        puhui = plain_value(record.get("puhui"))
        name = plain_value(record.get("name"))
        return NearestFacility(
            facility_id=fid,
            name=str(name) if name is not None else None,
            kind=str(kind) if kind is not None else None,
            kind_en=FACILITY_KINDS.get(str(kind)) if kind is not None else None,
            puhui=bool(puhui) if puhui is not None else None,
            walk_m=round(float(dist_m), 1),
            walk_min=round(float(dist_m) / m_per_min, 2),
            lon=float(record["lon"]),
            lat=float(record["lat"]),
            approximate=approximate,
        )

    def point_isochrones(
        self, x_m: npt.ArrayLike, y_m: npt.ArrayLike, minutes: float = 15.0
    ) -> tuple[list[BaseGeometry], list[bool], str]:
        """Isochrones of points that are not registered facilities (planned sites).

        The same method as :meth:`facility_isochrone` (``[walk] isochrone_method``): each
        point is snapped by the area's rule and searched on its own.

        Parameters
        ----------
        x_m, y_m
            The points in the area's metric CRS.
        minutes
            Walking time (> 0).

        Returns
        -------
        geometries, off_network, method
            Polygons in the metric CRS (empty for off-network points), which points are
            off-network, and the ``method`` label.
        """
        _check_minutes(minutes)
        ctx = self._ctx
        x = np.asarray(x_m, dtype=np.float64).reshape(-1)
        y = np.asarray(y_m, dtype=np.float64).reshape(-1)
        walk = self.area.walk
        budget_m = walk.metres_for(minutes)
        if ctx.mode == "none":
            raise NoNetworkError(no_network_message(self.area))
        if ctx.mode == "straight_line":
            radius = budget_m / (ctx.detour_factor or 1.0)
            circles: list[BaseGeometry] = [
                shapely.Point(a, b).buffer(radius) for a, b in zip(x, y, strict=True)
            ]
            return circles, [False] * len(circles), "straight_line_circle"
        graph = ctx.graph
        assert graph is not None
        points = snap_points(
            graph, x, y, max_snap_m=ctx.max_snap_m, min_component_nodes=ctx.min_component_nodes
        )
        reaches = [facility_reach(graph, points, i, budget_m) for i in range(len(points))]
        off = [bool(v) for v in points.off_network]
        if walk.isochrone_method == "walk_field":
            polys = walk_field_polygons(
                ctx.field_index,
                reaches,
                [budget_m],
                walk.isochrone_buffer_m,
                walk.isochrone_cell_m or DEFAULT_FIELD_CELL_M,
            )
            return [p[0] for p in polys], off, METHOD_WALK_FIELD
        builder = self._builder(graph)
        geoms: list[BaseGeometry] = [
            isochrone_polygons(
                graph.network,
                r,
                [budget_m],
                walk.isochrone_buffer_m,
                points=points,
                builder=builder,
            )[0]
            for r in reaches
        ]
        return geoms, off, "edge_buffer"

    def facility_isochrone(self, facility_id: str, minutes: float = 15.0) -> FacilityIsochrone:
        """The area one facility reaches on foot within ``minutes`` (WGS84 geometry).

        By ``[walk] isochrone_method``: the walk-field polygon (default: exactly the
        points the search gives this facility within ``minutes``,
        :mod:`tuoyu.isochrones.walk_field`) or the edge-buffer one
        (:func:`isochrone_polygons`), from one bounded search of that facility (its own
        work only: the network indexes are prepared on the first request and reused).

        Raises
        ------
        NotFoundError
            No such facility.
        InputValidationError
            ``minutes`` not > 0.
        NoNetworkError
            The area has no walking network.
        """
        _check_minutes(minutes)
        view = self._view
        if facility_id not in view.records:
            raise NotFoundError(f"no facility '{facility_id}' in area '{self.area.slug}'")
        ctx = self._ctx
        if ctx.mode == "none":
            raise NoNetworkError(no_network_message(self.area))
        walk = self.area.walk
        budget_m = walk.metres_for(minutes)
        pos = view.ids.index(facility_id)
        off_network = False
        buffer_m: float | None = None
        if ctx.mode == "straight_line":
            x, y = view.xy_m[pos]
            geom: BaseGeometry = shapely.Point(x, y).buffer(budget_m / (ctx.detour_factor or 1.0))
            method = "straight_line_circle"
        else:
            graph = ctx.graph
            assert graph is not None and view.points is not None
            slot = view.slot_of[facility_id]
            reach = facility_reach(graph, view.points, slot, budget_m)
            if walk.isochrone_method == "walk_field":
                # The area the search answers for (what /nearest lists), on the lattice
                # of the area's isochrone table.
                geom = walk_field_polygons(
                    ctx.field_index,
                    [reach],
                    [budget_m],
                    walk.isochrone_buffer_m,
                    walk.isochrone_cell_m or DEFAULT_FIELD_CELL_M,
                )[0][0]
                method = METHOD_WALK_FIELD
            else:
                geom = isochrone_polygons(
                    graph.network,
                    reach,
                    [budget_m],
                    walk.isochrone_buffer_m,
                    points=view.points,
                    builder=self._builder(graph),
                )[0]
                method = "edge_buffer"
            off_network = bool(view.points.off_network[slot])
            buffer_m = walk.isochrone_buffer_m
        name = plain_value(view.records[facility_id].get("name"))
        return FacilityIsochrone(
            facility_id=facility_id,
            name=str(name) if name is not None else None,
            minutes=float(minutes),
            walk_m=round(budget_m, 1),
            speed_kmh=walk.speed_kmh,
            method=method,
            buffer_m=buffer_m,
            area_m2=round(float(geom.area), 1),
            off_network=off_network,
            approximate=ctx.mode == "straight_line",
            geometry_wgs84=shapely.transform(geom, self._to_wgs84_xy),
        )

    def _builder(self, graph: WalkGraph) -> IsochroneBuilder:
        """The prepared isochrone index of the area's network (built once, then shared)."""
        with self._builder_lock:
            if self._isochrone_builder is None:
                self._isochrone_builder = IsochroneBuilder(graph.network)
            return self._isochrone_builder

    def _to_wgs84_xy(self, xy: FloatArray) -> FloatArray:
        lon, lat = self._ctx.to_wgs84.transform(xy[:, 0], xy[:, 1])
        return np.column_stack([lon, lat])

    # -- current results -----------------------------------------------------------------

    def results(self) -> IndicatorResults:
        """Table, summary, gaps, failing units and shortfall of the current facility set.

        Raises
        ------
        AreaConfigError
            The area has no units or no population (nothing to aggregate).
        """
        return self._view.results()

    def units(self) -> pd.DataFrame:
        """The per-unit (街道 or hexagon) indicator table (a copy)."""
        return self.results().table.copy()

    def unit(self, code: str) -> pd.Series:
        """One unit's row of the indicator table.

        Raises
        ------
        NotFoundError
            No unit with that code.
        """
        table = self.results().table
        match = table[table["code"].astype(str) == str(code)]
        if match.empty:
            raise NotFoundError(f"no unit '{code}' in area '{self.area.slug}'")
        return match.iloc[0].copy()

    def summary(self) -> Mapping[str, Any]:
        """The district summary against the target profile."""
        return self.results().summary

    def gaps(self) -> gpd.GeoDataFrame:
        """Populated areas outside the service circle, in WGS84 (``attrs`` kept)."""
        gaps = self.results().gaps
        out = gaps.to_crs(WGS84) if gaps.crs is not None else gaps.copy()
        out.attrs = dict(gaps.attrs)
        return out

    # -- changes ---------------------------------------------------------------------------

    def add_facility(self, record: Mapping[str, Any]) -> int:
        """Add a facility (a registry record with WGS84 ``lon``/``lat``); returns the version.

        Raises
        ------
        ConflictError
            A facility with that id is already in the model.
        InputValidationError
            No id, or unusable coordinates.
        """
        with self._write_lock:
            return self._apply(lambda fs: fs.add(record))

    def update_facility(self, before: Mapping[str, Any] | None, after: Mapping[str, Any]) -> int:
        """Replace a facility's record (same id); returns the version.

        The reach is recomputed only when the location or the 普惠 status changed.

        Raises
        ------
        NotFoundError
            The facility is not in the model.
        InputValidationError
            ``before`` and ``after`` name different ids.
        """
        if before is not None and str(before.get("id")) != str(after.get("id")):
            raise InputValidationError(
                f"an update cannot change the id ({before.get('id')} → {after.get('id')})",
                field="id",
            )
        with self._write_lock:
            return self._apply(lambda fs: fs.update(after))

    def remove_facility(self, facility_id: str) -> int:
        """Remove a facility; returns the version.

        Raises
        ------
        NotFoundError
            The facility is not in the model.
        """
        with self._write_lock:
            return self._apply(lambda fs: fs.remove(str(facility_id)))

    def _apply(self, change: Callable[[_FacilitySet], None]) -> int:
        """Apply ``change`` to a copy of the facility set and publish it (atomic).

        A change that raises leaves the state as it was. The copy costs a few arrays of
        graph size (the per-node distances), small next to the searches of a change.
        """
        changed = self._set.fork()
        change(changed)
        view = changed.snapshot(self._version + 1)
        self._set = changed
        self._version += 1
        self._view = view
        return self._version

    # -- what-if ------------------------------------------------------------------------------

    def scenario(
        self,
        add: Sequence[Mapping[str, Any]] = (),
        remove: Iterable[str] = (),
    ) -> ScenarioResult:
        """Results with facilities added and removed, on a copy (the model is unchanged).

        Removals are applied first, so a facility can be replaced by removing its id
        and adding a record with the same id.

        Parameters
        ----------
        add
            Records to add (WGS84 ``lon``/``lat``; ids generated as ``scenario-N`` when
            missing).
        remove
            Ids of current facilities to leave out.

        Raises
        ------
        InputValidationError
            An unknown id to remove (``field='remove'``), or an addition without usable
            coordinates.
        ConflictError
            An added id that is already a facility (and not removed) or added twice.
        """
        removed = tuple(dict.fromkeys(str(r) for r in remove))
        with self._write_lock:
            fork = self._set.fork()
            version = self._version
        for fid in removed:
            if fid not in fork.records:
                raise InputValidationError(
                    f"cannot remove '{fid}': no such facility in area '{self.area.slug}'",
                    field="remove",
                )
            fork.remove(fid)
        added: list[str] = []
        counter = 0
        for i, raw in enumerate(add):
            record = dict(raw)
            if not record.get("id"):
                counter += 1
                while f"scenario-{counter}" in fork.records:
                    counter += 1
                record["id"] = f"scenario-{counter}"
            try:
                fork.add(record)
            except (ConflictError, InputValidationError) as exc:
                raise type(exc)(f"add[{i}]: {exc}") from exc
            added.append(str(record["id"]))
        results = fork.snapshot(version).results()
        summary = dict(results.summary)
        summary["scenario"] = {"added": added, "removed": list(removed)}
        results = dataclasses.replace(results, summary=summary)
        return ScenarioResult(results, tuple(added), removed, version)

    def recommend_sites(
        self,
        p: int,
        *,
        solver: Literal["greedy", "exact"] = "exact",
        weight: Literal["under3", "population"] = "under3",
        require_puhui_per_jiedao: bool = False,
        min_spacing_m: float | None = None,
        time_limit_s: float = 30.0,
    ) -> SitingPlan:
        """Recommend ``p`` new 普惠 sites for the current facilities (model unchanged).

        Candidates are OSM features and points sampled along the network (see
        :func:`tuoyu.siting.plan.candidate_sites`); the plan says which solver ran and
        whether it is proven optimal.

        Raises
        ------
        NoNetworkError
            The area has no walking network.
        InputValidationError
            ``p`` < 1.
        """
        from tuoyu.siting.plan import candidate_sites, plan_sites

        view = self._view
        reach = view.reach()
        if self._ctx.mode != "network" or reach is None:
            raise NoNetworkError(no_network_message(self.area))
        if isinstance(p, bool) or not isinstance(p, int) or p < 1:
            raise InputValidationError(f"p must be an integer ≥ 1, got {p!r}", field="p")
        layers = view.layers()
        return plan_sites(
            layers,
            reach,
            self.profile,
            p,
            candidates=candidate_sites(layers),
            solver=solver,
            weight=weight,
            require_puhui_per_jiedao=require_puhui_per_jiedao,
            min_spacing_m=min_spacing_m,
            time_limit_s=time_limit_s,
        )

    # -- maps ---------------------------------------------------------------------------------

    def build_map(
        self,
        name: str,
        *,
        nearest_url: str | None = None,
        isochrone_url: str | None = None,
        language: str | None = None,
        attribution: str | None = None,
    ) -> folium.Map:
        """One of the three maps (``facilities``, ``dashboard``, ``gaps``) of the current state.

        Parameters
        ----------
        name
            Which map.
        nearest_url
            URL template of a nearest-facility service for the facility map's "walk from
            here" (placeholders ``{lon}``, ``{lat}``, ``{crs}``, ``{minutes}``); without
            it the page carries a walking-time lookup of its own.
        isochrone_url
            URL template of the service's isochrone of one facility (placeholders ``{id}``,
            ``{minutes}``); without it the page carries every isochrone.
        language
            ``zh`` or ``en`` (default: settings).
        attribution
            Extra credit line (e.g. the registry's).

        Raises
        ------
        NotFoundError
            An unknown map name, or a dashboard for an area without units.
        """
        from tuoyu.workflow.area_maps import build_area_map

        if name not in MAP_NAMES:
            raise NotFoundError(f"unknown map '{name}' (maps: {', '.join(MAP_NAMES)})")
        view = self._view
        return build_area_map(
            name,
            view.layers(),
            self.profile,
            view.results() if name != "facilities" else None,
            view.reach(),
            view.isochrones() if name == "facilities" and isochrone_url is None else None,
            view.facility_reaches() if name == "facilities" and nearest_url is None else None,
            nearest_url=nearest_url if self.mode != "none" else None,
            isochrone_url=isochrone_url if self.mode != "none" else None,
            language=language or self._ctx.layers.settings.language,
            attribution=attribution,
        )

    def __repr__(self) -> str:
        return (
            f"AreaModel({self.area.slug!r}, mode={self.mode!r}, "
            f"{len(self._view.ids)} facilities, version={self.version})"
        )


# --- helpers -----------------------------------------------------------------------------


def _reach_mode(layers: AreaLayers) -> ReachMode:
    section = layers.area.network
    if section is not None and section.mode == "straight_line":
        if section.detour_factor is None:
            raise AreaConfigError(
                f'{layers.area.source_path}: [network] mode = "straight_line" needs detour_factor'
            )
        return "straight_line"
    return "network" if layers.network is not None else "none"


def _check_minutes(minutes: float) -> None:
    if not (
        isinstance(minutes, int | float)
        and not isinstance(minutes, bool)
        and math.isfinite(minutes)
        and minutes > 0.0
    ):
        raise InputValidationError(f"minutes must be > 0, got {minutes!r}", field="minutes")


def _file_facilities(layers: AreaLayers) -> list[dict[str, Any]]:
    """The facilities loaded from the area's file as records (WGS84 lon/lat)."""
    if layers.facilities is None or layers.facilities.empty:
        return []
    return records_from(layers.facilities)


def _subset_points(points: SnappedPoints, idx: IntArray) -> SnappedPoints:
    """The snapped points ``idx`` (in that order)."""
    return dataclasses.replace(
        points,
        **{
            f.name: getattr(points, f.name)[idx]
            for f in dataclasses.fields(points)
            if isinstance(getattr(points, f.name), np.ndarray)
        },
    )


def _straight_nearest(
    view: _View, x: float, y: float, cutoff_m: float, detour: float, k: int
) -> tuple[IntArray, FloatArray]:
    """Facilities within ``cutoff_m`` by straight line × detour factor (approximate)."""
    if not view.ids:
        return np.empty(0, dtype=np.int64), np.empty(0)
    tree = cKDTree(view.xy_m)
    found = np.asarray(tree.query_ball_point([x, y], cutoff_m / detour), dtype=np.int64)
    if found.shape[0] == 0:
        return found, np.empty(0)
    dist = np.hypot(view.xy_m[found, 0] - x, view.xy_m[found, 1] - y) * detour
    order = np.lexsort((found, dist))[:k]
    return found[order], dist[order]
