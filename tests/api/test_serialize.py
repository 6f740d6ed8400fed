"""The service's JSON rendering of library results."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from tuoyu_api.serialize import json_ready, table_records


def test_json_ready_and_records() -> None:
    table = pd.DataFrame(
        {"a": pd.array([1, None], dtype="Int64"), "b": [np.float64("inf"), 2.5], "c": [True, None]}
    )
    assert table_records(table) == [
        {"a": 1, "b": None, "c": True},
        {"a": None, "b": 2.5, "c": None},
    ]
    assert json_ready({1: (np.bool_(True), Path("x"))}) == {"1": [True, "x"]}
