"""The synthetic city generator (jittered street grid) and random facilities."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.sparse.csgraph import connected_components
from tuoyu.errors import InputValidationError
from tuoyu.network.graph import build_graph
from tuoyu.synthetic import SYNTHETIC_CRS, random_facilities, synthetic_city


@pytest.mark.parametrize("n", [1, 2, 7, 1_000, 12_345])
def test_exact_node_count_and_ids(n: int) -> None:
    net = synthetic_city(n, seed=1)
    assert net.n_nodes == n
    np.testing.assert_array_equal(net.node_id, np.arange(n))
    assert net.crs == SYNTHETIC_CRS and net.crs.to_epsg() == 32648
    assert net.source.startswith("synthetic city")
    assert net.metadata["synthetic"] is True
    if net.n_edges:
        assert net.edge_u.min() >= 0 and net.edge_v.max() < n
        assert (net.edge_u != net.edge_v).all()
        assert (net.edge_way_id == -1).all()


def test_same_seed_same_city_other_seed_other_city() -> None:
    a, b, c = synthetic_city(2_000, 4), synthetic_city(2_000, 4), synthetic_city(2_000, 5)
    np.testing.assert_array_equal(a.node_x_m, b.node_x_m)
    np.testing.assert_array_equal(a.edge_u, b.edge_u)
    assert not np.array_equal(a.node_x_m, c.node_x_m)


def test_blocks_jitter_removed_streets_and_diagonals() -> None:
    lo, hi, jitter = 50.0, 150.0, 5.0
    n = 40_000  # a 200 × 200 grid
    net = synthetic_city(n, seed=3, block_m=(lo, hi), jitter_m=jitter)
    length = net.edge_length_m
    # Lengths are the Euclidean segment lengths.
    seg = net.edge_segments()
    np.testing.assert_allclose(length, np.hypot(*(seg[:, 1] - seg[:, 0]).T))
    # Grid streets (neighbours in a row or column) are one block long, ± jitter.
    step = net.edge_v - net.edge_u
    grid = (step == 1) | (step == 200)
    assert length[grid].min() >= lo - 2 * np.sqrt(2) * jitter
    assert length[grid].max() <= hi + 2 * np.sqrt(2) * jitter
    assert 90.0 < float(np.median(length[grid])) < 110.0
    # A few diagonals (3 % of the blocks), a few removed streets (4 % of 2·199·200).
    diagonal = ~grid
    assert 0.02 < diagonal.sum() / 199**2 < 0.04
    assert 0.03 < 1 - grid.sum() / (2 * 199 * 200) < 0.05
    # No duplicate segments.
    pairs = np.unique(np.sort(np.column_stack([net.edge_u, net.edge_v]), axis=1), axis=0)
    assert pairs.shape[0] == net.n_edges
    # Mostly one connected city.
    _, labels = connected_components(build_graph(net).csr, directed=False)
    assert np.bincount(labels).max() / n > 0.98


def test_options_are_honoured() -> None:
    net = synthetic_city(400, seed=2, block_m=(100.0, 100.0), jitter_m=0.0, removed_share=0.0)
    grid = np.isin(net.edge_v - net.edge_u, [1, 20])
    np.testing.assert_allclose(net.edge_length_m[grid], 100.0)
    assert grid.sum() == 2 * 19 * 20
    none = synthetic_city(400, seed=2, diagonal_share=0.0)
    assert np.isin(none.edge_v - none.edge_u, [1, 20]).all()


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"n_nodes": 0}, "n_nodes"),
        ({"block_m": (150.0, 50.0)}, "block_m"),
        ({"block_m": (0.0, 50.0)}, "block_m"),
        ({"jitter_m": 40.0}, "jitter_m"),
        ({"removed_share": 1.0}, "removed_share"),
        ({"diagonal_share": -0.1}, "diagonal_share"),
    ],
)
def test_bad_options_are_refused(kwargs: dict[str, object], field: str) -> None:
    args: dict[str, object] = {"n_nodes": 100, "seed": 0, **kwargs}
    with pytest.raises(InputValidationError) as info:
        synthetic_city(**args)  # type: ignore[arg-type]
    assert info.value.field == field


def test_random_facilities_lie_near_streets() -> None:
    net = synthetic_city(2_500, seed=8)
    x, y = random_facilities(net, 500, seed=9, max_offset_m=25.0)
    assert x.shape == y.shape == (500,)
    xb, yb = net.node_x_m, net.node_y_m
    assert (x > xb.min() - 26).all() and (x < xb.max() + 26).all()
    assert (y > yb.min() - 26).all() and (y < yb.max() + 26).all()
    x2, y2 = random_facilities(net, 500, seed=9, max_offset_m=25.0)
    np.testing.assert_array_equal(x, x2)
    np.testing.assert_array_equal(y, y2)
    e0, e1 = random_facilities(net, 0, seed=9)
    assert e0.shape == e1.shape == (0,)
    with pytest.raises(InputValidationError):
        random_facilities(net, -1, seed=9)
    with pytest.raises(InputValidationError, match="no edges"):
        random_facilities(synthetic_city(1, seed=0), 3, seed=0)
