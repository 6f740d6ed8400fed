"""Routers of the service, each testable alone (see :mod:`tuoyu_api.deps`)."""

from __future__ import annotations

from typing import Any

from tuoyu_api.schemas import ErrorResponse


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for the given error statuses."""
    text = {
        400: "Bad request: unreadable body, or the area lacks the data the request needs "
        "(e.g. `no_network`: no walking network) / 请求无法处理",
        401: "Missing or unknown bearer token / 缺少或无效的令牌",
        403: "Token revoked / 令牌已撤销",
        404: "Unknown area or facility / 未找到",
        409: "Conflict (duplicate id) / 冲突",
        422: "Invalid input; `field` names the field / 输入无效",
        429: "Too many requests from this token or client; wait `Retry-After` seconds / "
        "请求过于频繁",
        503: "Server full, request over its time limit, or database unavailable; retry "
        "after `Retry-After` seconds / 服务繁忙",
    }
    return {s: {"model": ErrorResponse, "description": text[s]} for s in statuses}
