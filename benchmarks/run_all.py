"""Run every benchmark in sequence and store the results in ``benchmarks/results/``.

``make bench`` (or ``python -m benchmarks.run_all``). Each benchmark measures our code and
the peers side by side in one run and prints ratios; this script only runs them one
after the other so that they do not compete for the two cores. Expect about 30 minutes.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

from benchmarks._common import machine_description, write_result

STEPS: list[tuple[str, list[str]]] = [
    ("load_network", ["-m", "benchmarks.load_network", "--write", "--repeat", "3"]),
    ("reach", ["-m", "benchmarks.reach", "--all"]),
    ("siting", ["-m", "benchmarks.siting", "--demand", "10000", "--candidates", "1000",
                "--p", "20", "--json", "--write"]),
    ("siting_yuzhong", ["-m", "benchmarks.siting", "--yuzhong", "--write"]),
    ("api_load", ["-m", "benchmarks.api_load", "--rate", "200", "--seconds", "20", "--json",
                  "--write"]),
]  # fmt: skip

ISOCHRONE_CASES: list[list[str]] = [
    ["--yuzhong", "--facilities", "1000"],
    ["--nodes", "100000", "--facilities", "1000"],
    ["--nodes", "1000000", "--facilities", "1000", "--peer-sample", "200"],
]


def main(argv: list[str] | None = None) -> int:
    """Run the suite; ``--only NAME`` runs one step."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run_all")
    parser.add_argument("--only", default=None, help="one of the step names, or 'isochrones'")
    args = parser.parse_args(argv)
    for name, command in STEPS:
        if args.only not in (None, name):
            continue
        start = time.perf_counter()
        print(f"== {name}: python {' '.join(command)}", file=sys.stderr, flush=True)
        subprocess.run([sys.executable, *command], check=True)
        print(f"   {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
    if args.only in (None, "isochrones"):
        cases = []
        for case in ISOCHRONE_CASES:
            print(f"== isochrones {' '.join(case)}", file=sys.stderr, flush=True)
            done = subprocess.run(
                [sys.executable, "-m", "benchmarks.isochrones", *case, "--json"],
                check=True,
                capture_output=True,
                text=True,
            )
            cases.append(json.loads(done.stdout.strip().splitlines()[-1]))
        write_result(
            "isochrones",
            {"benchmark": "isochrones", "machine": machine_description(), "cases": cases},
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
