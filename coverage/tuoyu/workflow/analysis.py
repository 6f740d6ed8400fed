"""Stateful analysis of one study area: nearest facilities, isochrones, current results,
incremental facility updates and what-if scenarios (the library side of the service).

:class:`AreaAnalysis` is built once per study area from the pipeline steps
(:func:`tuoyu.workflow.pipeline.load_layers`, the routing graph, the snapped population) and
then follows changes to the facility set:

* the walking network, population points and units never change;
* the facility set changes by :meth:`AreaAnalysis.add_facility`,
  :meth:`~AreaAnalysis.update_facility` and :meth:`~AreaAnalysis.remove_facility`. Each
  change updates the per-node nearest-facility distances only in the neighbourhood it
  touches (:class:`tuoyu.reach.engine.ReachState`, one for all facilities and one for 普惠),
  recomputes one row of the facility × population reach matrix, and re-derives the
  population walking distances from the node distances (one vectorised pass); the
  indicator table, summary and gaps are re-aggregated from those on the next read;
* :meth:`AreaAnalysis.scenario` applies additions and removals to a copy and returns the
  new summary and per-unit table without touching the state.

Thread safety: writes take a lock; every write publishes a new immutable *view*
(facility points, walking distances, reach matrix) that readers pick up with one
attribute read, so :meth:`~AreaAnalysis.nearest` never waits for a write and never sees
half of one.

Areas without a walking network give :class:`NoNetworkError` for walking-time queries;
areas in ``[network] mode = "straight_line"`` answer with straight-line distances × the
detour factor, labelled approximate.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import math
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final, Literal

import geopandas as gpd
import numpy as np
import numpy.typing as npt
import pandas as pd
import scipy.sparse as sp
import shapely
from pyproj import CRS, Transformer
from scipy.spatial import cKDTree
from shapely.geometry import mapping
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
from tuoyu.isochrones.exact import isochrone_polygons
from tuoyu.isochrones.grid import area_isochrones
from tuoyu.layers.facilities import records_frame
from tuoyu.layers.schema import ASSUMED_COLUMN, FACILITY_FIELDS, FACILITY_KINDS
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
from tuoyu.types import SnappedPoints
from tuoyu.workflow.pipeline import (
    AreaLayers,
    IndicatorResults,
    ReachResults,
    compute_indicators,
    compute_reach,
    load_layers,
    population_with_walk,
)

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
ReachMode = Literal["network", "straight_line", "none"]
MapName = Literal["facilities", "dashboard", "gaps"]

MAX_NEAREST_MINUTES: Final = 60.0
"""Longest walk a nearest-facility or isochrone query may ask for (minutes)."""
MAX_NEAREST_K: Final = 200
"""Most facilities one nearest-facility query returns."""
MAX_SCENARIO_ADDITIONS: Final = 500
"""Most facilities one what-if scenario may add."""
ISOCHRONE_CACHE_SIZE: Final = 256
"""Isochrones kept in memory (least recently used dropped first)."""
MAP_NAMES: Final[tuple[str, ...]] = ("facilities", "dashboard", "gaps")
"""Maps :meth:`AreaAnalysis.map_html` builds."""
OSM_ATTRIBUTION: Final = "© OpenStreetMap contributors"


def no_network_message(area: StudyArea) -> str:
    """The explanation given when an area has no walking network."""
    return (
        f"study area '{area.slug}' has no walking network (无步行路网): walking times and "
        "isochrones cannot be computed; give an OSM file as [network] path, or "
        '[network] mode = "straight_line" with a detour_factor for approximate results'
    )


# --- JSON ------------------------------------------------------------------------------


def json_ready(value: Any) -> Any:
    """``value`` with numpy/pandas scalars, NaN/NA and dates turned into plain JSON values.

    NaN, infinities, ``pd.NA`` and ``NaT`` become ``None`` (JSON null: unknown).

    Examples
    --------
    >>> json_ready({"a": np.float64("nan"), "b": [np.int64(3), pd.NA], "c": dt.date(2024, 3, 1)})
    {'a': None, 'b': [3, None], 'c': '2024-03-01'}
    """
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [json_ready(v) for v in value]
    if isinstance(value, np.ndarray):
        return [json_ready(v) for v in value.tolist()]
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.generic):
        return json_ready(value.item())
    if value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, pd.Timestamp | dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, CRS):
        return value.to_string()
    return str(value)


def table_records(table: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows of ``table`` as JSON-ready dicts (unknown values ``None``)."""
    out: list[dict[str, Any]] = json_ready(table.to_dict("records"))
    return out


# --- facility records ------------------------------------------------------------------


def _records_from(facilities: Any) -> list[dict[str, Any]]:
    """Facility records from a (Geo)DataFrame with WGS84 lon/lat, or from mappings."""
    if isinstance(facilities, pd.DataFrame):
        frame = facilities.drop(columns="geometry", errors="ignore")
        return [{str(k): _plain(v) for k, v in row.items()} for row in frame.to_dict("records")]
    return [dict(r) for r in facilities]


def _plain(value: Any) -> Any:
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, np.generic):
        return value.item()
    return value


def _check_record(record: Mapping[str, Any]) -> tuple[str, float, float]:
    """The id and WGS84 lon/lat of a record; raises naming the field at fault."""
    fid = record.get("id")
    if fid is None or not str(fid).strip():
        raise InputValidationError("facility record has no id", field="id")
    try:
        lon = float(record["lon"])
        lat = float(record["lat"])
    except (KeyError, TypeError, ValueError) as exc:
        raise InputValidationError(
            f"facility '{fid}' needs numeric WGS84 lon/lat", field="lon"
        ) from exc
    if not (math.isfinite(lon) and -180.0 <= lon <= 180.0):
        raise InputValidationError(f"facility '{fid}': lon {lon!r} out of range", field="lon")
    if not (math.isfinite(lat) and -90.0 <= lat <= 90.0):
        raise InputValidationError(f"facility '{fid}': lat {lat!r} out of range", field="lat")
    return str(fid), lon, lat


def _is_puhui(record: Mapping[str, Any]) -> bool:
    """普惠 membership as the pipeline counts it: unknown is not 普惠."""
    value = _plain(record.get("puhui"))
    return bool(value) if value is not None else False


def facilities_frame(records: Sequence[Mapping[str, Any]], metric_crs: CRS) -> gpd.GeoDataFrame:
    """Registry records (WGS84 ``lon``/``lat``) as the facility loader's GeoDataFrame.

    Same columns and dtypes as :func:`tuoyu.layers.facilities.load_facilities` returns,
    points in ``metric_crs``; ``service_modes`` lists are joined with ``、`` and
    ``assumed_fields`` lists with commas, as the loader writes them.

    Parameters
    ----------
    records
        Records with the fields of :data:`tuoyu.layers.schema.FACILITY_FIELDS` (missing ones
        are unknown), lon/lat in WGS84.
    metric_crs
        CRS of the output points.

    Returns
    -------
    geopandas.GeoDataFrame
    """
    rows: list[dict[str, Any]] = []
    for record in records:
        row = {name: _plain(record.get(name)) for name in FACILITY_FIELDS}
        row["crs"] = "wgs84"
        modes = row.get("service_modes")
        if isinstance(modes, list | tuple):
            row["service_modes"] = "、".join(str(m) for m in modes) if modes else None
        assumed = record.get(ASSUMED_COLUMN)
        if isinstance(assumed, list | tuple):
            assumed = ",".join(str(a) for a in assumed)
        row[ASSUMED_COLUMN] = _plain(assumed) or ""
        rows.append(row)
    return records_frame(rows, metric_crs)


# --- the facility set and its reach ------------------------------------------------------


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
    to_metric: Transformer
    to_wgs84: Transformer
    polygon_m: BaseGeometry | None
    detour_factor: float | None
    facility_source: str

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
            fid, lon, lat = _check_record(record)
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
        points = snap_points(graph, xy[:, 0], xy[:, 1], max_snap_m=ctx.max_snap_m)
        puhui = np.array([_is_puhui(self.records[i]) for i in ids], dtype=bool)
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
        fid, lon, lat = _check_record(record)
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
        point = snap_points(graph, [x], [y], max_snap_m=ctx.max_snap_m)
        self.slot_all[fid] = self.state_all.add_facility(point)
        self.ids_all.append(fid)
        if _is_puhui(self.records[fid]):
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
        fid, lon, lat = _check_record(record)
        old = self.records.get(fid)
        if old is None:
            raise NotFoundError(f"facility '{fid}' is not in the analysis")
        xy = self.ctx.project(lon, lat)
        moved = xy != self.xy_m[fid] or _is_puhui(old) != _is_puhui(record)
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
    _maps: dict[tuple[str, str | None, str, str | None], str] = dataclasses.field(
        default_factory=dict
    )
    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)

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
        warnings = list(base.warnings)
        if self.points is not None and self.active is not None:
            off = int(self.points.off_network[[self.slot_of[i] for i in self.ids]].sum())
            if off:
                warnings.append(
                    f"{off} facilities farther than {self.ctx.max_snap_m:.0f} m from any "
                    "walkable edge: they reach nobody on foot (off-network)"
                )
        return dataclasses.replace(
            base, facilities=self.frame(), warnings=warnings, skipped=dict(base.skipped)
        )

    def reach(self) -> ReachResults | None:
        """The walking reach of this view as the pipeline's :class:`ReachResults`."""
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
                # cheaper than any bookkeeping, so the pipeline's step is rerun as is.
                self._reach = compute_reach(self.layers(), SILENT)
            return self._reach
        return None

    def results(self) -> IndicatorResults:
        """Per-unit table, summary and gaps of this view (computed once)."""
        with self.lock:
            if self._results is None:
                layers = self.layers()
                results = compute_indicators(layers, self.reach(), self.ctx.profile)
                results.summary["facility_source"] = self.ctx.facility_source
                self._results = results
            return self._results


# --- the analysis ------------------------------------------------------------------------


class AreaAnalysis:
    """The live analysis of one study area (see the module docstring).

    Build with :meth:`build` (or :meth:`from_layers`); do not call the constructor.

    Attributes
    ----------
    area
        The study area.
    profile
        Its target profile.
    mode
        ``"network"`` (OSM walking network), ``"straight_line"`` (approximate) or
        ``"none"`` (no walking network).
    """

    def __init__(self, ctx: _Context, facilities: _FacilitySet) -> None:
        self._ctx = ctx
        self._set = facilities
        self._write_lock = threading.RLock()
        self._version = 0
        self._view = facilities.snapshot(0)
        self._isochrones: OrderedDict[tuple[str, int, float], dict[str, Any]] = OrderedDict()
        self._iso_lock = threading.Lock()

    # -- construction ------------------------------------------------------------------------

    @classmethod
    def build(
        cls,
        area: StudyArea,
        settings: Settings | None = None,
        facilities: Any | None = None,
        *,
        progress: Progress = SILENT,
    ) -> AreaAnalysis:
        """Load the area's layers and build its analysis.

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

        Returns
        -------
        AreaAnalysis
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
    ) -> AreaAnalysis:
        """Build the analysis from layers already loaded (:func:`load_layers`).

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
            ``facility_source`` (default ``"file"`` or ``"records"``; the API says
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
        cutoff_m = walk.metres_for(walk.max_minutes)
        section = area.network
        mode: ReachMode
        if section is not None and section.mode == "straight_line":
            mode = "straight_line"
            if section.detour_factor is None:
                raise AreaConfigError(
                    f'{area.source_path}: [network] mode = "straight_line" needs detour_factor'
                )
        elif layers.network is not None:
            mode = "network"
        else:
            mode = "none"
        graph = None
        pop_snap = None
        if mode == "network":
            assert layers.network is not None
            with progress.step("routing graph and snapping"):
                graph = build_graph(layers.network)
                if layers.population is not None:
                    pop = layers.population.geometry
                    pop_snap = snap_points(
                        graph,
                        pop.x.to_numpy(dtype=float),
                        pop.y.to_numpy(dtype=float),
                        max_snap_m=walk.max_snap_m,
                    )
        base_warnings = list(layers.warnings)
        if pop_snap is not None and pop_snap.off_network.any():
            base_warnings.append(
                f"{int(pop_snap.off_network.sum())} population points farther than "
                f"{walk.max_snap_m:.0f} m from any walkable edge: counted as not covered "
                "(off-network)"
            )
        layers = dataclasses.replace(layers, warnings=base_warnings)
        polygon = _area_polygon_m(layers)
        if polygon is not None:
            shapely.prepare(polygon)
        ctx = _Context(
            layers=layers,
            profile=profile,
            mode=mode,
            graph=graph,
            population_snapped=pop_snap,
            cutoff_m=cutoff_m,
            max_snap_m=walk.max_snap_m,
            to_metric=Transformer.from_crs(WGS84, layers.metric_crs, always_xy=True),
            to_wgs84=Transformer.from_crs(layers.metric_crs, WGS84, always_xy=True),
            polygon_m=polygon,
            detour_factor=section.detour_factor if section is not None else None,
            facility_source=facility_source or ("file" if facilities is None else "records"),
        )
        records = _records_from(facilities if facilities is not None else _file_facilities(layers))
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

    def facilities(self) -> gpd.GeoDataFrame | None:
        """The current facilities (metric CRS), ``None`` when there are none."""
        frame = self._view.frame()
        return frame.copy() if frame is not None else None

    def walk_distances(self) -> tuple[FloatArray | None, FloatArray | None]:
        """Walking metres from each population point to the nearest facility (all, 普惠).

        ``inf`` beyond the service circle; ``(None, None)`` without walking distances.
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

    # -- queries ------------------------------------------------------------------------------

    def locate(
        self, lon: float, lat: float, crs: str = "wgs84"
    ) -> tuple[float, float, float, float]:
        """A point given in WGS84/GCJ-02/BD-09 as WGS84 lon/lat and metric x/y.

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
        return lon84, lat84, x, y

    def nearest(
        self,
        lon: float,
        lat: float,
        crs: str = "wgs84",
        minutes: float = 15.0,
        k: int = 20,
    ) -> list[dict[str, Any]]:
        """Facilities within a walk of ``minutes`` from a point, nearest first.

        Parameters
        ----------
        lon, lat
            The point, in the system named by ``crs``.
        crs
            ``wgs84``, ``gcj02`` (Amap/Tencent) or ``bd09`` (Baidu).
        minutes
            Walk limit, 0 < minutes ≤ :data:`MAX_NEAREST_MINUTES`.
        k
            Most facilities returned, 1 ≤ k ≤ :data:`MAX_NEAREST_K`.

        Returns
        -------
        list of dict
            ``facility_id``, ``name``, ``kind``, ``kind_en``, ``puhui``, ``walk_m``,
            ``walk_min``, ``lon``/``lat`` (WGS84), ``approximate`` (true for
            straight-line areas); sorted by walking distance, then id order.

        Raises
        ------
        InputValidationError
            Bad ``minutes``/``k``/coordinates, or a point outside the study area.
        OffNetworkError
            The point is farther than the snapping limit from every walkable edge.
        NoNetworkError
            The area has no walking network.
        """
        self._check_minutes(minutes)
        if (
            isinstance(k, bool)
            or not isinstance(k, int | np.integer)
            or not 1 <= k <= MAX_NEAREST_K
        ):
            raise InputValidationError(
                f"k must be an integer 1–{MAX_NEAREST_K}, got {k!r}", field="k"
            )
        view = self._view
        ctx = self._ctx
        if ctx.mode == "none":
            raise NoNetworkError(no_network_message(self.area))
        _lon84, _lat84, x, y = self.locate(lon, lat, crs)
        cutoff = self.area.walk.metres_for(minutes)
        if ctx.mode == "straight_line":
            idx, dist = _straight_nearest(view, x, y, cutoff, ctx.detour_factor or 1.0, int(k))
            ids = [view.ids[i] for i in idx.tolist()]
            return [
                self._row(view, fid, d, approximate=True) for fid, d in zip(ids, dist, strict=True)
            ]
        graph = ctx.graph
        assert graph is not None
        point = snap_points(graph, [x], [y], max_snap_m=ctx.max_snap_m)
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

    def _row(self, view: _View, fid: str, dist_m: float, *, approximate: bool) -> dict[str, Any]:
        record = view.records[fid]
        m_per_min = self.speed_kmh * 1000.0 / 60.0
        kind = _plain(record.get("kind"))
        return {
            "facility_id": fid,
            "name": _plain(record.get("name")),
            "kind": kind,
            "kind_en": FACILITY_KINDS.get(str(kind)) if kind is not None else None,
            "puhui": _plain(record.get("puhui")),
            "walk_m": round(float(dist_m), 1),
            "walk_min": round(float(dist_m) / m_per_min, 2),
            "lon": float(record["lon"]),
            "lat": float(record["lat"]),
            "approximate": approximate,
        }

    def _check_minutes(self, minutes: float) -> None:
        if not (isinstance(minutes, int | float) and 0.0 < minutes <= MAX_NEAREST_MINUTES):
            raise InputValidationError(
                f"minutes must be > 0 and ≤ {MAX_NEAREST_MINUTES:g}, got {minutes!r}",
                field="minutes",
            )

    def facility_isochrone(self, facility_id: str, minutes: float = 15.0) -> dict[str, Any]:
        """The area one facility reaches on foot within ``minutes``, as a GeoJSON Feature.

        Computed on demand (exact edge-buffer isochrone, :func:`isochrone_polygons`) and
        cached until the facility changes. Geometry in WGS84.

        Raises
        ------
        NotFoundError
            No such facility.
        InputValidationError
            ``minutes`` outside (0, :data:`MAX_NEAREST_MINUTES`].
        NoNetworkError
            The area has no walking network.
        """
        self._check_minutes(minutes)
        view = self._view
        if facility_id not in view.records:
            raise NotFoundError(f"no facility '{facility_id}' in area '{self.area.slug}'")
        ctx = self._ctx
        if ctx.mode == "none":
            raise NoNetworkError(no_network_message(self.area))
        key = (facility_id, view.revision[facility_id], float(minutes))
        with self._iso_lock:
            cached = self._isochrones.get(key)
            if cached is not None:
                self._isochrones.move_to_end(key)
                return cached
        feature = self._isochrone(view, facility_id, float(minutes))
        with self._iso_lock:
            self._isochrones[key] = feature
            while len(self._isochrones) > ISOCHRONE_CACHE_SIZE:
                self._isochrones.popitem(last=False)
        return feature

    def _isochrone(self, view: _View, fid: str, minutes: float) -> dict[str, Any]:
        ctx = self._ctx
        walk = self.area.walk
        budget_m = walk.metres_for(minutes)
        pos = view.ids.index(fid)
        off_network = False
        if ctx.mode == "straight_line":
            x, y = view.xy_m[pos]
            geom: BaseGeometry = shapely.Point(x, y).buffer(budget_m / (ctx.detour_factor or 1.0))
            method = "straight_line_circle"
        else:
            graph = ctx.graph
            assert graph is not None and view.points is not None
            slot = view.slot_of[fid]
            reach = facility_reach(graph, view.points, slot, budget_m)
            geom = isochrone_polygons(
                graph.network, reach, [budget_m], walk.isochrone_buffer_m, points=view.points
            )[0]
            off_network = bool(view.points.off_network[slot])
            method = "edge_buffer"
        area_m2 = float(geom.area)
        wgs = shapely.transform(geom, self._to_wgs84_xy)
        record = view.records[fid]
        return {
            "type": "Feature",
            "id": fid,
            "geometry": mapping(wgs),
            "properties": {
                "facility_id": fid,
                "name": _plain(record.get("name")),
                "minutes": minutes,
                "walk_m": round(budget_m, 1),
                "speed_kmh": walk.speed_kmh,
                "method": method,
                "buffer_m": walk.isochrone_buffer_m if method == "edge_buffer" else None,
                "area_m2": round(area_m2, 1),
                "off_network": off_network,
                "approximate": ctx.mode == "straight_line",
            },
        }

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

    def unit(self, code: str) -> dict[str, Any]:
        """One unit's row as a JSON-ready dict.

        Raises
        ------
        NotFoundError
            No unit with that code.
        """
        table = self.results().table
        match = table[table["code"].astype(str) == str(code)]
        if match.empty:
            raise NotFoundError(f"no unit '{code}' in area '{self.area.slug}'")
        return table_records(match.iloc[[0]])[0]

    def summary(self) -> dict[str, Any]:
        """The district summary against the target profile (JSON-ready)."""
        out: dict[str, Any] = json_ready(self.results().summary)
        return out

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
            A facility with that id is already in the analysis.
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
            The facility is not in the analysis.
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
            The facility is not in the analysis.
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

    def recommend_sites(
        self,
        p: int,
        *,
        solver: Literal["greedy", "exact"] = "exact",
        weight: Literal["under3", "population"] = "under3",
        require_puhui_per_jiedao: bool = False,
        min_spacing_m: float | None = None,
        time_limit_s: float = 30.0,
    ) -> dict[str, Any]:
        """Recommend ``p`` new 普惠 sites from the current facilities (registry unchanged).

        Candidates are OSM features and points sampled along the network (see
        :func:`tuoyu.siting.plan.candidate_sites`); the answer says which solver ran
        and whether it is proven optimal.

        Returns
        -------
        dict
            ``sites`` (GeoJSON FeatureCollection, WGS84), ``siting`` (solver, optimal,
            gap, gains), ``summary`` and ``units`` with the sites added.
        """
        from tuoyu.siting.plan import candidate_sites, plan_sites, siting_summary

        view = self._view
        reach = view.reach()
        if self._ctx.mode != "network" or reach is None:
            raise NoNetworkError(no_network_message(self.area))
        if not 1 <= p <= 100:
            raise InputValidationError(f"p must be between 1 and 100, got {p}", field="p")
        layers = view.layers()
        candidates = candidate_sites(layers)
        plan = plan_sites(
            layers,
            reach,
            self.profile,
            p,
            candidates=candidates,
            solver=solver,
            weight=weight,
            require_puhui_per_jiedao=require_puhui_per_jiedao,
            min_spacing_m=min_spacing_m,
            time_limit_s=time_limit_s,
        )
        sites = plan.sites.to_crs(WGS84)
        features = [
            {
                "type": "Feature",
                "geometry": mapping(geom),
                "properties": json_ready({k: v for k, v in row.items() if k != "geometry"}),
            }
            for geom, (_, row) in zip(sites.geometry, sites.iterrows(), strict=True)
        ]
        return {
            "sites": {
                "type": "FeatureCollection",
                "features": features,
                "attribution": OSM_ATTRIBUTION,
            },
            "siting": json_ready(siting_summary(plan, layers)),
            "summary": json_ready(plan.after.summary),
            "units": plan.after.table,
        }

    def scenario(
        self,
        add: Sequence[Mapping[str, Any]] = (),
        remove: Iterable[str] = (),
    ) -> dict[str, Any]:
        """Summary and per-unit table with facilities added and removed, on a copy.

        Removals are applied first, so a facility can be replaced by removing its id
        and adding a record with the same id. The analysis itself is not changed.

        Parameters
        ----------
        add
            Records to add (WGS84 ``lon``/``lat``; ids generated as ``scenario-N`` when
            missing).
        remove
            Ids of current facilities to leave out.

        Returns
        -------
        dict
            ``summary`` (JSON-ready), ``units`` (DataFrame), ``added`` and ``removed``
            ids, ``version`` (of the state the scenario started from).

        Raises
        ------
        InputValidationError
            Too many additions, an unknown id to remove (``field='remove'``), or an
            addition without usable coordinates.
        ConflictError
            An added id that is already a facility (and not removed) or added twice.
        """
        add = list(add)
        if len(add) > MAX_SCENARIO_ADDITIONS:
            raise InputValidationError(
                f"a scenario adds at most {MAX_SCENARIO_ADDITIONS} facilities, got {len(add)}",
                field="add",
            )
        removed = [str(r) for r in remove]
        with self._write_lock:
            fork = self._set.fork()
            version = self._version
        for fid in dict.fromkeys(removed):
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
        summary: dict[str, Any] = json_ready(results.summary)
        summary["scenario"] = {"added": added, "removed": list(dict.fromkeys(removed))}
        return {
            "summary": summary,
            "units": results.table.copy(),
            "added": added,
            "removed": list(dict.fromkeys(removed)),
            "version": version,
        }

    # -- maps ---------------------------------------------------------------------------------

    def map_html(
        self,
        name: str,
        *,
        api_base: str | None = None,
        language: str | None = None,
        attribution: str | None = None,
    ) -> str:
        """One of the three maps (``facilities``, ``dashboard``, ``gaps``) as HTML text.

        Built from the current state (cached until the next change). With ``api_base``
        the facility map's "walk from here" calls
        ``{api_base}/areas/{slug}/nearest`` instead of embedding a lookup.

        Raises
        ------
        NotFoundError
            An unknown map name.
        AreaConfigError
            The map needs units/population the area lacks.
        """
        if name not in MAP_NAMES:
            raise NotFoundError(f"unknown map '{name}' (maps: {', '.join(MAP_NAMES)})")
        lang = language or self._ctx.layers.settings.language
        view = self._view
        key = (name, api_base, lang, attribution)
        with view.lock:
            cached = view._maps.get(key)
        if cached is not None:
            return cached
        html = self._build_map(view, name, api_base, lang, attribution)
        with view.lock:
            view._maps[key] = html
        return html

    def _build_map(
        self, view: _View, name: str, api_base: str | None, language: str, attribution: str | None
    ) -> str:
        from tuoyu.outputs.maps import build_dashboard_map, build_facility_map, build_gap_map

        ctx = self._ctx
        layers = view.layers()
        area = self.area
        walk = area.walk
        key = ctx.layers.settings.tianditu_key
        if name == "facilities":
            frame = view.frame()
            if frame is None:
                frame = facilities_frame([], ctx.layers.metric_crs)
            isochrones = None
            if ctx.mode == "network" and view.points is not None and view.ids:
                graph = ctx.graph
                assert graph is not None
                slots = np.array([view.slot_of[i] for i in view.ids], dtype=np.int64)
                sub = _subset_points(view.points, slots)
                reaches = all_facility_reach(graph, sub, ctx.cutoff_m)
                isochrones = area_isochrones(graph.network, reaches, view.ids, walk, points=sub)
            fmap = build_facility_map(
                frame,
                isochrones,
                None,
                language=language,
                tianditu_key=key,
                api_base=api_base if ctx.mode != "none" else None,
                area=area.slug,
                area_name=area.area.name,
                speed_kmh=walk.speed_kmh,
                walk_minutes=walk.max_minutes,
                max_snap_m=walk.max_snap_m,
                attribution=attribution,
            )
            return str(fmap.get_root().render())
        results = view.results()
        if name == "dashboard":
            if layers.units is None:
                raise NotFoundError(f"area '{area.slug}' has no units for a dashboard")
            units = gpd.GeoDataFrame(
                results.table.reset_index(drop=True),
                geometry=layers.units.geometry.reset_index(drop=True),
                crs=layers.units.crs,
            )
            dmap = build_dashboard_map(
                units,
                ctx.profile,
                results.summary,
                area_name=area.area.name,
                language=language,
                tianditu_key=key,
                attribution=attribution,
            )
            return str(dmap.get_root().render())
        reach = view.reach()
        population = population_with_walk(layers, reach)
        gmap = build_gap_map(
            population if reach is not None else None,
            results.gaps,
            facilities=layers.facilities,
            units=layers.units,
            threshold_m=ctx.cutoff_m,
            area_name=area.area.name,
            language=language,
            tianditu_key=key,
            attribution=attribution,
        )
        return str(gmap.get_root().render())

    def __repr__(self) -> str:
        return (
            f"AreaAnalysis({self.area.slug!r}, mode={self.mode!r}, "
            f"{len(self._view.ids)} facilities, version={self.version})"
        )


# --- helpers -----------------------------------------------------------------------------


def _file_facilities(layers: AreaLayers) -> list[dict[str, Any]]:
    """The facilities loaded from the area's file as records (WGS84 lon/lat)."""
    if layers.facilities is None or layers.facilities.empty:
        return []
    return _records_from(layers.facilities)


def _area_polygon_m(layers: AreaLayers) -> BaseGeometry | None:
    """The study area in the metric CRS: the outline, else the union of 街道 units."""
    if layers.outline is not None and not layers.outline.empty:
        return shapely.make_valid(layers.outline.to_crs(layers.metric_crs).union_all())
    if layers.units is not None and layers.units_kind == "jiedao" and not layers.units.empty:
        return shapely.make_valid(layers.units.union_all())
    return None


def _subset_points(points: SnappedPoints, idx: IntArray) -> SnappedPoints:
    """The snapped points ``idx`` (in that order)."""
    return SnappedPoints(
        x_m=points.x_m[idx],
        y_m=points.y_m[idx],
        edge=points.edge[idx],
        fraction=points.fraction[idx],
        snap_x_m=points.snap_x_m[idx],
        snap_y_m=points.snap_y_m[idx],
        access_m=points.access_m[idx],
        off_network=points.off_network[idx],
        max_snap_m=points.max_snap_m,
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
