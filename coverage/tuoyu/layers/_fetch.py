"""Downloading OSM layers for a named place with osmnx (Overpass). Never used in tests.

``tuoyu data fetch "渝中区, 重庆市" --name chongqing-yuzhong-fresh`` writes the walking
network (OSM XML, unsimplified so every way keeps its geometry) and the district outline
into the data directory, prints their sha256 for ``data/registry.toml`` and writes a
draft study-area file.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from tuoyu.config.data_registry import file_sha256
from tuoyu.outputs.atomic import atomic_path, write_text_atomic
from tuoyu.progress import Progress


def fetch_place(place: str, name: str, data_dir: Path, progress: Progress) -> dict[str, Path]:
    """Download the walk network and outline of ``place`` into ``data_dir / name``.

    Parameters
    ----------
    place
        A Nominatim query (e.g. ``"渝中区, 重庆市, 中国"``).
    name
        Folder and study-area name for the result.
    data_dir
        The external data directory.
    progress
        Progress reporter.

    Returns
    -------
    dict
        ``{"network": path, "outline": path}``.
    """
    import osmnx as ox  # heavy import and network access: only on this path

    folder = data_dir / name
    folder.mkdir(parents=True, exist_ok=True)
    with progress.step(f"outline of {place} (Nominatim)"):
        outline = ox.geocode_to_gdf(place)
        outline_path = folder / "district.geojson"
        with atomic_path(outline_path) as tmp:
            outline[["geometry"]].to_file(tmp, driver="GeoJSON")
    with progress.step(f"walking network of {place} (Overpass, network_type='walk')"):
        graph = ox.graph_from_polygon(
            outline.geometry.iloc[0], network_type="walk", simplify=False, retain_all=True
        )
        network_path = folder / "walk.osm"
        with atomic_path(network_path) as tmp:
            ox.io.save_graph_xml(graph, tmp)
    today = dt.date.today().isoformat()
    for path in (outline_path, network_path):
        rel = path.relative_to(data_dir).as_posix()
        progress.info(
            f'[[file]]\npath = "{rel}"\nsha256 = "{file_sha256(path)}"\n'
            f'origin = "OpenStreetMap via osmnx ({place}), downloaded {today}"\n'
            f'licence = "ODbL-1.0"\nattribution = "© OpenStreetMap contributors"\n'
        )
    write_text_atomic(
        folder / f"{name}.toml",
        f'[area]\nname = "{place}"\ncode = "000000"  # set the district code\n'
        f'target_profile = "chongqing-2025"  # choose the profile\n'
        f'outline = "{name}/district.geojson"\n\n[network]\npath = "{name}/walk.osm"\n\n'
        "[units]\nh3_resolution = 8\n",
    )
    progress.info(
        f"draft study area: {folder / (name + '.toml')} — copy it to data/areas/ and add the "
        "[[file]] entries above to data/registry.toml"
    )
    return {"network": network_path, "outline": outline_path}
