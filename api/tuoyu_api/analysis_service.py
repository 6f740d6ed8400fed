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
* **Consistency.** Writes to an area and the build of its analysis hold the same
  per-area lock (:meth:`AnalysisService.writing`), so a build never reads the registry
  half-way through a write. If the analysis cannot follow a change (it disagrees with
  the registry), or a write fails after the hook ran, the analysis is dropped and
  rebuilt from the registry on next use (the layers stay cached): the registry is the
  truth.

One service process owns the analyses: run a single uvicorn worker per registry
(several workers would each hold their own copy and see only their own writes).
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from shapely.geometry.base import BaseGeometry
from tuoyu.config.data_registry import resolve_data_file
from tuoyu.config.study_area import StudyArea
from tuoyu.errors import TuoyuError
from tuoyu.progress import SILENT
from tuoyu.workflow.core import AreaModel
from tuoyu.workflow.layers import AreaLayers, load_layers, study_area_polygon_wgs84

from tuoyu_api.db import Database
from tuoyu_api.registry import is_seeded, list_facilities, seed_from_file
from tuoyu_api.request_limits import ISOCHRONE_CACHE_SIZE
from tuoyu_api.serialize import isochrone_feature
from tuoyu_api.settings import ApiSettings

logger = logging.getLogger(__name__)

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
        self._layers: dict[str, AreaLayers] = {}
        self._seeded: set[str] = set()
        self._locks: dict[str, threading.RLock] = {}
        self._locks_guard = threading.Lock()
        self._local = threading.local()
        self._layers_guard = threading.Lock()
        self._cache_guard = threading.Lock()
        self._isochrones: OrderedDict[tuple[str, str, int, float], dict[str, Any]] = OrderedDict()
        self._pages: dict[tuple[str, int, str, str | None, str, str | None], str] = {}

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
                analysis = self._build(area)
                self._analyses[area.slug] = analysis
            return analysis

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
    ) -> str:
        """One map page of the model's current state, cached until the next change."""
        key = (model.area.slug, model.version, name, nearest_url, language, attribution)
        with self._cache_guard:
            cached = self._pages.get(key)
        if cached is not None:
            return cached
        html = str(
            model.build_map(
                name, nearest_url=nearest_url, language=language, attribution=attribution
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

    def _build(self, area: StudyArea) -> AreaModel:
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
            records = list_facilities(session, area.slug)
        logger.info("analysis of %s built from %d registry records", area.slug, len(records))
        return AreaModel.from_layers(layers, facilities=records, facility_source="registry")

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
        if self._analyses.pop(slug, None) is not None:
            logger.warning("analysis of %s dropped; it is rebuilt from the registry", slug)

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
