"""Load benchmark: ``GET /areas/chongqing-yuzhong/nearest`` at a constant request rate.

::

    python -m benchmarks.api_load --rate 200 --seconds 20 --json --write

What it does, all on the loopback interface (127.0.0.1) and bounded in count and time:

1. starts the real server (``uvicorn --factory tuoyu_api.app:create_app``, one worker — the
   service keeps one live analysis per area, see ``api/tuoyu_api/analysis_service.py``) in a
   subprocess on a free port, with a throw-away SQLite registry and Yuzhong preloaded;
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
   status counts, server CPU time, the machine and the load average before and after.

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

from benchmarks._common import machine_description, write_result

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


def start_server(state_dir: Path, *, access_log: bool = False) -> Server:
    """Start uvicorn on a free loopback port; wait until ``/healthz`` answers."""
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k != "TUOYU_DATABASE_URL"}
    env.update(TUOYU_STATE_DIR=str(state_dir), TUOYU_PRELOAD_AREAS=json.dumps([AREA]))
    cmd = [
        sys.executable,
        "-m",
        "uvicorn",
        "--factory",
        "tuoyu_api.app:create_app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
        "--log-level",
        "warning",
    ]
    if not access_log:
        cmd.append("--no-access-log")
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
    from tuoyu_api.area_polygon import study_area_polygon

    polygon = study_area_polygon(load_area(AREA), get_settings())
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


def run(args: argparse.Namespace) -> dict[str, Any]:
    rng = np.random.default_rng(args.seed)
    polygon = district_outline()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="tuoyu-api-load-") as tmp:
        t = time.perf_counter()
        server = start_server(Path(tmp))
        startup_s = time.perf_counter() - t
        try:
            token = _token(Path(tmp))
            registered = register_facilities(server.base, token, polygon, args.facilities, rng)
            points = random_points(polygon, max(2000, int(args.rate * args.seconds)), rng)
            # Warm-up: a few requests (first-use imports, caches), not measured.
            with httpx.Client(timeout=60) as http:
                for lon, lat in points[: args.warmup]:
                    http.get(f"{server.base}/areas/{AREA}/nearest", params={"lon": lon, "lat": lat})
            proc = psutil.Process(server.proc.pid)
            cpu0 = proc.cpu_times()
            result = asyncio.run(
                open_loop(server.base, points, args.rate, args.seconds, args.max_in_flight)
            )
            cpu1 = proc.cpu_times()
            open_summary = summarise(result, args.rate, args.seconds)
            elapsed = open_summary["duration_s"] or 1.0
            server_cpu_s = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
            open_summary["server_cpu_s"] = round(server_cpu_s, 2)
            open_summary["server_cpu_share_of_one_core"] = round(server_cpu_s / elapsed, 2)
            closed = (
                asyncio.run(closed_loop(server.base, points, args.max_seconds, args.concurrency))
                if args.max_seconds > 0
                else None
            )
        finally:
            server.stop()
    p95 = open_summary["latency_ms"]["p95"]
    machine = machine_description(PACKAGES)
    machine["load_average_before"] = [round(x, 2) for x in load_before]
    machine["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    return {
        "benchmark": "api_load",
        "command": "python -m benchmarks.api_load " + shlex.join(sys.argv[1:]),
        "endpoint": f"GET /areas/{AREA}/nearest?lon=&lat= (minutes=15, crs=wgs84)",
        "server": "uvicorn --factory tuoyu_api.app:create_app, 1 worker, 127.0.0.1, SQLite registry",
        "client": "asyncio keep-alive HTTP/1.1 connections (RawHttpPool), open loop: request i "
        "sent at t0 + i/rate, latency from the scheduled time (queueing included); same "
        "machine as the server",
        "facilities_registered": registered,
        "server_startup_s": round(startup_s, 1),
        "open_loop": open_summary,
        "closed_loop_max_throughput": closed,
        "target": {
            "rate_rps": TARGET_RATE,
            "p95_ms": TARGET_P95_MS,
            "met": bool(
                p95 is not None
                and p95 < TARGET_P95_MS
                and args.rate >= TARGET_RATE
                and open_summary["throughput_rps"] is not None
                and open_summary["throughput_rps"] >= 0.95 * args.rate
                and open_summary["transport_errors"] == 0
            ),
        },
        "machine": machine,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--rate", type=float, default=TARGET_RATE, help="requests per second")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of the open-loop run")
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
    args = parser.parse_args(argv)
    if not (0 < args.rate <= 2000 and 0 < args.seconds <= 600):
        parser.error("keep the load bounded: 0 < rate ≤ 2000 and 0 < seconds ≤ 600")
    payload = run(args)
    if args.json:
        print(json.dumps(payload, ensure_ascii=False, indent=2))
    else:
        o = payload["open_loop"]
        print(
            f"{o['throughput_rps']} req/s of {args.rate:g} scheduled; latency ms "
            f"p50 {o['latency_ms']['p50']} p95 {o['latency_ms']['p95']} "
            f"p99 {o['latency_ms']['p99']}; statuses {o['status_counts']}; "
            f"target met: {payload['target']['met']}"
        )
    if args.write:
        path = write_result("api_load", payload)
        print(f"wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
