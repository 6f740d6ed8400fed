"""Batch throughput: many synthetic study areas serially and on a Dask LocalCluster.

A *synthetic province* is a set of synthetic districts (:func:`write_synthetic_area`),
each a jittered street grid (``tuoyu.synthetic.synthetic_city``) written as a GeoParquet
road line layer in EPSG:32648, square 街道 polygons, a facility registry (GeoJSON,
WGS84) and population weight points with 街道 totals. Nothing here is a real place.

Measured in one run: the serial loop (``analyse_area`` in a for loop) and
``run_batch`` with 1 and 2 workers; throughput in areas per minute, CPU seconds per
area and the peak RSS of each worker process (of the one process for the serial loop),
printed as a table. Results go to ``benchmarks/results/batch.json``::

    .venv/bin/python -m benchmarks.batch --areas 12 --nodes 100000 --facilities 300 \
        --population 50000 --json

``--tile-size-m`` routes every area tile by tile (:mod:`tuoyu.workflow.tiles`), to
compare the memory of tiled and whole runs. A smoke run::

    .venv/bin/python -m benchmarks.batch --areas 3 --nodes 900 --facilities 8 \
        --population 300 --no-save
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from tuoyu.synthetic import SYNTHETIC_CRS, random_facilities, synthetic_city

from benchmarks._common import machine_description, peak_rss_mb, write_result


def write_synthetic_area(
    folder: Path,
    slug: str,
    *,
    n_nodes: int,
    n_facilities: int,
    n_population: int,
    seed: int,
    units_per_side: int = 3,
    isochrone_method: str = "exact",
    offset_m: tuple[float, float] = (0.0, 0.0),
    tile_size_m: float | None = None,
) -> Path:
    """Write one synthetic study area (data files and its TOML) under ``folder``.

    Files go to ``folder / slug``; the TOML is ``folder / f"{slug}.toml"`` and names
    them by absolute path (absolute paths are read in place, not registry-checked).

    Parameters
    ----------
    folder
        Where to write.
    slug
        File stem of the TOML (the area's output folder name).
    n_nodes, n_facilities, n_population
        Size of the street grid, the facility registry and the population weight points.
    seed
        Seed of every random draw (same seed, same files).
    units_per_side
        The 街道 are ``units_per_side²`` squares over the network's extent.
    isochrone_method
        ``[walk] isochrone_method`` (``walk_field``, the library's default and the
        command line's here, ``exact`` or ``grid``).
    offset_m
        Shift of every layer (metres east, north), so that the districts of a synthetic
        province lie side by side instead of on top of each other.
    tile_size_m
        ``[run] tile_size_m`` (route in tiles of this side), none by default.

    Returns
    -------
    pathlib.Path
        The TOML file.
    """
    data = folder / slug
    data.mkdir(parents=True, exist_ok=True)
    net = synthetic_city(n_nodes, seed=seed)
    if offset_m != (0.0, 0.0):
        net = dataclasses.replace(
            net, node_x_m=net.node_x_m + offset_m[0], node_y_m=net.node_y_m + offset_m[1]
        )
    segments = net.edge_segments()
    roads = gpd.GeoDataFrame(
        {"road_id": np.arange(net.n_edges, dtype=np.int64)},
        geometry=shapely.linestrings(segments),
        crs=SYNTHETIC_CRS,
    )
    roads.to_parquet(data / "roads.parquet")

    x0, x1 = float(net.node_x_m.min()) - 50.0, float(net.node_x_m.max()) + 50.0
    y0, y1 = float(net.node_y_m.min()) - 50.0, float(net.node_y_m.max()) + 50.0
    xs = np.linspace(x0, x1, units_per_side + 1)
    ys = np.linspace(y0, y1, units_per_side + 1)
    boxes, codes, names = [], [], []
    for i in range(units_per_side):
        for j in range(units_per_side):
            k = i * units_per_side + j + 1
            boxes.append(shapely.box(xs[j], ys[i], xs[j + 1], ys[i + 1]))
            codes.append(f"{seed:04d}{k:03d}")
            names.append(f"合成街道{k:02d}")
    units = gpd.GeoDataFrame({"code": codes, "name": names}, geometry=boxes, crs=SYNTHETIC_CRS)
    units.to_file(data / "jiedao.geojson", driver="GeoJSON")

    rng = np.random.default_rng(seed + 7)
    fx, fy = random_facilities(net, n_facilities, seed + 1, max_offset_m=20.0)
    facilities = gpd.GeoDataFrame(
        {
            "id": [f"F{seed}-{i:04d}" for i in range(n_facilities)],
            "name": [f"合成托育点{i:04d}" for i in range(n_facilities)],
            "kind": ["社区托育点"] * n_facilities,
            "puhui": np.where(rng.random(n_facilities) < 0.6, "是", "否"),
            "slots": rng.integers(10, 120, n_facilities),
        },
        geometry=gpd.points_from_xy(fx, fy),
        crs=SYNTHETIC_CRS,
    ).to_crs("EPSG:4326")
    facilities.to_file(data / "facilities.geojson", driver="GeoJSON")

    px, py = random_facilities(net, n_population, seed + 2, max_offset_m=40.0)
    weights = gpd.GeoDataFrame(
        {"weight": rng.uniform(1.0, 10.0, n_population)},
        geometry=gpd.points_from_xy(px, py),
        crs=SYNTHETIC_CRS,
    )
    weights.to_file(data / "weights.geojson", driver="GeoJSON")
    totals = pd.DataFrame(
        {"code": codes, "registered_population": rng.integers(5_000, 60_000, len(codes))}
    )
    totals.to_csv(data / "totals.csv", index=False, encoding="utf-8")

    toml = f"""# Synthetic study area (not a real place), seed {seed}.
[area]
name = "合成区{seed}"
name_en = "Synthetic district {seed}"
code = "{990000 + seed}"
target_profile = "chongqing-2025"

[walk]
speed_kmh = 4.0
minutes = [5, 10, 15]
max_snap_m = 300
isochrone_method = "{isochrone_method}"

[network]
path = "{(data / "roads.parquet").as_posix()}"
crs = "EPSG:32648"

[units]
path = "{(data / "jiedao.geojson").as_posix()}"
crs = "EPSG:32648"
code_field = "code"
name_field = "name"

[facilities]
path = "{(data / "facilities.geojson").as_posix()}"
crs = "wgs84"

[population]
totals = "{(data / "totals.csv").as_posix()}"
totals_field = "registered_population"
totals_code_field = "code"
weights = "{(data / "weights.geojson").as_posix()}"
weights_crs = "EPSG:32648"
weights_field = "weight"
under3_share = 0.015
"""
    if tile_size_m is not None:
        toml += f"""
[run]
tile_size_m = {tile_size_m}
"""
    path = folder / f"{slug}.toml"
    path.write_text(toml, encoding="utf-8")
    return path


def _serial(
    tomls: list[str], out_root: str, cache_dir: str, month: str, tile_size_m: float | None = None
) -> dict[str, Any]:
    """The serial loop in a fresh process: ``analyse_area`` for each area, one by one."""
    from tuoyu.config.settings import get_settings
    from tuoyu.progress import SILENT
    from tuoyu.workflow.run import analyse_area

    settings = get_settings(cache_dir=Path(cache_dir))
    start = time.perf_counter()
    seconds = []
    cpu_seconds = []
    for toml in tomls:
        t0 = time.perf_counter()
        c0 = time.process_time()
        slug = Path(toml).stem
        analyse_area(toml, Path(out_root) / slug, settings, SILENT, month=month,
                     maps_dir=Path(out_root) / slug / "maps", tile_size_m=tile_size_m)  # fmt: skip
        seconds.append(time.perf_counter() - t0)
        cpu_seconds.append(time.process_time() - c0)
    return {
        "seconds": time.perf_counter() - start,
        "area_seconds": seconds,
        "area_cpu_seconds": cpu_seconds,
        "peak_rss_mb": peak_rss_mb(),
    }


def _batch(
    tomls: list[str],
    out_root: str,
    cache_dir: str,
    month: str,
    workers: int,
    tile_size_m: float | None = None,
) -> dict[str, Any]:
    from tuoyu.config.settings import get_settings
    from tuoyu.progress import SILENT
    from tuoyu.workflow.batch import run_batch

    settings = get_settings(cache_dir=Path(cache_dir))
    start = time.perf_counter()
    result = run_batch(tomls, out_root, workers=workers, settings=settings, progress=SILENT,
                       month=month, tile_size_m=tile_size_m)  # fmt: skip
    seconds = time.perf_counter() - start
    peaks: dict[str, float] = {}
    for outcome in result.outcomes:
        if outcome.worker and outcome.peak_rss_mb is not None:
            peaks[outcome.worker] = max(peaks.get(outcome.worker, 0.0), outcome.peak_rss_mb)
    return {
        "seconds": seconds,
        "area_seconds": [o.seconds for o in result.outcomes],
        "area_cpu_seconds": [o.cpu_seconds for o in result.outcomes],
        "statuses": result.statuses(),
        "peak_rss_mb_per_worker": sorted(peaks.values()),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Write the synthetic province, run serial / 1 worker / 2 workers, report."""
    parser = argparse.ArgumentParser(description="tuoyu batch throughput benchmark")
    parser.add_argument("--areas", type=int, default=8)
    parser.add_argument("--nodes", type=int, default=50_000)
    parser.add_argument("--facilities", type=int, default=300)
    parser.add_argument("--population", type=int, default=25_000)
    parser.add_argument("--workers", default="1,2", help="worker counts to run, comma-separated")
    parser.add_argument(
        "--isochrones", default="walk_field", choices=["walk_field", "grid", "exact"]
    )
    parser.add_argument(
        "--tile-size-m",
        type=float,
        default=None,
        help="route each area in tiles of this side (tuoyu.workflow.tiles); default: whole",
    )
    parser.add_argument("--json", action="store_true", help="print the result JSON")
    parser.add_argument("--no-save", action="store_true", help="do not write results/batch.json")
    args = parser.parse_args(argv)
    month = "2026-11"
    base = Path(tempfile.mkdtemp(prefix="tuoyu-batch-bench-"))
    try:
        t0 = time.perf_counter()
        tomls = [
            str(write_synthetic_area(base / "areas", f"district-{i:02d}", n_nodes=args.nodes,
                                     n_facilities=args.facilities, n_population=args.population,
                                     seed=100 + i, isochrone_method=args.isochrones))
            for i in range(args.areas)
        ]  # fmt: skip
        write_s = time.perf_counter() - t0
        runs: dict[str, Any] = {}
        ctx = get_context("spawn")
        with ProcessPoolExecutor(1, mp_context=ctx) as pool:
            runs["serial"] = pool.submit(
                _serial, tomls, str(base / "serial"), str(base / "cache-serial"), month,
                args.tile_size_m,
            ).result()  # fmt: skip
        for n in (int(w) for w in args.workers.split(",")):
            with ProcessPoolExecutor(1, mp_context=ctx) as pool:
                runs[f"workers_{n}"] = pool.submit(
                    _batch, tomls, str(base / f"w{n}"), str(base / f"cache-w{n}"), month, n,
                    args.tile_size_m,
                ).result()  # fmt: skip
        for run in runs.values():
            run["areas_per_minute"] = round(60.0 * args.areas / run["seconds"], 2)
        result = {
            "case": {
                "areas": args.areas,
                "nodes_per_area": args.nodes,
                "facilities_per_area": args.facilities,
                "population_points_per_area": args.population,
                "isochrone_method": args.isochrones,
                "tile_size_m": args.tile_size_m,
                "maps": True,
                "synthetic": "tuoyu.synthetic.synthetic_city jittered grids (not real places)",
            },
            "write_inputs_s": round(write_s, 2),
            "load_average_1m_after": os.getloadavg()[0],
            "runs": runs,
            "machine": machine_description(("dask", "distributed", "pyarrow", "numpy", "scipy")),
        }
    finally:
        shutil.rmtree(base, ignore_errors=True)
    if not args.no_save:
        write_result("batch", result)
    print(report_table(result))
    if args.json:
        print(json.dumps(result, indent=2, ensure_ascii=False))
    return result


def report_table(result: dict[str, Any]) -> str:
    """The runs side by side: areas/minute, wall and CPU time, peak memory per process."""
    case = result["case"]
    lines = [
        f"{case['areas']} synthetic areas of {case['nodes_per_area']:,} nodes, "
        f"{case['facilities_per_area']} facilities, {case['population_points_per_area']:,} "
        f"population points; isochrones {case['isochrone_method']}, tiles "
        f"{case.get('tile_size_m') or 'none'}; load average after "
        f"{result['load_average_1m_after']:.2f}",
        f"{'run':<11} {'areas/min':>9} {'wall s':>8} {'CPU-s/area':>10}  peak RSS per process (MiB)",
    ]
    for name, run in result["runs"].items():
        cpu = sorted(c for c in run["area_cpu_seconds"] if c is not None)
        median = cpu[len(cpu) // 2] if cpu else float("nan")
        peaks = run.get("peak_rss_mb_per_worker") or [run.get("peak_rss_mb")]
        peak_text = ", ".join(f"{p:,.0f}" for p in peaks if p is not None)
        label = "serial loop" if name == "serial" else name.replace("_", " ")
        lines.append(
            f"{label:<11} {run['areas_per_minute']:>9.2f} {run['seconds']:>8.1f} "
            f"{median:>10.2f}  {peak_text}"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
