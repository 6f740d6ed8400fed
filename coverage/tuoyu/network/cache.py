"""The on-disk cache of parsed walking networks (one ``.npz`` per file hash and options).

Both network loaders (OSM, road line layers) keep their parse here under
``settings.cache_dir / "networks"``, keyed by the source file's sha256; an entry that is
missing or damaged reads as ``None`` and is rebuilt.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from pyproj import CRS

from tuoyu.network.walk_network import WalkNetwork
from tuoyu.outputs.atomic import write_with_atomic

ARRAYS = ("node_id", "node_x_m", "node_y_m", "edge_u", "edge_v", "edge_length_m", "edge_way_id")
"""The network's arrays, stored as they are."""


def write_network_cache(target: Path, net: WalkNetwork, metadata: Mapping[str, Any]) -> None:
    """Store ``net`` (with JSON-ready ``metadata``) at ``target``, atomically."""
    arrays: dict[str, Any] = {name: getattr(net, name) for name in ARRAYS}
    arrays["crs_wkt"] = np.asarray(net.crs.to_wkt())
    arrays["metadata_json"] = np.asarray(json.dumps(dict(metadata), ensure_ascii=False))

    def _writer(tmp: Path) -> None:
        with tmp.open("wb") as fh:  # a file object: np.savez would append ".npz" to a name
            np.savez(fh, **arrays)

    write_with_atomic(target, _writer)


def read_network_cache(target: Path, source: str) -> WalkNetwork | None:
    """The cached network (its metadata as stored, JSON), or ``None`` when the entry is
    missing or unreadable."""
    if not target.is_file():
        return None
    try:
        # Read member by member from the file (an entry is replaced atomically, so an open
        # handle sees one whole version), not through a copy of all its bytes.
        with np.load(target, allow_pickle=False) as data:
            arrays = {name: np.asarray(data[name]) for name in ARRAYS}
            crs = CRS.from_wkt(str(data["crs_wkt"]))
            metadata = json.loads(str(data["metadata_json"]))
    except (OSError, ValueError, KeyError, zipfile.BadZipFile):
        return None  # a damaged entry is rebuilt and overwritten
    return WalkNetwork(
        node_id=arrays["node_id"].astype(np.int64, copy=False),
        node_x_m=arrays["node_x_m"].astype(np.float64, copy=False),
        node_y_m=arrays["node_y_m"].astype(np.float64, copy=False),
        edge_u=arrays["edge_u"].astype(np.int64, copy=False),
        edge_v=arrays["edge_v"].astype(np.int64, copy=False),
        edge_length_m=arrays["edge_length_m"].astype(np.float64, copy=False),
        edge_way_id=arrays["edge_way_id"].astype(np.int64, copy=False),
        crs=crs,
        source=source,
        metadata=metadata,
    )
