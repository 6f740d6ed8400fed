"""Loading the walking network from any road line layer (not only OSM).

Planning offices hold road centrelines as GeoJSON, GeoPackage, Shapefile or GeoParquet.
This module reads such a layer with pyogrio and turns it into the same
:class:`~tuoyu.network.walk_network.WalkNetwork` the OSM loader produces: every
consecutive vertex pair of every line becomes one straight undirected segment (no
simplification), in a metric CRS (UTM zone of the data unless given), lengths in metres
measured there.

Topology is decided on the exact input coordinates, before any datum conversion: two
lines join where they share a vertex (bit-identical coordinates), so GCJ-02/BD-09
conversion noise can neither split nor merge a junction. Lines that cross without a
shared vertex are taken as a bridge or tunnel and do not join.

What a user must know about the layer (connected pieces, near-miss dangling ends,
dropped segments, excluded lines) is gathered in a :class:`LineNetworkReport`, stored
in ``network.metadata["report"]``. With ``join_tolerance_m`` set, dangling ends that
stop short of another line are joined to it (see :func:`load_line_network`).

Results are cached under ``settings.cache_dir / "networks"`` keyed by the file's sha256
and every parameter, as the OSM loader does. The cache helpers of
:mod:`tuoyu.layers.osm_network` are private and write the OSM ``source`` text, so the
few lines they need are repeated here.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import numpy.typing as npt
import pandas as pd
import pyogrio
import shapely
from pyogrio.errors import DataLayerError, DataSourceError, FieldError, GeometryError
from pyproj import CRS, Transformer
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components, dijkstra
from scipy.spatial import cKDTree

from tuoyu.config.data_registry import RegisteredFile, file_sha256, load_registry
from tuoyu.config.settings import Settings
from tuoyu.crs.china import convert, parse_crs_name
from tuoyu.crs.projection import WGS84, utm_crs_for
from tuoyu.errors import CRSError, DataNotFoundError, EmptyInputError, InputValidationError
from tuoyu.layers.osm_network import as_metric_crs
from tuoyu.network.cache import read_network_cache, write_network_cache
from tuoyu.network.graph import build_graph
from tuoyu.network.walk_network import WalkNetwork
from tuoyu.progress import SILENT, Progress

__all__ = [
    "DEFAULT_DANGLE_RADIUS_M",
    "MAX_JOIN_TOLERANCE_M",
    "NAME_FIELDS",
    "SMALL_COMPONENT_M",
    "LineNetworkReport",
    "line_names",
    "load_line_network",
]

DEFAULT_DANGLE_RADIUS_M = 5.0
"""Dangling ends closer than this to a line they do not join are reported."""

MAX_JOIN_TOLERANCE_M = 50.0
"""Largest accepted ``join_tolerance_m`` (beyond it joins would invent streets)."""

SMALL_COMPONENT_M = 1000.0
"""A connected piece shorter than this (one 15-minute walk at 4 km/h) counts as small."""

_DETOUR_SLACK = 2.0
"""A near line counts as *not joined* when the walk to it along the network is longer
than the straight gap plus ``_DETOUR_SLACK × dangle radius``."""

_ON_LINE_M = 1e-3
"""Gaps up to 1 mm count as touching: projecting lon/lat leaves float noise (nm to µm)
between a line end and the line it was drawn onto, far below any survey precision."""

NAME_FIELDS: tuple[str, ...] = ("name", "NAME", "Name", "名称", "路名", "road_name")
"""Attribute fields taken as a line's street name, the first present wins."""

_PARQUET_SUFFIXES = (".parquet", ".geoparquet")
_LINE_TYPES = (1, 2, 5)  # shapely type ids: LineString, LinearRing, MultiLineString
_CACHE_FORMAT = 2  # 2: metadata["way_names"] added

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class LineNetworkReport:
    """What a user must know about a network built from a road line layer.

    Attributes
    ----------
    lines_read
        Features in the file.
    lines_without_geometry
        Features with a missing or empty geometry (skipped).
    lines_excluded
        Features dropped by the ``exclude`` filter.
    excluded_by_field
        ``(field, count)`` pairs: features each field's list matched.
    segments_read
        Consecutive vertex pairs of the kept lines.
    zero_length_segments_dropped
        Pairs of identical consecutive vertices (dropped).
    duplicate_segments_dropped
        Segments joining the same two vertices as an earlier one (dropped).
    components
        Connected pieces of the final network.
    largest_component_share
        Share of the total length in the longest piece (0..1).
    small_components
        Pieces other than the longest that are shorter than ``small_component_m``.
    small_component_m
        The threshold of ``small_components``.
    dangle_radius_m
        Search radius for dangling ends.
    dangling_ends_near_lines
        Line ends joined to nothing that lie within ``dangle_radius_m`` of a line they
        do not join (counted before any join).
    join_tolerance_m
        Dangling ends within this gap were joined (``None``: no joining).
    dangling_ends_joined
        Dangling ends joined to the nearest line.
    connector_length_m
        Total length of the connecting segments added by joins.
    total_length_m
        Total length of the final network.
    """

    lines_read: int
    lines_without_geometry: int
    lines_excluded: int
    excluded_by_field: tuple[tuple[str, int], ...]
    segments_read: int
    zero_length_segments_dropped: int
    duplicate_segments_dropped: int
    components: int
    largest_component_share: float
    small_components: int
    small_component_m: float
    dangle_radius_m: float
    dangling_ends_near_lines: int
    join_tolerance_m: float | None
    dangling_ends_joined: int
    connector_length_m: float
    total_length_m: float

    def summary(self) -> str:
        """The report in two lines.

        Examples
        --------
        >>> report = LineNetworkReport(
        ...     lines_read=10, lines_without_geometry=0, lines_excluded=2,
        ...     excluded_by_field=(("kind", 2),), segments_read=30,
        ...     zero_length_segments_dropped=1, duplicate_segments_dropped=1,
        ...     components=2, largest_component_share=0.9, small_components=1,
        ...     small_component_m=1000.0, dangle_radius_m=5.0, dangling_ends_near_lines=3,
        ...     join_tolerance_m=None, dangling_ends_joined=0, connector_length_m=0.0,
        ...     total_length_m=2500.0)
        >>> print(report.summary())
        2.5 km in 2 connected pieces, the largest 90.0 % of the length, 1 under 1,000 m; 3 dangling ends within 5 m of a line they do not join (not joined: no join tolerance)
        10 lines read, 2 excluded, 0 without geometry; 1 zero-length and 1 duplicate segments dropped
        """
        if self.join_tolerance_m is None:
            joined = "not joined: no join tolerance"
        else:
            joined = (
                f"{self.dangling_ends_joined} joined within {self.join_tolerance_m:g} m, "
                f"{self.connector_length_m:.1f} m of connectors added"
            )
        first = (
            f"{self.total_length_m / 1000:,.1f} km in {self.components:,} connected pieces, "
            f"the largest {100 * self.largest_component_share:.1f} % of the length, "
            f"{self.small_components:,} under {self.small_component_m:,.0f} m; "
            f"{self.dangling_ends_near_lines:,} dangling ends within "
            f"{self.dangle_radius_m:g} m of a line they do not join ({joined})"
        )
        second = (
            f"{self.lines_read:,} lines read, {self.lines_excluded:,} excluded, "
            f"{self.lines_without_geometry:,} without geometry; "
            f"{self.zero_length_segments_dropped:,} zero-length and "
            f"{self.duplicate_segments_dropped:,} duplicate segments dropped"
        )
        return f"{first}\n{second}"

    def as_dict(self) -> dict[str, object]:
        """JSON-friendly fields (``excluded_by_field`` as a dict)."""
        out = asdict(self)
        out["excluded_by_field"] = dict(self.excluded_by_field)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> LineNetworkReport:
        """Inverse of :meth:`as_dict`."""
        fields = dict(data)
        by_field = fields.pop("excluded_by_field", {})
        pairs = tuple((str(k), int(v)) for k, v in dict(by_field).items())  # type: ignore[call-overload]
        return cls(excluded_by_field=pairs, **fields)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- reading


_CHUNK_FEATURES = 1 << 16
"""Features read (GeoParquet) and turned into coordinates at a time: a layer of millions
of segments is never held as millions of shapely objects (about 250 bytes each)."""


@dataclass(frozen=True)
class _Chunk:
    """Consecutive features of a layer from feature ``start`` on.

    Either ``geoms`` (shapely geometries, any type, missing ones ``None``) or, for
    features that are all plain 2D LineStrings, their coordinates ``xy`` (line after
    line) and ``n_points`` per feature.
    """

    start: int
    geoms: npt.NDArray[np.object_] | None = None
    xy: FloatArray | None = None
    n_points: IntArray | None = None


def _wkb_linestrings(wkb: Any) -> tuple[FloatArray, IntArray] | None:
    """Coordinates of a pyarrow array of WKB when every value is a plain 2D LineString.

    Returns ``(xy, n_points)``: the ``(k, 2)`` coordinates, line after line, and the
    number of points of each value; ``None`` when any value is null or anything other
    than a little-endian ISO WKB LineString of two or more XY points (Z/M/SRID flags,
    other types, empty or one-point lines, a length that does not match): such chunks
    are decoded by shapely.

    Road layers are millions of two- or few-point lines; decoding them with shapely
    makes a GEOS geometry of each (about 0.6 µs and 250 bytes apiece) only to read the
    coordinates back. This reads the 16-byte XY pairs straight out of the WKB buffer
    with a few vectorised numpy operations: the same float64 values, bit for bit.

    Examples
    --------
    >>> import pyarrow as pa
    >>> lines = [shapely.LineString([(0, 0), (1, 2)]), shapely.LineString([(3, 4), (5, 6), (7, 8)])]
    >>> xy, n = _wkb_linestrings(pa.array(shapely.to_wkb(lines, byte_order=1)))
    >>> xy.tolist(), n.tolist()
    ([[0.0, 0.0], [1.0, 2.0], [3.0, 4.0], [5.0, 6.0], [7.0, 8.0]], [2, 3])
    >>> _wkb_linestrings(pa.array([shapely.to_wkb(shapely.Point(0, 0))])) is None
    True
    """
    import pyarrow as pa

    n = len(wkb)
    if n == 0 or wkb.null_count or wkb.type not in (pa.binary(), pa.large_binary()):
        return None
    _, offset_buffer, data_buffer = wkb.buffers()
    if data_buffer is None:
        return None
    offset_type = np.int64 if wkb.type == pa.large_binary() else np.int32
    offsets = np.frombuffer(offset_buffer, dtype=offset_type)[wkb.offset : wkb.offset + n + 1]
    offsets = offsets.astype(np.int64)
    size = np.diff(offsets)
    if (size < 9).any():
        return None
    data = np.frombuffer(data_buffer, dtype=np.uint8)[offsets[0] : offsets[-1]]
    header = (offsets[:-1] - offsets[0])[:, None] + np.arange(9)
    head = data[header]  # byte order (1 byte), geometry type (4), number of points (4)
    if (head[:, 0] != 1).any():
        return None
    kind = head[:, 1:5].copy().view("<u4").reshape(-1)
    n_points = head[:, 5:9].copy().view("<u4").reshape(-1).astype(np.int64)
    if (kind != 2).any() or (n_points < 2).any() or (size != 9 + 16 * n_points).any():
        return None
    body = np.ones(data.size, dtype=bool)
    body[header.reshape(-1)] = False
    xy = data[body].view("<f8").astype(np.float64, copy=False).reshape(-1, 2)
    return xy, n_points


@dataclass(frozen=True)
class _Layer:
    """A road line layer as read: its attribute table and its geometries.

    A GeoParquet file's WKB geometries stay in the file (``parquet``, a
    ``pyarrow.parquet.ParquetFile``, column ``wkb_column``) and are read and decoded
    chunk by chunk; other formats come as shapely geometries (``geometries``).
    """

    path: Path
    attributes: pd.DataFrame  # the non-geometry fields, one row per feature
    n_features: int
    crs: CRS | None
    parquet: Any = None
    wkb_column: str = ""
    geometries: npt.NDArray[np.object_] | None = None

    def chunks(self) -> Iterator[_Chunk]:
        """The features in consecutive runs, as coordinates or shapely geometries."""
        if self.geometries is not None:
            for start in range(0, self.n_features, _CHUNK_FEATURES):
                yield _Chunk(start, geoms=self.geometries[start : start + _CHUNK_FEATURES])
            return
        batches = self.parquet.iter_batches(
            batch_size=_CHUNK_FEATURES, columns=[self.wkb_column], use_threads=False
        )
        start = 0
        while True:
            try:
                batch = next(batches, None)
            except (OSError, ValueError) as exc:
                raise InputValidationError(
                    f"cannot read GeoParquet: {exc}", path=self.path
                ) from exc
            if batch is None:
                return
            wkb = batch.column(0)
            decoded = _wkb_linestrings(wkb)
            if decoded is not None:
                yield _Chunk(start, xy=decoded[0], n_points=decoded[1])
            else:
                # As geopandas reads GeoParquet: the WKB bytes (None when null) to shapely.
                geoms = np.asarray(shapely.from_wkb(np.array(wkb)), dtype=object)
                yield _Chunk(start, geoms=geoms)
            start += len(wkb)

    def close(self) -> None:
        """Close the GeoParquet file (nothing to do for other formats)."""
        if self.parquet is not None:
            self.parquet.close()


@dataclass(frozen=True)
class _Lines:
    """Vertices and consecutive vertex pairs of every line feature of a layer."""

    has_geometry: npt.NDArray[np.bool_]  # per feature: not missing, not empty
    xy: FloatArray  # (k, 2) input coordinates, line after line, part after part
    pair: IntArray  # index into ``xy`` of the first vertex of each consecutive pair
    pair_row: IntArray  # 0-based feature index of each pair
    non_finite_rows: IntArray  # features with a non-finite coordinate, ascending


@dataclass(frozen=True)
class _Segments:
    """Distinct undirected segments between exact input vertices."""

    vertex_xy: FloatArray  # (k, 2) exact input coordinates of the used vertices
    u: IntArray
    v: IntArray
    row: IntArray  # 0-based feature index of each segment's line
    segments_read: int
    zero_length: int
    duplicates: int


def _read_layer(path: Path) -> _Layer:
    if not path.exists():
        raise DataNotFoundError(f"road line layer not found: {path}")
    if path.suffix.lower() in _PARQUET_SUFFIXES and "Parquet" not in pyogrio.list_drivers():
        return _read_parquet(path)
    try:
        frame = pyogrio.read_dataframe(path)
    except (
        DataSourceError,
        DataLayerError,
        FieldError,
        GeometryError,
        RecursionError,  # absurdly nested GeoJSON
        UnicodeDecodeError,
        ValueError,
        RuntimeError,
    ) as exc:
        raise InputValidationError(f"cannot read road line layer: {exc}", path=path) from exc
    if not isinstance(frame, gpd.GeoDataFrame) or frame.geometry.name not in frame.columns:
        raise InputValidationError("the layer has no geometry column", path=path)
    if len(frame) == 0:
        raise EmptyInputError("the road line layer has no features", path=path)
    return _frame_layer(path, frame)


def _frame_layer(path: Path, frame: gpd.GeoDataFrame) -> _Layer:
    name = frame.geometry.name
    return _Layer(
        path=path,
        attributes=pd.DataFrame(frame.drop(columns=[name])),
        n_features=len(frame),
        crs=None if frame.crs is None else CRS.from_user_input(frame.crs),
        geometries=np.asarray(frame.geometry.array, dtype=object),
    )


def _read_parquet(path: Path) -> _Layer:
    """GeoParquet through pyarrow when pyogrio's GDAL lacks the Parquet driver.

    A file with one WKB geometry column (what geopandas and GDAL write) gives its
    attribute table now and its geometries later, read and decoded chunk by chunk
    (:meth:`_Layer.chunks`); any other layout (native GeoArrow encodings, several
    geometry columns, a bbox covering column) goes through :func:`geopandas.read_parquet`.
    """
    try:
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise InputValidationError(
            "reading GeoParquet needs pyarrow (pip install pyarrow) or a GDAL with the "
            "Parquet driver; neither is installed. Or save the layer as GeoPackage",
            path=path,
        ) from exc
    try:
        # Streamed (1 MiB reads, no pre-buffering): arrow then holds about one chunk.
        parquet = pq.ParquetFile(path, pre_buffer=False, buffer_size=1 << 20)
        column = _wkb_column(parquet.schema_arrow.metadata)
        names = parquet.schema_arrow.names
    except (OSError, ValueError) as exc:
        raise InputValidationError(f"cannot read GeoParquet: {exc}", path=path) from exc
    if column is None or column[0] not in names:
        parquet.close()
        try:
            frame = gpd.read_parquet(path)
        except (OSError, ValueError) as exc:
            raise InputValidationError(f"cannot read GeoParquet: {exc}", path=path) from exc
        if len(frame) == 0:
            raise EmptyInputError("the road line layer has no features", path=path)
        return _frame_layer(path, frame)
    try:
        # The table without its geometry, as geopandas makes it (pandas metadata kept).
        fields = [c for c in names if c != column[0]]
        table = parquet.read(columns=fields, use_threads=False, use_pandas_metadata=True)
        attributes = table.to_pandas()
    except (OSError, ValueError) as exc:
        parquet.close()
        raise InputValidationError(f"cannot read GeoParquet: {exc}", path=path) from exc
    n_features = int(parquet.metadata.num_rows)
    if n_features == 0:
        parquet.close()
        raise EmptyInputError("the road line layer has no features", path=path)
    return _Layer(
        path=path,
        attributes=attributes,
        n_features=n_features,
        crs=column[1],
        parquet=parquet,
        wkb_column=column[0],
    )


def _wkb_column(metadata: Mapping[bytes, bytes] | None) -> tuple[str, CRS | None] | None:
    """Name and CRS of the only geometry column of a GeoParquet file when it is WKB.

    ``None`` for any other layout (left to geopandas). A column without ``crs`` is
    OGC:CRS84 (GeoParquet specification), one with ``"crs": null`` has none.

    Examples
    --------
    >>> geo = {"primary_column": "geometry", "columns": {"geometry": {"encoding": "WKB"}}}
    >>> name, crs = _wkb_column({b"geo": json.dumps(geo).encode()})
    >>> name, crs.to_string()
    ('geometry', 'OGC:CRS84')
    >>> geo["columns"]["geometry"]["encoding"] = "linestring"
    >>> _wkb_column({b"geo": json.dumps(geo).encode()}) is None
    True
    """
    try:
        geo = json.loads((metadata or {})[b"geo"])
        name = geo["primary_column"]
        columns = geo["columns"]
        spec = columns[name]
    except (KeyError, TypeError, ValueError):
        return None
    if (
        not isinstance(name, str)
        or len(columns) != 1
        or not isinstance(spec, dict)
        or spec.get("encoding") != "WKB"
        or "covering" in spec
    ):
        return None
    raw = spec.get("crs", "OGC:CRS84")
    if raw is None:
        return name, None
    try:
        return name, CRS.from_user_input(raw)
    except CRSError:
        return None  # left to geopandas, which knows how to repair some PROJJSON


def line_names(frame: pd.DataFrame) -> tuple[dict[str, str], str | None]:
    """Street names of a line layer by 0-based feature index, and the field they came from.

    The first field of :data:`NAME_FIELDS` the layer has is used; features without a name
    (missing or blank) are left out.

    Examples
    --------
    >>> import pandas as pd
    >>> line_names(pd.DataFrame({"name": ["东四十条", None, "  "], "kind": [1, 2, 3]}))
    ({'0': '东四十条'}, 'name')
    >>> line_names(pd.DataFrame({"kind": [1]}))
    ({}, None)
    """
    field = next((c for c in NAME_FIELDS if c in frame.columns), None)
    if field is None:
        return {}, None
    names: dict[str, str] = {}
    for i, value in enumerate(frame[field].tolist()):
        if isinstance(value, str) and value.strip():
            names[str(i)] = value.strip()
    return names, field


def _scan_lines(path: Path, layer: _Layer) -> _Lines:
    """Coordinates and consecutive vertex pairs of all line features, chunk by chunk.

    Raises on the first feature that is neither missing nor a line (after counting all
    such features, for the message).
    """
    has_geometry = np.zeros(layer.n_features, dtype=bool)
    xy_parts: list[FloatArray] = []
    pair_parts: list[IntArray] = []
    row_parts: list[IntArray] = []
    non_finite: list[IntArray] = []
    n_xy = 0
    n_bad, first_bad, first_bad_type = 0, -1, ""
    for chunk in layer.chunks():
        if chunk.xy is not None and chunk.n_points is not None:
            has_geometry[chunk.start : chunk.start + chunk.n_points.size] = True
            if n_bad:
                continue
            xy, pair, row_of_xy = _decoded_pairs(chunk.start, chunk.xy, chunk.n_points)
        else:
            geoms = chunk.geoms if chunk.geoms is not None else np.zeros(0, dtype=object)
            missing = shapely.is_missing(geoms) | shapely.is_empty(geoms)
            type_id = shapely.get_type_id(geoms)
            bad = ~missing & ~np.isin(type_id, _LINE_TYPES)
            if bad.any():
                if n_bad == 0:
                    i = int(np.flatnonzero(bad)[0])
                    first_bad, first_bad_type = chunk.start + i, str(geoms[i].geom_type)
                n_bad += int(bad.sum())
            has_geometry[chunk.start : chunk.start + geoms.size] = ~missing
            if n_bad:
                continue  # the layer is refused: only count the remaining bad features
            local = np.flatnonzero(~missing)
            xy, pair, row_of_xy = _geometry_pairs(
                geoms[local], local + chunk.start, bool(np.isin(type_id[local], (1, 2)).all())
            )
            del geoms
        pair_parts.append(pair + n_xy)
        row_parts.append(row_of_xy[pair])
        finite = np.isfinite(xy).all(axis=1)
        if not finite.all():
            non_finite.append(np.unique(row_of_xy[~finite]))
        xy_parts.append(xy)
        n_xy += xy.shape[0]
    if n_bad:
        raise InputValidationError(
            f"geometry is a {first_bad_type}, not a "
            f"LineString or MultiLineString ({n_bad} such features; first shown)",
            path=path,
            row=first_bad + 1,
            field="geometry",
        )
    return _Lines(
        has_geometry=has_geometry,
        xy=np.concatenate(xy_parts) if xy_parts else np.zeros((0, 2)),
        pair=_concat_int(pair_parts),
        pair_row=_concat_int(row_parts),
        non_finite_rows=_concat_int(non_finite),
    )


def _decoded_pairs(
    start: int, xy: FloatArray, n_points: IntArray
) -> tuple[FloatArray, IntArray, IntArray]:
    """``(xy, pair, row of each vertex)`` of plain LineStrings decoded from WKB.

    Each feature is one part; its consecutive pairs start at every vertex but its last.
    """
    starts_pair = np.ones(xy.shape[0], dtype=bool)
    starts_pair[np.cumsum(n_points) - 1] = False
    rows = np.arange(start, start + n_points.size, dtype=np.int64)
    return xy, np.flatnonzero(starts_pair), np.repeat(rows, n_points)


def _geometry_pairs(
    lines: npt.NDArray[np.object_], rows: IntArray, single_part: bool
) -> tuple[FloatArray, IntArray, IntArray]:
    """``(xy, pair, row of each vertex)`` of shapely lines (not missing, not empty).

    ``pair`` indexes the first vertex of each consecutive vertex pair of a part.
    """
    if single_part:
        # LineStrings and LinearRings are one part each: get_parts would only copy them.
        xy, part = shapely.get_coordinates(lines, return_index=True)
        row_of_part = rows
    else:
        parts, part_of = shapely.get_parts(lines, return_index=True)
        xy, part = shapely.get_coordinates(parts, return_index=True)
        row_of_part = rows[part_of]
    pair = np.flatnonzero(part[:-1] == part[1:])
    return xy, pair.astype(np.int64), row_of_part[part].astype(np.int64)


def _concat_int(parts: list[IntArray]) -> IntArray:
    return np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, np.int64)


def _excluded(
    layer: _Layer, exclude: Mapping[str, Sequence[object]]
) -> tuple[npt.NDArray[np.bool_], tuple[tuple[str, int], ...]]:
    """Mask of features whose attribute is in an exclude list, and counts per field."""
    path, attributes = layer.path, layer.attributes
    drop = np.zeros(layer.n_features, dtype=bool)
    counts: list[tuple[str, int]] = []
    for field, values in sorted(exclude.items()):
        if field not in attributes.columns:
            known = ", ".join(str(c) for c in attributes.columns)
            raise InputValidationError(
                f"exclude names a field the layer does not have (fields: {known or 'none'})",
                path=path,
                field=field,
            )
        column = attributes[field]
        wanted = list(values)
        # Raw comparison (3 == 3.0) and text comparison ("3" given for an int field).
        hit = column.isin(wanted).to_numpy(dtype=bool) | column.astype(str).isin(
            [str(v) for v in wanted]
        ).to_numpy(dtype=bool)
        hit &= column.notna().to_numpy(dtype=bool)
        counts.append((str(field), int(hit.sum())))
        drop |= hit
    return drop, tuple(counts)


def _segments(lines: _Lines, dropped: npt.NDArray[np.bool_]) -> _Segments:
    """Segments of the lines not ``dropped``, vertices identified by exact coordinates.

    Vertices are numbered in ascending (x, y) order of their input coordinates, each
    undirected pair is kept once (its first occurrence in file order, with that
    feature's row). Equal coordinates are found by hashing (pandas), and only the
    distinct vertices are sorted. ``lines.xy`` is normalised in place (-0.0 to 0.0).
    """
    keep = ~dropped[lines.pair_row]
    pair = lines.pair[keep]
    row = lines.pair_row[keep]
    # + 0.0 turns -0.0 into 0.0 so equal coordinates are equal bit for bit. The (x, y)
    # float64 pairs are hashed as one complex128 each (the same 16 bytes, no copy).
    # A NaN can only be in a dropped line (a kept one is refused): its code is -1 and
    # no kept pair looks it up.
    xy = np.ascontiguousarray(lines.xy)
    np.add(xy, 0.0, out=xy)  # in place: the scan's coordinates are not used again
    codes, distinct = pd.factorize(xy.view(np.complex128).reshape(-1))
    n_distinct = distinct.size
    u = codes[pair].astype(np.int64)
    v = codes[pair + 1].astype(np.int64)
    del codes, xy
    zero = u == v
    u, v, row = u[~zero], v[~zero], row[~zero]
    key = np.minimum(u, v) * np.int64(n_distinct) + np.maximum(u, v)
    # Each undirected pair once; the first in file order keeps its row.
    first_of_pair = np.flatnonzero(~pd.Series(key, copy=False).duplicated(keep="first"))
    u, v, row = u[first_of_pair], v[first_of_pair], row[first_of_pair]
    used = np.zeros(n_distinct, dtype=bool)
    used[u] = True
    used[v] = True
    used_code = np.flatnonzero(used)
    used_xy = np.column_stack([distinct.real[used_code], distinct.imag[used_code]])
    order = np.lexsort((used_xy[:, 1], used_xy[:, 0]))  # ascending x, then y
    node_of_code = np.full(n_distinct, -1, dtype=np.int64)
    node_of_code[used_code[order]] = np.arange(order.size, dtype=np.int64)
    return _Segments(
        vertex_xy=np.ascontiguousarray(used_xy[order]),
        u=node_of_code[u],
        v=node_of_code[v],
        row=row,
        segments_read=int(pair.size),
        zero_length=int(zero.sum()),
        duplicates=int(zero.size - zero.sum() - first_of_pair.size),
    )


def _to_lonlat(
    path: Path, xy: FloatArray, declared: str, file_crs: CRS | None
) -> tuple[FloatArray, FloatArray]:
    """WGS84 longitude/latitude of input coordinates in the declared system."""
    parsed = parse_crs_name(declared)
    if isinstance(parsed, CRS):
        lon, lat = Transformer.from_crs(parsed, WGS84, always_xy=True).transform(xy[:, 0], xy[:, 1])
        return np.asarray(lon, dtype=np.float64), np.asarray(lat, dtype=np.float64)
    if (np.abs(xy[:, 0]) > 180.0).any() or (np.abs(xy[:, 1]) > 90.0).any():
        stated = f"; the file states {file_crs.to_string()}" if file_crs is not None else ""
        raise CRSError(
            f"{path}: coordinates such as ({xy[0, 0]:.1f}, {xy[0, 1]:.1f}) are not "
            f"longitude/latitude, but the layer was declared '{declared}'{stated}; "
            "set the layer's crs to its EPSG: code"
        )
    return convert(xy[:, 0], xy[:, 1], parsed, "wgs84")


# --------------------------------------------------------------------------- topology


@dataclass(frozen=True)
class _NearMiss:
    """For each dangling end with a near line it does not join: the nearest such line."""

    node: IntArray
    edge: IntArray
    gap_m: FloatArray
    t: FloatArray  # position of the nearest point along the edge (0 at u, 1 at v)


def _near_misses(net: WalkNetwork, radius_m: float, search_m: float) -> _NearMiss:
    """Dangling ends within ``search_m`` of a segment they are not joined to.

    "Not joined" means the walk from the end to the nearest point of that segment along
    the network is longer than the gap plus ``_DETOUR_SLACK × radius_m`` (so the last
    short segments of the end's own street, or a street it meets a few metres on, do
    not count). Network distances come from a Dijkstra bounded at that length.
    """
    empty = _NearMiss(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0), np.zeros(0))
    degree = np.bincount(np.concatenate([net.edge_u, net.edge_v]), minlength=net.n_nodes)
    ends = np.flatnonzero(degree == 1)
    if ends.size == 0:
        return empty
    xy = net.node_xy()
    node, edge = _ends_near_segments(net, ends, search_m)
    not_incident = (net.edge_u[edge] != node) & (net.edge_v[edge] != node)
    node, edge = node[not_incident], edge[not_incident]
    if node.size == 0:
        return empty
    a = xy[net.edge_u[edge]]
    b = xy[net.edge_v[edge]]
    ab = b - a
    span2 = (ab * ab).sum(axis=1)
    t = np.clip(((xy[node] - a) * ab).sum(axis=1) / np.where(span2 > 0, span2, 1.0), 0.0, 1.0)
    nearest = a + t[:, None] * ab
    gap_m = np.hypot(*(xy[node] - nearest).T)
    along_a = np.hypot(*(nearest - a).T)
    along_b = np.hypot(*(nearest - b).T)

    limit_m = search_m + _DETOUR_SLACK * radius_m
    csr = build_graph(net).csr
    sources, source_of = np.unique(node, return_inverse=True)
    walk_m = np.empty(node.size)
    # Bounded searches in blocks of 256 sources keep the dense (sources × nodes) result
    # of scipy's dijkstra small.
    for start in range(0, sources.size, 256):
        block = sources[start : start + 256]
        dist = dijkstra(csr, directed=False, indices=block, limit=limit_m)
        pick = (source_of >= start) & (source_of < start + block.size)
        rows = source_of[pick] - start
        walk_m[pick] = np.minimum(
            dist[rows, net.edge_u[edge[pick]]] + along_a[pick],
            dist[rows, net.edge_v[edge[pick]]] + along_b[pick],
        )
    apart = walk_m > gap_m + _DETOUR_SLACK * radius_m
    node, edge, gap_m, t = node[apart], edge[apart], gap_m[apart], t[apart]
    # The nearest not-joined segment of each end.
    order = np.lexsort((edge, gap_m, node))
    node, edge, gap_m, t = node[order], edge[order], gap_m[order], t[order]
    first = np.ones(node.size, dtype=bool)
    first[1:] = node[1:] != node[:-1]
    return _NearMiss(node[first], edge[first], gap_m[first], t[first])


def _ends_near_segments(
    net: WalkNetwork, ends: IntArray, distance_m: float
) -> tuple[IntArray, IntArray]:
    """``(node, edge)`` pairs: the segments within ``distance_m`` of each node of ``ends``.

    The same pairs as ``shapely.STRtree(segments).query(points, predicate="dwithin",
    distance=distance_m)`` (an envelope test, then GEOS's prepared distance test), without
    making a shapely line of every segment. A point within ``d`` of a segment lies within
    ``reach = d`` + half the segment's length of its midpoint (a float margin added), so
    candidates come from the few dangling ends: those within ``reach`` in x (a binary
    search), then within ``reach`` (a KD-tree of the ends). The STRtree's two tests then
    decide each candidate pair exactly as the query would. Pairs come sorted by node, edge.
    """
    empty = np.zeros(0, dtype=np.int64)
    x, y = net.node_x_m, net.node_y_m
    ax, ay, bx, by = x[net.edge_u], y[net.edge_u], x[net.edge_v], y[net.edge_v]
    mid_x, mid_y = 0.5 * (ax + bx), 0.5 * (ay + by)
    reach = (distance_m + 0.5 * np.hypot(bx - ax, by - ay)) * (1.0 + 1e-9) + 1e-6
    end_x = np.sort(x[ends])
    in_x = np.searchsorted(end_x, mid_x + reach, side="right") > np.searchsorted(
        end_x, mid_x - reach, side="left"
    )
    candidate = np.flatnonzero(in_x)
    tree = cKDTree(np.column_stack([x[ends], y[ends]]))
    mid = np.column_stack([mid_x[candidate], mid_y[candidate]])
    bound = 2.0 * float(reach.max()) + 1.0
    nearest, _ = tree.query(mid, k=1, distance_upper_bound=bound)
    close = nearest <= reach[candidate]
    candidate, mid = candidate[close], mid[close]
    found = tree.query_ball_point(mid, reach[candidate])
    sizes = np.fromiter((len(f) for f in found), dtype=np.int64, count=len(found))
    if not sizes.sum():
        return empty, empty
    edge = np.repeat(candidate, sizes).astype(np.int64)
    node = ends[np.concatenate([np.asarray(f, dtype=np.int64) for f in found])]
    order = np.lexsort((edge, node))
    node, edge = node[order], edge[order]
    # The STRtree's envelope test: the point's envelope grown by the distance against
    # the segment's envelope (GEOS Envelope::intersects), with the same float operations.
    px, py = x[node], y[node]
    ex0, ey0, ex1, ey1 = ax[edge], ay[edge], bx[edge], by[edge]
    inside = ~(
        (np.minimum(ex0, ex1) > px + distance_m)
        | (np.maximum(ex0, ex1) < px - distance_m)
        | (np.minimum(ey0, ey1) > py + distance_m)
        | (np.maximum(ey0, ey1) < py - distance_m)
    )
    node, edge = node[inside], edge[inside]
    points = shapely.points(x[node], y[node])
    shapely.prepare(points)  # the query geometry is prepared in the STRtree query too
    lines = shapely.linestrings(
        np.stack([np.column_stack([ax[edge], ay[edge]]), np.column_stack([bx[edge], by[edge]])], 1)
    )
    near = np.asarray(shapely.dwithin(points, lines, distance_m), dtype=bool)
    return node[near], edge[near]


def _join(net: WalkNetwork, near: _NearMiss, tolerance_m: float) -> tuple[WalkNetwork, int, float]:
    """Join each dangling end within ``tolerance_m`` to its nearest not-joined segment.

    The end is connected to the segment's nearer end vertex when that lies within the
    tolerance (no split), otherwise the segment is split at the nearest point and a
    connector added (none when the end lies on the segment, within ``_ON_LINE_M``).
    Connectors carry row -1.
    Returns the new network, the number of ends joined and the connector length.
    """
    chosen = near.gap_m <= tolerance_m + _ON_LINE_M
    if not chosen.any():
        return net, 0, 0.0
    x = list(net.node_x_m)
    y = list(net.node_y_m)
    splits: dict[int, list[tuple[float, int]]] = {}
    connectors: list[tuple[int, int]] = []
    # A Python loop: joins are few (hundreds at most) and each may split a segment.
    for d, e, t in zip(near.node[chosen], near.edge[chosen], near.t[chosen], strict=True):
        d, e = int(d), int(e)
        a, b = int(net.edge_u[e]), int(net.edge_v[e])
        gap_a = math.hypot(x[d] - x[a], y[d] - y[a])
        gap_b = math.hypot(x[d] - x[b], y[d] - y[b])
        if min(gap_a, gap_b) <= tolerance_m + _ON_LINE_M:
            connectors.append((d, a if gap_a <= gap_b else b))
            continue
        px = x[a] + float(t) * (x[b] - x[a])
        py = y[a] + float(t) * (y[b] - y[a])
        if math.hypot(px - x[d], py - y[d]) <= _ON_LINE_M:  # on the line: split at the end
            splits.setdefault(e, []).append((float(t), d))
            continue
        x.append(px)
        y.append(py)
        splits.setdefault(e, []).append((float(t), len(x) - 1))
        connectors.append((d, len(x) - 1))

    keep = np.ones(net.n_edges, dtype=bool)
    new_u: list[int] = []
    new_v: list[int] = []
    new_row: list[int] = []
    for e, points in splits.items():
        keep[e] = False
        chain = [int(net.edge_u[e]), *(n for _, n in sorted(points)), int(net.edge_v[e])]
        new_u.extend(chain[:-1])
        new_v.extend(chain[1:])
        new_row.extend([int(net.edge_way_id[e])] * (len(chain) - 1))
    for d, target in connectors:
        new_u.append(d)
        new_v.append(target)
        new_row.append(-1)
    u = np.concatenate([net.edge_u[keep], np.asarray(new_u, dtype=np.int64)])
    v = np.concatenate([net.edge_v[keep], np.asarray(new_v, dtype=np.int64)])
    row = np.concatenate([net.edge_way_id[keep], np.asarray(new_row, dtype=np.int64)])
    n = len(x)
    # Two ends facing each other may each add the same connector: keep each pair once.
    _, first = np.unique(np.minimum(u, v) * np.int64(n) + np.maximum(u, v), return_index=True)
    first.sort()
    u, v, row = u[first], v[first], row[first]
    node_x = np.asarray(x, dtype=np.float64)
    node_y = np.asarray(y, dtype=np.float64)
    length_m = np.hypot(node_x[u] - node_x[v], node_y[u] - node_y[v])
    joined = WalkNetwork(
        node_id=np.arange(n, dtype=np.int64),
        node_x_m=node_x,
        node_y_m=node_y,
        edge_u=u,
        edge_v=v,
        edge_length_m=length_m,
        edge_way_id=row,
        crs=net.crs,
        source=net.source,
        metadata=dict(net.metadata),
    )
    connector_m = float(length_m[row == -1].sum())
    return joined, int(chosen.sum()), connector_m


def _components(net: WalkNetwork) -> tuple[int, float, int]:
    """Connected pieces, the longest one's length share, other pieces under 1 km."""
    n = net.n_nodes
    graph = coo_matrix((np.ones(net.n_edges), (net.edge_u, net.edge_v)), shape=(n, n))
    count, label = connected_components(graph, directed=False)
    per = np.bincount(label[net.edge_u], weights=net.edge_length_m, minlength=count)
    total = float(per.sum())
    share = float(per.max() / total) if total > 0 else 0.0
    others = np.delete(per, int(np.argmax(per)))
    return int(count), share, int(np.count_nonzero(others < SMALL_COMPONENT_M))


# --------------------------------------------------------------------------- caching


def _source(path: Path, sha256: str) -> str:
    return f"{path} (sha256 {sha256}; road line layer, not OSM)"


def _cache_path(settings: Settings, sha256: str, params: Mapping[str, object]) -> Path:
    text = json.dumps({**params, "format": _CACHE_FORMAT}, sort_keys=True, ensure_ascii=False)
    tag = hashlib.sha256(text.encode()).hexdigest()[:10]
    return Path(settings.cache_dir) / "networks" / f"{sha256}-lines{tag}.npz"


def _write_cache(target: Path, net: WalkNetwork) -> None:
    metadata = dict(net.metadata)
    report = metadata.get("report")
    if isinstance(report, LineNetworkReport):
        metadata["report"] = report.as_dict()
    write_network_cache(target, net, metadata)


def _read_cache(target: Path, path: Path, sha256: str) -> WalkNetwork | None:
    """The cached network, or ``None`` when the entry is missing or unreadable."""
    net = read_network_cache(target, _source(path, sha256))
    if net is None:
        return None
    stored = net.metadata.get("report")
    if not isinstance(stored, Mapping):
        return None  # an entry from another layout is rebuilt
    try:
        net.metadata["report"] = LineNetworkReport.from_dict(stored)
    except (KeyError, TypeError, ValueError):
        return None
    return net


def _registry_entry(sha256: str, settings: Settings | None) -> RegisteredFile | None:
    """The registry entry of the file with this sha256 (wherever the file lies)."""
    registry = load_registry(settings.project_data_dir if settings is not None else None)
    return next((e for e in registry.values() if e.sha256 == sha256), None)


# --------------------------------------------------------------------------- public


def _check_parameters(
    join_tolerance_m: float | None, dangle_radius_m: float
) -> tuple[float | None, float]:
    if join_tolerance_m is not None and not 0.0 <= join_tolerance_m <= MAX_JOIN_TOLERANCE_M:
        raise InputValidationError(
            f"join_tolerance_m must be between 0 and {MAX_JOIN_TOLERANCE_M:g} m, "
            f"got {join_tolerance_m}"
        )
    if not (math.isfinite(dangle_radius_m) and dangle_radius_m > 0.0):
        raise InputValidationError(f"dangle_radius_m must be positive, got {dangle_radius_m}")
    tolerance = None if join_tolerance_m is None else float(join_tolerance_m)
    return tolerance, float(dangle_radius_m)


def load_line_network(
    path: str | Path,
    *,
    crs: str = "wgs84",
    exclude: Mapping[str, Sequence[str | int | float]] | None = None,
    join_tolerance_m: float | None = None,
    dangle_radius_m: float = DEFAULT_DANGLE_RADIUS_M,
    metric_crs: CRS | str | int | None = None,
    settings: Settings | None = None,
    progress: Progress = SILENT,
) -> WalkNetwork:
    """Load a road line layer as an undirected walking network.

    Parameters
    ----------
    path
        Any line layer pyogrio reads: ``.geojson``, ``.gpkg``, ``.shp``, ``.parquet``
        (GeoParquet), ...; LineString and MultiLineString features.
    crs
        Coordinate system of the file's coordinates: ``wgs84``, ``gcj02``, ``bd09`` or an
        ``EPSG:`` code (overrides what the file states; GeoJSON always claims WGS84).
    exclude
        ``{field: [values]}``: drop lines whose attribute is one of the values (for
        example expressway main lanes). Values match as given or as text.
    join_tolerance_m
        When set (0–50 m), dangling ends within this gap of a line they do not join are
        joined to it: to its nearer end vertex when that is within the tolerance, else
        to the nearest point (the segment is split there). ``None`` joins nothing.
    dangle_radius_m
        Dangling ends within this distance of a line they do not join are reported.
    metric_crs
        Metric CRS of the result; default the UTM zone of the network's centre.
    settings
        Enables the on-disk cache in ``settings.cache_dir / "networks"`` and names the
        registry; ``None`` reads the file every time and writes nothing.
    progress
        Progress reporter; the report is printed through ``progress.info``.

    Returns
    -------
    WalkNetwork
        Node ids ``0..n-1``; one segment per consecutive vertex pair, each undirected
        pair once; ``edge_way_id`` is the 0-based feature index in the file (-1 for
        connectors added by joins). ``metadata`` holds ``osm`` (False), ``file``,
        ``sha256``, ``attribution``/``origin``/``licence`` from the data registry when
        the file is registered (else ``None``), the parameters, ``report`` (a
        :class:`LineNetworkReport`), ``way_names`` (``{feature index as text: street
        name}`` from the first field of :data:`NAME_FIELDS` the layer has, named in
        ``way_name_field``; unnamed lines left out) and ``cache``
        (``hit``/``written``/``off``).

    Raises
    ------
    DataNotFoundError
        The file does not exist.
    InputValidationError
        Unreadable file, a feature that is not a line (row named), a missing exclude
        field, bad parameters, or no segment left
        (:class:`~tuoyu.errors.EmptyInputError`).
    CRSError
        Unknown ``crs``, coordinates that are not longitude/latitude under a declared
        datum, or ``metric_crs`` not a projected CRS in metres.

    Notes
    -----
    Lines join only at bit-identical vertices of the input, decided before any datum
    conversion; crossings without a shared vertex are bridges or tunnels. A dangling
    end is a vertex used by one segment only; it is reported when a segment it is not
    incident to lies within ``dangle_radius_m`` and the walk there along the network is
    longer than the gap plus twice the radius (so it is not joined to it nearby).
    Lengths are Euclidean in the metric CRS.
    """
    path = Path(path)
    parse_crs_name(crs)  # fail early on an unknown name
    tolerance_m, radius_m = _check_parameters(join_tolerance_m, dangle_radius_m)
    target_crs = as_metric_crs(metric_crs) if metric_crs is not None else None
    exclude_lists = {str(k): list(v) for k, v in (exclude or {}).items()}
    if not path.is_file():
        raise DataNotFoundError(f"road line layer not found: {path}")
    sha256 = file_sha256(path)
    params: dict[str, object] = {
        "crs": str(crs).strip().lower(),
        "exclude": {k: [str(v) for v in vals] for k, vals in sorted(exclude_lists.items())},
        "join_tolerance_m": tolerance_m,
        "dangle_radius_m": radius_m,
        "metric_crs": None if target_crs is None else target_crs.to_wkt(),
    }
    cache = _cache_path(settings, sha256, params) if settings is not None else None
    if cache is not None:
        cached = _read_cache(cache, path, sha256)
        if cached is not None:
            cached.metadata["cache"] = "hit"
            progress.info(f"road network from cache: {cache.name}")
            _print_report(cached, progress)
            return cached

    with progress.step(f"read road line layer {path.name}"):
        net = _build(path, sha256, crs, exclude_lists, tolerance_m, radius_m, target_crs)
    entry = _registry_entry(sha256, settings)
    net.metadata.update(
        {
            "attribution": None if entry is None else (entry.attribution or entry.origin),
            "origin": None if entry is None else entry.origin,
            "licence": None if entry is None else entry.licence,
        }
    )
    if cache is not None:
        _write_cache(cache, net)
        net.metadata["cache"] = "written"
    else:
        net.metadata["cache"] = "off"
    _print_report(net, progress)
    return net


def _print_report(net: WalkNetwork, progress: Progress) -> None:
    report = net.metadata.get("report")
    if isinstance(report, LineNetworkReport):
        for line in report.summary().splitlines():
            progress.info(f"  {line}")


def _build(
    path: Path,
    sha256: str,
    crs: str,
    exclude: Mapping[str, Sequence[object]],
    tolerance_m: float | None,
    radius_m: float,
    target_crs: CRS | None,
) -> WalkNetwork:
    layer = _read_layer(path)
    names, name_field = line_names(layer.attributes)
    try:
        lines = _scan_lines(path, layer)
    finally:
        layer.close()
    dropped, by_field = _excluded(layer, exclude)
    n_features, file_crs = layer.n_features, layer.crs
    del layer  # the attribute table and the WKB are no longer needed
    has_geometry = lines.has_geometry
    if not (has_geometry & ~dropped).any():
        raise EmptyInputError(
            f"no lines left: {int(dropped.sum())} excluded, "
            f"{int((~has_geometry & ~dropped).sum())} without geometry",
            path=path,
        )
    bad_rows = lines.non_finite_rows[~dropped[lines.non_finite_rows]]
    if bad_rows.size:
        raise InputValidationError(
            "line has a non-finite coordinate",
            path=path,
            row=int(bad_rows[0]) + 1,
            field="geometry",
        )
    seg = _segments(lines, dropped)
    del lines
    if seg.u.size == 0:
        raise EmptyInputError(
            "no segments: the lines have no two distinct consecutive vertices", path=path
        )
    lon, lat = _to_lonlat(path, seg.vertex_xy, crs, file_crs)
    if target_crs is None:
        target_crs = utm_crs_for(
            float((lon.min() + lon.max()) / 2.0), float((lat.min() + lat.max()) / 2.0)
        )
    x_m, y_m = Transformer.from_crs(WGS84, target_crs, always_xy=True).transform(lon, lat)
    node_x = np.asarray(x_m, dtype=np.float64)
    node_y = np.asarray(y_m, dtype=np.float64)
    net = WalkNetwork(
        node_id=np.arange(node_x.size, dtype=np.int64),
        node_x_m=node_x,
        node_y_m=node_y,
        edge_u=seg.u,
        edge_v=seg.v,
        edge_length_m=np.hypot(node_x[seg.u] - node_x[seg.v], node_y[seg.u] - node_y[seg.v]),
        edge_way_id=seg.row,
        crs=target_crs,
        source=_source(path, sha256),
    )
    search_m = max(radius_m, tolerance_m or 0.0)
    near = _near_misses(net, radius_m, search_m)
    n_near = int(np.count_nonzero(near.gap_m <= radius_m))
    joined, connector_m = 0, 0.0
    if tolerance_m is not None:
        net, joined, connector_m = _join(net, near, tolerance_m)
    components, share, small = _components(net)
    report = LineNetworkReport(
        lines_read=n_features,
        lines_without_geometry=int((~has_geometry & ~dropped).sum()),
        lines_excluded=int(dropped.sum()),
        excluded_by_field=by_field,
        segments_read=seg.segments_read,
        zero_length_segments_dropped=seg.zero_length,
        duplicate_segments_dropped=seg.duplicates,
        components=components,
        largest_component_share=share,
        small_components=small,
        small_component_m=SMALL_COMPONENT_M,
        dangle_radius_m=radius_m,
        dangling_ends_near_lines=n_near,
        join_tolerance_m=tolerance_m,
        dangling_ends_joined=joined,
        connector_length_m=connector_m,
        total_length_m=net.total_length_m,
    )
    metadata: dict[str, object] = {
        "osm": False,
        "file": str(path),
        "sha256": sha256,
        "source_crs": str(crs),
        "exclude": {k: list(v) for k, v in exclude.items()},
        "join_tolerance_m": tolerance_m,
        "dangle_radius_m": radius_m,
        "edge_way_id": "0-based feature index in the file; -1 for connectors added by joins",
        "way_names": names,
        "way_name_field": name_field,
        "length_method": "euclidean in the metric CRS",
        "report": report,
    }
    return WalkNetwork(
        node_id=net.node_id,
        node_x_m=net.node_x_m,
        node_y_m=net.node_y_m,
        edge_u=net.edge_u,
        edge_v=net.edge_v,
        edge_length_m=net.edge_length_m.astype(np.float64),
        edge_way_id=net.edge_way_id,
        crs=target_crs,
        source=_source(path, sha256),
        metadata=metadata,
    )
