"""Many study areas in one run (``tuoyu batch``): one Dask task per area.

Each area runs :func:`tuoyu.workflow.run.analyse_area` in a worker process of a
``dask.distributed`` cluster (a ``LocalCluster`` started and closed here, or an existing
scheduler's address) and writes the same files ``tuoyu run`` writes into
``out_root/<slug>/`` (maps in ``out_root/<slug>/maps/``, the step log in
``out_root/logs/<slug>.log``). Around that the batch writes:

* ``jiedao.parquet/area=<slug>/part-0.parquet``: the per-街道 table of every area,
  hive-partitioned by area (plain columns, no geometry; read the folder with pandas,
  pyarrow or ``duckdb ... read_parquet('jiedao.parquet/*/*.parquet',
  hive_partitioning=true)``);
* ``districts.parquet``: one row per area of this batch that has results;
* ``rollup.csv`` (UTF-8 BOM) and ``rollup.xlsx`` (Chinese headers): the areas ranked
  worst first by people outside the 15-minute circle, failed areas listed after them
  with their error;
* ``rollup.html``: the roll-up map (:mod:`tuoyu.outputs.maps.rollup_map`), each district
  shaded by pass/fail against its profile's district targets, numbered by rank, with
  people outside the circle and the slot shortfall in its popup; drawn from
  ``places/<slug>.geojson``, the outline (or 街道 united, else a representative point)
  each area's run writes. Areas without a place and failed areas are listed on it;
* ``batch_manifest.json``: per area the fingerprint of its inputs, its status, time and
  district row.

Large areas run tile by tile when their ``[run]`` section or ``tile_size_m`` /
``tile_above_nodes`` say so (:mod:`tuoyu.workflow.tiles`); the results are the same.

Re-runs skip what is done: an area is skipped when its manifest entry says ``done``, its
fingerprint is unchanged (sha256 of the TOML text, of every input file it names, of its
target profile, the tool version and the parameters) and its outputs exist.

Failures: an input error of an area (:class:`~tuoyu.errors.TuoyuError`: missing file,
bad TOML, invalid data) is deterministic, so the task returns it as a ``failed`` record
without retrying; any other exception (a bug, ``MemoryError``) is retried ``retries``
times by the scheduler before the area counts as failed. A worker process that dies
while running an area (killed for memory, a crash in native code) is replaced by its
nanny and the area runs again while it has ``retries`` left, then counts as failed with
``KilledWorker``; an area that was only queued on the dying worker runs again
uncharged (the batch, not the scheduler, tells them apart: each task writes its attempt
token to its log first). With an existing scheduler a loss reaches the batch only after
that scheduler's ``distributed.scheduler.allowed-failures`` (3 by default). Only as
many areas are in flight as there are worker threads. Either way the other areas go on.

With an existing scheduler every worker must see ``out_root``, the data directory and
the TOML files at the same paths (a shared file system) and have ``tuoyu`` installed.
Partition folders are named by slug (the TOML's file stem); a stem holding ``%`` or
``=`` would confuse hive-partition readers, so such stems are refused.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import logging
import math
import resource
import shutil
import sys
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any, Literal, cast

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from shapely.geometry.base import BaseGeometry

from tuoyu import __version__
from tuoyu.config.data_registry import file_sha256, resolve_data_file
from tuoyu.config.settings import Settings, get_settings
from tuoyu.config.study_area import StudyArea, load_area
from tuoyu.errors import DataNotFoundError, InputValidationError, TuoyuError
from tuoyu.indicators.targets import profiles_dir
from tuoyu.labels import Language
from tuoyu.layers.units import has_geometry
from tuoyu.outputs.atomic import write_text_atomic, write_with_atomic
from tuoyu.outputs.reports import write_csv, write_xlsx
from tuoyu.progress import Progress
from tuoyu.workflow.layers import AreaLayers, study_area_polygon
from tuoyu.workflow.run import analyse_area, check_month
from tuoyu.workflow.tiles import check_tiling

Status = Literal["done", "failed", "skipped"]

MANIFEST_NAME = "batch_manifest.json"
JIEDAO_DATASET = "jiedao.parquet"
DISTRICTS_FILE = "districts.parquet"
MANIFEST_FORMAT = 1
DEFAULT_WORKERS = 2
_MANIFEST_WRITE_EVERY_S = 5.0

DISTRICT_COLUMNS: tuple[str, ...] = (
    "area",
    "name",
    "code",
    "profile",
    "units",
    "facilities",
    "population",
    "covered_population",
    "coverage_pct",
    "puhui_coverage_pct",
    "failing_units",
    "passing_units",
    "uncovered_population",
    "slot_shortfall",
    "targets_met",
    "targets_failed",
    "district_pass",
    "failed_targets",
    "failed_targets_en",
)
"""Columns of ``districts.parquet`` (``area`` is the slug).

``targets_met``/``targets_failed`` count the district-level targets of the profile the
area meets / fails (targets that cannot be judged count in neither); ``district_pass``
is False when one fails, True when at least one is met and none fails, else empty;
``failed_targets`` names the failed ones with value and target (``failed_targets_en``:
the same in English, for the English roll-up map; not in the Chinese ``rollup.xlsx``)."""

ROLLUP_LABELS_ZH: dict[str, str] = {
    "rank": "排名（未覆盖人口从多到少）",
    "area": "研究区",
    "profile": "目标口径",
    "units": "统计单元数",
    "failing_units": "未达标街道数",
    "passing_units": "全部达标街道数",
    "targets_met": "区县达标目标数",
    "targets_failed": "区县未达标目标数",
    "district_pass": "区县是否达标",
    "failed_targets": "区县未达标目标",
    "status": "运行状态",
    "error": "错误",
}
"""Chinese headers of roll-up columns :func:`tuoyu.labels.label` does not know."""

_OUTPUT_FILES = ("jiedao.csv", "summary.json")
PLACES_DIR = "places"
"""Per area, ``places/<slug>.geojson``: where the roll-up map draws it (WGS84)."""
ROLLUP_MAP = "rollup.html"
PLACE_SIMPLIFY_M = 20.0
"""Outlines are simplified by this many metres before they are stored for the map."""
_ATTEMPT_PREFIX = "attempt "
MAX_REQUEUES = 10
"""Times an area may go back to the queue, uncharged, because a worker died before it
started (another area crashed the worker it was queued on)."""
_INT_COLUMNS = ("rank", "units", "failing_units", "passing_units", "targets_met", "targets_failed")


# --- records ------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class AreaSpec:
    """One area of a batch, ready to run (everything a worker needs, picklable)."""

    slug: str
    source: str
    out_dir: Path
    maps_dir: Path
    partition: Path
    log_file: Path
    fingerprint: str
    place_file: Path | None = None


@dataclasses.dataclass(frozen=True)
class AreaOutcome:
    """What happened to one area.

    Attributes
    ----------
    slug
        The area's output folder name (file stem of its TOML).
    status
        ``done`` (ran now), ``skipped`` (unchanged since the last run) or ``failed``.
    error
        One line naming what went wrong (``None`` unless failed).
    seconds
        Wall-clock seconds of the run in the worker (of the earlier run when skipped).
    cpu_seconds
        CPU seconds the worker process spent on it (all its threads); unlike the wall
        clock it does not grow when other work shares the cores.
    peak_rss_mb
        Peak resident memory of the worker process so far (MiB, ``getrusage``; it
        includes earlier tasks of that worker), ``None`` when not measured.
    worker
        Host and pid of the worker that ran it.
    table
        The per-街道 table (``None`` when failed).
    district
        The one-row district table (columns :data:`DISTRICT_COLUMNS`), ``None`` when failed.
    """

    slug: str
    status: Status
    error: str | None = None
    seconds: float = 0.0
    cpu_seconds: float | None = None
    peak_rss_mb: float | None = None
    worker: str | None = None
    table: pd.DataFrame | None = None
    district: pd.DataFrame | None = None


@dataclasses.dataclass(frozen=True)
class BatchResult:
    """The outcome of :func:`run_batch`: one record per area, and the combined files."""

    outcomes: tuple[AreaOutcome, ...]
    out_root: Path
    files: Mapping[str, Path]
    seconds: float

    def by_slug(self) -> dict[str, AreaOutcome]:
        """The outcomes keyed by slug."""
        return {o.slug: o for o in self.outcomes}

    def statuses(self) -> dict[str, Status]:
        """``{slug: status}``."""
        return {o.slug: o.status for o in self.outcomes}

    @property
    def failed(self) -> tuple[AreaOutcome, ...]:
        """The areas that failed."""
        return tuple(o for o in self.outcomes if o.status == "failed")

    @property
    def ok(self) -> bool:
        """True when no area failed."""
        return not self.failed


# --- areas and fingerprints ---------------------------------------------------------------


def expand_areas(areas: Iterable[str | Path]) -> list[str | Path]:
    """Area names and TOML paths, a folder standing for the ``*.toml`` files in it (sorted).

    Examples
    --------
    >>> expand_areas(["chongqing-yuzhong"])
    ['chongqing-yuzhong']
    """
    out: list[str | Path] = []
    for item in areas:
        path = Path(item)
        if path.is_dir():
            found = sorted(path.glob("*.toml"))
            if not found:
                raise InputValidationError(f"{path}: folder holds no study-area .toml files")
            out.extend(found)
        else:
            out.append(item)
    return out


def _input_paths(area: StudyArea) -> dict[str, str]:
    """``{role: path as written in the TOML}`` of every input file the area names."""
    pop = area.population
    candidates: dict[str, str | None] = {
        "outline": area.area.outline,
        "network": area.network.path if area.network is not None else None,
        "units": area.units.path if area.units is not None else None,
        "facilities": area.facilities.path if area.facilities is not None else None,
        "population totals": pop.totals if pop is not None else None,
        "population weights": pop.weights if pop is not None else None,
        "population cells": pop.cells if pop is not None else None,
        "land use": pop.land_use if pop is not None else None,
    }
    return {role: rel for role, rel in candidates.items() if rel}


def _profile_path(area: StudyArea, settings: Settings) -> Path:
    name = area.area.target_profile
    candidate = Path(name)
    if candidate.suffix == ".toml" or candidate.exists():
        return candidate
    return profiles_dir(settings.project_data_dir) / f"{name}.toml"


def area_fingerprint(area: StudyArea, settings: Settings, parameters: Mapping[str, Any]) -> str:
    """sha256 over what decides an area's results, computed before running it.

    The TOML text, the sha256 of each input file it names (resolved like the loaders
    do; a file that cannot be found counts as ``missing``), the target profile file,
    the tool version and ``parameters`` (e.g. the reporting month).
    """
    if area.source_path is None:
        raise InputValidationError("the study area has no source file to fingerprint")
    files: dict[str, str] = {}
    for role, rel in sorted(_input_paths(area).items()):
        try:
            files[role] = file_sha256(resolve_data_file(rel, settings, verify=False))
        except DataNotFoundError:
            files[role] = f"missing: {rel}"
    profile = _profile_path(area, settings)
    record = {
        "toml_sha256": file_sha256(area.source_path),
        "files": files,
        "profile_sha256": file_sha256(profile) if profile.is_file() else "missing",
        "tool_version": __version__,
        "parameters": dict(parameters),
    }
    text = json.dumps(record, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _check_slug(slug: str, source: str) -> None:
    if not slug or any(ch in slug for ch in "%=/\\"):
        raise InputValidationError(
            f"{source}: the file stem {slug!r} names the area's output folder and "
            "partition; rename the file without % = / \\",
            field="slug",
        )


# --- the task (runs in a worker) ----------------------------------------------------------


def _one_line(exc: BaseException) -> str:
    """``Type: first line of the message`` (at most 500 characters)."""
    text = str(exc).strip().splitlines()
    line = f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")
    return line[:500]


def _peak_rss_mb() -> float | None:
    """Peak RSS of this process in MiB (Linux reports KiB, macOS bytes)."""
    try:
        peak = float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    except (OSError, ValueError):  # pragma: no cover - getrusage exists on POSIX
        return None
    return peak / (1024.0 * 1024.0) if sys.platform == "darwin" else peak / 1024.0


def _worker_name() -> str:
    import os
    import socket

    return f"{socket.gethostname()}:{os.getpid()}"


def district_row(slug: str, summary: Mapping[str, Any], table: pd.DataFrame) -> pd.DataFrame:
    """The one-row district table of an area from its summary and per-unit table.

    ``failing_units``: units failing at least one target (a ``meets_*`` column False);
    ``passing_units``: units meeting every target that could be judged (at least one).

    Examples
    --------
    >>> table = pd.DataFrame({"meets_a": pd.array([True, False, None], dtype="boolean")})
    >>> summary = {"area": {"name": "甲", "code": "1"}, "totals": {"population": 10.0}}
    >>> row = district_row("a", summary, table)
    >>> int(row["failing_units"].iloc[0]), int(row["passing_units"].iloc[0])
    (1, 1)
    """
    area = summary.get("area") or {}
    totals = summary.get("totals") or {}
    indicators = summary.get("indicators") or {}
    profile = summary.get("profile") or {}
    meets = table[[c for c in table.columns if str(c).startswith("meets_")]]
    failing = meets.eq(False).fillna(False).astype(bool).any(axis=1)
    judged = meets.notna().any(axis=1)
    passing = judged & ~failing

    def number(value: Any) -> float:
        return float(value) if isinstance(value, int | float) else math.nan

    def indicator(key: str) -> float:
        entry = indicators.get(key) or {}
        return number(entry.get("value"))

    met = [k for k, e in indicators.items() if isinstance(e, Mapping) and e.get("pass") is True]
    failed = [k for k, e in indicators.items() if isinstance(e, Mapping) and e.get("pass") is False]
    verdict = False if failed else (True if met else None)

    row = {
        "area": slug,
        "name": str(area.get("name", "")),
        "code": str(area.get("code", "")),
        "profile": str(profile.get("name", "")),
        "units": len(table),
        "facilities": number(totals.get("facilities")),
        "population": number(totals.get("population")),
        "covered_population": number(totals.get("covered_population")),
        "coverage_pct": indicator("coverage_pct"),
        "puhui_coverage_pct": indicator("puhui_coverage_pct"),
        "failing_units": int(failing.sum()),
        "passing_units": int(passing.sum()),
        "uncovered_population": number(totals.get("uncovered_population")),
        "slot_shortfall": number(totals.get("slot_shortfall")),
        "targets_met": len(met),
        "targets_failed": len(failed),
        "district_pass": verdict,
        "failed_targets": "；".join(_target_text(indicators[k]) for k in failed),
        "failed_targets_en": "; ".join(_target_text(indicators[k], "en") for k in failed),
    }
    return typed_districts(pd.DataFrame([row], columns=list(DISTRICT_COLUMNS)))


def _target_text(entry: Mapping[str, Any], language: Language = "zh") -> str:
    """``label value（目标 target）`` of one district indicator (``label value (target
    target)`` in English; units as the profile writes them, as on the dashboard).

    Examples
    --------
    >>> entry = {"label_zh": "普惠托位占比", "label_en": "普惠 share of slots",
    ...          "value": 40.0, "unit": "%", "target": {"text": "≥ 60 %"}}
    >>> _target_text(entry), _target_text(entry, "en")
    ('普惠托位占比 40.0%（目标 ≥ 60 %）', '普惠 share of slots 40.0% (target ≥ 60 %)')
    """
    value = entry.get("value")
    unit = str(entry.get("unit") or "")
    shown = ""
    if isinstance(value, int | float) and math.isfinite(value):
        shown = f" {value:.1f}%" if unit == "%" else f" {value:,.2f} {unit}".rstrip()
    target = entry.get("target")
    text = target.get("text") if isinstance(target, Mapping) else None
    if language == "en":
        name = entry.get("label_en") or entry.get("label_zh") or ""
        return f"{name}{shown}" + (f" (target {text})" if text else "")
    return f"{entry.get('label_zh') or ''}{shown}" + (f"（目标 {text}）" if text else "")


def typed_districts(frame: pd.DataFrame) -> pd.DataFrame:
    """District rows with stable dtypes (counts ``Int64``, ``district_pass`` ``boolean``).

    Examples
    --------
    >>> typed_districts(pd.DataFrame({"district_pass": [None, True]}))["district_pass"].tolist()
    [<NA>, True]
    """
    out = frame.copy()
    for column in _INT_COLUMNS:
        if column in out.columns:
            out[column] = pd.array(
                [None if _missing(v) else int(v) for v in out[column]], dtype="Int64"
            )
    if "district_pass" in out.columns:
        out["district_pass"] = pd.array(
            [None if _missing(v) else bool(v) for v in out["district_pass"]], dtype="boolean"
        )
    return out


def _missing(value: Any) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def write_partition(table: pd.DataFrame, path: Path) -> Path:
    """Write one area's per-unit table as a Parquet file (plain columns, atomic)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    frame = pd.DataFrame(table).drop(columns=["geometry"], errors="ignore")
    arrow = pa.Table.from_pandas(frame.reset_index(drop=True), preserve_index=False)
    return write_with_atomic(path, lambda tmp: pq.write_table(arrow, tmp))


def area_place(layers: AreaLayers) -> tuple[BaseGeometry, str] | None:
    """Where the roll-up map draws an area, in WGS84, and what that place is.

    The outline or the 街道 united (``outline``/``jiedao``, simplified by
    :data:`PLACE_SIMPLIFY_M` for display); else the centre of the extent of its network,
    units or population (``point``); ``None`` when it has none of these.
    """
    polygon = study_area_polygon(layers)
    crs = layers.metric_crs
    if polygon is not None and not polygon.is_empty:
        kind = "outline" if layers.outline is not None and not layers.outline.empty else "jiedao"
        simple = shapely.simplify(polygon, PLACE_SIMPLIFY_M, preserve_topology=True)
        return gpd.GeoSeries([simple], crs=crs).to_crs(4326).iloc[0], kind
    boxes: list[tuple[float, ...]] = []
    if layers.network is not None and layers.network.n_nodes:
        net = layers.network
        boxes.append(
            (
                float(net.node_x_m.min()),
                float(net.node_y_m.min()),
                float(net.node_x_m.max()),
                float(net.node_y_m.max()),
            )
        )
    for frame in (layers.units, layers.population):
        if frame is not None and has_geometry(frame) and len(frame):
            bounds = frame.to_crs(crs).total_bounds
            if np.isfinite(bounds).all():
                boxes.append(tuple(float(b) for b in bounds))
    if not boxes:
        return None
    arr = np.array(boxes, dtype=float)
    centre = shapely.Point(
        (arr[:, 0].min() + arr[:, 2].max()) / 2.0, (arr[:, 1].min() + arr[:, 3].max()) / 2.0
    )
    return gpd.GeoSeries([centre], crs=crs).to_crs(4326).iloc[0], "point"


def write_place(path: Path, slug: str, layers: AreaLayers, attribution: str | None) -> Path | None:
    """Write ``places/<slug>.geojson`` (one feature; nothing when the area has no place)."""
    place = area_place(layers)
    if place is None:
        Path(path).unlink(missing_ok=True)
        return None
    geom, kind = place
    feature = {
        "type": "Feature",
        "properties": {"area": slug, "kind": kind, "attribution": attribution},
        "geometry": json.loads(shapely.to_geojson(shapely.set_precision(geom, 1e-6))),
    }
    text = json.dumps(
        {"type": "FeatureCollection", "features": [feature]}, ensure_ascii=False, sort_keys=True
    )
    return write_text_atomic(path, text + "\n")


def run_area_task(
    spec: AreaSpec,
    settings: Settings,
    month: str,
    write_map_files: bool = True,
    tile_size_m: float | None = None,
    tile_above_nodes: int | None = None,
    attempt: str | None = None,
) -> AreaOutcome:
    """Run one area in a worker: outputs, its Parquet partition, its place, a typed record.

    Input errors (:class:`~tuoyu.errors.TuoyuError`) give a ``failed`` record; any other
    exception propagates so that the scheduler retries the task. ``attempt`` is written
    as the first line of the area's log, on disk before any work, so that the batch can
    tell whether a worker that died was running this area (:func:`attempt_started`).
    """
    start = time.perf_counter()
    cpu_start = time.process_time()
    spec.log_file.parent.mkdir(parents=True, exist_ok=True)
    with spec.log_file.open("w", encoding="utf-8") as log:
        log.write(f"{_ATTEMPT_PREFIX}{attempt or ''}\n")
        log.flush()
        progress = Progress(log)
        try:
            run = analyse_area(
                spec.source,
                spec.out_dir,
                settings,
                progress,
                month=month,
                maps_dir=spec.maps_dir,
                write_map_files=write_map_files,
                tile_size_m=tile_size_m,
                tile_above_nodes=tile_above_nodes,
            )
        except TuoyuError as exc:
            progress.info(f"failed: {exc}")
            return AreaOutcome(
                spec.slug,
                "failed",
                error=_one_line(exc),
                seconds=time.perf_counter() - start,
                cpu_seconds=time.process_time() - cpu_start,
                peak_rss_mb=_peak_rss_mb(),
                worker=_worker_name(),
            )
        table = run.results.table.drop(columns=["geometry"], errors="ignore").copy()
        write_partition(table, spec.partition)
        progress.info(f"wrote {spec.partition}")
        if spec.place_file is not None:
            attribution = run.results.summary.get("attribution")
            written = write_place(
                spec.place_file,
                spec.slug,
                run.model.current_layers(),
                str(attribution) if attribution else None,
            )
            progress.info(f"wrote {written}" if written else "no place for the roll-up map")
    return AreaOutcome(
        spec.slug,
        "done",
        seconds=time.perf_counter() - start,
        cpu_seconds=time.process_time() - cpu_start,
        peak_rss_mb=_peak_rss_mb(),
        worker=_worker_name(),
        table=table,
        district=district_row(spec.slug, run.results.summary, table),
    )


def attempt_started(spec: AreaSpec, attempt: str) -> bool:
    """True when the task of ``attempt`` began running (its log starts with the token)."""
    try:
        with spec.log_file.open(encoding="utf-8") as log:
            return log.readline().strip() == f"{_ATTEMPT_PREFIX}{attempt}"
    except (OSError, UnicodeDecodeError):
        return False


# --- the manifest --------------------------------------------------------------------------


def read_manifest(out_root: Path) -> dict[str, Any]:
    """The batch manifest of ``out_root`` (an empty one when there is none).

    Raises
    ------
    InputValidationError
        The file exists but is not a manifest (named).
    """
    path = Path(out_root) / MANIFEST_NAME
    if not path.is_file():
        return {"format": MANIFEST_FORMAT, "areas": {}}
    try:
        data = json.loads(path.read_text("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputValidationError(
            f"{path}: not a batch manifest ({exc}); delete it to run every area again"
        ) from exc
    if not isinstance(data, dict) or not isinstance(data.get("areas"), dict):
        raise InputValidationError(
            f"{path}: not a batch manifest (no 'areas' table); delete it to run every area again"
        )
    return data


def _plain(value: Any) -> Any:
    if value is None or value is pd.NA:
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if hasattr(value, "item"):
        return _plain(value.item())
    return value


def _manifest_entry(
    spec: AreaSpec, outcome: AreaOutcome, month: str, previous: Mapping[str, Any] | None
) -> dict[str, Any]:
    if outcome.status == "skipped" and previous is not None:
        return dict(previous)
    district = None
    if outcome.district is not None:
        district = {k: _plain(v) for k, v in outcome.district.iloc[0].to_dict().items()}
    return {
        "source": spec.source,
        "fingerprint": spec.fingerprint,
        "status": outcome.status,
        "error": outcome.error,
        "seconds": round(outcome.seconds, 3),
        "cpu_seconds": None if outcome.cpu_seconds is None else round(outcome.cpu_seconds, 3),
        "peak_rss_mb": None if outcome.peak_rss_mb is None else round(outcome.peak_rss_mb, 1),
        "month": month,
        "tool_version": __version__,
        "finished": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "district": district,
    }


class _ManifestBook:
    """The manifest entries of a batch, written to disk as areas finish (atomic)."""

    def __init__(self, path: Path, entries: dict[str, Any], month: str) -> None:
        self.path = path
        self.entries = entries
        self.month = month
        self.previous = dict(entries)
        self._written_at = 0.0

    def record(self, spec: AreaSpec, outcome: AreaOutcome, *, flush: bool = True) -> None:
        """Enter one area's outcome; write the file when the last write is old enough."""
        if outcome.status == "failed":
            # No stale table of an earlier run may stay in the combined dataset.
            shutil.rmtree(spec.partition.parent, ignore_errors=True)
        self.entries[spec.slug] = _manifest_entry(
            spec, outcome, self.month, self.previous.get(spec.slug)
        )
        if flush and time.monotonic() - self._written_at >= _MANIFEST_WRITE_EVERY_S:
            self.flush()

    def flush(self) -> None:
        """Write the manifest now."""
        manifest = {"format": MANIFEST_FORMAT, "tool_version": __version__, "areas": self.entries}
        text = json.dumps(manifest, ensure_ascii=False, indent=2, sort_keys=True)
        write_text_atomic(self.path, text)
        self._written_at = time.monotonic()


def _is_current(spec: AreaSpec, entry: Mapping[str, Any] | None) -> bool:
    return (
        entry is not None
        and entry.get("status") == "done"
        and entry.get("fingerprint") == spec.fingerprint
        and isinstance(entry.get("district"), dict)
        and spec.partition.is_file()
        and all((spec.out_dir / name).is_file() for name in _OUTPUT_FILES)
    )


def _skipped_outcome(spec: AreaSpec, entry: Mapping[str, Any]) -> AreaOutcome:
    table = pd.read_parquet(spec.partition)
    district = typed_districts(pd.DataFrame([entry["district"]], columns=list(DISTRICT_COLUMNS)))
    return AreaOutcome(
        spec.slug,
        "skipped",
        seconds=float(entry.get("seconds") or 0.0),
        cpu_seconds=entry.get("cpu_seconds"),
        peak_rss_mb=entry.get("peak_rss_mb"),
        table=table,
        district=district,
    )


# --- combined outputs ----------------------------------------------------------------------


def rollup_table(outcomes: Sequence[AreaOutcome]) -> pd.DataFrame:
    """Areas with results ranked worst first by people outside the circle, then failures.

    Examples
    --------
    >>> rows = [pd.DataFrame([{"area": a, "uncovered_population": u}]) for a, u in
    ...         (("x", 5.0), ("y", 50.0))]
    >>> outs = [AreaOutcome(r["area"][0], "done", district=r) for r in rows]
    >>> outs.append(AreaOutcome("z", "failed", error="DataNotFoundError: gone"))
    >>> table = rollup_table(outs)
    >>> table[["area", "status"]].values.tolist()
    [['y', 'done'], ['x', 'done'], ['z', 'failed']]
    >>> table["rank"].tolist()
    [1, 2, <NA>]
    """
    frames = [o.district.assign(status=o.status) for o in outcomes if o.district is not None]
    ranked = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    if len(ranked):
        ranked = ranked.sort_values(
            ["uncovered_population", "area"], ascending=[False, True], na_position="last"
        ).reset_index(drop=True)
    ranked.insert(0, "rank", list(range(1, len(ranked) + 1)))
    failed = pd.DataFrame(
        [{"area": o.slug, "status": o.status, "error": o.error}
         for o in outcomes if o.district is None],
        columns=["area", "status", "error"],
    )  # fmt: skip
    out = pd.concat([ranked, failed], ignore_index=True) if len(failed) else ranked
    if "error" not in out.columns:
        out["error"] = None
    return typed_districts(out)


def read_places(out_root: Path, slugs: Iterable[str]) -> tuple[gpd.GeoDataFrame, list[str]]:
    """The places of ``slugs`` written by their runs, and the credits they name.

    An area without a place file (its run found no place, or the file is gone) is
    missing from the frame; :func:`~tuoyu.outputs.maps.rollup_map.build_rollup_map`
    lists it as having no location.
    """
    from tuoyu.outputs.maps.rollup_map import places_frame

    features: list[dict[str, Any]] = []
    credits: list[str] = []
    for slug in slugs:
        path = Path(out_root) / PLACES_DIR / f"{slug}.geojson"
        if not path.is_file():
            continue
        try:
            data = json.loads(path.read_text("utf-8"))
            found = [f for f in data.get("features", []) if isinstance(f, dict)]
        except (UnicodeDecodeError, json.JSONDecodeError, AttributeError):
            continue  # an unreadable place is a missing place: the map lists the area
        for feature in found:
            props = feature.get("properties") or {}
            if props.get("area") == slug:
                features.append(feature)
                credit = props.get("attribution")
                if credit and str(credit) not in credits:
                    credits.append(str(credit))
    return places_frame(features), credits


def write_rollup_map(
    out_root: Path, rollup: pd.DataFrame, settings: Settings | None = None
) -> Path:
    """Write ``rollup.html``: the districts of the batch against their profiles."""
    from tuoyu.outputs.maps import save_map
    from tuoyu.outputs.maps.rollup_map import build_rollup_map

    settings = settings or get_settings()
    places, credits = read_places(out_root, rollup["area"].astype(str))
    fmap = build_rollup_map(
        rollup,
        places,
        language=settings.language,
        tianditu_key=settings.tianditu_key,
        attribution="; ".join(credits) or None,
    )
    return save_map(fmap, Path(out_root) / ROLLUP_MAP)


def write_combined(
    out_root: Path, outcomes: Sequence[AreaOutcome], settings: Settings | None = None
) -> dict[str, Path]:
    """Write ``districts.parquet``, ``rollup.csv``, ``rollup.xlsx`` and ``rollup.html``."""
    written: dict[str, Path] = {}
    districts = [o.district for o in outcomes if o.district is not None]
    frame = (
        pd.concat(districts, ignore_index=True)
        if districts
        else pd.DataFrame(columns=list(DISTRICT_COLUMNS))
    )
    frame = typed_districts(frame.sort_values("area").reset_index(drop=True))
    written[DISTRICTS_FILE] = write_with_atomic(
        out_root / DISTRICTS_FILE, lambda tmp: frame.to_parquet(tmp, index=False)
    )
    rollup = rollup_table(outcomes)
    written["rollup.csv"] = write_csv(rollup, out_root / "rollup.csv")
    written["rollup.xlsx"] = write_xlsx(
        rollup.drop(columns=["failed_targets_en"], errors="ignore").rename(
            columns=ROLLUP_LABELS_ZH
        ),
        out_root / "rollup.xlsx",
        sheet_title="区县汇总",
        notes=(
            "按15分钟步行圈外人口从多到少排序；运行失败的研究区列在最后。",
            "Ranked worst first by people outside the 15-minute walk; failed areas last.",
        ),
    )
    written[ROLLUP_MAP] = write_rollup_map(out_root, rollup, settings)
    dataset = out_root / JIEDAO_DATASET
    if dataset.is_dir():
        written[JIEDAO_DATASET] = dataset
    return written


# --- the batch -----------------------------------------------------------------------------


def _specs(
    areas: Sequence[str | Path], out_root: Path, settings: Settings, parameters: Mapping[str, Any]
) -> tuple[list[AreaSpec], list[AreaOutcome]]:
    """Load each area's TOML and fingerprint it; areas that cannot load fail here."""
    specs: list[AreaSpec] = []
    failed: list[AreaOutcome] = []
    seen: dict[str, str] = {}
    for item in areas:
        try:
            area = load_area(item, settings.project_data_dir)
            assert area.source_path is not None  # load_area sets it (internal invariant)
            slug = area.slug
            source = str(area.source_path)
            _check_slug(slug, source)
            if slug in seen and seen[slug] != source:
                raise InputValidationError(
                    f"{source}: the slug '{slug}' is also {seen[slug]}; rename one "
                    "(each area writes to out_root/<slug>)",
                    field="slug",
                )
            if slug in seen:
                continue
            seen[slug] = source
            specs.append(
                AreaSpec(
                    slug=slug,
                    source=source,
                    out_dir=out_root / slug,
                    maps_dir=out_root / slug / "maps",
                    partition=out_root / JIEDAO_DATASET / f"area={slug}" / "part-0.parquet",
                    log_file=out_root / "logs" / f"{slug}.log",
                    fingerprint=area_fingerprint(area, settings, parameters),
                    place_file=out_root / PLACES_DIR / f"{slug}.geojson",
                )
            )
        except TuoyuError as exc:
            failed.append(AreaOutcome(Path(str(item)).stem, "failed", error=_one_line(exc)))
    return specs, failed


def _lost_worker(
    spec: AreaSpec,
    attempt: str,
    exc: BaseException,
    retries: int,
    crashes: dict[str, int],
    requeues: dict[str, int],
    progress: Progress,
) -> AreaOutcome | None:
    """The outcome of an area whose worker died, or ``None`` to run it again."""
    slug = spec.slug
    if attempt_started(spec, attempt):
        crashes[slug] += 1
        if crashes[slug] <= retries:
            progress.info(
                f"{slug}: the worker running it died (loss {crashes[slug]}, "
                f"{retries - crashes[slug]} more allowed); running it again"
            )
            return None
        return AreaOutcome(
            slug,
            "failed",
            error=(
                f"KilledWorker: the worker process running this area died "
                f"{crashes[slug]} times (killed for memory, or a crash in native code); "
                "see its log"
            ),
        )
    requeues[slug] += 1
    if requeues[slug] <= MAX_REQUEUES:
        progress.info(f"{slug}: a worker died before it started; queued again")
        return None
    return AreaOutcome(slug, "failed", error=_one_line(exc))


def _eta_text(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"


def run_batch(
    areas: Sequence[str | Path] | str | Path,
    out_root: str | Path,
    *,
    scheduler: str | None = None,
    workers: int | None = None,
    settings: Settings | None = None,
    progress: Progress | None = None,
    retries: int = 1,
    month: str | None = None,
    write_map_files: bool = True,
    tile_size_m: float | None = None,
    tile_above_nodes: int | None = None,
    worker_plugins: Sequence[Any] = (),
) -> BatchResult:
    """Run many study areas on ``dask.distributed``, one task per area.

    Parameters
    ----------
    areas
        Study-area names (under ``data/areas/``), TOML paths, or folders of TOMLs.
    out_root
        Output folder: ``<slug>/`` per area and the combined files (module docstring).
    scheduler
        Address of a running scheduler (``tcp://host:8786``); default: a local cluster
        of worker processes, started and closed here.
    workers
        Worker processes of the local cluster (default 2, one thread each).
    settings
        Data directory and cache settings (default: from the environment).
    progress
        Where areas done/failed/total and the ETA are printed as tasks finish.
    retries
        Retries of a task that raised something other than an input error, and the
        number of worker processes an area may lose while running it.
    month
        Reporting month ``YYYY-MM`` (default: this month), the same for every area.
    write_map_files
        Write the three HTML maps of each area.
    tile_size_m, tile_above_nodes
        Route large areas tile by tile (override each area's ``[run]`` section; see
        :func:`tuoyu.workflow.tiles.tile_size_for`). Tiled results equal untiled ones;
        a change of these re-runs the areas (they are part of the fingerprint).
    worker_plugins
        ``distributed`` worker plugins registered on the cluster before the areas are
        submitted (monitoring, or the fault injection of the tests).

    Returns
    -------
    BatchResult
        One :class:`AreaOutcome` per area (input order), the combined files.

    Raises
    ------
    InputValidationError
        ``workers`` < 1, ``retries`` < 0, ``workers`` given with ``scheduler``, or a
        folder without TOMLs.
    """
    start = time.perf_counter()
    settings = settings or get_settings()
    progress = progress or Progress()
    month = check_month(month)
    check_tiling(tile_size_m, tile_above_nodes)
    if workers is not None and (isinstance(workers, bool) or workers < 1):
        raise InputValidationError(f"workers must be ≥ 1, got {workers!r}", field="workers")
    if workers is not None and scheduler is not None:
        raise InputValidationError(
            "workers applies to the local cluster; an existing scheduler has its own",
            field="workers",
        )
    if isinstance(retries, bool) or retries < 0:
        raise InputValidationError(f"retries must be ≥ 0, got {retries!r}", field="retries")
    items = expand_areas([areas] if isinstance(areas, str | Path) else areas)
    root = Path(out_root).resolve()
    root.mkdir(parents=True, exist_ok=True)
    parameters: dict[str, Any] = {
        "month": month,
        "language": settings.language,
        "maps": write_map_files,
    }
    if tile_size_m is not None:
        parameters["tile_size_m"] = tile_size_m
    if tile_above_nodes is not None:
        parameters["tile_above_nodes"] = tile_above_nodes
    specs, outcomes = _specs(items, root, settings, parameters)
    manifest = read_manifest(root)
    entries: dict[str, Any] = dict(manifest["areas"])
    to_run: list[AreaSpec] = []
    for spec in specs:
        entry = entries.get(spec.slug)
        if _is_current(spec, entry):
            assert entry is not None  # _is_current checked it
            outcomes.append(_skipped_outcome(spec, entry))
        else:
            to_run.append(spec)
    for outcome in outcomes:
        progress.info(
            f"{outcome.slug}: {outcome.status}" + (f" — {outcome.error}" if outcome.error else "")
        )
    total = len(specs) + sum(1 for o in outcomes if o.status == "failed")
    progress.info(
        f"batch: {total} areas, {len(to_run)} to run, "
        f"{sum(o.status == 'skipped' for o in outcomes)} unchanged (skipped)"
    )
    book = _ManifestBook(root / MANIFEST_NAME, entries, month)
    if to_run:
        outcomes.extend(
            _run_on_cluster(to_run, settings, month, scheduler, workers, retries,
                            (write_map_files, tile_size_m, tile_above_nodes), progress,
                            total - len(to_run), book, worker_plugins)
        )  # fmt: skip
    by_slug = {o.slug: o for o in outcomes}
    for spec in specs:
        book.record(spec, by_slug[spec.slug], flush=False)
    book.flush()
    order = {Path(str(item)).stem: i for i, item in enumerate(items)}
    ordered = tuple(sorted(outcomes, key=lambda o: order.get(o.slug, len(order))))
    files = write_combined(root, ordered, settings)
    files[MANIFEST_NAME] = root / MANIFEST_NAME
    elapsed = time.perf_counter() - start
    n_failed = sum(o.status == "failed" for o in ordered)
    progress.info(
        f"batch finished in {elapsed:.1f} s: {sum(o.status == 'done' for o in ordered)} done, "
        f"{sum(o.status == 'skipped' for o in ordered)} skipped, {n_failed} failed"
    )
    return BatchResult(ordered, root, files, elapsed)


def _run_on_cluster(
    specs: Sequence[AreaSpec],
    settings: Settings,
    month: str,
    scheduler: str | None,
    workers: int | None,
    retries: int,
    options: tuple[bool, float | None, int | None],
    progress: Progress,
    already: int,
    book: _ManifestBook,
    worker_plugins: Sequence[Any] = (),
) -> list[AreaOutcome]:
    """Submit one task per area and collect the records as they finish.

    At most as many areas are in flight as the cluster has worker threads; the next is
    submitted when one finishes. Lost workers are accounted per area here, not by the
    scheduler (which charges every task placed on a dying worker, so areas merely queued
    behind a crashing one would use up their allowed failures too): the local cluster's
    scheduler reports each loss at once (``allowed-failures`` 0); an area whose task had
    started (:func:`attempt_started`) is charged and runs again while it has
    ``retries`` left, an area that had not started goes back to the queue uncharged.

    Each finished area goes into the manifest at once (written at most every few
    seconds), so a batch stopped half way skips the finished areas on its next run.
    """
    try:
        import dask
        from distributed import Client, Future, KilledWorker, LocalCluster, as_completed
    except ImportError as exc:  # pragma: no cover - the batch extra is installed in dev
        raise InputValidationError(
            'tuoyu batch needs dask.distributed: pip install "tuoyu-coverage[batch]"'
        ) from exc
    outcomes: list[AreaOutcome] = []
    with ExitStack() as stack:
        if scheduler is None:
            with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
                cluster = stack.enter_context(
                    LocalCluster(  # type: ignore[no-untyped-call]
                        n_workers=workers or DEFAULT_WORKERS,
                        threads_per_worker=1,
                        processes=True,
                        dashboard_address=None,
                        silence_logs=logging.ERROR,
                    )
                )
            client = stack.enter_context(Client(cluster))  # type: ignore[no-untyped-call]
        else:
            client = stack.enter_context(Client(scheduler))  # type: ignore[no-untyped-call]
        for plugin in worker_plugins:
            client.register_plugin(plugin)  # type: ignore[no-untyped-call]
        queue = list(specs)
        futures: dict[Future, tuple[AreaSpec, str]] = {}  # type: ignore[type-arg]
        crashes: dict[str, int] = dict.fromkeys((s.slug for s in specs), 0)
        requeues: dict[str, int] = dict.fromkeys((s.slug for s in specs), 0)

        def submit_next() -> Future:  # type: ignore[type-arg]
            spec = queue.pop(0)
            attempt = uuid.uuid4().hex
            future = client.submit(
                run_area_task,
                spec,
                settings,
                month,
                *options,
                attempt,
                key=f"tuoyu-area-{spec.slug}-{attempt}",
                retries=retries,
                pure=False,
            )
            futures[future] = (spec, attempt)
            return cast("Future", future)  # type: ignore[type-arg]

        def slots() -> int:
            threads = sum(client.nthreads().values())  # type: ignore[no-untyped-call]
            return max(1, int(threads))

        running = as_completed(  # type: ignore[no-untyped-call]
            [submit_next() for _ in range(min(slots(), len(queue)))]
        )
        started = time.perf_counter()
        done = failed = 0
        for future in running:
            spec, attempt = futures.pop(future)
            outcome: AreaOutcome | None
            try:
                outcome = future.result()
            except KilledWorker as exc:
                outcome = _lost_worker(spec, attempt, exc, retries, crashes, requeues, progress)
                if outcome is None:
                    queue.insert(0, spec)
            except Exception as exc:  # any task error is reported; the others go on
                outcome = AreaOutcome(spec.slug, "failed", error=_one_line(exc))
            while queue and len(futures) < slots():
                running.add(submit_next())  # type: ignore[no-untyped-call]
            if outcome is None:
                continue
            outcomes.append(outcome)
            book.record(spec, outcome)
            done += outcome.status == "done"
            failed += outcome.status == "failed"
            finished = done + failed
            left = len(specs) - finished
            eta = (time.perf_counter() - started) / finished * left
            line = (
                f"[{already + finished}/{already + len(specs)}] {spec.slug}: {outcome.status} "
                f"in {outcome.seconds:.1f} s — {done} done, {failed} failed, {left} left, "
                f"ETA {_eta_text(eta)}"
            )
            if outcome.error:
                line += f"\n    {outcome.error}"
            progress.info(line)
    return outcomes
