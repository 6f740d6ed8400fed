"""Study-area definition files (``data/areas/<name>.toml``).

A study area names its layers (paths relative to the data directory), their coordinate
systems, the walking parameters and the target profile. Every section but ``[area]``
may be missing; the pipeline then does what the present layers allow and says what it
skipped.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from tuoyu.config.locations import project_data_dir as packaged_data_dir
from tuoyu.crs.china import parse_crs_name
from tuoyu.errors import AreaConfigError


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AreaSection(_Section):
    """``[area]``: identity of the study area."""

    name: str
    code: str
    target_profile: str = Field(description="Target profile under data/profiles/ or a path.")
    name_en: str | None = None
    outline: str | None = Field(default=None, description="District outline file (optional).")
    outline_crs: str = "wgs84"

    @field_validator("outline_crs")
    @classmethod
    def _crs(cls, value: str) -> str:
        parse_crs_name(value)
        return value


MAX_WALK_MINUTES = 60.0
"""Longest walking threshold a study area may set (the API refuses longer queries too)."""


class WalkSection(_Section):
    """``[walk]``: walking speed and thresholds."""

    speed_kmh: float = Field(default=4.0, gt=0, le=10)
    minutes: list[float] = Field(default_factory=lambda: [5.0, 10.0, 15.0])
    max_snap_m: float = Field(default=300.0, gt=0)
    min_component_nodes: int = Field(
        default=40,
        ge=0,
        description="Points snap only to network pieces of at least this many nodes (the "
        "largest piece always qualifies); 0 or 1 snaps to any piece (tuoyu.network.snap).",
    )
    isochrone_buffer_m: float = Field(default=25.0, gt=0)
    isochrone_method: Literal["walk_field", "exact", "grid"] = Field(
        default="walk_field",
        description="walk_field (default): the area whose points the search and the coverage "
        "figures give the facility within the time (nearest-way snapping, access leg "
        "counted), traced conservatively on a lattice (tuoyu.isochrones.walk_field); exact: "
        "GEOS union of the reached edges buffered by isochrone_buffer_m (GUIDE §3, up to "
        "~8 % larger: it ignores the access leg and parallel unreached ways); grid: that "
        "edge-buffer region traced on a lattice (tens of times faster, ≈2 % area error).",
    )
    isochrone_cell_m: float | None = Field(
        default=None,
        gt=0,
        description="Lattice of walk_field (default 5 m; the drawn frontier stays about 2.2 lattice "
        "spacings of walking inside the exact one) and grid (default buffer / 2) "
        "isochrones.",
    )

    @field_validator("minutes")
    @classmethod
    def _sorted_positive(cls, value: list[float]) -> list[float]:
        if not value or any(not (0 < m <= MAX_WALK_MINUTES) for m in value):
            raise ValueError(
                f"minutes must be a non-empty list of numbers in (0, {MAX_WALK_MINUTES:g}] "
                "(a walking service circle; the API's queries stop at 60)"
            )
        return sorted(set(value))

    @property
    def max_minutes(self) -> float:
        """The largest threshold (the service-circle threshold, 15 by default)."""
        return self.minutes[-1]

    def metres_for(self, minutes: float) -> float:
        """Walking distance in metres covered in ``minutes`` at ``speed_kmh``."""
        return self.speed_kmh * 1000.0 * minutes / 60.0


class NetworkSection(_Section):
    """``[network]``: the walking network (OSM file or road line layer), or straight lines.

    ``crs``, ``exclude`` and ``join_tolerance_m`` apply to road line layers (GeoJSON,
    GeoPackage, Shapefile, GeoParquet; see :mod:`tuoyu.layers.line_network`); OSM files
    are WGS84 and filtered by the osmnx ``walk`` tags.
    """

    path: str | None = None
    mode: Literal["network", "straight_line"] = "network"
    detour_factor: float | None = Field(default=None, ge=1.0, le=3.0)
    crs: str = "wgs84"
    exclude: dict[str, list[str | int | float]] = Field(
        default_factory=dict, description="Field -> values: road lines to leave out."
    )
    join_tolerance_m: float | None = Field(
        default=None,
        ge=0,
        le=50,
        description="Join dangling line ends within this gap of another line (metres).",
    )

    @field_validator("crs")
    @classmethod
    def _crs(cls, value: str) -> str:
        parse_crs_name(value)
        return value


class UnitsSection(_Section):
    """``[units]``: 街道 polygons (``path``), a 街道 table without polygons (``table``),
    or an H3 grid when neither is given.

    A table (CSV/XLSX) lists each 街道's code and name, and optionally its resident
    (``population_field``) and under-3 (``under3_field``) population; facilities are then
    placed in a 街道 by their registry field ``jiedao`` (code or name).
    """

    path: str | None = None
    table: str | None = None
    crs: str = "wgs84"
    code_field: str = "code"
    name_field: str = "name"
    population_field: str | None = None
    under3_field: str | None = None
    h3_resolution: int = Field(default=9, ge=5, le=11)

    @field_validator("crs")
    @classmethod
    def _crs(cls, value: str) -> str:
        parse_crs_name(value)
        return value

    @model_validator(mode="after")
    def _one_source(self) -> UnitsSection:
        if self.path and self.table:
            raise ValueError("give [units] path (polygons) or table (codes and names), not both")
        if self.under3_field and not self.population_field:
            raise ValueError("[units] under3_field needs population_field")
        return self


class FacilitiesSection(_Section):
    """``[facilities]``: the facility registry file."""

    path: str | None = None
    crs: str = "wgs84"
    defaults: dict[str, Any] = Field(default_factory=dict)
    columns: dict[str, str] = Field(
        default_factory=dict, description="Schema field -> column name in the file."
    )
    value_map: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="Schema field -> {value in file: schema value}."
    )

    @field_validator("crs")
    @classmethod
    def _crs(cls, value: str) -> str:
        parse_crs_name(value)
        return value


class PopulationSection(_Section):
    """``[population]``: totals per unit, point weights, district total, under-3 share."""

    totals: str | None = None
    totals_field: str | None = None
    totals_code_field: str = "code"
    weights: str | None = None
    weights_crs: str = "wgs84"
    weights_field: str = "weight"
    total: float | None = Field(default=None, gt=0)
    total_source: str | None = None
    under3_share: float | None = Field(default=None, gt=0, lt=1)
    under3_field: str | None = None
    unknown_levels: float | None = Field(
        default=None,
        gt=0,
        description="Storeys assumed for buildings without building:levels (default: the "
        "median of the tagged ones).",
    )
    buildings: bool = Field(
        default=True,
        description="Spread the district total over OSM residential buildings when no "
        "finer layer exists.",
    )
    min_m2_per_person: float | None = Field(
        default=None,
        gt=0,
        description="Least floor area per person (m²) a building may hold with the "
        "buildings route (e.g. 15; tuoyu.layers.population.building_points); none: no bound.",
    )
    cells: str | None = Field(
        default=None,
        description="Grid points with residents per cell; with land_use and units, the "
        "residents are spread over residential land (landuse_population_points) instead "
        "of the weights route.",
    )
    cells_crs: str = "wgs84"
    cells_field: str = "residents"
    land_use: str | None = Field(default=None, description="Land-use parcels (polygons).")
    land_use_crs: str = "wgs84"
    land_use_field: str = "land_use"
    residential_values: list[str] = Field(
        default_factory=lambda: ["居住用地"],
        min_length=1,
        description="Land-use classes that hold residents.",
    )

    @field_validator("weights_crs", "cells_crs", "land_use_crs")
    @classmethod
    def _crs(cls, value: str) -> str:
        parse_crs_name(value)
        return value


class RunSection(_Section):
    """``[run]``: how the area is computed (results do not depend on it).

    A large area can be routed tile by tile (:mod:`tuoyu.workflow.tiles`): square tiles of
    its population points, each with the network within a halo of the service-circle
    walk plus the snapping distance, so no process holds the whole city's routing graph.
    Tiled results equal the untiled ones.
    """

    tile_size_m: float | None = Field(
        default=None,
        gt=0,
        description="Route in square tiles of this side (metres); none: one piece, unless "
        "tile_above_nodes says otherwise.",
    )
    tile_above_nodes: int | None = Field(
        default=None,
        ge=1,
        description="Route in tiles when the walking network has more nodes than this "
        "(tiles of tile_size_m, default 5,000 m).",
    )


class StudyArea(_Section):
    """A parsed study-area definition."""

    area: AreaSection
    walk: WalkSection = Field(default_factory=WalkSection)
    network: NetworkSection | None = None
    units: UnitsSection | None = None
    facilities: FacilitiesSection | None = None
    population: PopulationSection | None = None
    run: RunSection = Field(default_factory=RunSection)
    source_path: Path | None = Field(default=None, exclude=True)

    @property
    def slug(self) -> str:
        """Short name used for output folders (file stem of the definition)."""
        return self.source_path.stem if self.source_path else self.area.code


def areas_dir(project_data_dir: Path | None = None) -> Path:
    """Folder of the shipped study-area definitions."""
    return (project_data_dir or packaged_data_dir()) / "areas"


def list_areas(project_data_dir: Path | None = None) -> list[str]:
    """Names of the study areas under ``data/areas/``."""
    return sorted(p.stem for p in areas_dir(project_data_dir).glob("*.toml"))


def load_area(name_or_path: str | Path, project_data_dir: Path | None = None) -> StudyArea:
    """Load a study area by name (under ``data/areas/``) or by path to a ``.toml`` file.

    The file is UTF-8 (with or without a byte-order mark) or UTF-16 with a byte-order mark.

    Raises
    ------
    AreaConfigError
        Unknown name, text neither UTF-8 nor UTF-16 with BOM, unreadable TOML, or invalid
        keys/values (named in the message).
    """
    candidate = Path(name_or_path)
    if candidate.suffix == ".toml" or candidate.exists():
        path = candidate
    else:
        path = areas_dir(project_data_dir) / f"{name_or_path}.toml"
    if not path.is_file():
        known = ", ".join(list_areas(project_data_dir)) or "none"
        raise AreaConfigError(f"unknown study area '{name_or_path}' (known: {known})")
    data = path.read_bytes()
    # TOML is UTF-8; Windows editors also save UTF-8 with a BOM or UTF-16 with a BOM
    # ("Unicode" in Notepad). Anything else is refused with the file named.
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        if data[:2] not in (b"\xff\xfe", b"\xfe\xff"):
            raise AreaConfigError(
                f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start}); save it as UTF-8"
            ) from exc
        try:
            text = data.decode("utf-16")
        except UnicodeDecodeError as exc16:
            raise AreaConfigError(
                f"{path}: not valid UTF-16 text ({exc16.reason} at byte {exc16.start}); "
                "save it as UTF-8"
            ) from exc16
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise AreaConfigError(f"{path}: not valid TOML: {exc}") from exc
    try:
        area = StudyArea.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        raise AreaConfigError(f"{path}: [{loc}] {first['msg']}") from exc
    return area.model_copy(update={"source_path": path.resolve()})
