"""tuoyu-coverage: the 15-minute childcare service-circle analyzer (15分钟托育服务圈).

The analysis library. Data flows one way: sources -> validated layers -> walking
network -> reach -> indicators -> outputs (tables, maps, API).
"""

__version__ = "0.1.0"

OSM_ATTRIBUTION = "© OpenStreetMap contributors"
"""Credit required (ODbL 1.0) on every map and export built from OpenStreetMap data."""
