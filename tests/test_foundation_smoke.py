"""Study-area files, data lookup and the CLI entry."""

from __future__ import annotations

from pathlib import Path

import pytest
from tuoyu.cli import main
from tuoyu.config.data_registry import (
    load_registry,
    resolve_data_dir,
    resolve_data_file,
    verify_all,
)
from tuoyu.config.settings import get_settings
from tuoyu.config.study_area import list_areas, load_area
from tuoyu.errors import AreaConfigError, ChecksumMismatchError, DataNotFoundError


def test_shipped_areas_parse() -> None:
    assert {"chongqing-yuzhong", "beijing-dongcheng"} <= set(list_areas())
    yuzhong = load_area("chongqing-yuzhong")
    assert yuzhong.area.code == "500103"
    assert yuzhong.walk.metres_for(15) == pytest.approx(1000.0)
    assert yuzhong.facilities is None
    dongcheng = load_area("beijing-dongcheng")
    assert dongcheng.units is not None and dongcheng.units.crs == "gcj02"
    assert dongcheng.network is not None and dongcheng.network.crs == "gcj02"
    assert dongcheng.network.path == "beijing-dongcheng/roads.geojson"


def test_unknown_area_names_known_ones() -> None:
    with pytest.raises(AreaConfigError, match=r"known: .*beijing-dongcheng"):
        load_area("atlantis")


def test_bad_crs_in_area_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(
        '[area]\nname="x"\ncode="1"\ntarget_profile="chongqing-2025"\n[units]\npath="a"\ncrs="mars2000"\n',
        "utf-8",
    )
    with pytest.raises(AreaConfigError, match=r"units\.crs.*mars2000"):
        load_area(path)


def test_registered_files_match(data_dir: Path) -> None:
    rows = verify_all(get_settings(data_dir=data_dir))
    assert len(rows) == len(load_registry())
    assert all(ok for _, ok, _ in rows), rows


def test_checksum_mismatch_is_refused(tmp_path: Path, data_dir: Path) -> None:
    fake = tmp_path / "chongqing-yuzhong"
    fake.mkdir()
    (fake / "district.geojson").write_text("{}", "utf-8")
    settings = get_settings(data_dir=tmp_path)
    with pytest.raises(ChecksumMismatchError, match="differs from the registry"):
        resolve_data_file("chongqing-yuzhong/district.geojson", settings)


def test_missing_data_dir_says_how(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TUOYU_DATA_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(DataNotFoundError, match="TUOYU_DATA_DIR"):
        resolve_data_dir()


def test_cli_unknown_area_exits_nonzero(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "atlantis"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown study area" in err[0]


def test_walk_minutes_are_bounded(tmp_path: Path) -> None:
    """Regression: ``minutes = [5, 1e9]`` was accepted (96 % "covered")."""
    area = tmp_path / "far.toml"
    area.write_text(
        '[area]\nname = "x"\ncode = "500103"\ntarget_profile = "chongqing-2025"\n'
        "[walk]\nminutes = [5, 1e9]\n",
        "utf-8",
    )
    with pytest.raises(AreaConfigError, match="minutes"):
        load_area(area)
    assert main(["run", str(area)]) == 2
