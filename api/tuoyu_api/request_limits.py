"""What one request may ask of the analysis (HTTP limits belong to the service)."""

from __future__ import annotations

from typing import Final

MAX_NEAREST_MINUTES: Final = 60.0
"""Longest walk a nearest-facility or isochrone query may ask for (minutes)."""
MAX_NEAREST_K: Final = 200
"""Most facilities one nearest-facility query returns."""
MAX_SCENARIO_ADDITIONS: Final = 500
"""Most facilities one what-if scenario may add."""
MAX_SITES: Final = 100
"""Most sites one siting request may ask for."""
ISOCHRONE_CACHE_SIZE: Final = 256
"""Isochrone answers kept per area (least recently used dropped first)."""
SITES_TIME_LIMIT_S: Final = 10.0
"""Solver time limit of one ``/sites`` request (the answer says whether it is optimal)."""
