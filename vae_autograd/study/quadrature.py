"""log p(x) by adaptive quadrature over the 2-D latent plane (study part 3).

With two latent dimensions, log p(x) = log of the integral of p(x|z) p(z) dz can be computed by
quadrature instead of bounded. Everything stays in log space: the integrand p(x|z) p(z) of a
784-pixel image is around exp(-150), and for unlikely images below exp(-745), where float64
underflows to 0; the sums never leave log space."""
import math
import warnings

import numpy as np

from ..core.elbo import log_prior
from ..core.images import check_images
from ..core.model import data_dim, decoder, params_dtype
from .grids import (
    curvature_at,
    edge_ring,
    grid_log_likelihood,
    largest_curvature,
    latent_grid,
    log_partition,
    log_sum_exp,
    neighbourhood_max,
)
from .windows import lattice_refinement

# The most sub-points per cell side an image may need before it is refused (max_refine). A relu layer puts kinks in
# log p(x, z), across which second differences fall only as the spacing (as its square elsewhere): on 20 test images
# of a 50-epoch relu decoder (seed sweep's davidson setting), 32 to 128 sub-points, and 256 on one image, at 0.4 to
# 4 s of CPU per image; the study's 200-epoch tanh decoder needs at most 32.
MAX_REFINE = 128
KINKED_MAX_REFINE = 512


def log_marginal_likelihood(dec_params, x, bound=10.0, spacing=0.2, refine=4, max_curvature=0.5, check=1e-4,
                            threshold=25.0, block_size=250, max_refine=None, refine_all=False, return_info=False,
                            twice=()):
    """log p(x) = log of the integral of p(x|z) p(z) over [-bound, bound]^2, per image.

    x (N, 784) binary -> (N,). Trained posteriors have standard deviations of a few hundredths,
    too narrow for a coarse grid, while a fine shared grid would cost minutes for the test
    set. The plane is cut into cells of side `spacing` centred on the points of
    latent_grid(-bound, bound, spacing), and:
      1. p(x, z) is evaluated at every cell centre for all images (the grid is decoded
         once; one matrix product per block of images), giving the midpoint rule.
      2. The rule is kept for an image whose grid resolves its posterior: everywhere within
         `threshold` nats of its largest point, the second difference of log p(x, z) along
         each axis is at most max_curvature, and the sum agrees with the sum over every
         other point (spacing 2h) within `check` in log. For a Gaussian of std sigma the
         second difference is h^2 / sigma^2 at every point, and the rule's relative error is
         about 2 exp(-2 pi^2 sigma^2 / h^2) per axis: 1e-17 at h^2 / sigma^2 = 0.5. The sums
         alone can agree by chance while both miss a posterior narrow in one direction (the
         tests build one); the curvature is large wherever the grid is too coarse.
      3. Otherwise the cells within `threshold` nats of the image's largest point, and their
         neighbours, are integrated again on r x r sub-points, spacing / r apart; the other
         cells hold less than exp(-threshold) of the mass each and keep their one-point
         value. r is the smallest power of two, at least `refine`, that brings the largest
         second difference seen on the coarse grid under max_curvature (second differences
         shrink as the spacing squared). Each refined cell must pass the curvature test on its
         own sub-points, or the image is integrated again at 2r, up to max_refine (by default
         MAX_REFINE, or KINKED_MAX_REFINE for a decoder with a relu layer); an image
         still unresolved there raises ValueError.
    The sub-points of a cell at a given r are the same for every image, so each cell is decoded
    once per r, for all the images that need it there: the values of r are taken in increasing
    order, and an image sent on to 2r meets the images that start at 2r. refine may also be an
    (N,) array, a least r per image, and with refine_all every image is refined (even one the
    coarse grid resolves).

    twice: indices of images integrated a second time, every one refined (as refine_all), on
    twice the sub-points per axis that resolved it (at least 4; up to 2 max_refine for an image that
    needed max_refine): the quadrature's own error (quadrature_of_sets). The second integrals join
    the sweep over r, sharing its decoded cells.

    With return_info, also returns {"edge_mass": (N,) share of the posterior in the
    outermost ring of cells (large means the grid is too small; it also warns),
    "refined_cells": (N,) cells refined per image, "refine": (N,) the sub-points per cell
    side that resolved it (1: the coarse grid did), "twice": (len(twice),) the second
    integrals}.
    """
    x = check_images(x, data_dim(dec_params))
    if max_refine is None:
        max_refine = KINKED_MAX_REFINE if lattice_refinement(dec_params) > 1 else MAX_REFINE
    if np.ndim(refine) and np.shape(refine) != (len(x),):
        raise ValueError(f"refine must be one integer or one per image ({len(x)}), got shape {np.shape(refine)}")
    refine = np.broadcast_to(refine, (len(x),))
    if not (refine >= 4).all() or (refine.astype(int) != refine).any():  # a cell's own sub-points test it: 3 a side
        raise ValueError(f"refine must be an integer >= 4 (or one per image), got {refine[refine.argmin()]}")
    if not (math.isfinite(bound) and bound > 0 and 0 < spacing <= bound):
        raise ValueError(f"need a finite bound > 0 and 0 < spacing <= bound (3 or more points per axis), got "
                         f"bound {bound} and spacing {spacing}")
    if not max_curvature > 0:
        raise ValueError(f"max_curvature must be > 0, got {max_curvature}")
    twice = np.asarray(twice, int).reshape(-1)
    checked = np.zeros(len(x), bool)
    checked[twice] = True
    z_grid, axis = latent_grid(-bound, bound, spacing)
    z_grid = z_grid.astype(params_dtype(dec_params))
    coarse, (pair_image, pair_cell) = _coarse_cells(decoder(dec_params, z_grid), log_prior(z_grid), x, len(axis),
                                                    spacing, threshold, check, max_curvature, refine_all, checked,
                                                    block_size)
    too_coarse, rest = coarse["too_coarse"], coarse["log_rest"]
    log_px, used = np.where(too_coarse, rest, coarse["log_total"]), np.ones(len(x), int)
    second = np.full(len(x), np.nan)
    # Jobs, one image at one r each: its first integral, or its second (twice) on twice the r of its first.
    first, second_only = np.flatnonzero(too_coarse), np.flatnonzero(checked & ~too_coarse)
    job_image = np.concatenate([first, second_only])
    job_second = np.arange(len(job_image)) >= len(first)
    # The least r that would bring the coarse grid's curvature under max_curvature.
    needed = np.sqrt(np.maximum(coarse["curvature"][job_image], 1e-300) / max_curvature)
    job_r = np.maximum(np.where(job_second, 4, refine[job_image]), 2 ** np.ceil(np.log2(np.maximum(needed, 1.0))))
    job_r = job_r.astype(int)
    while len(job_image):
        # A second integral (twice) is the check of a first one at twice its r: up to 2 max_refine.
        beyond = job_r > np.where(job_second, 2 * max_refine, max_refine)
        if beyond.any():
            worst = np.unique(job_image[beyond])
            raise ValueError(f"{len(worst)} images (e.g. image {worst[0]}) have posteriors too narrow to resolve "
                             f"with {max_refine} x {max_refine} points per cell of side {spacing}; pass a larger "
                             "max_refine")
        r = job_r.min()
        now = job_r == r
        images = np.unique(job_image[now])  # each once (its first and second integrals never share an r)
        mine = np.isin(pair_image, images)
        fine, unresolved = _refined_cells(dec_params, x, z_grid, pair_image[mine], pair_cell[mine], images, spacing,
                                          r, coarse["peak"][images] - threshold, max_curvature)
        image, is_second = job_image[now], job_second[now]
        bad = unresolved[np.searchsorted(images, image)]
        value = np.logaddexp(rest[image], fine[np.searchsorted(images, image)])
        first_done, second_done = ~bad & ~is_second, ~bad & is_second
        log_px[image[first_done]], used[image[first_done]] = value[first_done], r
        second[image[second_done]] = value[second_done]
        start_second = image[first_done & checked[image]]  # on to twice this r
        job_image = np.concatenate([job_image[~now], image[bad], start_second])
        job_second = np.concatenate([job_second[~now], is_second[bad], np.ones(len(start_second), bool)])
        job_r = np.concatenate([job_r[~now], np.full(bad.sum() + len(start_second), 2 * r)])
    edge_mass = coarse["edge_mass"]
    if edge_mass.max() > 1e-4:
        warnings.warn(f"{np.sum(edge_mass > 1e-4)} images have more than 1e-4 of their posterior "
                      f"at the edge of [-{bound}, {bound}]^2 (up to {edge_mass.max():.2g}); "
                      "log p(x) is underestimated: pass a larger bound", stacklevel=2)
    if not return_info:
        return log_px
    return log_px, {"edge_mass": edge_mass, "refine": used, "twice": second[twice],
                    "refined_cells": np.bincount(pair_image[too_coarse[pair_image]], minlength=len(x))}


def _coarse_cells(logits, log_prior_grid, x, size, spacing, threshold, check, max_curvature, refine_all, checked,
                  block_size):
    """Steps 1 and 2 of log_marginal_likelihood: the midpoint rule on the coarse grid, its tests, the cells to refine.

    logits (G, 784) and log_prior_grid (G,) on the G = size^2 cell centres; x (N, 784); checked
    (N,) bool, images whose cells are wanted whether or not the grid resolves them. Returns
    ({"peak", "curvature", "log_total" (the rule), "log_rest" (the rule over the cells not
    refined), "edge_mass": (N,) float, "too_coarse": (N,) bool}, (pair_image, pair_cell)),
    the cells to refine (P,) of the images too coarse or checked, sorted by image and cell.
    Only the points near an image's peak are tested, by their indices: for a trained model they are
    a few dozen of the 10,201 per image. They are grown by one on a mask of the block (for a model early
    in training, a thousand points an image: listing each point's neighbours and sorting them cost
    more than the rest of the quadrature).
    """
    num_images, num_cells = len(x), size * size
    out = {key: np.empty(num_images) for key in ("peak", "curvature", "log_total", "log_rest", "edge_mass")}
    out["too_coarse"] = np.empty(num_images, bool)
    cell_log_area = 2.0 * float(np.log(spacing))
    on_edge = edge_ring(size)
    pairs = []
    for start in range(0, num_images, block_size):
        rows = slice(start, start + block_size)
        log_joint = (grid_log_likelihood(logits, x[rows]) + log_prior_grid).reshape(-1, size, size)
        peak = log_joint.max(axis=(1, 2)).astype(np.float64)
        near = np.nonzero(log_joint > (peak - threshold)[:, None, None])
        # p(x, z) over its largest value, its exponent floored at -700 as in grids.log_sum_exp
        mass = np.subtract(log_joint, peak[:, None, None], dtype=np.float64)
        np.exp(np.maximum(mass, -700.0, out=mass), out=mass)
        total = mass.sum(axis=(1, 2))
        disagree = np.abs(np.log(total / mass[:, ::2, ::2].sum(axis=(1, 2))) - np.log(4.0)) > check
        curvature = curvature_at(log_joint, *near)
        too_coarse = (curvature > max_curvature) | disagree | refine_all
        keep = (too_coarse | checked[rows])[near[0]]
        selected = np.zeros(log_joint.shape, bool)
        selected[near[0][keep], near[1][keep], near[2][keep]] = True
        cells = np.flatnonzero(neighbourhood_max(selected, False))  # image * num_cells + cell, with neighbours
        out["edge_mass"][rows] = mass[:, on_edge].sum(axis=1) / total
        mass.reshape(-1)[cells] = 0.0
        with np.errstate(divide="ignore"):  # every cell refined: nothing left, -inf
            out["log_rest"][rows] = np.log(mass.sum(axis=(1, 2))) + peak + cell_log_area
        out["log_total"][rows] = np.log(total) + peak + cell_log_area
        out["peak"][rows], out["curvature"][rows], out["too_coarse"][rows] = peak, curvature, too_coarse
        pairs.append(cells + start * num_cells)
    return out, np.divmod(np.concatenate(pairs), num_cells)


def _refined_cells(dec_params, x, z_grid, pair_image, pair_cell, images, spacing, refine, floor, max_curvature,
                   points_per_batch=4096, images_per_product=512, values_per_batch=1 << 22):
    """The log of the integral over each image's selected cells on refine x refine sub-points.

    (pair_image, pair_cell): the selected cells, as indices into x and z_grid, of images (M,)
    (sorted indices into x). floor (M,): the log density below which a sub-point is too small
    to matter for the resolution test. Returns (log integral (M,), bool (M,): the sub-points
    of some cell do not resolve it). Cells are decoded in batches of about points_per_batch
    sub-points, each cell once, and a batch is a square tile of the grid: an image selects a
    patch of neighbouring cells, so it selects much of the tiles it meets, and the products of the
    images that selected any cell of the batch with all of the batch's sub-points, one matrix
    product per images_per_product images, waste little. (A loop over cells that gathers each
    cell's images would copy an image once per cell: for the broad posteriors of a model early in
    training, a thousand cells each, that copying is most of the quadrature.) A batch holds at most
    values_per_batch of its pairs' sub-point values (one cell at least), so memory is bounded.
    """
    sub_spacing = spacing / refine
    sub_axis = sub_spacing * (np.arange(refine) - 0.5 * (refine - 1))
    offsets = np.stack([a.ravel() for a in np.meshgrid(sub_axis, sub_axis)], 1).astype(z_grid.dtype)
    num_sub = len(offsets)
    # Cells in the order of square tiles of tile x tile cells, so that a batch is one tile.
    size, tile = math.isqrt(len(z_grid)), max(1, math.isqrt(max(1, points_per_batch // num_sub)))
    row, column = np.divmod(pair_cell, size)
    tile_key = ((row // tile) * (size // tile + 1) + column // tile) * len(z_grid) + pair_cell
    by_cell = np.argsort(tile_key, kind="stable")
    pair_local = np.searchsorted(images, pair_image[by_cell])  # (P,): which of images, pairs in cell order
    cell_keys, first_pair = np.unique(tile_key[by_cell], return_index=True)
    cells, cell_tile = cell_keys % len(z_grid), cell_keys // len(z_grid)
    bounds = np.append(first_pair, len(by_cell))
    # Batches: the cells of one tile, ended early where their pairs' values would pass values_per_batch.
    starts, values = [0], 0
    for k in range(len(cells)):
        values += (bounds[k + 1] - bounds[k]) * num_sub
        if k + 1 < len(cells) and (cell_tile[k + 1] != cell_tile[k] or values > values_per_batch):
            starts.append(k + 1)
            values = 0
    starts.append(len(cells))
    x = x[images]
    image_of, log_of, bad_of = [], [], []  # per (cell, image) pair: which image, log integral, unresolved
    for first, last in zip(starts[:-1], starts[1:]):
        batch = cells[first:last]
        z_sub = (z_grid[batch][:, None, :] + offsets).reshape(-1, 2)  # (C * r^2, 2)
        logits = decoder(dec_params, z_sub)
        partition = log_partition(logits).reshape(len(batch), num_sub)  # (C, r^2), as grid_log_likelihood sums it
        prior = log_prior(z_sub).reshape(len(batch), num_sub)
        pairs = slice(bounds[first], bounds[last])
        pair_slot = np.repeat(np.arange(len(batch)), np.diff(bounds[first:last + 1]))  # (Q,): which cell of batch
        image = pair_local[pairs]  # (Q,): which of images
        used, pair_row = np.unique(image, return_inverse=True)
        # x . logits in float32 over the 784 pixels: (x @ W.T) . hidden would be narrower, but
        # its cancellations cost up to 1e-4 nats where this keeps 5e-6 (against float64).
        products = np.empty((len(pair_slot), num_sub), logits.dtype)
        for start in range(0, len(used), images_per_product):
            mine = (pair_row >= start) & (pair_row < start + images_per_product)
            product = (x[used[start:start + images_per_product]] @ logits.T).reshape(-1, len(batch), num_sub)
            products[mine] = product[pair_row[mine] - start, pair_slot[mine]]
        log_joint = ((products - partition[pair_slot]) + prior[pair_slot]).astype(np.float64)
        square = log_joint.reshape(len(image), refine, refine)
        above = square > floor[image, None, None]
        tested = above.any(axis=(1, 2))  # the others pass as they are
        bad = np.zeros(len(image), bool)
        bad[tested] = largest_curvature(square[tested], above[tested]) > max_curvature
        bad_of.append(bad)
        image_of.append(image)
        log_of.append(log_sum_exp(log_joint))
    image_of, log_of, bad_of = (np.concatenate(a) for a in (image_of, log_of, bad_of))
    log_integral = np.full(len(images), -np.inf)
    np.logaddexp.at(log_integral, image_of, log_of)  # each image's cells summed
    log_integral += 2.0 * float(np.log(sub_spacing))
    return log_integral, np.bincount(image_of, weights=bad_of, minlength=len(images)) > 0
