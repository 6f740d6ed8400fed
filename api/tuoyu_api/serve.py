"""``tuoyu serve``: uvicorn with ``N`` worker processes, announced once it answers.

Several workers are safe: each keeps its analyses in step with the registry's change
sequence (:mod:`tuoyu_api.analysis_service`). The database is migrated once here, before
the workers start (they would otherwise queue on the migration lock). "serving on …" is
printed when ``/healthz`` answers, not when uvicorn is merely launched (the first start
builds preloaded areas and imports the stack, tens of seconds on a busy machine).
"""

from __future__ import annotations

import socket
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable

APP = "tuoyu_api.app:create_app"
READY_TIMEOUT_S = 600.0
"""How long the announcer waits for ``/healthz`` before saying it gave up."""


def probe_url(host: str, port: int) -> str:
    """The ``/healthz`` URL to poll for a server bound to ``host``.

    Examples
    --------
    >>> probe_url("0.0.0.0", 8000)
    'http://127.0.0.1:8000/healthz'
    >>> probe_url("::", 8000)
    'http://[::1]:8000/healthz'
    >>> probe_url("10.1.2.3", 80)
    'http://10.1.2.3:80/healthz'
    """
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}/healthz"


def answers(url: str, timeout_s: float = 2.0) -> bool:
    """Whether ``url`` answers 200 (no proxy: the server is local or on the intranet)."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=timeout_s) as response:
            return int(response.status) == 200
    except (OSError, urllib.error.URLError, ValueError):
        return False


def announce_when_ready(
    url: str,
    message: str,
    *,
    say: Callable[[str], None],
    timeout_s: float = READY_TIMEOUT_S,
    interval_s: float = 0.25,
) -> bool:
    """Poll ``url`` until it answers, then ``say(message)``; ``False`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if answers(url):
            say(message)
            return True
        time.sleep(interval_s)
    say(f"the server did not answer {url} within {timeout_s:g} s; see its log above")
    return False


def _stderr(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def set_nodelay(sock: socket.socket) -> None:
    """Turn Nagle's algorithm off on a listening TCP socket (accepted ones inherit it).

    uvicorn binds the shared socket of several workers as ``socket.socket(family)``
    (protocol number 0), and asyncio sets ``TCP_NODELAY`` only on connections whose
    protocol is ``IPPROTO_TCP``: without this every keep-alive answer of a multi-worker
    server waited ~40 ms for the client's delayed ACK (p50 of ``/nearest`` 45 ms instead
    of 2 ms, measured with ``benchmarks/api_load.py``).
    """
    if sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def serve(
    host: str,
    port: int,
    workers: int = 1,
    *,
    log_level: str = "info",
    access_log: bool = True,
) -> None:
    """Migrate the registry, then run uvicorn with ``workers`` processes (blocks)."""
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    from tuoyu_api.db import upgrade_database
    from tuoyu_api.settings import get_api_settings, resolve_database_url

    if workers < 1:
        raise ValueError(f"--workers must be at least 1, got {workers}")
    upgrade_database(resolve_database_url(get_api_settings()))
    shown = f"[{host}]" if ":" in host else host
    message = f"serving on http://{shown}:{port} with {workers} worker(s) (docs at /docs)"
    threading.Thread(
        target=announce_when_ready,
        args=(probe_url(host, port), message),
        kwargs={"say": _stderr},
        name="tuoyu-serve-announce",
        daemon=True,
    ).start()
    config = uvicorn.Config(
        APP,
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=log_level,
        access_log=access_log,
    )
    if workers > 1:
        # What uvicorn.run does for several workers, with Nagle off on the shared socket.
        sock = config.bind_socket()
        set_nodelay(sock)
        Multiprocess(config, sockets=[sock]).run()
    else:
        uvicorn.Server(config).run()
