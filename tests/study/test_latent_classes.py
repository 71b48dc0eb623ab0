"""Tests for vae_autograd.study.latent_classes on synthetic 2-D Gaussian blobs with known labels.

No MNIST and no training: embeddings are drawn directly, so every expected answer
(which pair overlaps, which class is split) is known by construction.
"""
import numpy as np
import pytest
from matplotlib.figure import Figure

from tests.helpers import blobs, ring_centres
from vae_autograd.core.model import init_vae_params
from vae_autograd.figures.digits import fig_confusion
from vae_autograd.report.latent_classes import describe_paths
from vae_autograd.study.latent_classes import (
    accuracies,
    choose_faithful_pairs,
    class_clusters,
    confused_pairs,
    confusion_table,
    connected_components,
    knn_classify,
    latent_class_study,
    nearest_neighbours,
    path_classes,
)

pytestmark = pytest.mark.usefixtures("no_open_figures")


def test_knn_recovers_well_separated_classes_exactly():
    rng = np.random.default_rng(0)
    centres = ring_centres(10, 20.0)
    train_z, train_labels = blobs(centres, 100, 1.0, rng)
    test_z, test_labels = blobs(centres, 50, 1.0, rng)
    predicted = knn_classify(train_z, train_labels, test_z, k=15)
    np.testing.assert_array_equal(predicted, test_labels)


def test_knn_votes_by_majority_not_by_nearest():
    train_z = np.array([[0.0, 0.0], [1.0, 0.0], [1.1, 0.0], [1.2, 0.0], [10.0, 0.0]])
    train_labels = np.array([7, 3, 3, 3, 7])
    query = np.array([[0.1, 0.0]])
    assert knn_classify(train_z, train_labels, query, k=1)[0] == 7
    assert knn_classify(train_z, train_labels, query, k=3)[0] == 3  # neighbours 7, 3, 3


def test_vote_ties_go_to_the_class_with_the_nearest_member():
    # Query at 0: neighbours at distances 1 (class 5), 2 (class 2), 3 (class 2), 4 (class 5).
    train_z = np.array([[4.0, 0.0], [2.0, 0.0], [0.0, 1.0], [0.0, -3.0]])
    train_labels = np.array([5, 2, 5, 2])
    query = np.zeros((1, 2))
    assert knn_classify(train_z, train_labels, query, k=4)[0] == 5
    # Mirror the distances: now class 2 has the nearest member and wins the 2-2 tie.
    assert knn_classify(train_z, 7 - train_labels, query, k=4)[0] == 2


def test_equal_distances_are_resolved_by_training_index_deterministically():
    # Four training points at exactly distance 1 from the query; k=2 must take indices 0 and 1.
    train_z = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]])
    indices, distances = nearest_neighbours(train_z, np.zeros((1, 2)), 2)
    np.testing.assert_array_equal(indices, [[0, 1]])
    np.testing.assert_array_equal(distances, [[1.0, 1.0]])
    # The tied vote (one 4, one 9) goes to the first of them, and repeating gives the same answer.
    labels = np.array([4, 9, 9, 4])
    answers = {int(knn_classify(train_z, labels, np.zeros((1, 2)), k=2)[0]) for _ in range(5)}
    assert answers == {4}
    assert knn_classify(train_z, labels[::-1].copy(), np.zeros((1, 2)), k=2)[0] == 4


def test_blocked_neighbours_equal_unblocked_brute_force():
    rng = np.random.default_rng(1)
    # Coordinates on a coarse grid, so many distances tie exactly and tie-breaking is exercised.
    train_z = rng.integers(0, 6, size=(300, 2)).astype(np.float64)
    query_z = rng.integers(0, 6, size=(77, 2)).astype(np.float64)
    labels = rng.integers(0, 10, size=300)
    squared = ((query_z[:, None] - train_z[None]) ** 2).sum(-1)
    brute = np.lexsort((np.broadcast_to(np.arange(300), squared.shape), squared), axis=1)[:, :9]
    for block in (1, 300 * 5, 300 * 77, 10**9):
        indices, distances = nearest_neighbours(train_z, query_z, 9, max_block_distances=block)
        np.testing.assert_array_equal(indices, brute)
        np.testing.assert_allclose(distances, np.sqrt(np.take_along_axis(squared, brute, axis=1)))
    # The first columns of a larger search are the smaller search: one search serves every k.
    np.testing.assert_array_equal(nearest_neighbours(train_z, query_z, 4)[0], brute[:, :4])
    predicted = {tuple(knn_classify(train_z, labels, query_z, 9, max_block_distances=block))
                 for block in (1, 1000, 10**9)}
    assert len(predicted) == 1


@pytest.mark.parametrize("call, message", [
    (lambda z, y: knn_classify(z[:, :1], y, z), "shape"),
    (lambda z, y: knn_classify(z, y, z[:, :1]), "shape"),
    (lambda z, y: knn_classify(z, y[:-1], z), "one per embedding"),
    (lambda z, y: knn_classify(z, y.astype(float), z), "integer"),
    (lambda z, y: knn_classify(z, y, z, k=0), "k must be"),
    (lambda z, y: knn_classify(z, y, z, k=len(z) + 1), "k must be"),
    (lambda z, y: knn_classify(np.where(z > 0, np.nan, z), y, z), "NaN"),
    (lambda z, y: confusion_table(y, y + 10), "0..9"),
])
def test_bad_inputs_raise_one_line_errors_naming_the_fix(call, message):
    z = np.random.default_rng(2).standard_normal((20, 2))
    y = np.arange(20) % 10
    with pytest.raises(ValueError, match=message) as err:
        call(z, y)
    assert "\n" not in str(err.value)


def test_confusion_table_counts_a_hand_made_example():
    true = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2])
    predicted = np.array([0, 0, 1, 1, 1, 2, 0, 2, 2])
    table = confusion_table(true, predicted, num_classes=3)
    np.testing.assert_array_equal(table, [[2, 1, 0], [0, 2, 0], [1, 0, 3]])
    shifted = confusion_table((true + 7).astype(np.uint8), (predicted + 7).astype(np.uint8), 30)
    np.testing.assert_array_equal(shifted[7:10, 7:10], table)  # 9 * 30 overflows uint8: counted in int64
    per_class, overall = accuracies(table)
    np.testing.assert_allclose(per_class, [2 / 3, 1.0, 3 / 4])
    assert overall == pytest.approx(7 / 9)
    per_class, _ = accuracies(confusion_table(true, predicted, num_classes=4))
    assert np.isnan(per_class[3])  # a class without images has no accuracy, not 0


def test_confused_pairs_share_is_of_both_classes_images():
    table = np.array([[90, 10, 0], [30, 70, 0], [0, 5, 45]])
    pairs = confused_pairs(table, min_share=0.0)
    assert [p["pair"] for p in pairs] == [[0, 1], [1, 2]]  # {0, 2} never swapped: not listed
    assert pairs[0] == {"pair": [0, 1], "share": pytest.approx(40 / 200), "a_as_b": 10, "b_as_a": 30}
    assert pairs[1]["share"] == pytest.approx(5 / 150)
    assert [p["pair"] for p in confused_pairs(table, min_share=0.1)] == [[0, 1]]


def test_overlapping_blobs_are_named_the_most_confused_pair():
    rng = np.random.default_rng(3)
    centres = ring_centres(10, 20.0)
    centres[9] = centres[4] + [1.0, 0.0]  # 4 and 9 overlap, everything else is far apart
    train_z, train_labels = blobs(centres, 200, 1.0, rng)
    test_z, test_labels = blobs(centres, 100, 1.0, rng)
    table = confusion_table(test_labels, knn_classify(train_z, train_labels, test_z, 15))
    pairs = confused_pairs(table, min_share=0.05)
    assert [p["pair"] for p in pairs] == [[4, 9]]
    assert 0.15 < pairs[0]["share"] < 0.5  # N(0,1) blobs 1 apart: about 31% on the wrong side


def test_connected_components_of_a_hand_made_graph():
    component = connected_components(7, np.array([0, 1, 5, 6, 4]), np.array([1, 2, 6, 4, 4]))
    np.testing.assert_array_equal(component, [0, 0, 0, 3, 4, 4, 4])
    # A long path with edges listed backwards still ends in one component.
    np.testing.assert_array_equal(connected_components(50, np.arange(49)[::-1], np.arange(1, 50)[::-1]),
                                  np.zeros(50))


def test_one_blob_is_one_cluster_and_two_distant_blobs_are_two():
    rng = np.random.default_rng(4)
    one, _ = blobs([[0.0, 0.0]], 600, 1.0, rng)
    two, _ = blobs([[0.0, 0.0], [12.0, 0.0]], [400, 200], 1.0, rng)
    z = np.concatenate([one, two])
    labels = np.repeat([2, 5], 600)
    single, split = class_clusters(z, labels, k=10)
    assert single["class"] == 2 and single["clusters"] == 1 and single["outside_largest"] < 0.02
    assert split["class"] == 5 and split["clusters"] == 2
    assert split["component_shares"] == pytest.approx([2 / 3, 1 / 3])
    assert split["outside_largest"] == pytest.approx(1 / 3)


def test_clusters_ignore_outliers_other_classes_and_curved_shapes():
    rng = np.random.default_rng(5)
    # A thin ring (one cluster that 2-means would cut in two), a far island of 30 of its
    # points (under 10% of the class), and another class lying in the ring's middle.
    angle = rng.uniform(0, 2 * np.pi, 800)
    ring = 10 * np.stack([np.cos(angle), np.sin(angle)], 1) + 0.3 * rng.standard_normal((800, 2))
    island, _ = blobs([[50.0, 50.0]], 30, 1.0, rng)
    centre, _ = blobs([[0.0, 0.0]], 300, 1.0, rng)
    z = np.concatenate([ring, island, centre])
    labels = np.repeat([8, 1], [830, 300])
    ring_result, centre_result = sorted(class_clusters(z, labels, k=10), key=lambda c: -c["class"])
    assert ring_result["clusters"] == 1 and 30 / 830 <= ring_result["outside_largest"] < 0.06
    assert centre_result["clusters"] == 1


@pytest.mark.parametrize("seed", range(5))
def test_one_gaussian_blob_is_never_split(seed):
    z, labels = blobs([[0.0, 0.0]], 1000, 1.0, np.random.default_rng(seed))
    result, = class_clusters(z, labels)
    assert result["clusters"] == 1 and result["outside_largest"] < 0.02


def test_a_thin_trail_of_stray_points_does_not_join_two_groups():
    rng = np.random.default_rng(10)
    groups, _ = blobs([[0.0, 0.0], [10.0, 0.0]], [500, 300], 1.0, rng)
    trail = np.stack([np.linspace(2, 8, 30), 0.2 * rng.standard_normal(30)], 1)  # spaced 0.2 apart
    z = np.concatenate([groups, trail])
    labels = np.zeros(len(z), int)
    # Every point of the trail has trail points among its nearest neighbours: without leaving
    # out the sparse points the graph is one component; the dense groups are still two.
    assert class_clusters(z, labels, sparse_share=0.0)[0]["clusters"] == 1
    result, = class_clusters(z, labels, sparse_share=0.1)
    assert result["clusters"] == 2
    assert result["component_shares"][1] == pytest.approx(300 / 830, abs=30 / 830)


def test_a_dense_blob_with_a_sparse_tail_is_not_called_two_clusters():
    rng = np.random.default_rng(6)
    dense, _ = blobs([[0.0, 0.0]], 900, 1.0, rng)
    tail = np.stack([np.linspace(3, 15, 100), 0.3 * rng.standard_normal(100)], 1)
    result, = class_clusters(np.concatenate([dense, tail]), np.zeros(1000, int), k=10)
    assert result["clusters"] == 1


def test_end_point_classes_and_faithful_pairs():
    rng = np.random.default_rng(7)
    train_z, train_labels = blobs(ring_centres(3, 10.0), 50, 0.5, rng)
    z_a, z_b = np.array([[10.0, 0.0]]), ring_centres(3, 10.0)[[2]]
    class_a, class_b = knn_classify(train_z, train_labels, np.concatenate([z_a, z_b]), k=5)
    assert (class_a, class_b) == (0, 2)

    labels = np.array([0, 0, 1, 1, 2, 2, 3, 3])
    predicted = np.array([0, 1, 1, 0, 2, 0, 0, 0])  # faithful: images 0, 2, 4
    for seed in range(20):
        a, b, faithful = choose_faithful_pairs(labels, predicted, np.random.default_rng(seed), 2)
        assert faithful
        assert set(a) | set(b) <= {0, 2, 4}
        assert np.all(labels[a] != labels[b]) and len(set(a)) == 2
    # With agreement, image 4 (agreement 0.5) drops out; 0 and 2 remain, one pair of classes 0/1.
    agreement = np.array([0.9, 1.0, 0.8, 1.0, 0.5, 1.0, 1.0, 1.0])
    for seed in range(10):
        a, b, faithful = choose_faithful_pairs(labels, predicted, np.random.default_rng(seed), 1, agreement)
        assert faithful and {int(a[0]), int(b[0])} == {0, 2}
    a, b, faithful = choose_faithful_pairs(labels, predicted, np.random.default_rng(0), 3, agreement)
    assert not faithful  # three pairs need three distinct first images; only 0 and 2 pass
    # Only class 0 is ever faithful: fall back to all images and say so.
    a, b, faithful = choose_faithful_pairs(labels, np.zeros(8, int), np.random.default_rng(0), 3)
    assert not faithful and np.all(labels[a] != labels[b])
    with pytest.raises(ValueError, match="two classes"):
        choose_faithful_pairs(np.zeros(8, int), np.zeros(8, int), np.random.default_rng(0), 2)


def test_path_classes_follow_the_regions_a_straight_path_crosses():
    rng = np.random.default_rng(11)
    train_z, train_labels = blobs([[0.0, 0.0], [5.0, 0.0], [10.0, 0.0], [5.0, 20.0]], 100, 0.5, rng)
    alpha = np.linspace(1.0, 0.0, 11)[:, None]
    path = alpha * np.array([0.0, 0.0]) + (1 - alpha) * np.array([10.0, 0.0])
    classes = path_classes(train_z, train_labels, np.stack([path, path[::-1]]), k=5)
    assert classes.shape == (2, 11)
    np.testing.assert_array_equal(classes[0], [0] * 3 + [1] * 5 + [2] * 3)  # class 3 is off the path
    assert describe_paths(classes) == ("Along the paths, the k-NN vote of the training embeddings nearest to each "
                                       "latent point runs 0 → 1 → 2 (row 1) and 2 → 1 → 0 (row 2)" + TAIL)
    assert describe_paths(classes[:1, :2]) == ("Along the path, the k-NN vote of the training embeddings "
                                              "nearest to each latent point runs 0 (row 1)" + TAIL)


def test_study_on_a_tiny_untrained_model_and_its_figure():
    rng = np.random.default_rng(9)
    enc, _ = init_vae_params(rng, 784, 20, 2)
    x = (rng.random((120, 784)) < 0.3).astype(np.float32)
    labels = np.arange(120) % 10
    study = latent_class_study(enc, x[:80], labels[:80], x[80:], labels[80:], k=5, ks=(1, 5))
    summary = study["summary"]
    assert study["train_z"].shape == (80, 2) and study["test_z"].shape == (40, 2)
    assert np.sum(summary["confusion"]) == 40 and len(summary["clusters"]) == 10
    assert set(summary["accuracy_by_k"]) == {"1", "5"}
    assert summary["accuracy_by_k"]["5"] == summary["test_accuracy"]
    neighbours, _ = nearest_neighbours(study["train_z"], study["test_z"], 5)
    np.testing.assert_allclose(study["test_agreement"], np.mean(labels[:80][neighbours] == labels[80:, None], 1))
    test_z = study["test_z"]
    for k in (1, 5):
        expected = np.mean(knn_classify(study["train_z"], labels[:80], test_z, k) == labels[80:])
        assert summary["accuracy_by_k"][str(k)] == pytest.approx(expected)
    import json
    json.dumps(summary)  # JSON-ready: no NumPy scalars or arrays
    fig = fig_confusion(summary)
    assert isinstance(fig, Figure)
    shown = np.asarray(fig.axes[0].images[0].get_array())
    table = np.asarray(summary["confusion"], float)
    rows = table.sum(1) > 0
    np.testing.assert_allclose(shown[rows], 100 * table[rows] / table[rows].sum(1, keepdims=True))  # percent


TAIL = (": where z lies among the training digits, not what its decoded frame looks like, which can "
        "differ (a frame between two clusters may resemble neither).")
