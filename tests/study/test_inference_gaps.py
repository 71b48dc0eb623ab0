"""Part 8 on a tiny VAE (vae_autograd.study.inference_gaps): the bounds are ordered, the
gaps add up, and given encoder bounds are used as they are.
"""
import numpy as np
import pytest

from vae_autograd.study.inference_gaps import in_wrong_basin, inference_gap_study, worst_amortized
from vae_autograd.study.marginal_likelihood import iwae_bound
from vae_autograd.study.posterior import log_joint_on_windows


def test_bounds_are_ordered_per_image(gap_result):
    p = gap_result["per_image"]
    assert np.all(p["elbo_amortized"] <= p["elbo_refined"] + 1e-6)
    assert np.all(p["elbo_refined"] <= p["elbo_optimal"] + 1e-9)  # q_refined is one of q*'s candidates
    # log p(x) by the shared quadrature; a diagonal Gaussian cannot exceed it beyond its accuracy.
    assert np.all(p["elbo_optimal"] <= p["log_px"] + 1e-4)


def test_gaps_add_up_and_checks_pass(gap_result):
    s, p = gap_result["summary"], gap_result["per_image"]
    np.testing.assert_allclose(s["approximation_gap"] + s["amortization_gap"], s["log_px"] - s["elbo_amortized"],
                               atol=1e-9)
    assert s["num_images"] == len(p["log_px"])
    assert 0 <= s["convergence"]["another_start"] < 0.02 and s["convergence"]["num_images"] == len(p["log_px"])
    assert abs(s["convergence"]["more_iterations"]) < 0.02
    iwae = s["iwae"]["optimal"]
    assert iwae[1][0] <= iwae[100][0] <= s["iwae"]["log_px"] + 0.05


def test_iwae_with_q_star_rises_from_its_elbo_to_log_px(tiny_vae, gap_result):
    _, dec_params, x = tiny_vae
    p = gap_result["per_image"]
    rng = np.random.default_rng(5)
    q_star = (p["mean_optimal"], p["log_std_optimal"])
    one = iwae_bound(None, dec_params, x, rng, 1, proposal=q_star)
    many = np.mean([iwae_bound(None, dec_params, x, rng, 1, proposal=q_star) for _ in range(400)], axis=0)
    # K = 1 is an unbiased draw of the ELBO, and K = 2000 closes part of the approximation
    # gap. Only means over images are bounded: these toy posteriors are multimodal and wider
    # than q*, so the importance weights are heavy-tailed and single bounds scatter widely.
    assert np.abs(many - p["elbo_optimal"]).mean() < 0.05 and one.shape == (len(x),)
    big = iwae_bound(None, dec_params, x, rng, 2000, proposal=q_star)
    gap = np.mean(p["log_px"] - big)
    assert -0.2 < gap < np.mean(p["log_px"] - p["elbo_optimal"])


def test_given_encoder_iwae_bounds_are_used_and_set_the_ks(tiny_vae, gap_result):
    enc_params, dec_params, x = tiny_vae
    given = {1: -np.arange(40.0), 7: -np.ones(40)}  # e.g. part 3's, on at least iwae_images images
    summary = inference_gap_study(enc_params, dec_params, x[:10], np.random.default_rng(0), num_steps=50,
                                  iwae_images=10, convergence_images=0, log_px=gap_result["per_image"]["log_px"][:10],
                                  iwae_encoder=given)["summary"]["iwae"]
    assert summary["encoder"][1] == [-4.5, float(np.std(np.arange(10.0), ddof=1) / np.sqrt(10))]
    assert summary["encoder"][7] == [-1.0, 0.0] and set(summary["optimal"]) == {1, 7}


def test_worst_amortized_shows_the_largest_gaps_and_the_worst_wrong_basins(tiny_vae, gap_result):
    _, dec_params, x = tiny_vae
    per_image = dict(gap_result["per_image"])
    amort = per_image["elbo_optimal"] - per_image["elbo_amortized"]
    # Put the images of the 4th and 6th largest gaps in wrong basins, 1 nat below q*.
    order = np.argsort(-amort)
    per_image["elbo_refined"] = per_image["elbo_optimal"].copy()
    per_image["elbo_refined"][order[[3, 5]]] -= 1.0
    assert set(np.flatnonzero(in_wrong_basin(per_image))) == set(order[[3, 5]])
    worst = worst_amortized(dec_params, x, per_image, num_shown=4, num_points=21)
    np.testing.assert_array_equal(worst["images"], order[[0, 1, 3, 5]])
    np.testing.assert_array_equal(worst["means"][:, 2], per_image["mean_optimal"][worst["images"]])
    np.testing.assert_array_equal(worst["stds"][:, 0], np.exp(per_image["log_std_amortized"][worst["images"]]))
    # Each window covers its three Gaussians to 3 standard deviations, and holds log p(x, z) on it.
    low, high = worst["z_grids"].min(axis=1), worst["z_grids"].max(axis=1)
    assert np.all(low[:, None] <= worst["means"] - 3 * worst["stds"] + 1e-9)
    assert np.all(high[:, None] >= worst["means"] + 3 * worst["stds"] - 1e-9)
    np.testing.assert_array_equal(worst["log_joint"], log_joint_on_windows(dec_params, x[worst["images"]],
                                                                           worst["z_grids"]))


def test_an_elbo_above_log_px_is_an_error_not_a_negative_gap(tiny_vae, gap_result):
    enc_params, dec_params, x = tiny_vae
    log_px = gap_result["per_image"]["log_px"][:10].copy()
    log_px[7] = gap_result["per_image"]["elbo_optimal"][7] - 0.01  # a quadrature short of ELBO(q*) on image 7
    with pytest.raises(ValueError, match=r"ELBO\(q\*\) exceeds log p\(x\) by 0.0\d+ nats on image 7 \(1 images"):
        inference_gap_study(enc_params, dec_params, x[:10], num_steps=150, log_px=log_px, convergence_images=0)


def test_images_in_blocks_get_the_numbers_they_get_together(tiny_vae, gap_result):
    """Blocks bound the memory; each image's fits are its own, so blocks (here of 15, 15 and 10
    images) change no number beyond the rounding of the decoder's float32 products, which other
    shapes round otherwise (~1e-7). log p(x), which no block touches, is given; IWAE is not run."""
    enc_params, dec_params, x = tiny_vae
    blocked = inference_gap_study(enc_params, dec_params, x, num_steps=150, log_px=gap_result["per_image"]["log_px"],
                                  block_size=15)
    for key in ("elbo_amortized", "elbo_refined", "elbo_optimal"):  # a flat optimum's place may move more
        assert np.allclose(blocked["per_image"][key], gap_result["per_image"][key], rtol=0, atol=1e-5), key
    assert blocked["summary"]["convergence"] == pytest.approx(gap_result["summary"]["convergence"], abs=1e-5)
