"""The walkthrough notebook runs top to bottom (executed with nbclient, so it cannot rot)."""

from __future__ import annotations

from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "01_walkthrough.ipynb"


@pytest.mark.slow
def test_walkthrough_notebook_runs(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    # the kernel inherits this environment: shared data, caches in a temp folder
    monkeypatch.setenv("TUOYU_DATA_DIR", str(data_dir))
    monkeypatch.setenv("TUOYU_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("TUOYU_STATE_DIR", str(tmp_path / "state"))
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(
        nb, timeout=None, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    text = "".join(o.get("text", "") for o in outputs if o.get("output_type") == "stream")
    assert "北京市东城区 110101" in text
    assert "network: " in text and "of population points within 1000 m" in text
    assert "街道 with a 普惠 facility: 94.1 % → 100.0 %" in text
    assert "有普惠托育机构的街道占比" in text
    html = "".join(
        o.get("data", {}).get("text/html", "")
        for o in outputs
        if o.get("output_type") in ("execute_result", "display_data")
    )
    assert html.count("tuoyu.setup(") >= 1  # the dashboard rendered in the notebook
