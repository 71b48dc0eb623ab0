"""What the 2-D latent space says about the digit classes (study parts 4.2, 5.1 and 5.3).

The VAE never sees a label, so whether its latent plane separates the digits is a
question with a measurable answer: label each test image by a vote of the k nearest
training embeddings (the means of q(z|x)), and count which classes it gets wrong and
into which others. The same vote names the class whose training embeddings surround any
other z (the end points of an interpolation, the z of a reconstruction), and the gaps
between a class's dense points say whether it forms one region of the plane or several.

Captions are written from these numbers, so they claim only what this run measured.
Everything is plain NumPy, vectorized over images and blocked over queries so that the
distance matrix of 10,000 x 10,000 embeddings never exists at once.
"""
import numpy as np

from ..core.images import check_images
from ..core.model import encoder

# Each block of queries holds at most this many query-train distances; the block's
# float64 distances and the per-row work arrays stay around 100 MB in total.
MAX_BLOCK_DISTANCES = 2_000_000


def check_embeddings(name, z, dim=None):
    z = np.asarray(z, dtype=np.float64)
    if z.ndim != 2 or (dim is not None and z.shape[1] != dim):
        want = f"(N, {dim})" if dim is not None else "(N, D)"
        raise ValueError(f"{name} must be an array of shape {want}, got shape {z.shape}; "
                         "pass one row of latent coordinates per image")
    if not np.all(np.isfinite(z)):
        raise ValueError(f"{name} holds NaN or infinite values; drop those images first")
    return z


def check_labels(name, labels, length):
    labels = np.asarray(labels)
    if labels.shape != (length,) or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"{name} must be {length} integer labels, one per embedding, got "
                         f"{labels.dtype} of shape {labels.shape}; pass labels.astype(int)")
    return labels


def nearest_neighbours(train_z, query_z, k, exclude_self=False,
                       max_block_distances=MAX_BLOCK_DISTANCES):
    """Indices (M, k) and distances (M, k) of the k nearest rows of train_z (N, D) to each
    row of query_z (M, D), nearest first.

    Order is fully deterministic: equal distances are ordered by training index, so the
    same inputs always give the same neighbours whatever the block size.
    exclude_self: query_z is train_z itself and a point is not its own neighbour (then k < N).
    Queries go in blocks of at most max_block_distances query-train distances.
    """
    num_train = len(train_z)
    block = max(1, max_block_distances // max(num_train, 1))
    indices = np.empty((len(query_z), k), dtype=np.int64)
    distances = np.empty((len(query_z), k))
    for start in range(0, len(query_z), block):
        rows = slice(start, start + block)
        # Exact squared differences (not |a|^2 + |b|^2 - 2ab, which cancels for near points
        # and could reorder neighbours by rounding), one coordinate at a time: no (B, N, D) array.
        squared = np.zeros((len(query_z[rows]), num_train))
        for dim in range(train_z.shape[1]):
            squared += (query_z[rows, dim, None] - train_z[None, :, dim]) ** 2
        if exclude_self:
            squared[np.arange(squared.shape[0]), np.arange(start, start + squared.shape[0])] = np.inf
        # The k-th smallest distance per row; every point strictly nearer is a neighbour, and
        # points exactly at that distance fill the remaining places in training-index order.
        kth = np.partition(squared, k - 1, axis=1)[:, k - 1:k]
        nearer = squared < kth
        at_kth = squared == kth
        places_left = k - nearer.sum(axis=1, keepdims=True)
        chosen = nearer | (at_kth & (np.cumsum(at_kth, axis=1) <= places_left))
        idx = np.nonzero(chosen)[1].reshape(-1, k)  # ascending training index within each row
        dist = np.take_along_axis(squared, idx, axis=1)
        order = np.argsort(dist, axis=1, kind="stable")  # nearest first; ties stay index-ordered
        indices[rows] = np.take_along_axis(idx, order, axis=1)
        distances[rows] = np.sqrt(np.take_along_axis(dist, order, axis=1))
    return indices, distances


def vote(neighbour_labels):
    """Majority label of each row of neighbour_labels (M, k), listed nearest first -> (M,).

    Ties between classes with the same number of votes go to the class whose nearest
    member comes first in the row (the nearest of the tied classes' neighbours).
    """
    classes, coded = np.unique(neighbour_labels, return_inverse=True)
    coded = coded.reshape(neighbour_labels.shape)
    num_rows, k = coded.shape
    one_hot = coded[:, :, None] == np.arange(len(classes))  # (M, k, C)
    votes = one_hot.sum(axis=1)
    first_rank = np.where(one_hot.any(axis=1), one_hot.argmax(axis=1), k)  # (M, C)
    # More votes wins; among equal votes, the earlier (nearer) first member wins.
    return classes[np.argmax(votes * (k + 1) - first_rank, axis=1)]


def knn_classify(train_z, train_labels, query_z, k=15, max_block_distances=MAX_BLOCK_DISTANCES):
    """Label each query by a majority vote of its k nearest training embeddings (Euclidean).

    train_z (N, D), train_labels (N,) integers, query_z (M, D) -> predicted labels (M,).
    Ties: neighbours at equal distance are taken in training-index order, and classes with
    equal votes go to the one with the nearest member among the k (see vote).
    """
    train_z = check_embeddings("train_z", train_z)
    query_z = check_embeddings("query_z", query_z, train_z.shape[1])
    train_labels = check_labels("train_labels", train_labels, len(train_z))
    if not (isinstance(k, (int, np.integer)) and 1 <= k <= len(train_z)):
        raise ValueError(f"k must be an integer from 1 to the {len(train_z)} training embeddings, got {k!r}")
    indices, _ = nearest_neighbours(train_z, query_z, k, max_block_distances=max_block_distances)
    return vote(train_labels[indices])


def confusion_table(true, predicted, num_classes=10):
    """Counts (C, C): row t, column p = images of class t labelled p. true, predicted (M,) in [0, C)."""
    # int64, so that true * num_classes cannot overflow a small label dtype such as uint8
    true = check_labels("true", true, len(np.atleast_1d(true))).astype(np.int64)
    predicted = check_labels("predicted", predicted, len(true)).astype(np.int64)
    if len(true) and (min(true.min(), predicted.min()) < 0 or max(true.max(), predicted.max()) >= num_classes):
        raise ValueError(f"labels must lie in 0..{num_classes - 1}; pass num_classes > the largest label")
    return np.bincount(true * num_classes + predicted,
                       minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def accuracies(table):
    """(per-class accuracy (C,), overall accuracy) of a confusion table; NaN for a class without images."""
    table = np.asarray(table)
    per_class_total = table.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_class = np.diag(table) / per_class_total
    return per_class, float(np.trace(table) / table.sum())


def confused_pairs(table, min_share=0.05):
    """Unordered class pairs {a, b} most often mistaken for each other, most confused first.

    share(a, b) = (table[a, b] + table[b, a]) / (images of a + images of b): of the test
    images of the two classes, the fraction labelled as the other class of the pair. It is
    symmetric, ignores mistakes into third classes, and is 0 when neither is taken for the
    other. Returns the pairs with share >= min_share as dicts {"pair": [a, b] (a < b),
    "share", "a_as_b", "b_as_a" (counts)}, by decreasing share (ties: smaller a, then b).
    """
    table = np.asarray(table)
    totals = table.sum(axis=1)
    a, b = np.triu_indices(len(table), k=1)
    swapped = table[a, b] + table[b, a]
    pair_total = totals[a] + totals[b]
    share = np.divide(swapped, pair_total, out=np.zeros(len(a)), where=pair_total > 0)
    order = np.lexsort((b, a, -share))
    return [{"pair": [int(a[i]), int(b[i])], "share": float(share[i]),
             "a_as_b": int(table[a[i], b[i]]), "b_as_a": int(table[b[i], a[i]])}
            for i in order if share[i] >= min_share and swapped[i] > 0]


def connected_components(num_nodes, edges_from, edges_to):
    """Component id (num_nodes,) of an undirected graph: the smallest node index in each component.

    Min-label propagation along the edges with pointer jumping; each round is vectorized
    over all edges, and the number of rounds grows with the graph's diameter, not its size.
    """
    component = np.arange(num_nodes)
    while True:
        smaller = np.minimum(component[edges_from], component[edges_to])
        updated = component.copy()
        np.minimum.at(updated, edges_from, smaller)
        np.minimum.at(updated, edges_to, smaller)
        updated = updated[updated]  # jump to the representative's representative
        if np.array_equal(updated, component):
            return component
        component = updated


def pairs_within(points, radius, max_block_distances=MAX_BLOCK_DISTANCES):
    """Index pairs (i, j), i < j, of the rows of points (n, D) closer than radius: two (E,) arrays."""
    block = max(1, max_block_distances // max(len(points), 1))
    firsts, seconds = [], []
    for start in range(0, len(points), block):
        rows = points[start:start + block]
        squared = np.zeros((len(rows), len(points)))
        for dim in range(points.shape[1]):
            squared += (rows[:, dim, None] - points[None, :, dim]) ** 2
        row, col = np.nonzero(squared < radius * radius)
        row += start
        keep = row < col
        firsts.append(row[keep])
        seconds.append(col[keep])
    return np.concatenate(firsts), np.concatenate(seconds)


def class_clusters(z, labels, k=15, sparse_share=0.1, gap_factor=3.0, min_cluster_share=0.1):
    """Does each class form one region of the latent plane or several? One dict per class.

    For the embeddings z (N, D) of one class (other classes' points are ignored):
    1. r = each point's distance to its k-th nearest same-class neighbour: small where
       the class is dense;
    2. the dense points: all but the sparse_share of the class with the largest r, so a
       thin trail of stray points cannot bridge two groups;
    3. dense points closer than gap = gap_factor * median(r) are connected, and the
       connected components of that graph are the candidate clusters: two of them are
       apart only if no two of their dense points come within gap, a margin many times
       the class's own neighbour spacing, so a random thin spot inside one cluster does
       not cut it;
    4. each sparse point joins the component of its nearest dense neighbour among its k
       (if there is none, it stays alone).
    "clusters" counts the components holding at least min_cluster_share of the class, so
    outliers and small islands never count: two clusters are claimed only for a wide
    empty gap between two large groups.
    Dict: {"class", "num_points", "clusters", "component_shares" (largest first, the
    components counted in "clusters"), "outside_largest" (share of the class not in the
    largest component, islands included), "gap" (the distance used in step 3)}.
    """
    z = check_embeddings("z", z)
    labels = check_labels("labels", labels, len(z))
    if not 0 <= sparse_share < 1:
        raise ValueError(f"sparse_share must be in [0, 1), the share of points left out as sparse, "
                         f"got {sparse_share}")
    results = []
    for label in np.unique(labels):  # one small graph per class: ten rounds, not one per image
        points = z[labels == label]
        num_points = len(points)
        neighbours_k = min(k, num_points - 1)
        if neighbours_k < 1:
            results.append({"class": int(label), "num_points": num_points, "clusters": 1,
                            "component_shares": [1.0], "outside_largest": 0.0, "gap": 0.0})
            continue
        neighbours, distances = nearest_neighbours(points, points, neighbours_k, exclude_self=True)
        kth_distance = distances[:, -1]
        dense = kth_distance <= np.quantile(kth_distance, 1.0 - sparse_share)
        gap = gap_factor * float(np.median(kth_distance))
        dense_index = np.flatnonzero(dense)
        edges_from, edges_to = pairs_within(points[dense], gap)
        component = np.arange(num_points)
        component[dense] = dense_index[connected_components(len(dense_index), edges_from, edges_to)]
        dense_neighbours = dense[neighbours]  # (n, k), nearest first
        nearest_dense = neighbours[np.arange(num_points), dense_neighbours.argmax(axis=1)]
        joins = ~dense & dense_neighbours.any(axis=1)
        component[joins] = component[nearest_dense[joins]]
        sizes = np.sort(np.unique(component, return_counts=True)[1])[::-1]
        shares = sizes / num_points
        large = shares[shares >= min_cluster_share]
        results.append({"class": int(label), "num_points": num_points, "clusters": int(len(large)),
                        "component_shares": [float(s) for s in large],
                        "outside_largest": float(1.0 - shares[0]), "gap": gap})
    return results


def choose_faithful_pairs(labels, predicted, rng, num_pairs=3, agreement=None, min_agreement=0.8):
    """Random image pairs of different classes whose k-NN classes equal their labels.

    labels, predicted (N,): the images' labels and the k-NN classes of their latent means.
    agreement (N,), optional: the share of each image's k nearest training embeddings that
    carry its own label (latent_class_study's "test_agreement"); with it, an image also
    needs agreement >= min_agreement, so that its end of the path lies well inside its
    digit's region rather than on a border where the decoder may draw the neighbour digit.
    Returns (a (num_pairs,), b (num_pairs,), faithful): faithful is True when every chosen
    image passed those tests, so each end of an interpolation lies among training
    embeddings of its own digit. If fewer than num_pairs images pass, or they cover only
    one class, the pairs are drawn from all images instead (any two of different classes) and
    faithful is False: the caption must then name the end points' classes.
    """
    labels = np.asarray(labels)
    predicted = check_labels("predicted", predicted, len(labels))
    passes = labels == predicted
    if agreement is not None:
        passes &= np.asarray(agreement) >= min_agreement
    candidates = np.flatnonzero(passes)
    faithful = len(np.unique(labels[candidates])) >= 2 and num_pairs <= len(candidates)
    if not faithful:
        candidates = np.arange(len(labels))
    if len(np.unique(labels[candidates])) < 2 or not 1 <= num_pairs <= len(candidates):
        raise ValueError(f"need 1 <= num_pairs <= {len(candidates)} images and labels of at least "
                         f"two classes, got num_pairs={num_pairs}")
    a = rng.choice(candidates, num_pairs, replace=False)
    b = np.array([rng.choice(candidates[labels[candidates] != labels[i]]) for i in a])
    return a, b, bool(faithful)


def path_classes(train_z, train_labels, z_path, k=15):
    """k-NN class of every point of interpolation paths z_path (P, S, D) -> (P, S)."""
    z_path = np.asarray(z_path)
    flat = knn_classify(train_z, train_labels, z_path.reshape(-1, z_path.shape[-1]), k)
    return flat.reshape(z_path.shape[:2])


def latent_class_study(enc_params, train_x, train_labels, test_x, test_labels, k=15,
                       ks=(1, 5, 15, 50), min_pair_share=0.05, cluster_k=15, sparse_share=0.1,
                       gap_factor=3.0, min_cluster_share=0.1):
    """k-NN classification of the test images in the latent plane, its confusions, and clusters.

    train_x (N, 784), test_x (M, 784) float32 0/1 images; labels (N,), (M,) digits 0-9.
    Embeddings are the means of q(z|x). Returns {"summary": JSON-ready dict (k, accuracies,
    the 10 x 10 confusion table as nested lists, ranked confused pairs with shares, the
    accuracy for each k in ks, clusters per class of the training embedding), "train_z" (N, 2),
    "test_z" (M, 2), "test_predicted" (M,) k-NN labels, "test_agreement" (M,) the share of each
    test image's k nearest training embeddings that carry its own label}.
    """
    pixels = enc_params[0][0].shape[0]  # the encoder's input size
    train_z = np.asarray(encoder(enc_params, check_images(train_x, pixels, "train_x"))[0], dtype=np.float64)
    test_z = np.asarray(encoder(enc_params, check_images(test_x, pixels, "test_x"))[0], dtype=np.float64)
    train_labels = check_labels("train_labels", train_labels, len(train_z))
    test_labels = check_labels("test_labels", test_labels, len(test_z))
    ks = sorted(set(ks) | {k})
    if not 1 <= ks[0] <= ks[-1] <= len(train_z):
        raise ValueError(f"every k must lie between 1 and the {len(train_z)} training images, got {ks}")
    # One search for the largest k serves every k: neighbours come nearest first with a fixed
    # tie order, so the first k columns are exactly what knn_classify(..., k) would find.
    neighbours, _ = nearest_neighbours(train_z, test_z, ks[-1])
    predicted_by_k = {other: vote(train_labels[neighbours[:, :other]]) for other in ks}
    predicted = predicted_by_k[k]
    agreement = np.mean(train_labels[neighbours[:, :k]] == test_labels[:, None], axis=1)
    table = confusion_table(test_labels, predicted)
    per_class, overall = accuracies(table)
    accuracy_by_k = {str(other): float(np.mean(predicted_by_k[other] == test_labels)) for other in ks}
    summary = {
        "k": k, "num_train": len(train_z), "num_test": len(test_z),
        "test_accuracy": overall,
        "class_accuracy": [None if np.isnan(v) else float(v) for v in per_class],
        "accuracy_by_k": accuracy_by_k,
        "confusion": table.tolist(),
        "min_pair_share": min_pair_share,
        "confused_pairs": confused_pairs(table, min_pair_share),
        "cluster_k": cluster_k, "sparse_share": sparse_share, "gap_factor": gap_factor,
        "min_cluster_share": min_cluster_share,
        "clusters": class_clusters(train_z, train_labels, cluster_k, sparse_share, gap_factor,
                                   min_cluster_share),
    }
    return {"summary": summary, "train_z": train_z, "test_z": test_z, "test_predicted": predicted,
            "test_agreement": agreement}
