"""Load benchmark: ``GET /areas/chongqing-yuzhong/nearest`` at constant request rates, on
1 and on N worker processes, then overload and recovery.

::

    python -m benchmarks.api_load --workers 1,2 --rates 100,200,500 --seconds 8 --json --write

What it does, all on the loopback interface (127.0.0.1) and bounded in count and time,
once per worker count:

1. starts the real server (what ``tuoyu serve --workers W`` runs, :func:`tuoyu_api.serve.serve`;
   every worker keeps its analysis in step with the registry's change sequence, see
   ``api/tuoyu_api/analysis_service.py``) in a subprocess on a free port, with a
   throw-away SQLite registry and Yuzhong preloaded;
2. registers ``--facilities`` (default 50) facilities at random points of the district
   through ``POST /areas/chongqing-yuzhong/facilities`` with a token;
3. **open-loop, constant-rate load**: request ``i`` is *scheduled* at ``t0 + i / rate``
   and sent then (asyncio + httpx, one task per request), whatever the state of earlier
   requests; its latency is measured from the scheduled time to the end of the response,
   so time spent queueing (in the client, the socket or the server) counts — no
   coordinated omission. ``rate × seconds`` requests in all, from random points inside
   the district (uniform over the outline; points off the walkable network get the
   documented 422 and are counted apart);
4. a short **closed-loop** phase (``--max-seconds``, ``--concurrency`` requests always
   in flight) gives the server's maximum throughput for comparison;
5. reports throughput achieved, p50/p95/p99/max latency (all responses and 200s only),
   status counts, server CPU time, the machine and the load average before and after;
6. the **rate where p95 crosses 50 ms**: after ``--rates`` the ladder goes on (750,
   1000, 1500, 2000 requests/s) until p95 passes 50 ms or the server falls behind;
7. **overload and recovery**: ``--overload-rate`` (default 3000/s) for a few seconds
   with up to 4096 connections — the server must shed (503/429 with ``Retry-After``,
   ``max_in_flight_requests`` per worker) rather than queue without end — then 100/s
   again, which must be answered 200 as before.

The client runs on the same machine as the server and uses CPU too: on a busy or
two-core machine that lowers the figures (``load_average_1m`` is in the result).
Target (issue 6): p95 < 50 ms at 200 requests/s on Yuzhong.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shlex
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psutil
import shapely
from shapely.geometry.base import BaseGeometry

from benchmarks._common import RESULTS_DIR, machine_description, write_result

AREA = "chongqing-yuzhong"
TARGET_P95_MS = 50.0
TARGET_RATE = 200.0
REQUEST_TIMEOUT_S = 10.0
START_TIMEOUT_S = 180.0
PACKAGES = ("fastapi", "starlette", "uvicorn", "httpx", "numpy", "scipy", "shapely")
KINDS = ("社区托育点", "综合托育服务中心", "托幼一体", "家庭托育点", "社会力量办托")


@dataclass
class Server:
    """The server subprocess."""

    proc: subprocess.Popen[bytes]
    base: str
    state_dir: Path
    log: Path

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=30)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(state_dir: Path, *, workers: int = 1, access_log: bool = False) -> Server:
    """Start uvicorn on a free loopback port; wait until ``/healthz`` answers."""
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k != "TUOYU_DATABASE_URL"}
    env.update(TUOYU_STATE_DIR=str(state_dir), TUOYU_PRELOAD_AREAS=json.dumps([AREA]))
    # The server `tuoyu serve --workers W` runs (tuoyu_api.serve), quieter.
    code = (
        "from tuoyu_api.serve import serve; "
        f"serve('127.0.0.1', {port}, {workers}, log_level='warning', access_log={access_log})"
    )
    cmd = [sys.executable, "-c", code]
    log = state_dir / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            cmd,
            cwd=Path(__file__).resolve().parents[1],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    server = Server(proc, f"http://127.0.0.1:{port}", state_dir, log)
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited:\n{log.read_text('utf-8', 'replace')}")
        try:
            if httpx.get(f"{server.base}/healthz", timeout=2).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            server.stop()
            raise RuntimeError(f"server did not start:\n{log.read_text('utf-8', 'replace')}")
        time.sleep(0.2)


def _token(state_dir: Path) -> str:
    from tuoyu_api.db import open_database
    from tuoyu_api.settings import get_api_settings, resolve_database_url
    from tuoyu_api.tokens import create_token

    settings = get_api_settings(state_dir=state_dir, database_url=None)
    database = open_database(resolve_database_url(settings), upgrade=False)
    try:
        with database.session() as session:
            return create_token(session, "benchmark")
    finally:
        database.dispose()


def district_outline() -> BaseGeometry:
    """Yuzhong's outline in WGS84 (the study area's polygon)."""
    from tuoyu.config.settings import get_settings
    from tuoyu.config.study_area import load_area
    from tuoyu.progress import SILENT
    from tuoyu.workflow.layers import load_layers, study_area_polygon_wgs84

    polygon = study_area_polygon_wgs84(load_layers(load_area(AREA), get_settings(), SILENT))
    if polygon is None:
        raise RuntimeError("no outline for chongqing-yuzhong: is the data directory set?")
    return polygon


def random_points(polygon: BaseGeometry, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` uniform random lon/lat points inside ``polygon`` (rejection sampling)."""
    minx, miny, maxx, maxy = polygon.bounds
    shapely.prepare(polygon)
    out: list[np.ndarray] = []
    count = 0
    while count < n:
        lon = rng.uniform(minx, maxx, 4 * n)
        lat = rng.uniform(miny, maxy, 4 * n)
        inside = shapely.contains_xy(polygon, lon, lat)
        chunk = np.column_stack([lon[inside], lat[inside]])
        out.append(chunk)
        count += chunk.shape[0]
    return np.concatenate(out)[:n]


def register_facilities(
    base: str, token: str, polygon: BaseGeometry, n: int, rng: np.random.Generator
) -> int:
    """POST ``n`` facilities at random points of the district; returns how many stored."""
    stored = 0
    auth = {"Authorization": f"Bearer {token}"}
    with httpx.Client(timeout=60) as http:
        attempts = 0
        while stored < n and attempts < 5 * n:
            attempts += 1
            lon, lat = random_points(polygon, 1, rng)[0]
            body = {
                "id": f"BENCH-{stored:03d}",
                "name": f"压测托育点{stored:03d}",
                "lon": round(float(lon), 6),
                "lat": round(float(lat), 6),
                "kind": KINDS[stored % len(KINDS)],
                "puhui": bool(stored % 3),
                "slots": int(rng.integers(10, 100)),
            }
            response = http.post(f"{base}/areas/{AREA}/facilities", json=body, headers=auth)
            if response.status_code == 201:
                stored += 1
            elif response.status_code in (429, 503):
                # the per-token write limit (or a full write queue): wait as told and
                # try again; this is not a failed attempt
                attempts -= 1
                time.sleep(min(5.0, float(response.headers.get("Retry-After", "1"))))
    return stored


class RawHttpPool:
    """Keep-alive HTTP/1.1 connections to the server for GET requests.

    Hand-written on asyncio streams instead of httpx: the client shares the (two-core)
    machine with the server, and httpx costs about a millisecond of client CPU per
    request, which at 200 requests/s would measure the client as much as the server.
    This one writes a pre-formatted request and reads the status line, headers and a
    ``Content-Length`` (or chunked) body — all the server sends. Like any HTTP client it
    drops connections idle longer than the server keeps them (uvicorn: 5 s) and retries
    a GET once on a fresh connection when a reused one turns out closed.
    """

    IDLE_LIMIT_S = 4.0

    def __init__(self, host: str, port: int, max_connections: int) -> None:
        self.host = host
        self.port = port
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter, float]] = []
        self.slots = asyncio.Semaphore(max_connections)
        self.opened = 0
        self.retried = 0

    async def get(self, target: str) -> int:
        """``GET target``; returns the status, 0 on a transport error or timeout."""
        async with self.slots:
            conn = self._reuse()
            fresh = conn is None
            for _attempt in range(2):
                if conn is None:
                    try:
                        conn = await self._open()
                    except OSError:
                        return 0
                    fresh = True
                try:
                    status = await asyncio.wait_for(self._send(conn, target), REQUEST_TIMEOUT_S)
                except TimeoutError:
                    conn[1].close()
                    return 0
                except (OSError, asyncio.IncompleteReadError, ValueError):
                    conn[1].close()
                    if fresh:
                        return 0
                    self.retried += 1  # a reused connection the server had closed
                    conn = None
                    continue
                self.idle.append((conn[0], conn[1], time.perf_counter()))
                return status
            return 0

    def _reuse(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        now = time.perf_counter()
        while self.idle:
            reader, writer, last = self.idle.pop()
            if now - last < self.IDLE_LIMIT_S and not writer.is_closing():
                return reader, writer
            writer.close()
        return None

    async def _open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        self.opened += 1
        return await asyncio.open_connection(self.host, self.port)

    async def _send(
        self, conn: tuple[asyncio.StreamReader, asyncio.StreamWriter], target: str
    ) -> int:
        reader, writer = conn
        writer.write(f"GET {target} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n\r\n".encode())
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = -1
        chunked = False
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
        if length > 0:
            await reader.readexactly(length)
        elif chunked:
            while True:
                size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                await reader.readexactly(size + 2)
                if size == 0:
                    break
        return status

    def close(self) -> None:
        for _reader, writer, _last in self.idle:
            writer.close()
        self.idle.clear()


def _target(lon: float, lat: float) -> str:
    return f"/areas/{AREA}/nearest?lon={lon:.6f}&lat={lat:.6f}"


def _host_port(base: str) -> tuple[str, int]:
    host, port = base.removeprefix("http://").split(":")
    return host, int(port)


@dataclass
class Sample:
    """One request: when it was due, when it ended, its status (0 = transport error)."""

    scheduled_s: float
    done_s: float = float("nan")
    status: int = 0


@dataclass
class OpenLoopResult:
    samples: list[Sample] = field(default_factory=list)
    start_s: float = 0.0
    end_s: float = 0.0
    late_sends: int = 0
    connections: int = 0
    retried: int = 0


async def open_loop(
    base: str, points: np.ndarray, rate: float, seconds: float, max_in_flight: int
) -> OpenLoopResult:
    """Send ``rate × seconds`` requests at their scheduled times (open loop)."""
    n = round(rate * seconds)
    pool = RawHttpPool(*_host_port(base), max_in_flight)
    result = OpenLoopResult()

    async def one(sample: Sample, target: str) -> None:
        sample.status = await pool.get(target)
        sample.done_s = time.perf_counter()

    loop_start = time.perf_counter() + 0.1
    result.start_s = loop_start
    tasks = []
    for i in range(n):
        due = loop_start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        elif delay < -0.005:
            result.late_sends += 1  # the client itself fell behind (counted, still timed)
        sample = Sample(scheduled_s=due)
        result.samples.append(sample)
        lon, lat = points[i % points.shape[0]]
        tasks.append(asyncio.create_task(one(sample, _target(float(lon), float(lat)))))
    await asyncio.gather(*tasks)
    pool.close()
    result.end_s = max((s.done_s for s in result.samples), default=loop_start)
    result.connections = pool.opened
    result.retried = pool.retried
    return result


async def closed_loop(
    base: str, points: np.ndarray, seconds: float, concurrency: int
) -> dict[str, Any]:
    """``concurrency`` requests always in flight for ``seconds``: maximum throughput."""
    pool = RawHttpPool(*_host_port(base), concurrency)
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    stop_at = time.perf_counter() + seconds

    async def worker(offset: int) -> None:
        k = offset
        while time.perf_counter() < stop_at:
            lon, lat = points[k % points.shape[0]]
            k += concurrency
            t = time.perf_counter()
            code = await pool.get(_target(float(lon), float(lat)))
            latencies.append(time.perf_counter() - t)
            statuses[code] = statuses.get(code, 0) + 1

    start = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(concurrency)))
    elapsed = time.perf_counter() - start
    pool.close()
    lat_ms = np.array(latencies) * 1000.0
    return {
        "seconds": round(elapsed, 2),
        "concurrency": concurrency,
        "requests": len(latencies),
        "throughput_rps": round(len(latencies) / elapsed, 1) if elapsed > 0 else None,
        "latency_ms": _percentiles(lat_ms),
        "status_counts": {str(k): v for k, v in sorted(statuses.items())},
    }


def _percentiles(ms: np.ndarray) -> dict[str, float | None]:
    if ms.shape[0] == 0:
        return {"p50": None, "p95": None, "p99": None, "max": None, "mean": None}
    p50, p95, p99 = np.percentile(ms, [50, 95, 99])
    return {
        "p50": round(float(p50), 2),
        "p95": round(float(p95), 2),
        "p99": round(float(p99), 2),
        "max": round(float(ms.max()), 2),
        "mean": round(float(ms.mean()), 2),
    }


def summarise(result: OpenLoopResult, rate: float, seconds: float) -> dict[str, Any]:
    """Throughput and latency percentiles of an open-loop run."""
    done = [s for s in result.samples if s.status]
    latency_ms = np.array([(s.done_s - s.scheduled_s) * 1000.0 for s in done])
    ok_ms = np.array([(s.done_s - s.scheduled_s) * 1000.0 for s in done if s.status == 200])
    statuses: dict[str, int] = {}
    for s in result.samples:
        statuses[str(s.status)] = statuses.get(str(s.status), 0) + 1
    elapsed = result.end_s - result.start_s
    return {
        "target_rate_rps": rate,
        "requests_sent": len(result.samples),
        "responses": len(done),
        "duration_s": round(elapsed, 2),
        "throughput_rps": round(len(done) / elapsed, 1) if elapsed > 0 else None,
        "late_sends": result.late_sends,
        "connections_opened": result.connections,
        "retried_on_closed_connection": result.retried,
        "transport_errors": statuses.get("0", 0),
        "latency_ms": _percentiles(latency_ms),
        "latency_ms_200_only": _percentiles(ok_ms),
        "status_counts": dict(sorted(statuses.items())),
        "scheduled_seconds": seconds,
    }


LADDER = (750.0, 1000.0, 1500.0, 2000.0)
"""Rates tried after ``--rates`` until p95 crosses the target."""
OVERLOAD_CONNECTIONS = 4096
RECOVERY_RATE = 100.0


def _measure(
    server: Server, points: np.ndarray, rate: float, seconds: float, max_in_flight: int
) -> dict[str, Any]:
    """One open-loop run with the server's CPU time."""
    proc = psutil.Process(server.proc.pid)

    def cpu() -> float:
        total = 0.0
        for p in [proc, *proc.children(recursive=True)]:
            try:
                t = p.cpu_times()
            except psutil.NoSuchProcess:
                continue
            total += t.user + t.system
        return total

    cpu0 = cpu()
    result = asyncio.run(open_loop(server.base, points, rate, seconds, max_in_flight))
    server_cpu_s = cpu() - cpu0
    summary = summarise(result, rate, seconds)
    elapsed = summary["duration_s"] or 1.0
    summary["server_cpu_s"] = round(server_cpu_s, 2)
    summary["server_cpu_share_of_one_core"] = round(server_cpu_s / elapsed, 2)
    summary["shed_429_503"] = summary["status_counts"].get("429", 0) + summary["status_counts"].get(
        "503", 0
    )
    return summary


def _falls_behind(summary: dict[str, Any], rate: float) -> bool:
    achieved = summary["throughput_rps"] or 0.0
    return achieved < 0.9 * rate or summary["transport_errors"] > 0


def run_workers(
    workers: int, args: argparse.Namespace, polygon: BaseGeometry, rng: np.random.Generator
) -> dict[str, Any]:
    """Every phase against a server of ``workers`` processes."""
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="tuoyu-api-load-") as tmp:
        t = time.perf_counter()
        server = start_server(Path(tmp), workers=workers)
        startup_s = time.perf_counter() - t
        try:
            token = _token(Path(tmp))
            registered = register_facilities(server.base, token, polygon, args.facilities, rng)
            top = max([*args.rates, *LADDER, args.overload_rate])
            points = random_points(polygon, max(2000, int(top * args.seconds)), rng)
            # Warm-up, not measured: every worker builds its analysis and catches up.
            with httpx.Client(timeout=60) as http:
                for lon, lat in points[: args.warmup * workers]:
                    http.get(
                        f"{server.base}/areas/{AREA}/nearest",
                        params={"lon": lon, "lat": lat},
                        headers={"Connection": "close"},
                    )
            by_rate: dict[str, Any] = {}
            crossing: float | None = None
            last_under: float | None = None
            for rate in [*args.rates, *LADDER]:
                if rate not in args.rates and (crossing is not None):
                    break
                summary = _measure(server, points, rate, args.seconds, args.max_in_flight)
                by_rate[f"{rate:g}"] = summary
                p95 = summary["latency_ms"]["p95"]
                over = p95 is None or p95 > TARGET_P95_MS or _falls_behind(summary, rate)
                if over and crossing is None:
                    crossing = rate
                elif not over and crossing is None:
                    last_under = rate
            overload = _measure(
                server, points, args.overload_rate, args.overload_seconds, OVERLOAD_CONNECTIONS
            )
            time.sleep(1.0)  # let the backlog drain
            recovery = _measure(server, points, RECOVERY_RATE, args.seconds, args.max_in_flight)
            closed = (
                asyncio.run(closed_loop(server.base, points, args.max_seconds, args.concurrency))
                if args.max_seconds > 0
                else None
            )
        finally:
            server.stop()
    recovered_ok = recovery["status_counts"].get("200", 0) + recovery["status_counts"].get("422", 0)
    return {
        "workers": workers,
        "server_startup_s": round(startup_s, 1),
        "facilities_registered": registered,
        "open_loop_by_rate": by_rate,
        "p95_target_ms": TARGET_P95_MS,
        "p95_crosses_target_at_rps": crossing,
        "p95_last_under_target_at_rps": last_under,
        "overload": {
            "rate_rps": args.overload_rate,
            "seconds": args.overload_seconds,
            "client_connections": OVERLOAD_CONNECTIONS,
            "result": overload,
            "shed": overload["shed_429_503"] > 0,
        },
        "recovery": {
            "rate_rps": RECOVERY_RATE,
            "result": recovery,
            "recovered": recovered_ok == recovery["requests_sent"]
            and (recovery["latency_ms"]["p95"] or 0.0) < TARGET_P95_MS,
        },
        "closed_loop_max_throughput": closed,
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    rng = np.random.default_rng(args.seed)
    polygon = district_outline()
    load_before = os.getloadavg()
    configs = [run_workers(w, args, polygon, rng) for w in args.workers]
    machine = machine_description(PACKAGES)
    machine["load_average_before"] = [round(x, 2) for x in load_before]
    machine["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    at_target = [
        c["open_loop_by_rate"].get(f"{TARGET_RATE:g}", {}).get("latency_ms", {}).get("p95")
        for c in configs
    ]
    return {
        "benchmark": "api_load",
        "command": "python -m benchmarks.api_load " + shlex.join(sys.argv[1:]),
        "endpoint": f"GET /areas/{AREA}/nearest?lon=&lat= (minutes=15, crs=wgs84)",
        "server": "tuoyu serve --workers W (tuoyu_api.serve: uvicorn, TCP_NODELAY on the shared "
        "socket), 127.0.0.1, SQLite registry, default limits (max_in_flight_requests 512, "
        "max_loop_lag_ms 250 per worker)",
        "client": "asyncio keep-alive HTTP/1.1 connections (RawHttpPool), open loop: request i "
        "sent at t0 + i/rate, latency from the scheduled time (queueing included); same "
        "machine as the server",
        "configs": configs,
        "target": {
            "rate_rps": TARGET_RATE,
            "p95_ms": TARGET_P95_MS,
            "p95_at_target_rate_by_workers": dict(
                zip([str(c["workers"]) for c in configs], at_target, strict=True)
            ),
        },
        "machine": machine,
    }


def _rates(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x.strip()]


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--workers", type=_ints, default=[1, 2], help="worker counts, e.g. 1,4")
    parser.add_argument(
        "--rates", type=_rates, default=[100.0, 200.0, 500.0], help="requests per second"
    )
    parser.add_argument("--seconds", type=float, default=8.0, help="length of each rate's run")
    parser.add_argument("--overload-rate", type=float, default=3000.0)
    parser.add_argument("--overload-seconds", type=float, default=4.0)
    parser.add_argument("--facilities", type=int, default=50, help="facilities to register")
    parser.add_argument("--warmup", type=int, default=50, help="unmeasured warm-up requests")
    parser.add_argument("--max-in-flight", type=int, default=512, help="client connection cap")
    parser.add_argument(
        "--max-seconds", type=float, default=5.0, help="closed-loop phase length (0: skip)"
    )
    parser.add_argument("--concurrency", type=int, default=16, help="closed-loop concurrency")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument(
        "--write", action="store_true", help="write benchmarks/results/api_load.json"
    )
    parser.add_argument(
        "--label",
        default=None,
        help="with --write: store this run under cases[LABEL] beside the other cases",
    )
    args = parser.parse_args(argv)
    rates_ok = all(0 < r <= 5000 for r in [*args.rates, args.overload_rate])
    if not (rates_ok and 0 < args.seconds <= 600 and 0 < args.overload_seconds <= 60):
        parser.error("keep the load bounded: rates in (0, 5000], seconds ≤ 600, overload ≤ 60 s")
    if not all(1 <= w <= 16 for w in args.workers):
        parser.error("--workers: between 1 and 16 each")
    payload = run(args)
    if args.json:
        print(json.dumps(payload, ensure_ascii=False, indent=2))
    else:
        for config in payload["configs"]:
            for rate, o in config["open_loop_by_rate"].items():
                print(
                    f"{config['workers']} worker(s) @ {rate}/s: {o['throughput_rps']} req/s; "
                    f"ms p50 {o['latency_ms']['p50']} p95 {o['latency_ms']['p95']} "
                    f"p99 {o['latency_ms']['p99']}; {o['status_counts']}"
                )
            print(
                f"  p95 crosses {TARGET_P95_MS:g} ms at {config['p95_crosses_target_at_rps']}/s; "
                f"overload shed {config['overload']['result']['shed_429_503']}; "
                f"recovered: {config['recovery']['recovered']}"
            )
    if args.write:
        if args.label:
            # Several cases (e.g. 58 and 735 facilities) side by side in one file.
            target = RESULTS_DIR / "api_load.json"
            stored = json.loads(target.read_text(encoding="utf-8")) if target.is_file() else {}
            if "cases" not in stored:
                stored = {"cases": {}}
            stored["cases"][args.label] = payload
            path = write_result("api_load", stored)
        else:
            path = write_result("api_load", payload)
        print(f"wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
