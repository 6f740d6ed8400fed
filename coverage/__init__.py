"""tuoyu-coverage: the 15-minute childcare service-circle analyzer (15分钟托育服务圈).

The analysis library. Data flows one way: sources -> validated layers -> walking
network -> reach -> indicators -> outputs (tables, maps, API).
"""

__version__ = "0.1.0"

OSM_ATTRIBUTION = "© OpenStreetMap contributors"
"""Credit required (ODbL 1.0) on every map and export built from OpenStreetMap data."""


def _install_numba_shim() -> None:
    """Let numba import although this package is also called ``coverage``.

    ``numba.misc.coverage_support`` runs ``import coverage`` meaning *coverage.py* (the
    code-coverage tool) and, when that import succeeds, subclasses
    ``coverage.types.Tracer``; it finds this package instead and numba fails to import
    (``AttributeError: module 'coverage' has no attribute 'types'``), for us and for
    every library that imports numba after us (libpysal, spopt). The finder below runs
    that one numba module with ``coverage`` hidden, so numba sees no coverage.py and
    skips its coverage hooks. Nothing else changes; numba itself is imported lazily,
    only where a kernel is used.
    """
    import importlib.abc
    import importlib.machinery
    import sys
    from collections.abc import Sequence
    from types import ModuleType

    target = "numba.misc.coverage_support"

    class _HiddenCoverageLoader(importlib.abc.Loader):
        def __init__(self, inner: importlib.abc.Loader) -> None:
            self.inner = inner

        def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
            return self.inner.create_module(spec)

        def exec_module(self, module: ModuleType) -> None:
            saved = sys.modules.get("coverage")
            sys.modules["coverage"] = None  # type: ignore[assignment]  # makes `import coverage` fail
            try:
                self.inner.exec_module(module)
            finally:
                if saved is None:
                    sys.modules.pop("coverage", None)
                else:
                    sys.modules["coverage"] = saved

    class _Finder(importlib.abc.MetaPathFinder):
        def find_spec(
            self,
            fullname: str,
            path: Sequence[str] | None,
            target_module: ModuleType | None = None,
        ) -> importlib.machinery.ModuleSpec | None:
            if fullname != target:
                return None
            spec = importlib.machinery.PathFinder.find_spec(fullname, path)
            if spec is not None and spec.loader is not None:
                spec.loader = _HiddenCoverageLoader(spec.loader)  # type: ignore[arg-type]
            return spec

    if target not in sys.modules:
        sys.meta_path.insert(0, _Finder())


_install_numba_shim()
