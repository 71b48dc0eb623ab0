"""Parts 4-5 in words: the captions' sentences on the digit classes in the latent plane."""
import math

import numpy as np

from ..core.text import percent
from .format import article, count, join


def describe_paths(classes):
    """One sentence listing the classes each path (row of classes (P, S)) passes through, in order."""
    runs = []
    for row, path in enumerate(np.asarray(classes), start=1):  # a few rows of a figure, not images
        changes = np.flatnonzero(np.diff(path)) + 1
        runs.append(" → ".join(str(c) for c in path[np.concatenate([[0], changes])]) + f" (row {row})")
    listed = join(runs)
    return (f"Along the {'path' if len(runs) == 1 else 'paths'}, the k-NN vote of the training embeddings "
            f"nearest to each latent point runs {listed}: where z lies among the training digits, not what its "
            "decoded frame looks like, which can differ (a frame between two clusters may resemble neither).")


def describe_latent_classes(summary, max_pairs=3):
    """Sentences for the latent-embedding caption (5.1), each claim computed from summary."""
    accuracy = summary["class_accuracy"]
    known = [c for c, v in enumerate(accuracy) if v is not None]
    worst, best = min(known, key=lambda c: accuracy[c]), max(known, key=lambda c: accuracy[c])
    sentences = [
        f"A {summary['k']}-nearest-neighbour vote among the {summary['num_train']:,} training "
        f"embeddings labels {percent(summary['test_accuracy'])} of the {summary['num_test']:,} test "
        f"images correctly, from {percent(accuracy[worst])} of the {worst}s to "
        f"{percent(accuracy[best])} of the {best}s."]
    # "most confused" is read off the shares, not off the order results.json lists them in
    pairs = sorted(summary["confused_pairs"], key=lambda p: -p["share"])[:max_pairs]
    if pairs:
        named = [f"{p['pair'][0]}/{p['pair'][1]} ({percent(p['share'])} of their test images "
                 "taken for the other)" if i == 0 else f"{p['pair'][0]}/{p['pair'][1]} ({percent(p['share'])})"
                 for i, p in enumerate(pairs)]
        listed = join(named)
        sentences.append(f"The most confused {'pair is' if len(pairs) == 1 else 'pairs are'} {listed}.")
    else:
        sentences.append(f"No pair of classes is mistaken for each other in {percent(summary['min_pair_share'])} "
                         "or more of its test images.")
    split = [c for c in summary["clusters"] if c["clusters"] >= 2]
    rule = (f"by this rule: the {percent(1 - summary['sparse_share'])} of a class's training embeddings whose "
            f"{summary['cluster_k']}th nearest same-class neighbour is closest are linked when closer than "
            f"{summary['gap_factor']:g} times the median distance to that neighbour, the others join their "
            f"nearest linked point, and a linked group counts as a cluster when it holds "
            f"{percent(summary['min_cluster_share'])} or more of the class")
    for n, c in enumerate(split):
        listed = join([percent(share) for share in c["component_shares"]])
        gap = math.floor(100 * c["gap"]) / 100  # rounded down: the rule keeps them at least the gap apart
        sentences.append(f"The {c['class']}s fall into {count(c['clusters'])} clusters, "
                         f"holding {listed} of them, no linked point of one within {gap:.2f} of one of "
                         "another, " + (f"{rule}." if n == 0 else "by the same rule."))
    if not split:
        sentences.append(f"No class splits into two or more clusters {rule}.")
    return " ".join(sentences)


def describe_classified(labels, predicted, what, k, where):
    """One sentence on whether the k-NN classes of some latent points match their images' labels.

    labels, predicted (P,): the digits of the images and the k-NN classes (vote of k) of
    their latent points; what names the points, e.g. "sampled z" or "end points"; where(i)
    says where point i is in the figure ("row 3"). For the reconstruction (4.2) and
    interpolation (5.3) captions: it names every mismatch, and where it is.
    """
    labels, predicted = np.asarray(labels), np.asarray(predicted)
    wrong = np.flatnonzero(labels != predicted)
    total, right = len(labels), len(labels) - len(wrong)
    by_vote = f"(by a {k}-nearest-neighbour vote)"
    if not len(wrong):
        return f"All {total} {what} lie among training embeddings of their own digit {by_vote}."
    listed = ", ".join(f"{article(labels[i])} {labels[i]} among the {predicted[i]}s ({where(i)})" for i in wrong)
    if right == 0:
        return f"None of the {total} {what} lies among training embeddings of its own digit {by_vote}: {listed}."
    return (f"{right} of the {total} {what} {'lies' if right == 1 else 'lie'} among training embeddings "
            f"of {'its' if right == 1 else 'their'} own digit {by_vote}; "
            f"{'the other lies' if len(wrong) == 1 else 'the others lie'} elsewhere: {listed}.")


def describe_reconstructions(labels, knn_classes, k):
    """The computed sentences of the reconstruction caption (4.2): labels, knn_classes (P,) of the shown z.
    A z among another digit's embeddings may still decode to its own digit: said when there is one."""
    sentence = describe_classified(labels, knn_classes, "sampled z", k, lambda i: f"row {i + 1} from the top")
    if np.any(np.asarray(labels) != np.asarray(knn_classes)):
        sentence += (" The vote says where z lies among the training digits, not what its decoded frame looks "
                     "like, which can differ.")
    return sentence


def describe_interpolations(labels_a, labels_b, classes_along, faithful, k):
    """The computed sentences of the interpolation caption (5.3).

    labels_a, labels_b (P,): the digits of each row's end images; classes_along (P, S):
    path_classes of each row's path, whose first and last points are z_a and z_b;
    faithful: the pairs came from choose_faithful_pairs' faithful draw (with its agreement test).
    """
    classes_along = np.asarray(classes_along)
    chosen = (f"The images were drawn among the test images whose latent mean a {k}-nearest-neighbour "
              "vote labels correctly and clearly. " if faithful else "")
    rows = len(classes_along)
    ends = describe_classified(np.concatenate([labels_a, labels_b]),
                               np.concatenate([classes_along[:, 0], classes_along[:, -1]]), "end points", k,
                               lambda i: f"row {i % rows + 1}, {'left' if i < rows else 'right'}")
    return chosen + ends + " " + describe_paths(classes_along)
