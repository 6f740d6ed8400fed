"""Run every benchmark in sequence and store the results in ``benchmarks/results/``.

``make bench`` (or ``python -m benchmarks.run_all``; ``--only NAME`` for one step). The
steps run one after the other so that they do not compete for the cores; each is
bounded by ``--timeout-s``. About 30 minutes on the 2-core benchmark machine
(2026-12-06: reach 4, isochrones 14, load_network 3, siting 3, the rest 5).

How each step times ours against its peers (``benchmarks/README.md`` quotes them):

* ``reach``, ``isochrones``, ``load_line_network``: ours and every peer in one process,
  strictly alternating, at least 5 rounds, medians of CPU and wall time
  (:func:`benchmarks._common.alternating_rounds` or the same loop), load recorded.
* ``siting_capacitated``: ours and PuLP alternating in one process, ``--rounds 5``,
  medians of wall time.
* ``load_network`` and ``siting``: those scripts time each tool once per process, so
  they run here ``--process-rounds`` times (at least 5) in strictly alternating
  processes (each process times every tool once, in turn), and the medians of those
  runs are stored with every run and the load before and after
  (:func:`process_rounds`). Their scripts record wall time only. ``siting`` runs at a
  size spopt runs in full (``--spopt-full``: nothing extrapolated).
* ``siting_yuzhong`` and ``api_load`` have no peers.

``bigcity`` and ``batch`` are not run here (their owners run them; ``bigcity --peers``
holds its own alternating peer stage).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from typing import Any

from benchmarks._common import machine_description, write_result

STEPS: list[tuple[str, list[str]]] = [
    ("reach", ["-m", "benchmarks.reach", "--all", "--networks", "yuzhong,100000,1000000",
               "--facilities", "1000,5000", "--rounds", "7"]),
    ("load_line_network", ["-m", "benchmarks.load_line_network", "--write", "--rounds", "7"]),
    ("siting_capacitated", ["-m", "benchmarks.siting_capacitated", "--demand", "2000",
                            "--candidates", "300", "--p", "15", "--existing", "10",
                            "--rounds", "5", "--write"]),
    ("siting_yuzhong", ["-m", "benchmarks.siting", "--yuzhong", "--write"]),
    ("api_load", ["-m", "benchmarks.api_load", "--workers", "1,2", "--rates", "100,200,500",
                  "--seconds", "8", "--write"]),
]  # fmt: skip

ISOCHRONE_CASES: list[list[str]] = [
    ["--yuzhong", "--facilities", "1000"],
    ["--nodes", "100000", "--facilities", "1000"],
    ["--nodes", "1000000", "--facilities", "1000"],
]

# name → (command, {tool: JSON path(s) of its seconds, summed}, our tool, what is timed)
PROCESS_STEPS: dict[str, tuple[list[str], dict[str, list[str]], str, str]] = {
    "load_network": (
        ["-m", "benchmarks.load_network", "--json", "--repeat", "1"],
        {
            "ours_pbf": ["results.ours_pbf.seconds_best"],
            "ours_osm_bz2": ["results.ours_osm_bz2.seconds_best"],
            "osmnx_graph_from_xml_walk": ["results.osmnx_graph_from_xml_walk.seconds_best"],
            "pyrosm_walking": ["results.pyrosm_walking.seconds_best"],
        },
        "ours_pbf",
        "each process loads the Yuzhong network once with every tool, each tool in a fresh "
        "spawned child (imports before timing), in turn: ours (PBF), ours (.osm.bz2), osmnx "
        "graph_from_xml + walk filter, pyrosm; wall time",
    ),
    "siting": (
        ["-m", "benchmarks.siting", "--demand", "2000", "--candidates", "1000", "--p", "20",
         "--spopt-full", "--json"],
        {
            "ours_exact": ["ours_exact_s"],
            "ours_greedy": ["ours_greedy_s"],
            "spopt_build_and_solve": ["spopt_build_s", "spopt_solve_s"],
        },
        "ours_exact",
        "each process times, in turn, ours (greedy, then exact HiGHS MILP) and spopt "
        "MCLP.from_cost_matrix build + pulp HiGHS solve, once each, at full size; wall time",
    ),
}  # fmt: skip


def _get(payload: dict[str, Any], path: str) -> float | None:
    node: Any = payload
    for key in path.split("."):
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return float(node) if isinstance(node, int | float) else None


def _last_json(text: str) -> dict[str, Any]:
    """The JSON object a script printed last (indented or on one line)."""
    start = text.find("\n{")
    body = text[start + 1 :] if start >= 0 else text[text.find("{") :]
    return dict(json.loads(body))


def process_rounds(name: str, rounds: int, timeout_s: float) -> dict[str, Any]:
    """Run a one-round-per-process script ``rounds`` times in a row; medians of its times.

    Processes strictly alternate (the script times every tool once, in turn, in each);
    a tool without a time in a run (it failed or did not run) is counted as not measured
    in that run, and gets no ratio when it has no time at all.
    """
    command, paths, ours, what = PROCESS_STEPS[name]
    load_before = os.getloadavg()[0]
    runs: list[dict[str, Any]] = []
    times: dict[str, list[float]] = {tool: [] for tool in paths}
    for k in range(rounds):
        print(f"   round {k + 1}/{rounds}", file=sys.stderr, flush=True)
        done = subprocess.run(
            [sys.executable, *command],
            check=True,
            capture_output=True,
            text=True,
            timeout=timeout_s,
        )
        payload = _last_json(done.stdout)
        payload.pop("machine", None)
        runs.append(payload)
        for tool, keys in paths.items():
            values = [_get(payload, key) for key in keys]
            if all(v is not None for v in values):
                times[tool].append(sum(v for v in values if v is not None))
    medians = {tool: statistics.median(v) if v else None for tool, v in times.items()}
    base = medians[ours]
    ratios: dict[str, Any] = {}
    for tool, value in medians.items():
        if tool == ours:
            continue
        if value is None or not base:
            ratios[tool] = {"not_measured": "no time in any run"}
        else:
            ratios[tool] = float(f"{value / base:.3g}")
    return {
        "benchmark": name,
        "command": ["python", *command],
        "rounds": rounds,
        "order": f"{rounds} strictly alternating processes; {what}",
        "wall_s_all": times,
        "wall_s_median": medians,
        "ratios_wall_median_over_" + ours: ratios,
        "load_1m_before": load_before,
        "load_1m_after": os.getloadavg()[0],
        "runs": runs,
    }


def _step(name: str, command: list[str], timeout_s: float) -> None:
    start = time.perf_counter()
    print(f"== {name}: python {' '.join(command)}", file=sys.stderr, flush=True)
    subprocess.run([sys.executable, *command], check=True, timeout=timeout_s)
    print(f"   {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    """Run the suite; ``--only NAME`` runs one step."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run_all")
    names = [n for n, _ in STEPS] + list(PROCESS_STEPS) + ["isochrones"]
    parser.add_argument("--only", default=None, choices=names, help="run one step")
    parser.add_argument("--process-rounds", type=int, default=5, help="at least 5")
    parser.add_argument("--timeout-s", type=float, default=3_600.0, help="per step (per run)")
    args = parser.parse_args(argv)
    if args.process_rounds < 5:
        raise SystemExit("--process-rounds must be at least 5")
    for name, command in STEPS:
        if args.only in (None, name):
            _step(name, command, args.timeout_s)
    for name in PROCESS_STEPS:
        if args.only not in (None, name):
            continue
        print(f"== {name}: {args.process_rounds} alternating processes", file=sys.stderr)
        result = process_rounds(name, args.process_rounds, args.timeout_s)
        result["machine"] = machine_description()
        write_result(name, result)
    if args.only in (None, "isochrones"):
        cases = []
        for case in ISOCHRONE_CASES:
            print(f"== isochrones {' '.join(case)}", file=sys.stderr, flush=True)
            done = subprocess.run(
                [sys.executable, "-m", "benchmarks.isochrones", *case, "--json"],
                check=True,
                capture_output=True,
                text=True,
                timeout=args.timeout_s,
            )
            cases.append(json.loads(done.stdout.strip().splitlines()[-1]))
        write_result(
            "isochrones",
            {"benchmark": "isochrones", "machine": machine_description(), "cases": cases},
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
