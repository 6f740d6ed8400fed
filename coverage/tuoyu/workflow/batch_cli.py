"""The ``tuoyu batch`` sub-command: many study areas on a Dask cluster.

Registered by :func:`add_batch_parser` (called from ``tuoyu.cli.build_parser``); the work
is :func:`tuoyu.workflow.batch.run_batch`.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from tuoyu.config.settings import get_settings
from tuoyu.errors import InputValidationError
from tuoyu.progress import Progress


def add_tiling_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--tile-size-m`` and ``--tile-above-nodes`` (``tuoyu run`` and ``tuoyu batch``).

    Examples
    --------
    >>> parser = argparse.ArgumentParser()
    >>> add_tiling_arguments(parser)
    >>> args = parser.parse_args(["--tile-size-m", "4000"])
    >>> args.tile_size_m, args.tile_above_nodes
    (4000.0, None)
    """
    parser.add_argument(
        "--tile-size-m",
        type=float,
        default=None,
        metavar="M",
        help="route large areas in square tiles of M metres with a halo of the 15-minute "
        "walk plus the snapping distance (results equal the untiled run); 0: never tile; "
        "default: the study area's [run] tile_size_m",
    )
    parser.add_argument(
        "--tile-above-nodes",
        type=int,
        default=None,
        metavar="N",
        help="tile only areas whose walking network has more than N nodes (tiles of "
        "--tile-size-m, default 5000 m); default: the study area's [run] tile_above_nodes",
    )


def add_batch_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``tuoyu batch AREAS... [--out DIR] [--scheduler ADDR] [--workers N] ...``.

    Parameters
    ----------
    subparsers
        The object ``ArgumentParser.add_subparsers()`` returned.

    Returns
    -------
    argparse.ArgumentParser
        The ``batch`` parser; its ``func`` returns the exit code (1 when an area failed).

    Examples
    --------
    >>> parser = argparse.ArgumentParser(prog="tuoyu")
    >>> _ = add_batch_parser(parser.add_subparsers(dest="command"))
    >>> args = parser.parse_args(["batch", "a.toml", "areas/", "--workers", "3"])
    >>> args.areas, args.workers, args.out
    (['a.toml', 'areas/'], 3, PosixPath('out/batch'))
    """
    batch = subparsers.add_parser(
        "batch",
        help="run many study areas at once on a Dask cluster (one task per area)",
        description="Run many study areas; tables per area in OUT/<area>/, the per-街道 "
        "table of all areas in OUT/jiedao.parquet, one row per area in "
        "OUT/districts.parquet and the ranked OUT/rollup.csv/.xlsx. Areas whose inputs "
        "and parameters did not change since the last run into OUT are skipped.",
    )
    batch.add_argument(
        "areas", nargs="+", help="study-area names, .toml paths or folders of .toml files"
    )
    batch.add_argument("--out", type=Path, default=Path("out/batch"), help="output folder")
    batch.add_argument(
        "--scheduler",
        default=None,
        help="address of a running Dask scheduler (tcp://host:8786); default: a local cluster",
    )
    batch.add_argument(
        "--workers", type=int, default=None, help="worker processes of the local cluster (2)"
    )
    batch.add_argument(
        "--retries", type=int, default=1, help="retries of a task that crashed (default 1)"
    )
    batch.add_argument("--month", default=None, help="reporting month YYYY-MM (default: now)")
    batch.add_argument(
        "--no-maps", action="store_true", help="do not write the HTML maps of each area"
    )
    add_tiling_arguments(batch)
    batch.set_defaults(func=cmd_batch)
    parser: argparse.ArgumentParser = batch
    return parser


def cmd_batch(args: argparse.Namespace) -> int:
    """Run ``tuoyu batch``; 0 when every area succeeded or was unchanged, else 1."""
    import importlib.util

    from tuoyu.workflow.batch import run_batch  # the run's modules load on use, not per command

    if importlib.util.find_spec("distributed") is None:
        raise InputValidationError(
            'tuoyu batch needs Dask: pip install "tuoyu-coverage[batch]" (distributed, pyarrow)'
        )
    progress = Progress()
    result = run_batch(
        args.areas,
        args.out,
        scheduler=args.scheduler,
        workers=args.workers,
        settings=get_settings(),
        progress=progress,
        retries=args.retries,
        month=args.month,
        write_map_files=not args.no_maps,
        tile_size_m=args.tile_size_m,
        tile_above_nodes=args.tile_above_nodes,
    )
    for outcome in result.failed:
        progress.info(f"failed: {outcome.slug}: {outcome.error}")
    progress.info(
        f"wrote {result.out_root} (rollup.csv, rollup.html, districts.parquet, jiedao.parquet)"
    )
    return 0 if result.ok else 1
