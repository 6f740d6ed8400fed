"""A run's outputs as one unit: arguments checked before the first write, a manifest last.

Regressions: ``--month 2024-13`` failed only after 6 of 11 outputs were written, and a
run killed while writing left a mix of two runs' files with nothing marking it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tuoyu.config.data_registry import file_sha256
from tuoyu.config.settings import Settings
from tuoyu.errors import InputValidationError
from tuoyu.progress import SILENT
from tuoyu.workflow import run as run_module
from tuoyu.workflow.run import MANIFEST, analyse_area


def test_bad_month_writes_nothing(tmp_path: Path, settings: Settings) -> None:
    with pytest.raises(InputValidationError, match="month"):
        analyse_area(
            "beijing-dongcheng", tmp_path / "out", settings, SILENT, month="2024-13",
            maps_dir=tmp_path / "maps",
        )  # fmt: skip
    assert not (tmp_path / "out").exists() and not (tmp_path / "maps").exists()


def test_manifest_lists_the_run_and_a_killed_run_leaves_none(
    tmp_path: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    run = analyse_area(
        "beijing-dongcheng", out, settings, SILENT, month="2026-11", maps_dir=tmp_path / "maps"
    )
    manifest = json.loads((out / MANIFEST).read_text("utf-8"))
    assert manifest["run_id"] == run.run_id
    assert {"jiedao.csv", "jiedao.xlsx", "summary.json"} <= set(manifest["files"])
    for entry in manifest["files"].values():
        path = out / entry["path"]
        assert file_sha256(path) == entry["sha256"]

    def killed(*args: object, **kwargs: object) -> object:
        raise KeyboardInterrupt  # the run dies half way, after the maps

    monkeypatch.setattr(run_module, "write_outputs", killed)
    with pytest.raises(KeyboardInterrupt):
        analyse_area(
            "beijing-dongcheng", out, settings, SILENT, month="2026-11",
            maps_dir=tmp_path / "maps",
        )  # fmt: skip
    assert not (out / MANIFEST).exists()  # the folder no longer claims a complete run


def test_map_side_folders_are_listed_with_their_pages(
    tmp_path: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Regression: only ``<map>.isochrones/`` was listed; ``<map>.layers/`` (big gap
    layers, the walk lookup) was written beside the page but missing from the run's files."""
    from tuoyu.config.study_area import load_area
    from tuoyu.outputs.maps import save_map as real
    from tuoyu.workflow.core import AreaModel

    def saving(fmap: object, path: Path) -> Path:
        saved: Path = real(fmap, path)  # type: ignore[arg-type]
        (path.parent / f"{path.stem}.layers").mkdir(exist_ok=True)  # as a big map writes
        return saved

    monkeypatch.setattr(run_module, "save_map", saving)
    model = AreaModel.build(load_area("beijing-dongcheng"), settings)
    written, skipped = run_module.write_maps(model, tmp_path / "maps", progress=SILENT)
    assert skipped == {}
    for name in ("facilities", "dashboard", "gaps"):
        assert written[f"{name}.layers/"] == tmp_path / "maps" / f"{name}.layers"
