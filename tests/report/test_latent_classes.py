"""The captions of the latent classes (vae_autograd.report.latent_classes) name only what
the numbers show, on the stored run's summary with its numbers set to known answers.
"""
import numpy as np

from vae_autograd.report.latent_classes import (
    describe_classified,
    describe_interpolations,
    describe_latent_classes,
    describe_reconstructions,
)


def summary_with(results, split_twos=True, confused=()):
    """The stored run's latent-class summary, with every test image labelled right but for the
    confused pairs given as (a, b, share), and the 2s split into two clusters if asked."""
    summary = results["latent_classes"]
    summary.update(test_accuracy=1.0, class_accuracy=[1.0] * 10,
                   confused_pairs=[{"pair": [a, b], "share": share, "a_as_b": 1, "b_as_a": 1}
                                   for a, b, share in confused])
    for c in summary["clusters"]:
        c.update(clusters=1, component_shares=[1.0])
    if split_twos:
        summary["clusters"][2].update(clusters=2, component_shares=[2 / 3, 1 / 3])
    return summary


def test_caption_names_only_what_the_numbers_show(results):
    summary = summary_with(results)
    clean = describe_latent_classes(summary)
    assert f"labels 100% of the {summary['num_test']:,} test images" in clean
    assert "/" not in clean and "No pair of classes is mistaken" in clean
    assert "The 2s fall into two clusters, holding 67% and 33% of them, no linked point of one within " in clean
    assert "by this rule: the 90% of a class's training embeddings whose 15th nearest same-class neighbour is " \
        "closest are linked when closer than 3 times the median distance" in clean
    assert "The 4s" not in clean and "No class splits" not in clean

    confused = describe_latent_classes(summary_with(results, confused=[(4, 9, 0.37), (3, 5, 0.08)]))
    assert "The most confused pairs are 4/9 (37% of their test images taken for the other) and 3/5 (8%)." \
        in confused and "No pair" not in confused

    # "most confused" by the shares, whatever order results.json lists the pairs in
    unsorted = describe_latent_classes(summary_with(results, confused=[(3, 5, 0.08), (0, 6, 0.06), (7, 9, 0.2),
                                                                      (4, 9, 0.37)]))
    assert "The most confused pairs are 4/9 (37% of their test images taken for the other), 7/9 (20%) and " \
        "3/5 (8%)." in unsorted


def test_caption_without_any_split_says_so(results):
    summary = summary_with(results, split_twos=False)
    assert "No class splits into two or more clusters by this rule" in describe_latent_classes(summary)


def test_describe_classified_names_every_mismatch_and_where_it_is():
    def where(i):
        return f"row {i + 1}"

    assert describe_classified([3, 4], [3, 4], "end points", 15, where) == \
        "All 2 end points lie among training embeddings of their own digit (by a 15-nearest-neighbour vote)."
    text = describe_classified([5, 1, 8], [8, 1, 3], "end points", 15, where)
    assert text.startswith("1 of the 3 end points lies among training embeddings of its own digit")
    assert text.endswith("; the others lie elsewhere: a 5 among the 8s (row 1), an 8 among the 3s (row 3).")
    text = describe_classified([5, 1, 8], [5, 1, 3], "end points", 15, where)
    assert text.startswith("2 of the 3 end points lie")
    assert "; the other lies elsewhere: an 8 among the 3s (row 3)." in text
    assert describe_classified([5], [3], "sampled z", 5, where).startswith("None of the 1 sampled z lies")


def test_describe_interpolations_reads_the_end_points_off_the_paths():
    along = np.array([[1, 1, 7, 4], [3, 3, 5, 6]])  # row 2 starts, at z_a of a 5, among the 3s
    text = describe_interpolations([1, 5], [4, 6], along, faithful=False, k=15)
    assert text.startswith("3 of the 4 end points lie") and "a 5 among the 3s (row 2, left)" in text
    assert "nearest to each latent point runs 1 → 7 → 4 (row 1) and 3 → 5 → 6 (row 2): where z lies" in text
    assert "drawn among" not in text
    along[1, 0] = 5
    text = describe_interpolations([1, 5], [4, 6], along, faithful=True, k=15)
    assert "whose latent mean a 15-nearest-neighbour vote labels correctly and clearly. All 4 end points" in text
    mixed = describe_reconstructions([7, 2], [7, 3], 15)
    assert "elsewhere: a 2 among the 3s (row 2 from the top). The vote says where z lies" in mixed
    assert "decoded frame" not in describe_reconstructions([7, 2], [7, 2], 15)


def test_a_clusters_gap_is_printed_rounded_down_as_the_rule_guarantees_it(results):
    """The rule keeps clusters at least their gap apart: a gap of 0.4169 read 'within 0.42', more than it is."""
    summary = summary_with(results)
    summary["clusters"][2]["gap"] = 0.4169
    assert "no linked point of one within 0.41 of one of another" in describe_latent_classes(summary)
