"""The captions of the posterior parts (vae_autograd.report.posteriors) follow the numbers."""
from vae_autograd.figures.posteriors import top_half_titles
from vae_autograd.report.posteriors import (
    describe_factorization,
    describe_svi,
    describe_top_half,
    describe_true_vs_approx,
)


def true_vs_approx_summary(train_kl, test_kl, train_best, test_best):
    def part(kl, best):
        return {"kl": kl, "best_gaussian_kl": best, "edge_mass": [1e-6] * len(kl),
                "mass_outside_window": [2e-5] * len(kl)}
    return {"train": part(train_kl, train_best), "test": part(test_kl, test_best)}


def test_describe_true_vs_approx_follows_the_numbers():
    text = describe_true_vs_approx(true_vs_approx_summary([1.0, 2.0], [10.0, 5.0], [0.1, 0.1], [0.1, 0.2]))
    assert "1.00-2.00 nats on the two training images and 5.00-10.00 on the two test images" in text
    assert "These are four images, not the test set's ELBO gap" in text and "eight" not in text
    assert "q misses p more on the test images (mean 7.50 nats against 1.50" in text
    assert "most of the gap is amortization gap" in text and "93.3% of the KL on the training panels" in text
    assert "(the encoder's KL minus the best diagonal Gaussian's)" in text
    assert "at most 1.0e-06 of any posterior lies at its window's edge, and at most 2.0e-05 outside it" in text
    text = describe_true_vs_approx(true_vs_approx_summary([1.0, 2.0], [0.5, 0.5], [0.8, 1.5], [0.4, 0.4]))
    assert "q is no further from p on the test images" in text
    assert "most of the gap is the diagonal Gaussian family's approximation gap" in text


def top_half_summary(num_modes, mode_shares):
    n = len(num_modes)
    return {"posterior_std": [[0.2, 0.2]] * n, "whole_image_std": [[0.1, 0.1]] * n, "edge_mass": [1e-5] * n,
            "mass_outside_window": [1e-6] * n, "whole_image_outside_window": [3e-5] * n, "num_modes": num_modes,
            "mode_shares": mode_shares,
            "mode_mass": 0.99, "mode_min_share": 0.01}


def test_describe_top_half_calls_a_posterior_multimodal_only_when_counted():
    text = describe_top_half(top_half_summary([1, 1], [[0.983, 0.007], [0.99]]))
    assert "wider in all 2 panels (the product of its two stds is 4.00 times" in text
    assert "every one of the 2 posteriors has a single mode" in text
    assert "in panel 1 a separate piece holding 0.7% of the mass is too small to count" in text
    assert "multi-modal" not in text
    text = describe_top_half(top_half_summary([1, 2], [[0.99], [0.6, 0.39]]))
    assert "1 of the 2 posteriors is multi-modal (panel 2: 2 modes)" in text


def test_describe_factorization_states_the_largest_correlation():
    records = [{"pixels": [400, 430], "max_abs_correlation": 0.2, "correlation": -0.2, "joint": 0.05,
                "product_of_marginals": 0.09},
               {"pixels": [500, 501], "max_abs_correlation": 0.05, "correlation": 0.05, "joint": 0.3,
                "product_of_marginals": 0.28}]
    text = describe_factorization(records, 28)
    # -0.2 is not the largest correlation (0.05 is larger): the largest in magnitude
    assert "the largest correlation between" not in text
    assert "the largest correlation in magnitude between two bottom pixels is -0.200 (panel 1 of 6.2's figure, " \
           "pixels at row 14, column 8 and row 15, column 10, counted from 0 at the top left: P(both on) = 0.050 " \
           "against 0.090" in text
    assert "couples the pixels through z" in text and "the largest |correlation| per digit is 0.200, 0.050" in text
    small = [dict(r, max_abs_correlation=0.001, correlation=0.001) for r in records]
    assert "nearly one product" in describe_factorization(small, 28)


def svi_summary(kl, difference_in_se, converged):
    return {"kl": kl, "kl_difference_in_se": difference_in_se,
            "kl_agree": [abs(d) <= 4 for d in difference_in_se], "agreement_se": 4.0, "converged": converged}


def test_describe_svi_follows_the_numbers():
    text = describe_svi(svi_summary([0.116, 0.378], [-0.5, 1.2], [True, True]))
    assert "the quadrature on the window, 0.116-0.378 nats" in text
    assert "within 4 standard errors on all 2 images (at most 1.2 SE apart)" in text
    assert "levelled off" not in text
    text = describe_svi(svi_summary([0.116, 0.378], [-0.5, 6.0], [True, False]))
    assert "on 1 of 2 images (at most 6.0 SE apart)" in text and "1 of 2 fits had not levelled off" in text


def test_describe_top_half_says_the_windows_hold_the_whole_posterior_only_when_they_do():
    summary = top_half_summary([1], [[0.99]])
    assert "On windows that hold the whole posterior (at most" in describe_top_half(summary)
    text = describe_top_half(summary)
    assert "outside it, against log p(x_top)" in text
    assert "and at most 3.0e-05 of p(z|x) of the whole image, drawn beside it, outside them)" in text
    summary["mass_outside_window"] = [0.02]
    text = describe_top_half(summary)
    assert "the whole posterior" not in text and "On windows that hold most of the posterior (at most" in text
    summary["mass_outside_window"], summary["whole_image_outside_window"] = [1e-6], [2e-3]
    assert "On windows that hold most of the posterior (at most" in describe_top_half(summary)


def test_two_means_that_print_alike_are_not_called_one_larger():
    """Test and training KL means of 1.5 and 1.496 read 'q misses p more on the test images (mean 1.50 nats
    against 1.50'."""
    text = describe_true_vs_approx(true_vs_approx_summary([1.0, 1.992], [1.0, 2.0], [0.1, 0.1], [0.1, 0.2]))
    assert "q misses p as much on the test images as on the training images (mean 1.50 nats on both, to 2 " \
        "decimals)" in text and "misses p more" not in text


def test_a_share_printed_as_50_percent_is_called_neither_most_nor_least():
    """Amortization shares of 50.4% of each KL print as 50%: 'most of the gap is amortization gap' would read
    against its own numbers."""
    for best in (0.4996, 0.5004, 0.4995, 0.5005):  # shares of 50.04%, 49.96%, 50.05% and 49.95%: each shown as 50.0%
        text = describe_true_vs_approx(true_vs_approx_summary([1.0, 1.0], [1.0, 1.0], [best] * 2, [best] * 2))
        assert "the amortization gap (the encoder's KL minus the best diagonal Gaussian's) is 50.0% of the KL on the " \
            "training panels and 50.0% on the test panels" in text and "most of the gap" not in text
    text = describe_true_vs_approx(true_vs_approx_summary([1.0, 1.0], [1.0, 1.0], [0.49, 0.49], [0.49, 0.49]))
    assert "most of the gap is amortization gap" in text and "51.0% of the KL on the training panels" in text
    text = describe_true_vs_approx(true_vs_approx_summary([1.0, 1.0], [1.0, 1.0], [0.996, 0.996], [0.5, 0.5]))
    assert "0.4% of the KL on the training panels" in text and " 0% " not in text


def test_a_separate_piece_too_small_to_count_is_never_shown_as_0_0_percent():
    text = describe_top_half(top_half_summary([1, 1], [[0.9996, 0.0004], [0.99]]))
    assert "a separate piece holding 0.04% of the mass is too small to count" in text and "0.0%" not in text


def test_separate_pieces_are_counted_and_one_below_the_rule_never_reads_at_it():
    """Two uncounted pieces are named as two, with their total; one piece of 0.996% reads 'under 1%', not
    '1.0%', which would meet the rule (at least 1% of the mass) that it fails. The panel title says the same."""
    summary = top_half_summary([1, 1], [[0.982, 0.008, 0.008], [0.98, 0.00996]])
    text = describe_top_half(summary)
    assert "in panel 1 two separate pieces holding 1.6% of the mass together, each under 1%, are too small" in text
    assert "in panel 2 a separate piece holding under 1% of the mass is too small to count" in text
    assert top_half_titles(summary)[0].startswith("std 0.20, 0.20; modes: 1 (+ 2 pieces of 1.6% together)")
    assert top_half_titles(summary)[1].startswith("std 0.20, 0.20; modes: 1 (+ 1 piece of under 1%)")
