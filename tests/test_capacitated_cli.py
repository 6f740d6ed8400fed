"""``tuoyu site --capacitated`` end to end on Dongcheng."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from tuoyu.cli import main

pytestmark = pytest.mark.slow


def test_capacitated_site_writes_what_each_site_serves(
    tmp_path: Path, settings: object, capsys: pytest.CaptureFixture[str]
) -> None:
    out, maps = tmp_path / "out", tmp_path / "maps"
    code = main(
        [
            "site", "beijing-dongcheng", "--p", "2", "--capacitated", "--solver", "greedy",
            "--sizes", "30,60", "--unknown-slots", "60", "--out", str(out), "--maps", str(maps),
        ]
    )  # fmt: skip
    assert code == 0
    sites = pd.read_csv(out / "sites_capacitated.csv", encoding="utf-8-sig")
    assert len(sites) == 2 and set(sites["slots"]) <= {30.0, 60.0}
    # a site never serves more children than its 托位
    assert (sites["served_children"] <= sites["slots"] + 1e-6).all()
    summary = json.loads((out / "siting_capacitated.json").read_text("utf-8"))
    assert summary["children_served"] >= summary["children_served_by_existing_only"]
    assert any("assumed 60" in note for note in summary["notes"])
    targets = pd.read_csv(out / "targets_capacitated.csv", encoding="utf-8-sig")
    assert len(targets) == 17
    assert targets["slots_after"].sum() - targets["slots_before"].sum() == sites["slots"].sum()
    assert "children served within capacity" in capsys.readouterr().err
