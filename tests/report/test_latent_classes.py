"""The captions of the latent classes (vae_autograd.report.latent_classes) name only what
the numbers show, on synthetic blobs whose answers are known by construction.
"""
import numpy as np
import pytest

from tests.helpers import blobs, ring_centres
from vae_autograd.report.latent_classes import (
    describe_classified,
    describe_interpolations,
    describe_latent_classes,
    describe_reconstructions,
)
from vae_autograd.study.latent_classes import accuracies, class_clusters, confused_pairs, confusion_table, knn_classify

pytestmark = pytest.mark.usefixtures("no_open_figures")


def synthetic_summary(overlap):
    """Summary of a study on synthetic blobs: ten separated classes, 4 and 9 overlapping if asked,
    and the 2s drawn as two distant groups."""
    rng = np.random.default_rng(8)
    centres = ring_centres(10, 30.0)
    if overlap:
        centres[9] = centres[4] + [1.0, 0.0]
    train_z, train_labels = blobs(centres, 150, 1.0, rng)
    twos = np.flatnonzero(train_labels == 2)
    train_z[twos[:50]] += [0.0, 15.0]
    test_z, test_labels = blobs(centres, 80, 1.0, rng)
    predicted = knn_classify(train_z, train_labels, test_z, 15)
    table = confusion_table(test_labels, predicted)
    per_class, overall = accuracies(table)
    return {"k": 15, "num_train": len(train_z), "num_test": len(test_z), "test_accuracy": overall,
            "class_accuracy": per_class.tolist(), "confusion": table.tolist(), "min_pair_share": 0.05,
            "confused_pairs": confused_pairs(table, 0.05), "min_cluster_share": 0.1,
            "clusters": class_clusters(train_z, train_labels, k=15, sparse_share=0.1, min_cluster_share=0.1)}


def test_caption_names_only_what_the_numbers_show():
    clean = describe_latent_classes(synthetic_summary(overlap=False))
    assert "labels 100% of the 800 test images" in clean
    assert "/" not in clean and "No pair of classes is mistaken" in clean
    assert "The 2s lie in two separate clusters, holding 67% and 33% of them." in clean
    assert "The 4s" not in clean and "No class splits" not in clean

    confused = describe_latent_classes(synthetic_summary(overlap=True))
    assert "The most confused pair is 4/9 (" in confused and "No pair" not in confused
    share = confused_pairs(np.array(synthetic_summary(True)["confusion"]), 0.05)[0]["share"]
    assert f"4/9 ({100 * share:.0f}% of their test images" in confused


def test_caption_without_any_split_says_so():
    summary = synthetic_summary(overlap=False)
    summary["clusters"] = [dict(c, clusters=1, component_shares=[1.0]) for c in summary["clusters"]]
    assert "No class splits into separate clusters" in describe_latent_classes(summary)


def test_describe_classified_names_every_mismatch_in_plain_grammar():
    assert describe_classified([3, 4], [3, 4], "end points", 15) == \
        "All 2 end points lie among training embeddings of their own digit (by a 15-nearest-neighbour vote)."
    text = describe_classified([5, 1, 8], [8, 1, 3], "end points", 15)
    assert text.startswith("1 of the 3 end points lies among training embeddings of its own digit")
    assert text.endswith("; the others lie elsewhere: a 5 among the 8s, an 8 among the 3s.")
    text = describe_classified([5, 1, 8], [5, 1, 3], "end points", 15)
    assert text.startswith("2 of the 3 end points lie") and "; the other lies elsewhere: an 8 among the 3s." in text
    assert describe_classified([5], [3], "sampled z", 5).startswith("None of the 1 sampled z lies")


def test_describe_interpolations_reads_the_end_points_off_the_paths():
    along = np.array([[1, 1, 7, 4], [3, 3, 5, 6]])  # row 2 starts, at z_a of a 5, among the 3s
    text = describe_interpolations([1, 5], [4, 6], along, faithful=False, k=15)
    assert text.startswith("3 of the 4 end points lie") and "a 5 among the 3s" in text
    assert text.endswith("the k-NN class runs 1 → 7 → 4 (row 1) and 3 → 5 → 6 (row 2).")
    assert "drawn among" not in text
    along[1, 0] = 5
    text = describe_interpolations([1, 5], [4, 6], along, faithful=True, k=15)
    assert "whose latent mean a 15-nearest-neighbour vote labels correctly and clearly. All 4 end points" in text
    assert describe_reconstructions([7, 2], [7, 3], 15).endswith("elsewhere: a 2 among the 3s.")
