"""One live :class:`~tuoyu.workflow.core.AreaModel` per study area, kept in step with
the facility registry, and the service's caches of what it serves (isochrones, pages).

* **Lazy build.** An area's analysis is built on its first use: the layers are loaded
  (:func:`tuoyu.workflow.layers.load_layers`), the registry is seeded from the area's
  facility file if it never was (:func:`tuoyu_api.registry.seed_from_file`, idempotent), and
  the analysis is built from the registry rows, so writes made through the API count.
* **Incremental updates.** :meth:`AnalysisService.on_registry_change` is the registry
  hook: inside each write's transaction it adds, updates or removes the facility in the
  built analysis (only the affected neighbourhood is recomputed), so ``/nearest`` and
  ``/units`` reflect the write at once.
* **Consistency across workers and hosts.** Every registry write takes the next number of
  its area's change sequence (:func:`tuoyu_api.registry.begin_write`). The service
  remembers, per area, the number its analysis has seen; before answering a request that
  reads the analysis it looks up the area's head (one primary-key read,
  :meth:`AnalysisService.is_current` on the probe pool) and, when other processes wrote
  meanwhile, applies their changes (:meth:`AnalysisService.current`): the changed
  facilities' current rows are read and added, updated or removed incrementally, or the
  analysis is rebuilt when more than :data:`REBUILD_AFTER` changed. So ``tuoyu serve
  --workers N`` and several hosts on one PostgreSQL agree, and a facility deleted
  through one worker is gone from every other's answers.
* **Writes.** A write waits for its area's turn without holding a thread or a database
  connection (:meth:`AnalysisService.write`: at most :data:`WRITE_THREADS` run at once
  per worker, at most ``max_queued_writes`` wait, beyond that 503 with ``Retry-After``);
  it then takes the area's lock, catches the analysis up, and only then checks out a
  connection. If the analysis cannot follow a change, or a write fails after the hook
  ran, the analysis is dropped and rebuilt from the registry on next use (the layers
  stay cached): the registry is the truth.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import anyio
import anyio.to_thread
from anyio.lowlevel import RunVar
from shapely.geometry.base import BaseGeometry
from sqlalchemy.orm import Session
from tuoyu.config.data_registry import resolve_data_file
from tuoyu.config.study_area import StudyArea
from tuoyu.errors import TuoyuError
from tuoyu.progress import SILENT
from tuoyu.workflow.core import AreaModel
from tuoyu.workflow.layers import AreaLayers, load_layers, study_area_polygon_wgs84

from tuoyu_api.db import Database
from tuoyu_api.errors import ServiceBusyError
from tuoyu_api.registry import (
    CHANGE_SEQ_KEY,
    changes_after,
    head_seq,
    is_seeded,
    list_facilities,
    records_by_id,
    seed_from_file,
)
from tuoyu_api.request_limits import ISOCHRONE_CACHE_SIZE
from tuoyu_api.serialize import isochrone_feature
from tuoyu_api.settings import ApiSettings

logger = logging.getLogger(__name__)

T = TypeVar("T")

REBUILD_AFTER = 200
"""More changed facilities than this since the analysis last caught up: rebuild it."""
WRITE_THREADS = 2
"""Writes of one worker running at once (the others wait on the event loop, holding
neither a thread nor a connection); two so one area's write never waits behind
another area's."""

_WRITE_QUEUE: RunVar[anyio.CapacityLimiter] = RunVar("tuoyu_write_queue")
_WRITE_THREADS: RunVar[anyio.CapacityLimiter] = RunVar("tuoyu_write_threads")


def _limiter(var: RunVar[anyio.CapacityLimiter], tokens: int) -> anyio.CapacityLimiter:
    """A capacity limiter of the running event loop (made on first use, like anyio's own
    default thread limiter, so an app served by several loops in turn works)."""
    try:
        return var.get()
    except LookupError:
        limiter = anyio.CapacityLimiter(tokens)
        var.set(limiter)
        return limiter


PolygonLookup = Callable[[str], BaseGeometry | None]
"""``polygon(slug)``: the WGS84 study-area polygon used to check seeded records (the
default is :meth:`AnalysisService.area_polygon`; the app passes its cached lookup)."""


class AnalysisService:
    """The analyses of the service's study areas (see the module docstring).

    Parameters
    ----------
    settings
        Service settings (data directory, cache).
    database
        The facility registry.
    polygon
        Study-area polygon lookup (WGS84) for the facility-file check when seeding
        before a write.
    """

    def __init__(
        self, settings: ApiSettings, database: Database, polygon: PolygonLookup | None = None
    ) -> None:
        self.settings = settings
        self.database = database
        self._polygon = polygon
        self._analyses: dict[str, AreaModel] = {}
        self._seen: dict[str, int] = {}
        self._queued = 0
        self._queued_guard = threading.Lock()
        self._layers: dict[str, AreaLayers] = {}
        self._seeded: set[str] = set()
        self._locks: dict[str, threading.RLock] = {}
        self._locks_guard = threading.Lock()
        self._local = threading.local()
        self._layers_guard = threading.Lock()
        self._cache_guard = threading.Lock()
        self._isochrones: OrderedDict[tuple[str, str, int, float], dict[str, Any]] = OrderedDict()
        self._pages: dict[tuple[str, int, str, str | None, str | None, str, str | None], str] = {}

    def lock(self, slug: str) -> threading.RLock:
        """The lock serialising the build of ``slug``'s analysis and writes to it."""
        with self._locks_guard:
            lock = self._locks.get(slug)
            if lock is None:
                lock = self._locks[slug] = threading.RLock()
            return lock

    def peek(self, slug: str) -> AreaModel | None:
        """The built analysis of ``slug``, or ``None`` (never builds)."""
        return self._analyses.get(slug)

    def get(self, area: StudyArea) -> AreaModel:
        """The analysis of ``area``, built on first use (seeding the registry first).

        Raises
        ------
        DataNotFoundError, ChecksumMismatchError, AreaConfigError
            The area's data cannot be loaded.
        """
        analysis = self._analyses.get(area.slug)
        if analysis is not None:
            return analysis
        with self.lock(area.slug):
            analysis = self._analyses.get(area.slug)
            if analysis is None:
                analysis, seen = self._build(area)
                self._analyses[area.slug] = analysis
                self._seen[area.slug] = seen
            return analysis

    @property
    def queued_writes(self) -> int:
        """Writes of this worker waiting for their turn (not yet running)."""
        return self._queued

    def seen_seq(self, slug: str) -> int | None:
        """The change number the built analysis of ``slug`` reflects (``None``: not built)."""
        return self._seen.get(slug) if slug in self._analyses else None

    def is_current(self, slug: str) -> bool:
        """Whether ``slug``'s analysis is built and no process wrote to the area since.

        One primary-key read on the probe pool (its own connections: never waits behind
        writes); safe to call on the event loop.
        """
        seen = self.seen_seq(slug)
        if seen is None:
            return False
        with self.database.probe_engine.connect() as connection:
            return head_seq(connection, slug) <= seen

    def current(self, area: StudyArea) -> AreaModel:
        """The analysis of ``area`` with every committed registry write applied.

        Builds it on first use; otherwise applies the writes other workers or hosts made
        since it was last brought up to date (see the module docstring).
        """
        analysis = self.get(area)
        seen = self.seen_seq(area.slug)
        if seen is not None:
            with self.database.session() as session:
                if head_seq(session, area.slug) <= seen:
                    return analysis
        with self.lock(area.slug):
            self._catch_up_locked(area)
            return self.get(area)

    def _catch_up_locked(self, area: StudyArea) -> None:
        """Apply the writes after the seen number (the area's lock is held)."""
        slug = area.slug
        analysis = self._analyses.get(slug)
        seen = self._seen.get(slug)
        if analysis is None or seen is None:
            return
        with self.database.session() as session:
            changes = changes_after(session, slug, seen)
            if not changes:
                return
            ids = {fid for _seq, fid, _action in changes}
            if "seed" in {a for _s, _f, a in changes} or len(ids) > REBUILD_AFTER:
                records = None
            else:
                records = records_by_id(session, slug, ids)
        head = changes[-1][0]
        if records is None:
            self._rebuild_locked(area, f"{len(changes)} changes since it was built")
            return
        present = set(analysis.facility_ids())
        try:
            for fid in sorted(ids):
                # The rows are the truth: each changed facility ends as its row says
                # (applying the net state makes replaying a change twice harmless).
                record = records.get(fid)
                if record is None:
                    if fid in present:
                        analysis.remove_facility(fid)
                elif fid in present:
                    analysis.update_facility(None, record)
                else:
                    analysis.add_facility(record)
        except (TuoyuError, ValueError) as exc:
            self._rebuild_locked(area, f"could not follow the registry ({exc})")
            return
        self._seen[slug] = head
        logger.info(
            "analysis of %s caught up %d change(s) to #%d (%d facilities)",
            slug,
            len(changes),
            head,
            len(ids),
        )

    def _rebuild_locked(self, area: StudyArea, why: str) -> None:
        logger.info("analysis of %s rebuilt: %s", area.slug, why)
        self._analyses.pop(area.slug, None)
        self._seen.pop(area.slug, None)
        analysis, seen = self._build(area)
        self._analyses[area.slug] = analysis
        self._seen[area.slug] = seen

    def layers(self, area: StudyArea) -> AreaLayers:
        """The area's layers, loaded once (the network, units and population never change)."""
        layers = self._layers.get(area.slug)
        if layers is None:
            with self._layers_guard:
                layers = self._layers.get(area.slug)
                if layers is None:
                    layers = load_layers(area, self.settings, SILENT)
                    self._layers[area.slug] = layers
        return layers

    def area_polygon(self, area: StudyArea) -> BaseGeometry | None:
        """The study-area polygon in WGS84 (the one rule of
        :func:`tuoyu.workflow.layers.study_area_polygon`), ``None`` when the area has
        none or its data cannot be read (writes are then checked without it)."""
        try:
            return study_area_polygon_wgs84(self.layers(area))
        except (TuoyuError, OSError) as exc:
            logger.warning(
                "no study-area polygon for %s (%s); writes not checked against it", area.slug, exc
            )
            return None

    def isochrone_feature(
        self, model: AreaModel, facility_id: str, minutes: float
    ) -> dict[str, Any]:
        """One facility's isochrone as GeoJSON, cached until the facility changes."""
        key = (model.area.slug, facility_id, model.facility_revision(facility_id), minutes)
        with self._cache_guard:
            cached = self._isochrones.get(key)
            if cached is not None:
                self._isochrones.move_to_end(key)
                return cached
        feature = isochrone_feature(model.facility_isochrone(facility_id, minutes))
        with self._cache_guard:
            self._isochrones[key] = feature
            while len(self._isochrones) > ISOCHRONE_CACHE_SIZE * max(len(self._analyses), 1):
                self._isochrones.popitem(last=False)
        return feature

    def map_html(
        self,
        model: AreaModel,
        name: str,
        *,
        nearest_url: str | None,
        language: str,
        attribution: str | None,
        isochrone_url: str | None = None,
    ) -> str:
        """One map page of the model's current state, cached until the next change."""
        key = (
            model.area.slug,
            model.version,
            name,
            nearest_url,
            isochrone_url,
            language,
            attribution,
        )
        with self._cache_guard:
            cached = self._pages.get(key)
        if cached is not None:
            return cached
        html = str(
            model.build_map(
                name,
                nearest_url=nearest_url,
                isochrone_url=isochrone_url,
                language=language,
                attribution=attribution,
            )
            .get_root()
            .render()
        )
        with self._cache_guard:
            stale = [k for k in self._pages if k[0] == model.area.slug and k[1] != model.version]
            for k in stale:
                del self._pages[k]
            self._pages[key] = html
        return html

    def _build(self, area: StudyArea) -> tuple[AreaModel, int]:
        """Build from the registry; returns the analysis and the change number it reflects.

        The head is read before the rows: a write committed in between is then in the
        rows and replayed once more later, which applying net states makes harmless.
        """
        layers = self.layers(area)
        with self.database.session() as session:
            if area.slug not in self._seeded:
                if layers.facilities is not None and not is_seeded(session, area.slug):
                    source = layers.files.get("facilities")
                    seed_from_file(
                        session,
                        area.slug,
                        layers.facilities,
                        source=source.name if source is not None else None,
                    )
                self._seeded.add(area.slug)
            seen = head_seq(session, area.slug)
            records = list_facilities(session, area.slug)
        logger.info(
            "analysis of %s built from %d registry records (change #%d)",
            area.slug,
            len(records),
            seen,
        )
        model = AreaModel.from_layers(layers, facilities=records, facility_source="registry")
        return model, seen

    def ensure_seeded(self, area: StudyArea) -> None:
        """Seed the registry from the area's facility file if that never happened.

        Called before the first write to an area, so that records entered through the
        API do not stop the file from ever being seeded.

        Raises
        ------
        DataNotFoundError, InputValidationError, ...
            The facility file cannot be loaded: the write is refused (retry once the
            data directory is available) rather than losing the seed for good.
        """
        if area.slug in self._seeded:
            return
        section = area.facilities
        if section is None or section.path is None:
            self._seeded.add(area.slug)
            return
        with self.database.session() as session:
            if is_seeded(session, area.slug):
                self._seeded.add(area.slug)
                return
        # The same loader and options as tuoyu.workflow.layers.load_layers.
        from tuoyu.layers.facilities import load_facilities

        path = resolve_data_file(section.path, self.settings)
        value_map: dict[str, Any] = {k: dict(v) for k, v in section.value_map.items()}
        loaded = load_facilities(
            path,
            crs=section.crs,
            defaults=section.defaults or None,
            columns=section.columns or None,
            value_map=value_map or None,
            area_polygon=self._polygon(area.slug)
            if self._polygon is not None
            else self.area_polygon(area),
            area_code=area.area.code,
        )
        with self.database.session() as session:
            seed_from_file(session, area.slug, loaded.facilities, source=path.name)
        self._seeded.add(area.slug)

    def seed_for_reading(self, area: StudyArea) -> None:
        """Seed the registry from the area's file before the first listing (under the
        area's lock), so the registry lists every facility from the first request.

        A facility file that cannot be read leaves the registry as it is (logged): a read
        never fails for it; the first write reports the problem.
        """
        if area.slug in self._seeded:
            return
        with self.lock(area.slug):
            try:
                self.ensure_seeded(area)
            except (TuoyuError, OSError) as exc:
                logger.warning("registry of %s not seeded from its file: %s", area.slug, exc)

    def invalidate(self, slug: str) -> None:
        """Drop ``slug``'s analysis; the next use rebuilds it from the registry."""
        self._seen.pop(slug, None)
        if self._analyses.pop(slug, None) is not None:
            logger.warning("analysis of %s dropped; it is rebuilt from the registry", slug)

    async def write(self, area: StudyArea, func: Callable[[Session], T]) -> T:
        """Run ``func(session)``, one registry write to ``area``, when its turn comes.

        The write waits on the event loop (no thread, no connection held) for one of
        :data:`WRITE_THREADS` write slots, then runs in a thread: the area's lock, the
        analysis caught up, a session opened, ``func`` called, the session closed.

        Raises
        ------
        ServiceBusyError
            ``max_queued_writes`` writes already wait in this worker, or this one waited
            longer than ``write_queue_timeout_s`` (503 with ``Retry-After``).
        """
        with self._queued_guard:
            if self._queued >= self.settings.max_queued_writes:
                raise ServiceBusyError(
                    f"the server is full: {self._queued} registry writes are waiting; retry later",
                    retry_after_s=2.0,
                )
            self._queued += 1
        try:
            queue = _limiter(_WRITE_QUEUE, WRITE_THREADS)
            with anyio.move_on_after(self.settings.write_queue_timeout_s) as waited:
                await queue.acquire()
            if waited.cancelled_caught:
                raise ServiceBusyError(
                    f"the write waited {self.settings.write_queue_timeout_s:g} s for its "
                    "turn; retry later",
                    retry_after_s=5.0,
                )
        finally:
            with self._queued_guard:
                self._queued -= 1
        try:
            threads = _limiter(_WRITE_THREADS, WRITE_THREADS)
            return await anyio.to_thread.run_sync(self._write_now, area, func, limiter=threads)
        finally:
            queue.release()

    def _write_now(self, area: StudyArea, func: Callable[[Session], T]) -> T:
        lock = self.lock(area.slug)
        if not lock.acquire(timeout=self.settings.write_queue_timeout_s):
            raise ServiceBusyError(
                f"area '{area.slug}' is busy (its analysis is being built); retry later",
                retry_after_s=5.0,
            )
        try:
            self.ensure_seeded(area)
            self._catch_up_locked(area)
            seen = self.seen_seq(area.slug)
            with self.writing(area), self.database.session() as session:
                result = func(session)
                seq = session.info.get(CHANGE_SEQ_KEY)
                applied = bool(getattr(self._local, "applied", False))
            if seen is not None and seq == seen + 1 and applied:
                # Only this write happened since: the hook applied it, nothing to replay.
                self._seen[area.slug] = int(seq)
            return result
        finally:
            lock.release()

    @contextmanager
    def writing(self, area: StudyArea) -> Iterator[None]:
        """Hold ``area``'s lock around one registry write (seeding the registry first).

        If the write fails after the hook changed the analysis (e.g. the commit fails),
        the analysis is dropped so that it never disagrees with the registry.
        """
        with self.lock(area.slug):
            self.ensure_seeded(area)
            self._local.applied = False
            try:
                yield
            except BaseException:
                if getattr(self._local, "applied", False):
                    self.invalidate(area.slug)
                raise
            finally:
                self._local.applied = False

    def on_registry_change(
        self,
        area: str,
        action: str,
        before: dict[str, Any] | None,
        after: dict[str, Any] | None,
    ) -> None:
        """The registry hook: apply one write to the area's analysis, if it is built."""
        analysis = self._analyses.get(area)
        if analysis is None:
            return  # built later from the registry, which then holds the write
        try:
            if action == "create" and after is not None:
                analysis.add_facility(after)
            elif action == "update" and after is not None:
                analysis.update_facility(before, after)
            elif action == "delete" and before is not None:
                analysis.remove_facility(str(before["id"]))
            else:
                raise ValueError(f"unknown registry action {action!r}")
        except (TuoyuError, ValueError) as exc:
            # The analysis disagrees with the registry (which is the truth): rebuild it.
            logger.warning("analysis of %s could not follow %s: %s", area, action, exc)
            self.invalidate(area)
            return
        self._local.applied = True
