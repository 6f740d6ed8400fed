"""Choosing the walking-network loader from the file name: OSM or road line layer."""

from __future__ import annotations

from pathlib import Path

from tuoyu.config.settings import Settings
from tuoyu.config.study_area import NetworkSection
from tuoyu.errors import AreaConfigError
from tuoyu.layers.line_network import load_line_network
from tuoyu.layers.osm_network import OSM_SUFFIXES, load_walk_network
from tuoyu.network.walk_network import WalkNetwork
from tuoyu.progress import SILENT, Progress

__all__ = ["is_osm_file", "load_network_file"]


def is_osm_file(path: str | Path) -> bool:
    """True when the name ends like an OSM file (``.osm.pbf``, ``.osm``, ``.osm.bz2`` ...).

    Examples
    --------
    >>> is_osm_file("yuzhong.osm.pbf"), is_osm_file("roads.geojson")
    (True, False)
    """
    name = Path(path).name.lower()
    return any(name.endswith(suffix) for suffix in OSM_SUFFIXES)


def load_network_file(
    path: str | Path,
    section: NetworkSection | None = None,
    settings: Settings | None = None,
    progress: Progress = SILENT,
) -> WalkNetwork:
    """Load the walking network of a study area with the loader its file needs.

    Parameters
    ----------
    path
        The resolved network file: an OSM file (see :data:`OSM_SUFFIXES`) or any road
        line layer pyogrio reads.
    section
        The study area's ``[network]`` section; its ``crs``, ``exclude`` and
        ``join_tolerance_m`` go to :func:`~tuoyu.layers.line_network.load_line_network`.
    settings
        Cache directory and registry (``None``: no cache).
    progress
        Progress reporter.

    Returns
    -------
    WalkNetwork

    Raises
    ------
    AreaConfigError
        An OSM file given with line-layer options (they would be ignored silently).
    """
    section = section or NetworkSection()
    if is_osm_file(path):
        ignored = [
            name
            for name, value, default in (
                ("crs", section.crs.strip().lower(), "wgs84"),
                ("exclude", section.exclude, {}),
                ("join_tolerance_m", section.join_tolerance_m, None),
            )
            if value != default
        ]
        if ignored:
            raise AreaConfigError(
                f"[network] {', '.join(ignored)} apply to road line layers, not to the OSM "
                f"file {path} (OSM is WGS84 and filtered by the osmnx 'walk' tags); "
                "remove them"
            )
        return load_walk_network(path, settings=settings, progress=progress)
    return load_line_network(
        path,
        crs=section.crs,
        exclude=section.exclude,
        join_tolerance_m=section.join_tolerance_m,
        settings=settings,
        progress=progress,
    )
