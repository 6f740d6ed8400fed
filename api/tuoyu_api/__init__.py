"""tuoyu-coverage FastAPI service (thin routers over the ``coverage`` library)."""
