"""Part 8 on a tiny VAE (vae_autograd.study.inference_gaps): the bounds are ordered, the
gaps add up, and given encoder bounds are used as they are.
"""
import numpy as np

from vae_autograd.study.inference_gaps import inference_gap_study
from vae_autograd.study.marginal_likelihood import iwae_bound


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


def test_given_encoder_iwae_bounds_are_used_and_set_the_ks(tiny_vae):
    enc_params, dec_params, x = tiny_vae
    given = {1: -np.arange(40.0), 7: -np.ones(40)}  # e.g. part 3's, on at least iwae_images images
    summary = inference_gap_study(enc_params, dec_params, x, np.random.default_rng(0), num_steps=50,
                                  iwae_images=10, convergence_images=0, iwae_encoder=given)["summary"]["iwae"]
    assert summary["encoder"][1] == [-4.5, float(np.std(np.arange(10.0), ddof=1) / np.sqrt(10))]
    assert summary["encoder"][7] == [-1.0, 0.0] and set(summary["optimal"]) == {1, 7}
