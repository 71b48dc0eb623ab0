"""The sentences on log p(x), the ELBO's gap, the coarse grid and IWAE
(vae_autograd.report.marginal_likelihood) follow the numbers.
"""
import json

from vae_autograd.report.marginal_likelihood import (
    describe_coarse_grid,
    describe_gaps,
    describe_iwae,
    describe_sets_apart,
)


def gap_summary(min_z, probability, num_above=3, num_images=10000, samples=20):
    """Part 3's statistics of a set whose smallest gap is min_z standard errors, as the study would
    record them (the smallest of 10,000 Student-t(19) draws lies near -4.5)."""
    return {"num_images": num_images, "num_above": num_above, "fraction_above": num_above / num_images,
            "min_gap_in_se": min_z, "elbo_samples": samples, "expected_min_z": -4.5,
            "min_gap_probability": probability, "consistent_with_mc_error": probability >= 1e-3}


def test_describe_gaps_calls_it_monte_carlo_error_only_when_it_is():
    consistent = describe_gaps(gap_summary(-4.1, 0.8), "training")
    assert "3 of the 10000 training images (0.03%)" in consistent and "-4.1" in consistent
    assert "is -4.5 on average and lies at or below -4.1 with probability 0.8" in consistent
    assert "no more than Monte Carlo error" in consistent and "is in error" not in consistent
    inconsistent = describe_gaps(gap_summary(-10.0, 2e-9), "training")
    assert "-10.0" in inconsistent and "does not explain" in inconsistent and "is in error" in inconsistent
    assert "no more than Monte Carlo error" not in inconsistent
    none = describe_gaps(gap_summary(0.7, 1.0, num_above=0), "test")
    assert none.startswith("The ELBO of every test image lies below log p(x)") and "0.7" in none


def coarse(mean_abs, at_edge=0, inside=None, narrow=None, wide=None, prior_mass=-1.02438e-4):
    return {"bound": 4.0, "spacing": 0.1, "points_per_axis": 81, "prior_log_riemann_sum": -1.01702e-4,
            "prior_log_mass_in_cells": prior_mass,
            "mean_error": -mean_abs, "mean_abs_error": mean_abs, "max_abs_error": 5 * mean_abs,
            "edge_threshold": 1e-3, "images_at_edge": at_edge,
            "mean_abs_error_inside": mean_abs if inside is None else inside,
            "max_abs_error_inside": 5 * (mean_abs if inside is None else inside), "median_q_std": 0.03,
            "narrow_fraction": 0.25, "mean_abs_error_narrow": narrow, "mean_abs_error_wide": wide}


def test_describe_coarse_grid_follows_the_numbers():
    good = describe_coarse_grid({"test": {"coarse_grid": coarse(1e-4)}, "train": {"coarse_grid": coarse(2e-4)}})
    assert "81 x 81 grid of spacing 0.1 on [-4, 4]^2" in good
    assert "Riemann sum on it is -1.017020e-04 in log, where the log of the prior's mass in the grid's cells, " \
        "[-4.05, 4.05]^2, is -1.024380e-04 (from the normal CDF): they agree within 1e-06 (difference 7.4e-07)" in good
    wrong = describe_coarse_grid({"test": {"coarse_grid": coarse(1e-4, prior_mass=-2e-4)}})
    assert "they differ by 9.8e-05, more than 1e-06: the grid sum is in error" in wrong
    assert "No posterior leaves the square" in good and "For the test images the grid is off by 0.0001" in good
    assert "narrow" not in good
    # Wide posteriors that leave the square: the error is theirs, not the spacing's.
    leaving = describe_coarse_grid({"test": {"coarse_grid": coarse(0.5, at_edge=470, inside=0.002)}})
    assert "470 test images leave the square" in leaving and "error is the mass outside the square" in leaving
    assert "narrow" not in leaving
    # Inside the square, narrow posteriors are off the most.
    narrow = describe_coarse_grid({"test": {"coarse_grid": coarse(0.08, at_edge=400, inside=0.04, narrow=0.1,
                                                                   wide=0.001)}})
    assert "off by 0.04 nats on average (at most 0.20), more where the posterior is narrow" in narrow
    assert "0.1 on average for the 25% of them whose q(z|x) has a standard deviation below 0.05 in at least " \
        "one dimension" in narrow
    assert "0.001 for the others" in narrow and "mass outside" not in narrow
    not_narrow = describe_coarse_grid({"test": {"coarse_grid": coarse(0.08, inside=0.04, narrow=0.01,
                                                                       wide=0.05)}})
    assert "more where" not in not_narrow and "off by 0.04 nats on average (at most 0.20)." in not_narrow


def iwae_summary(values, log_px=-141.0, images=500):
    return {"iwae": dict(zip((1, 10, 100, 1000), values)), "log_px_on_iwae_images": log_px, "iwae_images": images}


def test_describe_iwae_follows_the_numbers():
    text = describe_iwae(iwae_summary([-157.809, -153.839, -151.379, -149.799], log_px=-141.191))
    assert "stays 8.61 nats below log p(x) (16.62, 12.65, 10.19, 8.61 at K = 1, 10, 100, 1000)" in text
    assert "closed 3.97, 2.46, 1.58 nats of it." in text and "log 10" not in text
    assert "10^8.4 or more" in text
    slower = describe_iwae(iwae_summary([-151.0, -149.0, -148.0, -147.5]))
    assert "stays 6.50 nats" in slower and "closed 2.00, 1.00, 0.50 nats of it." in slower
    reached = describe_iwae(iwae_summary([-150.0, -145.0, -142.0, -141.05]))
    assert "reaches log p(x) within 0.1 nats" in reached and "poor proposal" not in reached
    above = describe_iwae(iwae_summary([-150.0, -145.0, -142.0, -140.5]))
    assert "0.50 nats above log p(x)" in above and "in error" in above and "poor proposal" not in above
    assert describe_iwae({"iwae": {}, "log_px_on_iwae_images": None, "iwae_images": 0}) is None
    # JSON turns the K keys into strings
    assert describe_iwae(json.loads(json.dumps(iwae_summary([-150.0, -145.0])))).count("K = 1, 10") == 1


def test_a_probability_near_one_is_not_rounded_to_certainty():
    summary = {"num_images": 100, "num_above": 3, "min_gap_in_se": -1.2, "fraction_above": 0.03,
               "elbo_samples": 20, "expected_min_z": -2.7, "min_gap_probability": 0.9997,
               "consistent_with_mc_error": True}
    said = describe_gaps(summary, "test")
    assert "with probability above 0.99" in said and "probability 1" not in said
    assert "with probability 0.42" in describe_gaps({**summary, "min_gap_probability": 0.42}, "test")


def test_describe_sets_apart_calls_it_overfitting_only_in_its_direction():
    def summary(log_px):
        return {"num_images": 10000, "log_px": log_px, "log_px_se": 0.5}

    overfit = describe_sets_apart(summary(-142.8), summary(-139.8))
    assert "the training images are 3.00 nats more likely, 4.2 combined standard errors" in overfit
    assert "(it overfits)" in overfit
    # Test images more likely than the training images: not overfitting, and no "-3.00 nats more likely".
    reverse = describe_sets_apart(summary(-139.8), summary(-142.8))
    assert "the test images are 3.00 nats more likely, 4.2 combined standard errors" in reverse
    assert "overfit" not in reverse and "training images are" not in reverse
    close = describe_sets_apart(summary(-140.0), summary(-139.8))
    assert "they differ by +0.20 nats, 0.3 combined standard errors, within the 3" in close


def test_describe_iwae_says_how_the_bounds_change_with_k_only_as_they_do():
    """'Each tenfold K closed' a negative number of nats, 'the ELBO of q(z|x) (K = 2)', and the contrast with a
    close proposal where the smallest K's bound was already within the tolerance: each was said whatever the
    numbers."""
    falling = describe_iwae(iwae_summary([-150.0, -148.0, -149.0, -149.5]))
    assert "stays 8.50 nats below log p(x)" in falling and "closed" not in falling
    assert "Each tenfold K moved the bound by +2.00, -1.00, -0.50 nats: it does not rise with K at every step." \
        in falling and "10^" not in falling
    lower = describe_iwae(iwae_summary([-147.0, -148.0, -149.0, -149.5]))
    assert "moved the bound by -1.00, -1.00, -0.50 nats: it does not rise with K at every step, and falls from " \
        "the first K to the last." in lower
    flat = describe_iwae(iwae_summary([-147.0, -147.0009, -146.9995, -146.9999]))  # per tenfold K: -0.00, +0.00, -0.00
    assert "closed" not in flat and "does not rise with K at every step" in flat
    other_ks = describe_iwae({"iwae": {2: -150.0, 10: -148.0, 50: -147.0}, "log_px_on_iwae_images": -141.0,
                              "iwae_images": 500})
    assert "ELBO of q(z|x)" not in other_ks and "here the bound with K = 2 lies 9.00 nats below log p(x)" in other_ks
    assert "Each tenfold K" not in other_ks and "The steps from K = 2 to 10, 10 to 50 closed 2.00, 1.00 nats of it." \
        in other_ks and "10^" not in other_ks  # no tenfold rate to extrapolate
    tight_first = describe_iwae(iwae_summary([-141.05, -141.5, -141.8, -142.0]))
    assert "stays 1.00 nats below" in tight_first and "proposal close to p(z|x)" not in tight_first
    mixed = describe_iwae(iwae_summary([-141.02, -140.95, -141.0, -141.05]))
    assert "reaches log p(x) within 0.1 nats (log p(x) minus the bound: 0.02, -0.05, 0.00, 0.05 at K = 1, 10, " \
        "100, 1000)" in mixed and "below it" not in mixed


def test_describe_iwae_decides_on_the_numbers_as_it_prints_them():
    """Found by an adversarial review: 'falls from the first K to the last' beside two distances printed alike,
    an extrapolation from a step printed as +0.00, '-0.00 ... below it', and '1 test images'."""
    alike = describe_iwae({"iwae": {1: -100.0, 10: -100.001}, "log_px_on_iwae_images": -99.5, "iwae_images": 1})
    assert "(0.50, 0.50 at K = 1, 10)" in alike and "falls" not in alike and "first test image the" in alike
    assert "moved the bound by 0.00 nats: it does not rise with K at every step." in alike
    stalled = describe_iwae({"iwae": {1: -101.0, 10: -100.5, 100: -100.496}, "log_px_on_iwae_images": -99.5,
                             "iwae_images": 500})
    assert "moved the bound by +0.50, 0.00 nats" in stalled and "10^" not in stalled
    above = describe_iwae({"iwae": {1: -100.5, 10: -99.996}, "log_px_on_iwae_images": -100.0, "iwae_images": 500})
    assert "(0.50, 0.00 at K = 1, 10 below it)" in above and "-0.00" not in above
