"""Target profiles: shipped files load, cite real text, and user files work."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from tuoyu.indicators.targets import INDICATORS, ProfileError, Target, list_profiles, load_profile

POLICY_DIR = Path("/work/shared/policy")
SHIPPED = {
    "chongqing-2025": "000_bff43468353cb89d.txt",
    "beijing-2025-core": "002_30e7b644e3d11434.txt",
    "beijing-2025-ecological": "002_30e7b644e3d11434.txt",
    "zhejiang-2025": "003_dc983b7d9fb3f730.txt",
    "yubei-2022": "004_c53cfe1bd3461456.txt",
}


def _squash(text: str) -> str:
    return re.sub(r"\s+", "", text)


def test_shipped_profiles_listed() -> None:
    assert set(SHIPPED) <= set(list_profiles())


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_profile_loads_and_cites_its_file(name: str) -> None:
    profile = load_profile(name)
    assert profile.name == name
    assert profile.source_file == SHIPPED[name]
    assert profile.targets
    for target in profile.targets:
        assert target.indicator in INDICATORS
        assert target.source_file == SHIPPED[name]
        assert target.clause and target.quote


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_quotes_are_verbatim_in_the_policy_texts(name: str) -> None:
    if not POLICY_DIR.is_dir():
        pytest.skip(f"policy texts not found at {POLICY_DIR}")
    profile = load_profile(name)
    for target in profile.targets:
        text = _squash((POLICY_DIR / target.source_file).read_text(encoding="utf-8"))
        assert _squash(target.quote) in text, (name, target.indicator, target.quote)


@pytest.mark.parametrize(
    ("name", "indicator", "comparison", "value"),
    [
        ("chongqing-2025", "slots_per_1000", ">=", 4.5),
        ("chongqing-2025", "puhui_slot_share", ">=", 60.0),
        ("chongqing-2025", "puhui_jiedao_coverage", ">", 90.0),
        ("chongqing-2025", "kindergarten_tuoban_share", ">=", 40.0),
        ("chongqing-2025", "utilisation", ">=", None),
        ("beijing-2025-core", "puhui_jiedao_coverage", ">=", 100.0),
        ("beijing-2025-ecological", "puhui_jiedao_coverage", ">=", 85.0),
        ("zhejiang-2025", "puhui_slot_share", ">", 60.0),
        ("yubei-2022", "slots_per_1000", ">=", 2.1),
        ("yubei-2022", "slots_total", ">=", 3150.0),
    ],
)
def test_target_values(name: str, indicator: str, comparison: str, value: float | None) -> None:
    target = load_profile(name).target_for(indicator)
    assert target is not None
    assert target.comparison == comparison
    assert target.value == value


def test_zhejiang_source_states_its_doubt() -> None:
    profile = load_profile("zhejiang-2025")
    assert "Unofficial" in profile.source
    assert "not verified" in profile.source


def test_passes_strict_and_unknown() -> None:
    gt = Target(indicator="puhui_jiedao_coverage", comparison=">", value=90, unit="%",
                year=2025, source_file="f", clause="c", quote="q")  # fmt: skip
    assert gt.passes(90.0) is False
    assert gt.passes(90.1) is True
    assert gt.passes(float("nan")) is None
    assert gt.passes(None) is None
    no_number = Target(indicator="coverage_pct", value_text="基本建成", unit="%", year=2025,
                       source_file="f", clause="c", quote="q")  # fmt: skip
    assert no_number.passes(100.0) is None
    assert no_number.text == "基本建成"
    assert gt.text == "> 90 %"


def test_user_profile_by_path(tmp_path: Path) -> None:
    path = tmp_path / "mine.toml"
    path.write_text(
        '[profile]\nname = "mine"\ntitle = "自定"\nyear = 2026\nsource = "our plan"\n\n'
        '[[target]]\nindicator = "coverage_pct"\ncomparison = "≥"\nvalue = 85\nunit = "%"\n'
        'year = 2026\nsource_file = "plan.docx"\nclause = "一"\nquote = "覆盖85%"\n',
        encoding="utf-8",
    )
    profile = load_profile(path)
    assert profile.name == "mine"
    assert profile.target_for("coverage_pct").comparison == ">="
    assert [t.indicator for t in profile.unit_targets] == ["coverage_pct"]
    assert profile.slots_per_1000_target() == 4.5  # default when the profile has none


def test_bad_profiles_raise(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match=r"unknown target profile 'nope'.*chongqing-2025"):
        load_profile("nope")
    bad = tmp_path / "bad.toml"
    bad.write_text(
        '[profile]\nname = "b"\ntitle = "b"\nyear = 2025\nsource = "s"\n\n'
        '[[target]]\nindicator = "made_up"\nunit = "%"\nyear = 2025\nsource_file = "f"\n'
        'clause = "c"\nquote = "q"\n',
        encoding="utf-8",
    )
    with pytest.raises(ProfileError, match="unknown indicator 'made_up'"):
        load_profile(bad)
    broken = tmp_path / "broken.toml"
    broken.write_text("[profile\n", encoding="utf-8")
    with pytest.raises(ProfileError, match="not valid TOML"):
        load_profile(broken)
    missing_quote = tmp_path / "noquote.toml"
    missing_quote.write_text(
        '[profile]\nname = "b"\ntitle = "b"\nyear = 2025\nsource = "s"\n\n'
        '[[target]]\nindicator = "slots_per_1000"\nvalue = 4.5\nunit = "x"\nyear = 2025\n'
        'source_file = "f"\nclause = "c"\n',
        encoding="utf-8",
    )
    with pytest.raises(ProfileError, match="quote"):
        load_profile(missing_quote)
