"""Timing, memory and result-writing helpers shared by the benchmark scripts.

Keep this generic: no project imports beyond the atomic writer.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from importlib import metadata
from multiprocessing import get_context
from pathlib import Path
from typing import Any, TypeVar

from tuoyu.outputs.atomic import write_text_atomic

T = TypeVar("T")

RESULTS_DIR = Path(__file__).resolve().parent / "results"
DEFAULT_PACKAGES = ("numpy", "scipy", "shapely", "osmium", "osmnx", "networkx", "pyrosm")


def measure(fn: Callable[[], T]) -> tuple[float, T]:
    """Call ``fn()`` once; return ``(wall-clock seconds, result)``."""
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MiB (Linux reports KiB)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024.0 if sys.platform != "darwin" else peak / (1024.0 * 1024.0)


def _repeat_in_child(fn: Callable[..., Any], args: Sequence[Any], repeat: int) -> dict[str, Any]:
    rss_before = peak_rss_mb()
    seconds: list[float] = []
    summary: Any = None
    for _ in range(repeat):
        elapsed, summary = measure(lambda: fn(*args))
        seconds.append(elapsed)
    return {
        "seconds_first": seconds[0],
        "seconds_best": min(seconds),
        "seconds_median": statistics.median(seconds),
        "seconds_all": seconds,
        "peak_rss_mb_before": rss_before,
        "peak_rss_mb": peak_rss_mb(),
        "summary": summary,
    }


def run_isolated(fn: Callable[..., Any], *args: Any, repeat: int = 3) -> dict[str, Any]:
    """Time ``fn(*args)`` ``repeat`` times in a fresh (spawned) process.

    A fresh process per tool keeps one tool's imports, caches and memory out of the
    next one's figures. ``fn`` must be a module-level function (it is pickled by name);
    its module's imports happen before timing starts. ``fn`` should return a small
    picklable summary (counts, totals), not the loaded object.

    Returns
    -------
    dict
        ``seconds_first``, ``seconds_best``, ``seconds_median``, ``seconds_all``,
        ``peak_rss_mb_before`` (after imports), ``peak_rss_mb`` and ``summary``.
    """
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
        return pool.submit(_repeat_in_child, fn, args, repeat).result()


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / (1024.0 * 1024.0), 1)
    except OSError:
        pass
    return None


def machine_description(packages: Sequence[str] = DEFAULT_PACKAGES) -> dict[str, Any]:
    """What the numbers were measured on: CPU, cores, memory, OS, Python, versions."""
    versions: dict[str, str | None] = {}
    for name in packages:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "memory_gib": _memory_gib(),
        "load_average_1m": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "os": platform.platform(),
        "python": platform.python_version(),
        "packages": versions,
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def write_result(name: str, payload: dict[str, Any]) -> Path:
    """Write ``payload`` as JSON to ``benchmarks/results/<name>.json`` atomically."""
    target = RESULTS_DIR / f"{name}.json"
    write_text_atomic(target, json.dumps(payload, ensure_ascii=False, indent=2) + "\n")
    return target
