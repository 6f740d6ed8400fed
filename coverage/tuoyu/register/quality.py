"""Quality assessments (质量评估) of registered facilities and their latest ratings.

Dimensions: policy 002 (京政办发〔2023〕6号, item 2, 建立托育服务质量评价机制) asks for quality
standards "从机构管理、队伍建设、照护环境、安全保障、卫生保健、与家庭和社区合作、照护活动等方面"
— the seven :data:`DIMENSIONS` here, each scored 0–100.

Overall rating: policy 002 names the dimensions but no scoring rule and no grades (the
detailed scoring rules, 评分细则, are left to the city's standard). The project's
default, :data:`DEFAULT_SCHEME`, takes the unweighted mean of the seven scores on the
0–100 scale and maps it to 优秀 (≥ 90), 良好 (≥ 75), 合格 (≥ 60), else 不合格; pass a
:class:`RatingScheme` of your own (weights, thresholds, grade names) to follow a local
standard.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final

from tuoyu.errors import InputValidationError

DIMENSIONS: Final[dict[str, str]] = {
    "机构管理": "management",
    "队伍建设": "staff",
    "照护环境": "environment",
    "安全保障": "safety",
    "卫生保健": "health care",
    "与家庭和社区合作": "families and community",
    "照护活动": "care activities",
}
"""The seven dimensions of policy 002's quality scheme, Chinese → English."""

MAX_SCORE: Final = 100.0


@dataclass(frozen=True)
class RatingScheme:
    """How the dimension scores give an overall rating.

    Attributes
    ----------
    thresholds
        ``(lowest overall score, grade)`` from the best grade down; a score below every
        threshold gets ``fail``.
    fail
        The grade below the last threshold.
    weights
        Dimension → weight of the weighted mean (every dimension 1 by default).
    """

    thresholds: tuple[tuple[float, str], ...] = ((90.0, "优秀"), (75.0, "良好"), (60.0, "合格"))
    fail: str = "不合格"
    weights: Mapping[str, float] = field(
        default_factory=lambda: MappingProxyType(dict.fromkeys(DIMENSIONS, 1.0))
    )

    @property
    def grades(self) -> tuple[str, ...]:
        """Every grade, best first."""
        return (*(g for _t, g in self.thresholds), self.fail)


DEFAULT_SCHEME: Final = RatingScheme()
"""The project's default: unweighted mean, 优秀 ≥ 90, 良好 ≥ 75, 合格 ≥ 60, else 不合格."""


@dataclass(frozen=True)
class Assessment:
    """One quality assessment of one facility.

    Attributes
    ----------
    facility_id
        The facility assessed.
    assessed_on
        The day of the assessment.
    assessor
        Who assessed (organisation or expert panel).
    scores
        Dimension (key of :data:`DIMENSIONS`) → score 0–100, every dimension given.
    note
        Internal remark (never disclosed).
    """

    facility_id: str
    assessed_on: dt.date
    assessor: str
    scores: Mapping[str, float]
    note: str | None = None


def assessment(
    facility_id: str,
    assessed_on: dt.date,
    assessor: str,
    scores: Mapping[str, object],
    note: str | None = None,
) -> Assessment:
    """A checked :class:`Assessment`.

    Raises
    ------
    InputValidationError
        Naming the field: missing facility id or assessor, a date that is not a date, an
        unknown or missing dimension, a score that is not a number from 0 to 100.

    Examples
    --------
    >>> a = assessment("A1", dt.date(2025, 6, 1), "区卫健委", dict.fromkeys(DIMENSIONS, 80))
    >>> overall_score(a), rating(a)
    (80.0, '良好')
    >>> assessment("A1", dt.date(2025, 6, 1), "区卫健委", {"机构管理": 80})
    Traceback (most recent call last):
    ...
    tuoyu.errors.InputValidationError: field 'scores.队伍建设': score of 队伍建设 is missing; every dimension is scored: 机构管理、队伍建设、照护环境、安全保障、卫生保健、与家庭和社区合作、照护活动
    """
    if not isinstance(facility_id, str) or not facility_id.strip():
        raise InputValidationError("facility_id is required", field="facility_id")
    if not isinstance(assessor, str) or not assessor.strip():
        raise InputValidationError("assessor is required (评估人)", field="assessor")
    if isinstance(assessed_on, dt.datetime) or not isinstance(assessed_on, dt.date):
        raise InputValidationError(
            f"assessed_on must be a date, got {assessed_on!r}", field="assessed_on"
        )
    unknown = [k for k in scores if k not in DIMENSIONS]
    if unknown:
        raise InputValidationError(
            f"unknown dimension '{unknown[0]}'; dimensions: {'、'.join(DIMENSIONS)}",
            field=f"scores.{unknown[0]}",
        )
    clean: dict[str, float] = {}
    for name in DIMENSIONS:
        if name not in scores or scores[name] is None:
            raise InputValidationError(
                f"score of {name} is missing; every dimension is scored: {'、'.join(DIMENSIONS)}",
                field=f"scores.{name}",
            )
        value = scores[name]
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InputValidationError(
                f"score of {name} is not a number: {value!r}", field=f"scores.{name}"
            )
        number = float(value)
        if not (math.isfinite(number) and 0.0 <= number <= MAX_SCORE):
            raise InputValidationError(
                f"score of {name} must be 0–100, got {value}", field=f"scores.{name}"
            )
        clean[name] = number
    text = None if note is None or not note.strip() else note.strip()
    return Assessment(
        facility_id.strip(), assessed_on, assessor.strip(), MappingProxyType(clean), text
    )


def overall_score(item: Assessment, scheme: RatingScheme = DEFAULT_SCHEME) -> float:
    """The weighted mean of the dimension scores (0–100, rounded to 0.1)."""
    total = sum(scheme.weights.get(k, 0.0) for k in DIMENSIONS)
    if total <= 0:
        raise InputValidationError("the rating scheme's weights add up to 0", field="weights")
    mean = sum(item.scores[k] * scheme.weights.get(k, 0.0) for k in DIMENSIONS) / total
    return round(mean, 1)


def rating(item: Assessment, scheme: RatingScheme = DEFAULT_SCHEME) -> str:
    """The grade of the overall score under ``scheme``.

    Examples
    --------
    >>> a = assessment("A1", dt.date(2025, 6, 1), "专家组", dict.fromkeys(DIMENSIONS, 59.9))
    >>> rating(a), rating(a, RatingScheme(thresholds=((50.0, "达标"),), fail="未达标"))
    ('不合格', '达标')
    """
    score = overall_score(item, scheme)
    for lowest, grade in scheme.thresholds:
        if score >= lowest:
            return grade
    return scheme.fail


@dataclass(frozen=True)
class Rating:
    """A facility's latest rating.

    Attributes
    ----------
    facility_id, assessed_on, assessor
        From the assessment.
    overall
        Overall score (0–100).
    grade
        优秀/良好/合格/不合格 under the default scheme.
    """

    facility_id: str
    assessed_on: dt.date
    assessor: str
    overall: float
    grade: str


def latest_ratings(
    assessments: Iterable[Assessment], scheme: RatingScheme = DEFAULT_SCHEME
) -> dict[str, Rating]:
    """The latest rating of every assessed facility (by date; a later item wins a tie).

    Indicators and maps filter or colour facilities by ``grade``.

    Examples
    --------
    >>> d = dt.date
    >>> items = [assessment("A1", d(2025, 1, 5), "x", dict.fromkeys(DIMENSIONS, 95)),
    ...          assessment("A1", d(2025, 6, 5), "x", dict.fromkeys(DIMENSIONS, 70))]
    >>> latest_ratings(items)["A1"].grade
    '合格'
    """
    latest: dict[str, Assessment] = {}
    for item in assessments:
        held = latest.get(item.facility_id)
        if held is None or item.assessed_on >= held.assessed_on:
            latest[item.facility_id] = item
    return {
        fid: Rating(fid, a.assessed_on, a.assessor, overall_score(a, scheme), rating(a, scheme))
        for fid, a in sorted(latest.items())
    }


__all__ = [
    "DEFAULT_SCHEME",
    "DIMENSIONS",
    "Assessment",
    "Rating",
    "RatingScheme",
    "assessment",
    "latest_ratings",
    "overall_score",
    "rating",
]
