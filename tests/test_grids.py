"""The neighbourhood and edge-ring helpers of square grids (vae_autograd.study.grids), against
brute-force loops."""
import numpy as np
import pytest

from vae_autograd.study.grids import edge_ring, neighbourhood_max


def brute_neighbourhood_max(a, fill, include_centre):
    """The same max, point by point over the last two axes."""
    rows, columns = a.shape[-2:]
    out = np.empty_like(a)
    for index in np.ndindex(a.shape[:-2]):
        for i in range(rows):
            for j in range(columns):
                values = [a[index + (i + di, j + dj)] if 0 <= i + di < rows and 0 <= j + dj < columns else fill
                          for di in (-1, 0, 1) for dj in (-1, 0, 1) if include_centre or di or dj]
                out[index + (i, j)] = max(values)
    return out


@pytest.mark.parametrize("include_centre", [True, False])
@pytest.mark.parametrize("shape", [(5, 5), (3, 4, 6), (2, 1, 1, 3)])
def test_neighbourhood_max_matches_a_loop(shape, include_centre):
    rng = np.random.default_rng(0)
    floats = rng.standard_normal(shape)
    np.testing.assert_array_equal(neighbourhood_max(floats, -np.inf, include_centre),
                                  brute_neighbourhood_max(floats, -np.inf, include_centre))
    labels = rng.integers(0, 10, shape)
    np.testing.assert_array_equal(neighbourhood_max(labels, 0, include_centre),
                                  brute_neighbourhood_max(labels, 0, include_centre))
    mask = rng.random(shape) < 0.2
    grown = neighbourhood_max(mask, False, include_centre)
    assert grown.dtype == bool
    np.testing.assert_array_equal(grown, brute_neighbourhood_max(mask, False, include_centre))


def test_neighbourhood_max_grows_a_point_to_its_3x3_square():
    mask = np.zeros((1, 5, 5), bool)
    mask[0, 0, 2] = True
    expected = np.zeros((1, 5, 5), bool)
    expected[0, 0:2, 1:4] = True
    np.testing.assert_array_equal(neighbourhood_max(mask, False), expected)
    expected[0, 0, 2] = False  # without the centre, the point itself has no marked neighbour
    np.testing.assert_array_equal(neighbourhood_max(mask, False, include_centre=False), expected)


@pytest.mark.parametrize("size", [1, 2, 3, 7])
def test_edge_ring_is_the_outermost_ring(size):
    expected = np.array([[i in (0, size - 1) or j in (0, size - 1) for j in range(size)] for i in range(size)])
    ring = edge_ring(size)
    assert ring.dtype == bool and ring.shape == (size, size)
    np.testing.assert_array_equal(ring, expected)
    assert ring.sum() == (size * size if size <= 2 else 4 * (size - 1))
