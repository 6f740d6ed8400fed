"""One core: ``tuoyu run`` and the service give the same results for the same area.

Both build :class:`tuoyu.workflow.core.AreaModel` (the run from the area's facility file,
the service from the registry seeded with that file): the per-街道 table the run writes
and the one ``/units`` serves must agree value for value.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
from tuoyu.config.settings import Settings
from tuoyu.progress import SILENT
from tuoyu.workflow.run import analyse_area
from tuoyu_api.app import create_app
from tuoyu_api.settings import get_api_settings

from tests.api.conftest import TestClient

COMPARED = (
    "population",
    "facilities",
    "puhui_facilities",
    "covered_population",
    "coverage_pct",
    "puhui_coverage_pct",
    "median_walk_min",
    "has_puhui",
)


def test_run_and_service_agree_on_dongcheng(tmp_path: Path, settings: Settings) -> None:
    run = analyse_area(
        "beijing-dongcheng", tmp_path / "out", settings, SILENT, write_map_files=False
    )
    table = run.results.table.set_index("code")
    app = create_app(
        get_api_settings(
            data_dir=settings.data_dir,
            cache_dir=settings.cache_dir,
            state_dir=tmp_path / "state",
            database_url=f"sqlite:///{tmp_path / 'registry.sqlite'}",
        )
    )
    with TestClient(app) as client:
        units = client.get("/areas/beijing-dongcheng/units").json()
        summary = client.get("/areas/beijing-dongcheng/summary").json()
    served = pd.DataFrame(units["units"], dtype=object).set_index("code")
    assert sorted(served.index) == sorted(table.index)
    for column in COMPARED:
        for code in table.index:
            ours, theirs = table.loc[code, column], served.loc[code, column]
            if pd.isna(ours):
                assert theirs is None, (column, code)
            elif isinstance(theirs, bool):
                assert bool(ours) == theirs, (column, code)
            else:
                assert math.isclose(float(ours), float(theirs), rel_tol=1e-9), (column, code)
    ours_cov = run.results.summary["indicators"]["coverage_pct"]["value"]
    assert math.isclose(ours_cov, summary["indicators"]["coverage_pct"]["value"], rel_tol=1e-12)
    assert summary["facility_source"] == "registry"
    assert run.results.summary["facility_source"] == "file"
