"""logsumexp, grid quadrature and log p(x) in the 2-D latent space."""
import json
import warnings

import numpy as np
import pytest
import scipy.integrate
import scipy.special
import scipy.stats
from autograd import grad
from autograd.test_util import check_grads

from vae_autograd.core.elbo import joint_log_density, log_prior
from vae_autograd.core.logspace import logsumexp
from vae_autograd.core.model import init_vae_params
from vae_autograd.figures.marginal_likelihood import fig_log_px_vs_elbo
from vae_autograd.report.marginal_likelihood import (
    describe_coarse_grid,
    describe_gaps,
    describe_iwae,
    describe_marginal_likelihood,
)
from vae_autograd.study.grids import latent_grid, log_integrate_grid
from vae_autograd.study.marginal_likelihood import (
    coarse_grid_log_marginal_likelihood,
    gap_statistics,
    iwae_bound,
    log_marginal_likelihood,
    marginal_likelihood_study,
    student_t_min_reference,
)

# ---------------------------------------------------------------- logsumexp

@pytest.mark.parametrize("a, expected", [
    ([1000.0, 1000.0], 1000.0 + np.log(2)),
    ([-1000.0, -1000.0], -1000.0 + np.log(2)),
    ([-np.inf, 0.0], 0.0),
    ([-np.inf, -np.inf], -np.inf),
    ([1e308, 1e308], 1e308),
])
def test_logsumexp_extreme_inputs(a, expected):
    with np.errstate(all="raise"):
        assert logsumexp(np.array(a)) == expected


def test_logsumexp_matches_scipy_on_any_axis():
    a = np.random.default_rng(0).normal(scale=50.0, size=(4, 5, 6))
    for axis in (None, 0, 1, 2, -1):
        np.testing.assert_allclose(logsumexp(a, axis=axis), scipy.special.logsumexp(a, axis=axis),
                                   rtol=1e-13)
    assert logsumexp(a, axis=1, keepdims=True).shape == (4, 1, 6)


def test_logsumexp_gradient_is_softmax():
    a = np.random.default_rng(1).normal(size=(3, 7))
    check_grads(lambda a: logsumexp(a, axis=1), modes=["rev"], order=1)(a)
    check_grads(lambda a: logsumexp(a), modes=["rev"], order=1)(a)
    np.testing.assert_allclose(grad(lambda a: logsumexp(a[0]))(a)[0], scipy.special.softmax(a[0]))
    # finite where a naive exp would overflow
    assert np.allclose(grad(lambda a: logsumexp(a))(np.array([1000.0, 1000.0])), [0.5, 0.5])


# ---------------------------------------------------------------- grids

def tiny_model(seed=0):
    return init_vae_params(np.random.default_rng(seed), 6, 5, 2, scale=1.5, dtype=np.float64)



def test_latent_grid_layout():
    z_grid, axis = latent_grid()
    assert z_grid.shape == (81 * 81, 2) and len(axis) == 81
    np.testing.assert_allclose(axis[[0, 1, -1]], [-4.0, -3.9, 4.0])
    image = z_grid.reshape(81, 81, 2)
    np.testing.assert_allclose(image[2, 5], [axis[5], axis[2]])  # row = z2, column = z1
    shifted, _ = latent_grid(-1, 1, 0.5, center=(3.0, -2.0))
    np.testing.assert_allclose(shifted.mean(axis=0), [3.0, -2.0])


@pytest.mark.parametrize("kwargs, message", [
    ({"spacing": 0.0}, "spacing must be > 0"), ({"spacing": -0.1}, "spacing must be > 0"),
    ({"low": 1.0, "high": 1.0}, "low < high"),
])
def test_latent_grid_rejects_bad_settings(kwargs, message):
    with pytest.raises(ValueError, match=message):
        latent_grid(**kwargs)


def test_integrate_grid_sums_the_whole_grid_flat_or_square():
    # A Gaussian bump on a 61 x 61 grid: the flat (..., K*K) and square (..., K, K)
    # layouts give the same number, its integral, which a per-row 1-D sum would miss.
    z_grid, axis = latent_grid(-3, 3, 0.1)
    log_f = -0.5 * np.sum(z_grid**2, axis=1) - np.log(2 * np.pi)  # N(0, I): integrates to ~1
    flat = log_integrate_grid(log_f, 0.1, len(axis))
    square = log_integrate_grid(log_f.reshape(len(axis), len(axis)), 0.1, len(axis))
    # The mass of the cells' square [-3.05, 3.05]^2, up to the edge cells' O(h^2) error (2e-5).
    np.testing.assert_allclose([flat, square], np.log(scipy.stats.norm.cdf(3.05) * 2 - 1) * 2, atol=3e-5)
    assert flat == square
    batch = np.stack([log_f, log_f + 1.0])
    np.testing.assert_allclose(log_integrate_grid(batch, np.array([0.1, 0.2]), len(axis)),
                               [flat, flat + 1.0 + 2 * np.log(2.0)], rtol=1e-12)
    np.testing.assert_allclose(log_integrate_grid(batch.reshape(2, 61, 61), 0.1, 61), [flat, flat + 1.0])


@pytest.mark.parametrize("log_f, dz, points, message", [
    (np.zeros(4), 0.0, 2, "spacing must be > 0"),
    (np.zeros(4), np.array([0.1, np.nan]), 2, "spacing must be > 0"),
    (np.zeros((3, 0)), 0.1, 1, r"log_f must hold a grid of 1 x 1 points .* got shape \(3, 0\)"),
    (0.0, 0.1, 1, r"got shape \(\)"),
    # A 4 x 4 image of a grid, said to be 3 x 3: neither layout fits.
    (np.zeros((4, 4)), 0.1, 3, r"as \(..., 9\) .* or \(..., 3, 3\), got shape \(4, 4\)"),
    (np.zeros((5, 40)), 0.1, 6, r"got shape \(5, 40\)"),
    (np.zeros(4), 0.1, 0, "points_per_axis must be a positive integer"),
    (np.zeros(4), 0.1, 2.0, "points_per_axis must be a positive integer"),
])
def test_integrate_grid_refuses_other_layouts(log_f, dz, points, message):
    with pytest.raises(ValueError, match=message):
        log_integrate_grid(log_f, dz, points)


def test_logsumexp_of_integers_and_booleans_is_a_float():
    assert logsumexp(np.array([0, 0])) == np.log(2.0)
    np.testing.assert_allclose(logsumexp(np.array([[1000, 1000], [1, 2]]), axis=1),
                               [1000 + np.log(2.0), scipy.special.logsumexp([1.0, 2.0])], rtol=1e-15)
    assert logsumexp(np.array([True, False])) == np.log(1.0 + np.e)
    assert logsumexp(np.zeros(3, np.float32)).dtype == np.float32


def test_prior_integrates_to_its_exact_mass_on_the_square():
    # Each grid point stands for a cell of side 0.1, so the 81 x 81 grid covers
    # [-4.05, 4.05]^2, whose N(0, I) mass is (Phi(4.05) - Phi(-4.05))^2.
    # The midpoint rule is exact but for an O(h^2) error in the edge cells, where the
    # density is not flat: 7e-7 at h = 0.1, a quarter of that at h = 0.05. The mass of
    # [-4, 4]^2 itself differs by 2.5e-5, so the check tells the two apart.
    for spacing, tolerance in ((0.1, 1e-6), (0.05, 3e-7)):
        z_grid, axis = latent_grid(-4, 4, spacing)
        mass = np.exp(log_integrate_grid(log_prior(z_grid), spacing, len(axis)))
        edge = 4 + spacing / 2
        exact = (scipy.stats.norm.cdf(edge) - scipy.stats.norm.cdf(-edge)) ** 2
        assert abs(mass - exact) < tolerance


def test_normalized_posterior_integrates_to_one():
    _, dec = tiny_model()
    x = (np.random.default_rng(4).random((5, 6)) < 0.5).astype(np.float64)
    z_grid, axis = latent_grid(-8, 8, 0.05)
    log_joint = joint_log_density(dec, x, z_grid[:, None, :]).T  # (5, G)
    log_post = log_joint - log_integrate_grid(log_joint, 0.05, len(axis))[:, None]
    np.testing.assert_allclose(log_integrate_grid(log_post, 0.05, len(axis)), 0.0, atol=1e-12)


# ---------------------------------------------------------------- log p(x)

def test_log_marginal_likelihood_matches_brute_force_quadrature():
    enc, dec = tiny_model()
    x = (np.random.default_rng(1).random((7, 6)) < 0.5).astype(np.float64)
    z_grid, axis = latent_grid(-9, 9, 0.02)  # converged: 0.01 agrees to 1e-11
    brute = log_integrate_grid(joint_log_density(dec, x, z_grid[:, None, :]).T, 0.02, len(axis))
    # Near-prior posteriors of this 6-pixel model pass the I_h / I_2h check or are refined
    # over most of the plane; either way the answer is within a few 1e-6 of brute force.
    np.testing.assert_allclose(log_marginal_likelihood(dec, x), brute, atol=2e-5)
    np.testing.assert_allclose(log_marginal_likelihood(dec, x, check=0.0), brute, atol=1e-9)


def test_log_marginal_likelihood_is_vectorized_per_image():
    enc, dec = tiny_model(2)
    x = (np.random.default_rng(3).random((9, 6)) < 0.5).astype(np.float64)
    together = log_marginal_likelihood(dec, x, block_size=4)
    alone = np.array([log_marginal_likelihood(dec, x[i:i + 1])[0] for i in range(len(x))])
    np.testing.assert_allclose(together, alone, rtol=1e-12)


def test_log_marginal_likelihood_rejects_bad_input():
    _, dec = tiny_model()
    with pytest.raises(ValueError, match=r"x must be a batch of flat images \(N, 6\)"):
        log_marginal_likelihood(dec, np.zeros((3, 5)))
    with pytest.raises(ValueError, match=r"pass x\[None\]"):
        log_marginal_likelihood(dec, np.zeros(6))
    with pytest.raises(ValueError, match=r"holds no images"):
        log_marginal_likelihood(dec, np.zeros((0, 6)))
    with pytest.raises(ValueError, match=r"binary.*\(x > 0.5\).astype\(np.float32\)"):
        log_marginal_likelihood(dec, np.full((3, 6), 255.0))
    with pytest.raises(ValueError, match="spacing must be > 0"):
        log_marginal_likelihood(dec, np.zeros((3, 6)), spacing=0.0)
    with pytest.raises(ValueError, match="bound must be > 0"):
        log_marginal_likelihood(dec, np.zeros((3, 6)), bound=0.0)
    with pytest.raises(ValueError, match="refine must be a positive integer"):
        log_marginal_likelihood(dec, np.zeros((3, 6)), refine=0)


def test_too_small_grid_is_detected():
    _, dec = tiny_model()
    x = np.ones((2, 6))
    with pytest.warns(UserWarning, match="at the edge"):
        _, info = log_marginal_likelihood(dec, x, bound=0.5, spacing=0.1, return_info=True)
    assert info["edge_mass"].max() > 0.01
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _, info = log_marginal_likelihood(dec, x, return_info=True)
    assert info["edge_mass"].max() < 1e-6


def test_halving_the_spacing_changes_log_px_by_under_a_hundredth(trained_params, mnist):
    x = mnist[2][:300]
    default = log_marginal_likelihood(trained_params[1], x)
    halved = log_marginal_likelihood(trained_params[1], x, refine=16)
    assert abs(default.mean() - halved.mean()) < 0.01
    assert np.max(np.abs(default - halved)) < 0.05


def test_log_px_agrees_with_importance_sampling_and_bounds_it(trained_params, mnist):
    x = mnist[2][:100]
    log_px = log_marginal_likelihood(trained_params[1], x)
    rng = np.random.default_rng(0)
    bounds = {k: iwae_bound(*trained_params, x, rng, k) for k in (1, 10, 1000)}
    assert bounds[1].mean() < bounds[10].mean() < bounds[1000].mean()
    # IWAE is a lower bound in expectation that tightens to log p(x); with K = 1000 the
    # remaining gap is a small fraction of a nat.
    assert -0.5 < bounds[1000].mean() - log_px.mean() < 0.02


def test_study_reports_a_nonnegative_gap(trained_params, mnist):
    study = marginal_likelihood_study(*trained_params, mnist[2][:200], np.random.default_rng(0),
                                      elbo_samples=20, iwae_ks=(1, 100), iwae_images=50)
    summary = study["summary"]
    assert summary["gap"] > 0 and summary["consistent_with_mc_error"]
    assert summary["elbo"] < summary["log_px"]
    assert summary["iwae"][1] < summary["iwae"][100] < summary["log_px_on_iwae_images"] + 0.05
    assert abs(summary["halved_spacing_change"]) < 0.01
    assert abs(summary["coarse_grid"]["max_abs_log_normalized_integral"]) < 1e-10
    fig = fig_log_px_vs_elbo(study["log_px"], study["elbo"], study["elbo_se"], 20)
    assert len(fig.axes) == 2 and len(fig.axes[0].collections[0].get_offsets()) == 200
    assert "within Monte Carlo error" in fig.axes[0].get_title() or "no image" in fig.axes[0].get_title()


# ---------------------------------------------------------------- the study's coarse grid

def test_coarse_grid_posterior_integrates_to_log_one_and_matches_the_plain_sum():
    _, dec = tiny_model()
    x = (np.random.default_rng(5).random((7, 6)) < 0.5).astype(np.float64)
    coarse = coarse_grid_log_marginal_likelihood(dec, x, block_size=3)
    np.testing.assert_allclose(coarse["log_normalized_integral"], 0.0, atol=1e-12)
    z_grid, axis = latent_grid(-4, 4, 0.1)
    assert len(axis) == 81
    log_joint = joint_log_density(dec, x, z_grid[:, None, :]).T  # (7, 6561)
    np.testing.assert_allclose(coarse["log_px"], log_integrate_grid(log_joint, 0.1, 81), rtol=1e-12)
    # The tiny model's posteriors are near the prior, wide against 0.1: the grid is accurate,
    # and little of them reaches the square's edge.
    np.testing.assert_allclose(coarse["log_px"], log_marginal_likelihood(dec, x), atol=1e-3)
    assert np.all(coarse["edge_mass"] < 1e-3)


def test_coarse_grid_sees_a_posterior_leave_the_square():
    _, dec = tiny_model()
    x = np.ones((2, 6))
    coarse = coarse_grid_log_marginal_likelihood(dec, x, bound=0.5, spacing=0.1)
    assert np.all(coarse["edge_mass"] > 0.1)
    np.testing.assert_allclose(coarse["log_normalized_integral"], 0.0, atol=1e-12)


def test_study_on_the_tiny_model_follows_the_convention():
    enc, dec = tiny_model()
    x = (np.random.default_rng(6).random((30, 6)) < 0.5).astype(np.float64)
    study = marginal_likelihood_study(enc, dec, x, np.random.default_rng(0), elbo_samples=5,
                                      iwae_ks=(1, 10), iwae_images=10)
    assert set(study) == {"summary", "log_px", "elbo", "elbo_se", "iwae"}
    assert all(study[key].shape == (30,) for key in ("log_px", "elbo", "elbo_se"))
    assert set(study["iwae"]) == {1, 10} and all(b.shape == (10,) for b in study["iwae"].values())
    assert study["summary"]["iwae"] == {k: float(b.mean()) for k, b in study["iwae"].items()}
    summary = study["summary"]
    json.dumps(summary, allow_nan=False)
    for key in ("log_px", "elbo", "elbo_se", "gap", "min_gap_in_se", "max_edge_mass", "iwae_images",
                "log_px_on_iwae_images", "iwae", "num_images", "fraction_above", "expected_min_z",
                "halved_spacing_change", "coarse_grid"):
        assert key in summary
    assert summary["coarse_grid"]["points_per_axis"] == 81
    assert summary["coarse_grid"]["mean_abs_error"] < 1e-3
    no_halving = marginal_likelihood_study(enc, dec, x, np.random.default_rng(0), 5, (), 0, halved_check=False)
    assert no_halving["summary"]["halved_spacing_change"] is None and no_halving["summary"]["iwae"] == {}
    sentences = describe_marginal_likelihood(summary, no_halving["summary"])
    assert len(sentences) == 5 and all(isinstance(s, str) for s in sentences)


# ---------------------------------------------------------------- above the line: MC error or not

def test_gap_statistics_on_a_hand_example():
    log_px = np.array([-100.0, -100.0, -100.0, -100.0])
    elbo = np.array([-101.0, -99.5, -100.2, -100.0 + 1e-9])
    se = np.array([0.5, 0.25, 0.1, 1.0])
    stats = gap_statistics(log_px, elbo, se, elbo_samples=20)
    assert stats["num_above"] == 2 and stats["fraction_above"] == 0.5
    np.testing.assert_allclose(stats["min_gap_in_se"], -2.0)  # (-100 + 99.5) / 0.25
    expected_min, probability = student_t_min_reference(4, 19, -2.0)
    assert stats["expected_min_z"] == expected_min and stats["min_gap_probability"] == probability
    assert stats["consistent_with_mc_error"]
    # Ten standard errors above log p(x) is no Monte Carlo error, even among 10,000 images.
    far = gap_statistics(np.zeros(10000), np.r_[10.0, -np.ones(9999)], np.ones(10000), 20)
    assert far["min_gap_in_se"] == -10.0 and not far["consistent_with_mc_error"]


@pytest.mark.parametrize("num_draws, dof, observed", [(10000, 19, -4.09), (10000, 19, -10.0), (500, 4, -6.0),
                                                      (1, 9, 0.5)])
def test_student_t_reference_matches_scipy(num_draws, dof, observed):
    expected_min, probability = student_t_min_reference(num_draws, dof, observed)
    t = scipy.stats.t(dof)
    exact_min = scipy.integrate.quad(lambda z: z * num_draws * t.pdf(z) * t.sf(z) ** (num_draws - 1),
                                     -np.inf, np.inf, limit=500)[0]
    np.testing.assert_allclose(expected_min, exact_min, rtol=1e-5, atol=1e-8)
    np.testing.assert_allclose(probability, -np.expm1(num_draws * np.log1p(-t.cdf(observed))), rtol=1e-4)


def gap_summary(min_z, num_above=3, num_images=10000, samples=20):
    expected_min, probability = student_t_min_reference(num_images, samples - 1, min_z)
    return {"num_images": num_images, "num_above": num_above, "fraction_above": num_above / num_images,
            "min_gap_in_se": min_z, "elbo_samples": samples, "expected_min_z": expected_min,
            "min_gap_probability": probability, "consistent_with_mc_error": probability >= 1e-3}


def test_describe_gaps_calls_it_monte_carlo_error_only_when_it_is():
    consistent = describe_gaps(gap_summary(-4.1), "training")
    assert "3 of the 10000 training images (0.03%)" in consistent and "-4.1" in consistent
    assert "no more than Monte Carlo error" in consistent and "is in error" not in consistent
    inconsistent = describe_gaps(gap_summary(-10.0), "training")
    assert "-10.0" in inconsistent and "does not explain" in inconsistent and "is in error" in inconsistent
    assert "no more than Monte Carlo error" not in inconsistent
    none = describe_gaps(gap_summary(0.7, num_above=0), "test")
    assert none.startswith("The ELBO of every test image lies below log p(x)") and "0.7" in none


def test_figure_title_follows_the_numbers():
    rng = np.random.default_rng(0)
    log_px = rng.normal(-140.0, 5.0, size=1000)
    se = np.full(1000, 0.1)
    elbo = log_px - np.abs(rng.normal(0.0, 1.0, size=1000))
    elbo[:10] = log_px[:10] + 0.1  # ten images one standard error above the line
    title = fig_log_px_vs_elbo(log_px, elbo, se, 20).axes[0].get_title()
    assert title == "1% of images above the line, all within Monte Carlo error"
    elbo[0] = log_px[0] + 2.0  # twenty standard errors
    title = fig_log_px_vs_elbo(log_px, elbo, se, 20).axes[0].get_title()
    assert "-20.0 SE: beyond Monte Carlo error" in title
    assert fig_log_px_vs_elbo(log_px, log_px - 1.0, se, 20).axes[0].get_title() == "no image above the line"


def coarse(mean_abs, at_edge=0, inside=None, narrow=None, wide=None):
    return {"bound": 4.0, "spacing": 0.1, "points_per_axis": 81, "max_abs_log_normalized_integral": 2e-15,
            "mean_error": -mean_abs, "mean_abs_error": mean_abs, "max_abs_error": 5 * mean_abs,
            "edge_threshold": 1e-3, "images_at_edge": at_edge,
            "mean_abs_error_inside": mean_abs if inside is None else inside,
            "max_abs_error_inside": 5 * (mean_abs if inside is None else inside), "median_q_std": 0.03,
            "narrow_fraction": 0.25, "mean_abs_error_narrow": narrow, "mean_abs_error_wide": wide}


def test_describe_coarse_grid_follows_the_numbers():
    good = describe_coarse_grid({"test": {"coarse_grid": coarse(1e-4)}, "train": {"coarse_grid": coarse(2e-4)}})
    assert "81 x 81 grid of spacing 0.1 on [-4, 4]^2" in good and "within 2e-15" in good
    assert "No posterior leaves the square" in good and "For the test images the grid is off by 0.0001" in good
    assert "narrow" not in good
    # Wide posteriors that leave the square: the error is theirs, not the spacing's.
    leaving = describe_coarse_grid({"test": {"coarse_grid": coarse(0.5, at_edge=470, inside=0.002)}})
    assert "470 test images leave the square" in leaving and "error is the mass outside the square" in leaving
    assert "narrow" not in leaving
    # Inside the square, narrow posteriors are off the most.
    narrow = describe_coarse_grid({"test": {"coarse_grid": coarse(0.08, at_edge=400, inside=0.04, narrow=0.1,
                                                                   wide=0.001)}})
    assert "off by 0.04 nats on average (at most 0.2), more where the posterior is narrow" in narrow
    assert "0.1 on average for the 25% of them whose q(z|x) has a standard deviation below 0.05" in narrow
    assert "0.001 for the others" in narrow and "mass outside" not in narrow
    not_narrow = describe_coarse_grid({"test": {"coarse_grid": coarse(0.08, inside=0.04, narrow=0.01,
                                                                       wide=0.05)}})
    assert "more where" not in not_narrow and "off by 0.04 nats on average (at most 0.2)." in not_narrow


def iwae_summary(values, log_px=-141.0, images=500):
    return {"iwae": dict(zip((1, 10, 100, 1000), values)), "log_px_on_iwae_images": log_px, "iwae_images": images}


def test_describe_iwae_follows_the_numbers():
    text = describe_iwae(iwae_summary([-157.809, -153.839, -151.379, -149.799], log_px=-141.191))
    assert "stays 8.61 nats below log p(x) (16.62, 12.65, 10.19, 8.61 at K = 1, 10, 100, 1000)" in text
    assert "closed 3.97, 2.46, 1.58 nats" in text and "less than log 10 = 2.30 for K = 100-1000" in text
    assert "10^8.4 or more" in text
    slower = describe_iwae(iwae_summary([-151.0, -149.0, -148.0, -147.5]))
    assert "stays 6.50 nats" in slower and "less than log 10 = 2.30 for K = 1-10, 10-100, 100-1000" in slower
    reached = describe_iwae(iwae_summary([-150.0, -145.0, -142.0, -141.05]))
    assert "reaches log p(x) within 0.1 nats" in reached and "poor proposal" not in reached
    above = describe_iwae(iwae_summary([-150.0, -145.0, -142.0, -140.5]))
    assert "0.50 nats above log p(x)" in above and "in error" in above and "poor proposal" not in above
    assert describe_iwae({"iwae": {}, "log_px_on_iwae_images": None, "iwae_images": 0}) is None
    # JSON turns the K keys into strings
    assert describe_iwae(json.loads(json.dumps(iwae_summary([-150.0, -145.0])))).count("K = 1, 10") == 1


def test_a_probability_near_one_is_not_rounded_to_certainty():
    from vae_autograd.report.marginal_likelihood import describe_gaps
    summary = {"num_images": 100, "num_above": 3, "min_gap_in_se": -1.2, "fraction_above": 0.03,
               "elbo_samples": 20, "expected_min_z": -2.7, "min_gap_probability": 0.9997,
               "consistent_with_mc_error": True}
    said = describe_gaps(summary, "test")
    assert "with probability above 0.99" in said and "probability 1" not in said
    assert "with probability 0.42" in describe_gaps({**summary, "min_gap_probability": 0.42}, "test")
