"""Caption sentences for parts 6.1-6.3 and the reason of true/false question (b), computed
from the summaries of ``posterior.posterior_study`` and ``svi.svi_study``.

Every claim here is a comparison of numbers in those summaries, and the wording follows
the comparison: when the numbers change, so does what the sentence says.
"""
import numpy as np

from ..core.text import at_most, held_by, percent, pieces_share, table_percent
from .format import count, panel_list, printed, span


def describe_true_vs_approx(summary):
    """6.1 from posterior_study's summary["true_vs_approx"] ({"train", "test"} of per-panel lists)."""
    sets = {}
    for name in ("train", "test"):
        kl, best = np.array(summary[name]["kl"]), np.array(summary[name]["best_gaussian_kl"])
        sets[name] = {"kl": kl, "best": best, "share": float(np.sum(kl - best) / np.sum(kl)),
                      "edge": max(summary[name]["edge_mass"]), "outside": max(summary[name]["mass_outside_window"])}
    train, test = sets["train"], sets["test"]
    # Compared as printed, so that two means shown alike are never called one larger than the other.
    test_mean, train_mean = f"{test['kl'].mean():.2f}", f"{train['kl'].mean():.2f}"
    if float(test_mean) > float(train_mean):
        compare = (f"q misses p more on the test images (mean {test_mean} nats against "
                   f"{train_mean} on the training images)")
    elif float(test_mean) < float(train_mean):
        compare = (f"q is no further from p on the test images (mean {test_mean} nats) than on "
                   f"the training images ({train_mean})")
    else:
        compare = (f"q misses p as much on the test images as on the training images (mean {test_mean} nats on "
                   "both, to 2 decimals)")
    shares = (f"{table_percent(train['share'])} of the KL on the training panels and {table_percent(test['share'])} "
              "on the test panels")
    # "Most" decided on the shares as printed (one decimal), so that a share shown as 50.0% is never called most
    # or least; a cell that is no plain number ('above 99.9%', 'below 0.001%') is far from one half either way.
    train_percent, test_percent = (printed(100 * part["share"], 1) for part in (train, test))
    if min(train_percent, test_percent) > 50:
        verdict = (f"so on these panels most of the gap is amortization gap (the encoder's KL minus the best "
                   f"diagonal Gaussian's): {shares}")
    elif max(train_percent, test_percent) < 50:
        verdict = (f"so on these panels most of the gap is the diagonal Gaussian family's approximation gap; the "
                   f"amortization gap (the encoder's KL minus the best diagonal Gaussian's) is {shares}")
    else:
        verdict = f"the amortization gap (the encoder's KL minus the best diagonal Gaussian's) is {shares}"
    return (f"Each title gives KL(q || p), which is the whole gap log p(x) - ELBO of that image, and the KL "
            f"of the best diagonal Gaussian for that image alone (q*, as in part 8: KL = log p(x) - ELBO). The "
            f"encoder's KL is {span(train['kl'])} nats on the {count(len(train['kl']))} training images and "
            f"{span(test['kl'])} on the {count(len(test['kl']))} test images: {compare}. The best diagonal Gaussians "
            f"reach {span(train['best'])} and {span(test['best'])} nats, {verdict}. These are "
            f"{count(len(train['kl']) + len(test['kl']))} images, not the test set's ELBO gap; at most "
            f"{at_most(max(train['edge'], test['edge']))} of any posterior lies at its window's edge, and at most "
            f"{at_most(max(train['outside'], test['outside']))} outside it, against log p(x) by the quadrature of "
            "part 3.")


def describe_top_half(summary):
    """6.2 from posterior_study's summary["top_half"] (per-panel lists)."""
    top = np.prod(summary["posterior_std"], axis=1)
    whole = np.prod(summary["whole_image_std"], axis=1)
    modes = np.array(summary["num_modes"])
    n = len(modes)
    wider = np.flatnonzero(top > whole)
    if len(wider) == n:
        width = (f"seeing half a digit leaves the posterior wider in all {n} panels (the product of its two "
                 f"stds is {span(top / whole)} times that given the whole image)")
    else:
        width = (f"the posterior given half a digit is wider than given the whole image in "
                 f"{len(wider)} of {n} panels")
    multi = np.flatnonzero(modes > 1)
    rule = (f"counting as modes the separate pieces of the {summary['mode_mass']:.0%} highest-density region "
            f"that hold at least {summary['mode_min_share']:.0%} of the mass")
    if len(multi) == 0:
        modal = f"{rule}, every one of the {n} posteriors has a single mode"
    else:
        modal = f"{rule}, {len(multi)} of the {n} posteriors {'is' if len(multi) == 1 else 'are'} multi-modal " \
                f"({panel_list(multi)}: {', '.join(str(modes[i]) for i in multi)} modes)"
    limit = summary["mode_min_share"]
    minor = [(i, shares[modes[i]:]) for i, shares in enumerate(summary["mode_shares"]) if len(shares) > modes[i]]
    pieces = "".join(f"; in {panel_list([i])} a separate piece holding {pieces_share(rest, limit)} of the mass is "
                     "too small to count" if len(rest) == 1 else
                     f"; in {panel_list([i])} {count(len(rest))} separate pieces holding {pieces_share(rest, limit)} "
                     f"of the mass together, each under {percent(limit)}, are too small to count" for i, rest in minor)
    held = held_by(summary)
    return (f"On windows that hold {held} (at most {at_most(max(summary['edge_mass']))} of the mass of p(z | x_top) "
            f"at a window's edge, at most {at_most(max(summary['mass_outside_window']))} outside it, against "
            "log p(x_top) by the quadrature of part 3; and at most "
            f"{at_most(max(summary['whole_image_outside_window']))} of p(z|x) of the whole image, drawn beside it, "
            f"outside them), {width}; {modal}{pieces}.")


def describe_svi(summary):
    """6.3 (figure titles and table) from svi_study's summary."""
    kl = np.array(summary["kl"])
    difference = np.abs(summary["kl_difference_in_se"])
    agree = np.array(summary["kl_agree"])
    n = len(kl)
    check = (f"log p(x_top) - ELBO, with the ELBO by Monte Carlo, agrees with it within "
             f"{summary['agreement_se']:.0f} standard errors on "
             + (f"all {n} images" if agree.all() else f"{agree.sum()} of {n} images")
             + f" (at most {at_most(difference.max())} SE apart)")
    converged = np.array(summary["converged"])
    steps = "" if converged.all() else f"; {n - converged.sum()} of {n} fits had not levelled off"
    return (f"KL(q || p(z | x_top)) in the titles and the table is one number: the quadrature on the "
            f"window, {span(kl, 3)} nats; {check}{steps}.")


def describe_factorization(bottom_dependence, side):
    """The reason of question (b)'s answer from posterior_study's summary["bottom_dependence"];
    side: the images' width in pixels, to name a pixel's row and column."""
    records = [r for r in bottom_dependence if r["pixels"] is not None]
    if not records:
        return ("no bottom pixel of these digits is uncertain given the top half, so none can be correlated "
                "here; the coupling through z is still there in general")
    n, r = max(enumerate(bottom_dependence), key=lambda item: item[1]["max_abs_correlation"])
    (row_i, col_i), (row_j, col_j) = (divmod(p, side) for p in r["pixels"])
    per_digit = ", ".join(f"{x['max_abs_correlation']:.3f}" for x in bottom_dependence) + " in panel order"
    numbers = (f"computed exactly under that mixture with the quadrature weights of 6.2, the largest correlation in "
               f"magnitude between two bottom pixels is {r['correlation']:+.3f} ({panel_list([n])} of 6.2's "
               f"figure, pixels at row {row_i}, column {col_i} and row {row_j}, column {col_j}, counted from 0 at the "
               f"top left: P(both on) = {r['joint']:.3f} against "
               f"{r['product_of_marginals']:.3f} for the product of their marginals); the largest |correlation| "
               f"per digit is {per_digit}, "
               f"where a product over pixels would make every correlation 0")
    if r["max_abs_correlation"] < 0.01:
        return (f"it is the integral of that product against p(z | x_top), a mixture of products; {numbers}: "
                "for these digits the mixture is nearly one product")
    return (f"it is the integral of that product against p(z | x_top), a mixture of products, which couples "
            f"the pixels through z: {numbers}")
