"""The end-to-end run of a study area (``tuoyu run``): the core model, then its files.

Data flows one way: sources → validated layers (:mod:`tuoyu.workflow.layers`) → the
area's model (:class:`tuoyu.workflow.core.AreaModel`: graph, snapping, reach,
indicators) → outputs. The service and batch runs use the same model; this module only
adds writing. Every argument is checked before the first file is written; a step runs
when its layers are present, and what is skipped is printed and recorded in
``summary.json`` with the reason.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import geopandas as gpd

from tuoyu import __version__
from tuoyu.config.data_registry import file_sha256, resolve_data_dir
from tuoyu.config.settings import Settings, get_settings
from tuoyu.config.study_area import load_area
from tuoyu.errors import DataNotFoundError, InputValidationError
from tuoyu.indicators.baseline import baseline_changes, with_baseline
from tuoyu.indicators.targets import Profile, load_profile
from tuoyu.layers.rejects import write_rejects
from tuoyu.layers.units import has_geometry
from tuoyu.outputs.atomic import write_text_atomic
from tuoyu.outputs.maps import save_map
from tuoyu.outputs.reports import write_reports
from tuoyu.progress import Progress
from tuoyu.workflow.area_maps import build_area_map
from tuoyu.workflow.core import MAP_NAMES, AreaModel
from tuoyu.workflow.layers import AreaLayers, load_layers, load_registry_snapshot
from tuoyu.workflow.steps import IndicatorResults, ReachResults, population_with_walk
from tuoyu.workflow.tiles import area_model, check_tiling

SIDECAR_SUFFIXES: Final = (".isochrones", ".layers")
"""Folders of side files a map page reads on demand (``<map>.isochrones``, ``<map>.layers``)."""

_MONTH = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")


@dataclass(frozen=True)
class AreaRun:
    """Everything one run of a study area produced (see :func:`analyse_area`)."""

    model: AreaModel
    results: IndicatorResults
    out_dir: Path
    maps_dir: Path
    written: dict[str, Path] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    run_id: str = ""

    def seal(self) -> Path:
        """(Re)write the manifest after more files were added to :attr:`written`."""
        return finish_manifest(self.out_dir, self.run_id, self.written)

    @property
    def layers(self) -> AreaLayers:
        """The layers with the facility set measured."""
        return self.model.current_layers()

    @property
    def reach(self) -> ReachResults | None:
        """The walking reach."""
        return self.model.reach()

    @property
    def profile(self) -> Profile:
        """The target profile."""
        return self.model.profile


def check_month(month: str | None) -> str:
    """The reporting month ``YYYY-MM`` (default: this month), checked before any write.

    >>> check_month("2025-03")
    '2025-03'
    """
    if month is None:
        return dt.date.today().strftime("%Y-%m")
    if not _MONTH.match(month):
        raise InputValidationError(f"--month must be YYYY-MM, got {month!r}", field="month")
    return month


def check_baseline(baseline: str | Path | None) -> Path | None:
    """The baseline registry file, checked before any work (``None`` when not given).

    Raises
    ------
    DataNotFoundError
        The file does not exist.
    """
    if baseline is None:
        return None
    path = Path(baseline)
    if not path.is_file():
        raise DataNotFoundError(f"baseline registry not found: {path}")
    return path


def _with_baseline(
    model: AreaModel, results: IndicatorResults, path: Path, progress: Progress
) -> IndicatorResults:
    """The results with new slots / new 普惠 facilities against the baseline registry."""
    layers = model.current_layers()
    if layers.units is None:
        return results
    loaded = load_registry_snapshot(layers, path, progress)
    progress.info(
        f"  baseline: {len(loaded.facilities)} facilities, {len(loaded.rejects)} rejected"
    )
    current = layers.facilities if layers.facilities is not None else loaded.facilities.iloc[:0]
    changes = baseline_changes(loaded.facilities, current, layers.units)
    table, summary = with_baseline(
        results.table,
        results.summary,
        changes,
        model.profile,
        units_are_jiedao=layers.units_kind in ("jiedao", "jiedao_table"),
        baseline_name=path.name,
    )
    if loaded.warnings:
        summary["warnings"] = [
            *list(summary.get("warnings") or []),
            *(f"baseline {path.name}: {w}" for w in loaded.warnings),
        ]
    return dataclasses.replace(results, table=table, summary=summary)


def write_outputs(
    layers: AreaLayers,
    results: IndicatorResults,
    reach: ReachResults | None,
    isochrones: gpd.GeoDataFrame | None,
    out_dir: Path,
    *,
    month: str,
    profile: Profile | None = None,
    progress: Progress | None = None,
) -> dict[str, Path]:
    """Write tables, GeoJSON, GeoPackage, the progress sheet, the one-page district report
    (with ``profile`` and 街道 polygons) and rejects into ``out_dir``."""
    progress = progress or Progress()
    population = population_with_walk(layers, reach)
    if isochrones is None and layers.network is not None:
        isochrones = gpd.GeoDataFrame(
            {"facility_id": [], "minutes": [], "area_m2": []},
            geometry=gpd.GeoSeries([], crs=layers.metric_crs),
            crs=layers.metric_crs,
        )
    extra = {}
    if len(results.failing):
        extra["未达标街道"] = results.failing
    if len(results.shortfall):
        extra["托位缺口"] = results.shortfall
    with progress.step(f"writing reports to {out_dir}"):
        written = write_reports(
            out_dir,
            table=results.table,
            summary=dict(results.summary),
            month=month,
            units=layers.units,
            facilities=layers.facilities,
            population=population,
            gaps=results.gaps,
            isochrones=isochrones,
            extra_sheets=extra or None,
            profile=profile,
            gpkg_layer_max_bytes=int(layers.settings.gpkg_layer_max_mb * 1e6),
        )
        if layers.rejects:
            written["rejects.csv"] = write_rejects(list(layers.rejects), out_dir)
    return written


def write_maps(
    model: AreaModel,
    maps_dir: Path,
    *,
    sites: gpd.GeoDataFrame | None = None,
    site_isochrones: gpd.GeoDataFrame | None = None,
    progress: Progress | None = None,
) -> tuple[dict[str, Path], dict[str, str]]:
    """Write the facility map, the committee dashboard and the planner's gap map.

    Returns the files written and ``{map: reason}`` for maps the area cannot have.
    """
    progress = progress or Progress()
    layers = model.current_layers()
    written: dict[str, Path] = {}
    skipped: dict[str, str] = {}
    with progress.step(f"maps into {maps_dir}"):
        for name in MAP_NAMES:
            if name == "facilities" and (layers.facilities is None or not len(layers.facilities)):
                skipped["facility map"] = "no registered facilities to show"
                continue
            if name == "dashboard" and layers.units is None:
                skipped["dashboard"] = "no units to show"
                continue
            if name == "dashboard" and not has_geometry(layers.units):
                skipped["dashboard"] = (
                    "the 街道 are a table without polygons: no choropleth to draw / "
                    "街道无边界数据，无法绘制分区地图"
                )
                continue
            fmap = build_area_map(
                name,
                layers,
                model.profile,
                model.results(),
                model.reach(),
                model.isochrones() if name == "facilities" else None,
                model.facility_reaches() if name == "facilities" else None,
                language=layers.settings.language,
                sites=sites if name == "gaps" else None,
                site_isochrones=site_isochrones if name == "gaps" else None,
            )
            written[f"{name}.html"] = save_map(fmap, maps_dir / f"{name}.html")
            # Side files the page reads on demand (isochrones on click, big layers and the
            # walk lookup when on screen): listed with the page, as part of the run.
            for suffix in SIDECAR_SUFFIXES:
                sidecar = maps_dir / f"{name}{suffix}"
                if sidecar.is_dir():
                    written[f"{name}{suffix}/"] = sidecar
    return written, skipped


def analyse_area(
    name_or_path: str | Path,
    out_dir: Path | None = None,
    settings: Settings | None = None,
    progress: Progress | None = None,
    *,
    month: str | None = None,
    maps_dir: Path | None = None,
    write_map_files: bool = True,
    baseline: str | Path | None = None,
    tile_size_m: float | None = None,
    tile_above_nodes: int | None = None,
) -> AreaRun:
    """Load, route, compute indicators and write every output of one study area.

    Tables and layers go to ``out_dir`` (default ``out/<area>`` in the working
    directory), the three maps to ``maps_dir`` (default ``maps/<area>``). With
    ``baseline`` (a previous registry file in the area's facility format) the unit table
    gains ``new_slots`` and ``new_puhui_facilities`` and the summary evaluates
    ``new_slots_per_unit`` (see :mod:`tuoyu.indicators.baseline`). ``tile_size_m`` and
    ``tile_above_nodes`` override the area's ``[run]`` tiling (see
    :func:`tuoyu.workflow.tiles.tile_size_for`); a tiled run writes the same files, its
    ``summary.json`` also says how it was tiled.
    """
    settings = settings or get_settings()
    progress = progress or Progress()
    month = check_month(month)
    baseline_path = check_baseline(baseline)
    check_tiling(tile_size_m, tile_above_nodes)
    area = load_area(name_or_path, settings.project_data_dir)
    out = Path(out_dir) if out_dir is not None else Path("out") / area.slug
    maps_out = Path(maps_dir) if maps_dir is not None else Path("maps") / area.slug
    progress.info(f"study area: {area.area.name} ({area.area.code}) — {area.source_path}")
    progress.info(f"data directory: {resolve_data_dir(settings)}")
    progress.info(
        f"walking speed {area.walk.speed_kmh} km/h, thresholds {area.walk.minutes} min "
        f"(15 min = {area.walk.metres_for(area.walk.max_minutes):.0f} m), snapping ≤ "
        f"{area.walk.max_snap_m:.0f} m (islands < {area.walk.min_component_nodes} nodes not "
        f"snapped to), isochrones: {area.walk.isochrone_method}"
    )
    profile = load_profile(area.area.target_profile, settings.project_data_dir)
    progress.info(f"target profile: {area.area.target_profile}")
    layers = load_layers(area, settings, progress)
    model = area_model(
        layers,
        profile,
        tile_size_m=tile_size_m,
        tile_above_nodes=tile_above_nodes,
        progress=progress,
    )
    n_fac = len(model.facility_ids())
    if model.mode == "network" and n_fac:
        with progress.step(f"isochrones {area.walk.minutes} min for {n_fac} facilities"):
            model.isochrones()
    results = model.results()
    if baseline_path is not None:
        results = _with_baseline(model, results, baseline_path, progress)
    skipped: dict[str, str] = {}
    maps: dict[str, Path] = {}
    run_id = start_manifest(out)
    if write_map_files:
        maps, skipped = write_maps(model, maps_out, progress=progress)
    if skipped:
        summary = dict(results.summary)
        summary["skipped"] = [
            *list(summary.get("skipped") or []),
            *({"indicator": what, "reason": reason} for what, reason in skipped.items()),
        ]
        results = dataclasses.replace(results, summary=summary)
    written = write_outputs(
        model.current_layers(),
        results,
        model.reach(),
        model.isochrones(),
        out,
        month=month,
        profile=model.profile,
        progress=progress,
    )
    written.update({f"maps/{k}": v for k, v in maps.items()})
    for what, reason in {**dict(model.layers.skipped), **skipped}.items():
        progress.info(f"skipped {what}: {reason}")
    finish_manifest(out, run_id, written)
    return AreaRun(model, results, out, maps_out, written, skipped, run_id)


MANIFEST = "manifest.json"
"""Written last by a run: its id and every file it wrote with its sha256. A folder without
it (or whose files do not match it) holds an unfinished run."""


def start_manifest(out_dir: Path) -> str:
    """Begin a run in ``out_dir``: remove the previous run's manifest, return a run id.

    From here until :func:`finish_manifest`, the folder says it holds no complete run,
    so a run killed half way is never mistaken for a finished one.
    """
    (Path(out_dir) / MANIFEST).unlink(missing_ok=True)
    return uuid.uuid4().hex


def finish_manifest(out_dir: Path, run_id: str, written: Mapping[str, Path]) -> Path:
    """Write ``manifest.json``: the run id and each file written with its sha256 and size."""
    files = {}
    for name, path in sorted(written.items()):
        p = Path(path)
        if p.is_file():
            files[name] = {
                "path": os.path.relpath(p, out_dir),
                "sha256": file_sha256(p),
                "bytes": p.stat().st_size,
            }
    text = json.dumps(
        {"run_id": run_id, "tool": f"tuoyu-coverage {__version__}", "files": files},
        ensure_ascii=False,
        indent=2,
        sort_keys=True,
    )
    return write_text_atomic(Path(out_dir) / MANIFEST, text + "\n")


def report_written(run: AreaRun, progress: Progress) -> None:
    """Print where each output file went."""
    progress.info(f"wrote {len(run.written)} files:")
    for name, path in sorted(run.written.items()):
        progress.info(f"  {name}: {path}")


def run_area(
    name_or_path: str | Path,
    out_dir: Path | None = None,
    settings: Settings | None = None,
    progress: Progress | None = None,
    *,
    month: str | None = None,
    maps_dir: Path | None = None,
    baseline: str | Path | None = None,
    tile_size_m: float | None = None,
    tile_above_nodes: int | None = None,
) -> Path:
    """Run the analysis of one study area end to end; return the output folder."""
    progress = progress or Progress()
    run = analyse_area(
        name_or_path,
        out_dir,
        settings,
        progress,
        month=month,
        maps_dir=maps_dir,
        baseline=baseline,
        tile_size_m=tile_size_m,
        tile_above_nodes=tile_above_nodes,
    )
    report_written(run, progress)
    return run.out_dir
