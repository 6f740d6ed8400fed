"""A worker process dies mid-batch: the batch finishes, reports, and re-runs what is missing.

``run_batch`` runs 4 small synthetic areas on its LocalCluster of 2 worker processes. A
worker plugin (:class:`KillWorker`, given to ``run_batch`` and loaded into every worker,
restarted ones included) ends the worker process with ``os._exit`` while it runs an
area's task, once the task has written its attempt token to its log, i.e. mid-task:

* ``crash-once`` kills its first worker only: the nanny starts a new worker process, the
  scheduler hands the task to a live one, and the area ends ``done``;
* ``crash-always`` kills every worker it lands on: after the one lost worker its
  ``retries=1`` allows, the area ends ``failed`` with ``KilledWorker`` named, and the
  others are done (no other area is charged with the lost workers).

Re-running without the plugin runs only ``crash-always`` and skips the rest.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from distributed.diagnostics.plugin import WorkerPlugin
from tuoyu.config.settings import Settings
from tuoyu.progress import SILENT
from tuoyu.workflow.batch import read_manifest, run_batch

from benchmarks.batch import write_synthetic_area

MONTH = "2026-11"
PLUGIN = "tuoyu-test-kill-worker"


class KillWorker(WorkerPlugin):  # type: ignore[misc]  # distributed ships no type hints here
    """Ends the worker process running the task of an area (see the module docstring).

    Each kill leaves a marker file ``<slug>.<pid>`` naming the killed process.
    """

    name = PLUGIN

    def __init__(self, out_root: str, markers: str, once: str, always: str) -> None:
        self.out_root = out_root
        self.markers = markers
        self.once = once
        self.always = always

    def transition(self, key: Any, start: str, finish: str, **kwargs: Any) -> None:
        if finish != "executing":
            return
        for slug in (self.once, self.always):
            if not str(key).startswith(f"tuoyu-area-{slug}-"):
                continue
            folder = Path(self.markers)
            if slug == self.once and any(folder.glob(f"{slug}.*")):
                return  # killed once already: let this attempt finish
            (folder / f"{slug}.{os.getpid()}").write_text("killed\n", "utf-8")
            log = Path(self.out_root) / "logs" / f"{slug}.log"
            before = _first_line(log)
            threading.Thread(target=_exit_once_started, args=(log, before), daemon=True).start()


def _first_line(path: Path) -> str | None:
    try:
        with path.open(encoding="utf-8") as f:
            return f.readline().strip() or None
    except OSError:
        return None


def _exit_once_started(log: Path, before: str | None) -> None:
    """End this process once the task has begun: its log starts with a new attempt."""
    while _first_line(log) in (None, before):
        time.sleep(0.002)
    os._exit(1)


@pytest.mark.slow
def test_killed_workers_are_survived_and_rerun_does_what_is_missing(
    tmp_path: Path, settings: Settings
) -> None:
    folder = tmp_path / "areas"
    slugs = ("crash-once", "crash-always", "fine-0", "fine-1")
    areas = [
        write_synthetic_area(
            folder, slug, n_nodes=500 + 100 * i, n_facilities=5, n_population=200, seed=70 + i
        )
        for i, slug in enumerate(slugs)
    ]
    out = tmp_path / "out"
    markers = tmp_path / "killed"
    markers.mkdir()
    plugin = KillWorker(str(out), str(markers), slugs[0], slugs[1])
    first = run_batch(
        areas, out, workers=2, settings=settings, progress=SILENT, month=MONTH,
        worker_plugins=[plugin],
    )  # fmt: skip

    killed: dict[str, list[str]] = {slug: [] for slug in slugs}
    for marker in markers.iterdir():
        slug, pid = marker.name.rsplit(".", 1)
        killed[slug].append(pid)
    assert len(killed["crash-once"]) == 1
    # retries=1: the local cluster lets an area lose one worker, so a second loss fails it
    assert len(killed["crash-always"]) == 2
    assert killed["fine-0"] == killed["fine-1"] == []
    statuses = first.statuses()
    assert statuses == {"crash-once": "done", "crash-always": "failed",
                        "fine-0": "done", "fine-1": "done"}  # fmt: skip
    error = first.by_slug()["crash-always"].error
    assert error is not None and error.startswith("KilledWorker")
    once = first.by_slug()["crash-once"]
    assert once.worker is not None
    assert once.worker.rsplit(":", 1)[1] not in killed["crash-once"]  # a live worker ran it
    assert (out / "crash-once" / "manifest.json").is_file()  # its run completed
    rollup = pd.read_csv(out / "rollup.csv", encoding="utf-8-sig")
    assert rollup.set_index("area")["status"].to_dict() == statuses
    assert str(rollup.set_index("area").loc["crash-always", "error"]).startswith("KilledWorker")
    manifest = read_manifest(out)["areas"]
    assert manifest["crash-always"]["status"] == "failed"
    assert not (out / "jiedao.parquet" / "area=crash-always").exists()

    again = run_batch(areas, out, workers=2, settings=settings, progress=SILENT, month=MONTH)
    assert again.statuses() == {"crash-once": "skipped", "crash-always": "done",
                                "fine-0": "skipped", "fine-1": "skipped"}  # fmt: skip
    assert again.ok
    assert sorted(pd.read_parquet(out / "districts.parquet")["area"]) == sorted(slugs)
    assert sum(1 for _ in markers.iterdir()) == 3  # nothing was killed the second time
