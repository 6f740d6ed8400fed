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


def alternating_rounds(
    tools: dict[str, Callable[[], Any]], rounds: int = 5
) -> dict[str, dict[str, Any]]:
    """Time several tools in this process, strictly alternating, ``rounds`` times each.

    Round ``r`` calls every tool once, in the order given, so a change of machine load
    hits all of them alike. CPU time is the process's (every thread:
    ``time.process_time``); the 1-minute load average is recorded before the first and
    after the last round. A tool that raises is reported with its error and not timed
    again (never extrapolated).

    Returns
    -------
    dict
        Per tool: ``cpu_s_median``, ``wall_s_median``, ``cpu_s_all``, ``wall_s_all`` (or
        ``error``), and under the key ``"_load"`` the load averages.

    Examples
    --------
    >>> out = alternating_rounds({"a": lambda: sum(range(10)), "b": lambda: 1 / 0}, rounds=5)
    >>> len(out["a"]["wall_s_all"]), out["b"]["error"]
    (5, 'ZeroDivisionError: division by zero')
    """
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds}")
    load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    cpu: dict[str, list[float]] = {name: [] for name in tools}
    wall: dict[str, list[float]] = {name: [] for name in tools}
    errors: dict[str, str] = {}
    for _ in range(rounds):
        for name, fn in tools.items():
            if name in errors:
                continue
            cpu0, wall0 = time.process_time(), time.perf_counter()
            try:
                fn()
            except Exception as exc:  # reported, not timed again
                errors[name] = f"{type(exc).__name__}: {exc}"
                continue
            wall[name].append(time.perf_counter() - wall0)
            cpu[name].append(time.process_time() - cpu0)
    out: dict[str, dict[str, Any]] = {}
    for name in tools:
        if name in errors:
            out[name] = {"error": errors[name], "rounds_done": len(wall[name])}
            continue
        out[name] = {
            "cpu_s_median": statistics.median(cpu[name]),
            "wall_s_median": statistics.median(wall[name]),
            "cpu_s_all": cpu[name],
            "wall_s_all": wall[name],
        }
    out["_load"] = {
        "load_1m_before": load_before,
        "load_1m_after": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "rounds": rounds,
    }
    return out


class NotRun(Exception):
    """A tool that cannot run in this case (not installed, too large): reported, not timed."""


def not_run(reason: str) -> Callable[[], None]:
    """A stand-in tool for :func:`alternating_rounds` that reports ``reason`` untimed.

    Examples
    --------
    >>> alternating_rounds({"peer": not_run("not installed")}, rounds=5)["peer"]["error"]
    'NotRun: not installed'
    """

    def tool() -> None:
        raise NotRun(reason)

    return tool


def missing_module(name: str) -> str | None:
    """``None`` when ``name`` imports, else why not (to report the peer as not run)."""
    try:
        __import__(name)
    except Exception as exc:  # ImportError, or a broken install
        return f"{name} not importable here ({type(exc).__name__}: {exc})"
    return None


def ratios_against(
    timings: dict[str, dict[str, Any]], ours: str, peers: Sequence[str] | None = None
) -> dict[str, dict[str, Any]]:
    """Peer median / our median, CPU and wall, from :func:`alternating_rounds` output.

    A peer without timings (it failed or was not run) gets its reason, never a ratio;
    ratios > 1 mean we are faster.

    Examples
    --------
    >>> t = {"ours": {"cpu_s_median": 1.0, "wall_s_median": 2.0},
    ...      "peer": {"cpu_s_median": 3.0, "wall_s_median": 4.0},
    ...      "gone": {"error": "NotRun: not installed", "rounds_done": 0}}
    >>> ratios_against(t, "ours")
    {'peer': {'cpu': 3.0, 'wall': 2.0}, 'gone': {'not_measured': 'NotRun: not installed'}}
    """
    base = timings[ours]
    names = [n for n in timings if n not in (ours, "_load")] if peers is None else list(peers)
    out: dict[str, dict[str, Any]] = {}
    for name in names:
        item = timings[name]
        if "error" in item or "error" in base:
            out[name] = {"not_measured": item.get("error") or base.get("error")}
            continue
        out[name] = {
            "cpu": round(item["cpu_s_median"] / base["cpu_s_median"], 2)
            if base["cpu_s_median"] > 0
            else None,
            "wall": round(item["wall_s_median"] / base["wall_s_median"], 2)
            if base["wall_s_median"] > 0
            else None,
        }
    return out


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
