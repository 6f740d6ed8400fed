"""Target profiles: the policy targets a study area is compared with, kept as data.

A profile is a TOML file under ``data/profiles/`` (or any path a user gives) with a
``[profile]`` table and one ``[[target]]`` table per indicator::

    [profile]
    name = "chongqing-2025"
    title = "重庆市2025年婴幼儿照护服务目标"
    year = 2025
    source_file = "000_bff43468353cb89d.txt"
    source = "what the numbers rest on"

    [[target]]
    indicator = "slots_per_1000"      # a key of INDICATORS
    comparison = ">="                 # ">=", ">", "<=", "<" (or ≥ > ≤ <)
    value = 4.5                       # omit when the text gives no number
    value_text = "≥全国平均水平"         # the target as written, when there is no number
    unit = "托位/千人"
    year = 2025
    source_file = "000_bff43468353cb89d.txt"
    clause = "一、工作目标"             # where in the document
    quote = "全市每千人口拥有…达4.5个"   # verbatim, short
    note = "…"                         # optional

A target without ``value`` is reported with its wording but never passes or fails
(pass/fail is ``None``). Every target names the file and clause it comes from; a profile
whose source is uncertain says so in ``source``.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from tuoyu.config.locations import project_data_dir as packaged_data_dir
from tuoyu.errors import AreaConfigError


class ProfileError(AreaConfigError):
    """A target profile is unknown or malformed.

    Subclass of :class:`~tuoyu.errors.AreaConfigError` because a study area names its
    profile; kept here until the lead moves it to ``coverage/errors.py``.
    """


@dataclass(frozen=True)
class Indicator:
    """An indicator a profile can set a target on.

    Attributes
    ----------
    key
        Identifier used in profiles, the summary and ``meets_<key>`` columns.
    label_zh, label_en
        Labels for people.
    unit
        Unit of the value ("%", "托位/千人", "个").
    unit_column
        Column of the unit table compared with the target for each unit, or ``None`` when
        the indicator exists only for the whole district (no ``meets_`` column).
    """

    key: str
    label_zh: str
    label_en: str
    unit: str
    unit_column: str | None = None


INDICATORS: Final[dict[str, Indicator]] = {
    ind.key: ind
    for ind in (
        Indicator("slots_per_1000", "每千人口托位数", "Slots per 1,000 residents", "托位/千人",
                  "slots_per_1000"),
        Indicator("puhui_slot_share", "普惠托位占比", "普惠 share of slots", "%",
                  "puhui_slot_share"),
        Indicator("utilisation", "托位使用率", "Slot utilisation (enrolled ÷ slots)", "%",
                  "utilisation"),
        Indicator("puhui_jiedao_coverage", "有普惠托育机构的街道占比",
                  "Share of 街道 with a 普惠 facility", "%", "has_puhui"),
        Indicator("facility_jiedao_coverage", "有托育机构的街道（乡镇）占比",
                  "Share of 街道 with any facility", "%", "has_facility"),
        Indicator("kindergarten_tuoban_share", "提供托育服务的幼儿园占比",
                  "Share of kindergartens offering nursery classes (托班)", "%"),
        Indicator("coverage_pct", "15分钟步行覆盖人口占比（全部机构）",
                  "Population within a 15-minute walk (all facilities)", "%", "coverage_pct"),
        Indicator("puhui_coverage_pct", "15分钟步行覆盖人口占比（普惠机构）",
                  "Population within a 15-minute walk (普惠 facilities)", "%",
                  "puhui_coverage_pct"),
        Indicator("under3_coverage_pct", "15分钟步行覆盖3岁以下婴幼儿占比（全部机构）",
                  "Children under 3 within a 15-minute walk (all facilities)", "%"),
        Indicator("puhui_under3_coverage_pct", "15分钟步行覆盖3岁以下婴幼儿占比（普惠机构）",
                  "Children under 3 within a 15-minute walk (普惠 facilities)", "%"),
        Indicator("median_walk_min", "到最近机构步行时间中位数", "Median walk to the nearest facility",
                  "分钟", "median_walk_min"),
        Indicator("access_2sfca", "可达托位指数（2SFCA）", "2SFCA access (slots per child)",
                  "托位/婴幼儿", "access_2sfca"),
        Indicator("guidance_centres", "区县级婴幼儿照护服务指导中心数",
                  "District childcare guidance centres", "个"),
        Indicator("slots_total", "托位总数", "Total slots", "个"),
        Indicator("new_slots_per_unit", "每个镇街新建托位数", "New slots per 街道", "个"),
    )
}  # fmt: skip
"""Indicators a target can name (key → :class:`Indicator`)."""

_COMPARISONS: Final[dict[str, str]] = {
    ">=": ">=", "≥": ">=", ">": ">", "<=": "<=", "≤": "<=", "<": "<",
}  # fmt: skip
COMPARISON_SYMBOLS: Final[dict[str, str]] = {">=": "≥", ">": ">", "<=": "≤", "<": "<"}


class Target(BaseModel):
    """One target of a profile (see the module docstring for the fields)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    indicator: str
    comparison: Literal[">=", ">", "<=", "<"] = ">="
    value: float | None = None
    value_text: str | None = None
    unit: str
    year: int
    source_file: str
    clause: str
    quote: str = Field(min_length=1)
    note: str | None = None

    @field_validator("indicator")
    @classmethod
    def _known_indicator(cls, value: str) -> str:
        if value not in INDICATORS:
            raise ValueError(f"unknown indicator '{value}' (known: {', '.join(INDICATORS)})")
        return value

    @field_validator("comparison", mode="before")
    @classmethod
    def _normalise_comparison(cls, value: object) -> object:
        if isinstance(value, str) and value.strip() in _COMPARISONS:
            return _COMPARISONS[value.strip()]
        return value

    @property
    def label_zh(self) -> str:
        """Chinese label of the indicator."""
        return INDICATORS[self.indicator].label_zh

    @property
    def label_en(self) -> str:
        """English label of the indicator."""
        return INDICATORS[self.indicator].label_en

    @property
    def text(self) -> str:
        """The target as people read it, e.g. ``"≥ 4.5 托位/千人"``."""
        if self.value is None:
            return self.value_text or "(no number in the source)"
        return f"{COMPARISON_SYMBOLS[self.comparison]} {self.value:g} {self.unit}"

    @property
    def citation(self) -> str:
        """``source_file, clause: “quote”``."""
        return f"{self.source_file}, {self.clause}: “{self.quote}”"

    def passes(self, value: float | bool | None) -> bool | None:
        """Whether ``value`` meets the target; ``None`` when either is unknown.

        Examples
        --------
        >>> t = Target(indicator="slots_per_1000", value=4.5, unit="托位/千人", year=2025,
        ...            source_file="x", clause="c", quote="q")
        >>> t.passes(4.5), t.passes(4.49), t.passes(None)
        (True, False, None)
        """
        if self.value is None or value is None:
            return None
        number = float(value)
        if math.isnan(number):
            return None
        if self.comparison == ">=":
            return number >= self.value
        if self.comparison == ">":
            return number > self.value
        if self.comparison == "<=":
            return number <= self.value
        return number < self.value


class _ProfileHeader(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    title: str
    title_en: str | None = None
    region: str | None = None
    year: int
    document: str | None = None
    source_file: str | None = None
    source: str


class _ProfileFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    profile: _ProfileHeader
    target: list[Target] = Field(default_factory=list)


@dataclass(frozen=True)
class Profile:
    """A parsed target profile.

    Attributes
    ----------
    name, title, title_en, region, year, document, source_file
        Identity and the document the targets come from.
    source
        What the numbers rest on (and any doubt about it), in one sentence.
    targets
        The targets, in file order.
    path
        The file it was read from (``None`` when built in code).
    """

    name: str
    title: str
    year: int
    source: str
    targets: tuple[Target, ...] = ()
    title_en: str | None = None
    region: str | None = None
    document: str | None = None
    source_file: str | None = None
    path: Path | None = field(default=None, compare=False)

    def target_for(self, indicator: str) -> Target | None:
        """The first target on ``indicator``, or ``None``."""
        for target in self.targets:
            if target.indicator == indicator:
                return target
        return None

    @property
    def unit_targets(self) -> tuple[Target, ...]:
        """Targets with a per-unit reading (one ``meets_<indicator>`` column each)."""
        seen: set[str] = set()
        out: list[Target] = []
        for target in self.targets:
            if INDICATORS[target.indicator].unit_column is not None and (
                target.indicator not in seen
            ):
                seen.add(target.indicator)
                out.append(target)
        return tuple(out)

    def slots_per_1000_target(self, default: float = 4.5) -> float:
        """Slots per 1,000 residents used for the shortfall (the profile's, else 4.5)."""
        target = self.target_for("slots_per_1000")
        return float(target.value) if target is not None and target.value is not None else default


def profiles_dir(project_data_dir: Path | None = None) -> Path:
    """Folder of the shipped profiles (``data/profiles``)."""
    return (project_data_dir or packaged_data_dir()) / "profiles"


def list_profiles(project_data_dir: Path | None = None) -> list[str]:
    """Names of the profiles shipped under ``data/profiles/``.

    Examples
    --------
    >>> "chongqing-2025" in list_profiles()
    True
    """
    return sorted(p.stem for p in profiles_dir(project_data_dir).glob("*.toml"))


def load_profile(name_or_path: str | Path, project_data_dir: Path | None = None) -> Profile:
    """Load a target profile by name (under ``data/profiles/``) or by path to a TOML file.

    Parameters
    ----------
    name_or_path
        A shipped profile name such as ``"chongqing-2025"``, or the path of a user's own
        ``.toml`` file in the same format.
    project_data_dir
        The project's ``data`` folder (default: the checkout's).

    Returns
    -------
    Profile

    Raises
    ------
    ProfileError
        Unknown name, unreadable TOML, or invalid keys/values (named in the message).

    Examples
    --------
    >>> p = load_profile("beijing-2025-core")
    >>> p.target_for("puhui_jiedao_coverage").value
    100.0
    """
    candidate = Path(name_or_path)
    if candidate.suffix == ".toml" or candidate.exists():
        path = candidate
    else:
        path = profiles_dir(project_data_dir) / f"{name_or_path}.toml"
    if not path.is_file():
        known = ", ".join(list_profiles(project_data_dir)) or "none"
        raise ProfileError(
            f"unknown target profile '{name_or_path}' (known: {known}; or give the path of "
            "your own .toml file)"
        )
    try:
        with path.open("rb") as fh:
            raw = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"{path}: not valid TOML: {exc}") from exc
    try:
        parsed = _ProfileFile.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        raise ProfileError(f"{path}: [{loc}] {first['msg']}") from exc
    head = parsed.profile
    return Profile(
        name=head.name,
        title=head.title,
        title_en=head.title_en,
        region=head.region,
        year=head.year,
        document=head.document,
        source_file=head.source_file,
        source=head.source,
        targets=tuple(parsed.target),
        path=path.resolve(),
    )
