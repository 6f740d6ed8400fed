"""Batch throughput: many synthetic study areas serially and on a Dask LocalCluster.

A *synthetic province* is a set of synthetic districts (:func:`write_synthetic_area`),
each a jittered street grid (``tuoyu.synthetic.synthetic_city``) written as a GeoParquet
road line layer in EPSG:32648, square 街道 polygons, a facility registry (GeoJSON,
WGS84) and population weight points with 街道 totals. Nothing here is a real place.

Measured in one run: the serial loop (``analyse_area`` in a for loop) and
``run_batch`` with 1 and 2 workers; throughput in areas per minute and the peak RSS of
each worker process. Results go to ``benchmarks/results/batch.json``::

    .venv/bin/python -m benchmarks.batch --areas 12 --nodes 100000 --facilities 300 \
        --population 50000 --json
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from tuoyu.synthetic import SYNTHETIC_CRS, random_facilities, synthetic_city

RESULTS_FILE = Path(__file__).resolve().parent / "results" / "batch.json"


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
        ``[walk] isochrone_method`` (``exact`` or ``grid``).

    Returns
    -------
    pathlib.Path
        The TOML file.
    """
    data = folder / slug
    data.mkdir(parents=True, exist_ok=True)
    net = synthetic_city(n_nodes, seed=seed)
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
    path = folder / f"{slug}.toml"
    path.write_text(toml, encoding="utf-8")
    return path
