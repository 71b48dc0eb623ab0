"""log p(x) by quadrature (vae_autograd.study.quadrature), IWAE bounds, and the study of the
ELBO's gap (vae_autograd.study.marginal_likelihood).
"""
import json
import warnings

import numpy as np
import pytest
import scipy.integrate
import scipy.special
import scipy.stats

from tests.helpers import numpy_log_joint, relu_vae, six_pixel_vae
from vae_autograd.core.elbo import joint_log_density, log_importance_weights
from vae_autograd.core.logspace import logsumexp
from vae_autograd.core.model import decoder
from vae_autograd.figures.marginal_likelihood import fig_log_px_vs_elbo
from vae_autograd.report.marginal_likelihood import (
    describe_marginal_likelihood,
)
from vae_autograd.study import quadrature
from vae_autograd.study.coarse_grid import coarse_grid_log_marginal_likelihood, prior_grid_check
from vae_autograd.study.grids import largest_curvature, latent_grid, log_integrate_grid
from vae_autograd.study.marginal_likelihood import (
    gap_statistics,
    iwae_bound,
    marginal_likelihood_study,
    quadrature_of_sets,
    samples_per_chunk,
    student_t_min_reference,
)
from vae_autograd.study.quadrature import log_marginal_likelihood


def test_log_marginal_likelihood_matches_brute_force_quadrature():
    enc, dec = six_pixel_vae()
    x = (np.random.default_rng(1).random((7, 6)) < 0.5).astype(np.float64)
    z_grid, axis = latent_grid(-9, 9, 0.05)  # converged: spacing 0.01 agrees to 3e-12
    brute = log_integrate_grid(joint_log_density(dec, x, z_grid[:, None, :]).T, 0.05, len(axis))
    # Near-prior posteriors of this 6-pixel model are resolved by the coarse grid or refined
    # over most of the plane; either way the answer is brute force's.
    np.testing.assert_allclose(log_marginal_likelihood(dec, x), brute, atol=1e-9)
    strict, info = log_marginal_likelihood(dec, x, max_curvature=3e-3, return_info=True)
    assert (info["refine"] >= 8).all()  # every image refined further (r of 16 to 32), and still the same answer
    np.testing.assert_allclose(strict, brute, atol=1e-9)
    # A least r per image (as quadrature_of_sets checks itself, at twice each image's r): each
    # image integrated at that r or more, and still the same answer.
    refine = np.array([4, 8, 16, 4, 8, 16, 8])
    given, info = log_marginal_likelihood(dec, x, refine=refine, return_info=True)
    assert (info["refine"] >= refine).all()
    np.testing.assert_allclose(given, brute, atol=1e-9)


def gaussian_on_grid(mean, std, spacing, bound=3.0):
    """log N(z; mean, diag(std)^2) on latent_grid(-bound, bound, spacing), as (1, K, K): integral 1."""
    z_grid, axis = latent_grid(-bound, bound, spacing)
    log_f = scipy.stats.norm.logpdf(z_grid, mean, std).sum(axis=1)
    return log_f.reshape(1, len(axis), len(axis))


def test_log_marginal_likelihood_of_a_relu_decoder_of_two_hidden_layers_matches_brute_force():
    """A relu decoder 2 -> 4 -> 5 -> 6, written out in NumPy with np.maximum and summed on a fine grid.
    Its log joint has kinks, so a midpoint rule errs by O(spacing^2), not exponentially little: at
    spacing 0.01 the brute force moves by at most 1.1e-5 when the spacing is halved (measured), and
    the quadrature agrees with it to 5e-5, where the same decoder with tanh is 4 to 30 nats away."""
    enc, dec = relu_vae()
    x = (np.random.default_rng(1).random((7, 6)) < 0.5).astype(np.float64)
    z_grid, axis = latent_grid(-9, 9, 0.01)
    brute = log_integrate_grid(numpy_log_joint(dec, x, z_grid, "relu"), 0.01, len(axis))
    np.testing.assert_allclose(log_marginal_likelihood(dec, x), brute, rtol=0, atol=5e-5)


def test_a_sum_and_its_every_other_point_sum_can_agree_while_both_miss_the_integral():
    """The rule log_marginal_likelihood once used (keep the sum when the sum over every other
    point agrees within 1e-4) accepts a sum 0.05 nats or more off for a posterior narrow in
    one direction at the right offset; the curvature test refuses it."""
    spacing = 0.2

    def log_sums(offset):
        log_f = gaussian_on_grid((0.3, offset), (0.4, 0.05), spacing)
        whole = log_integrate_grid(log_f[0], spacing, log_f.shape[-1])
        every_other = log_integrate_grid(log_f[0, ::2, ::2], 2 * spacing, (log_f.shape[-1] + 1) // 2)
        return whole, every_other, log_f

    # The difference of the two sums changes sign between these offsets: bisect to where they agree.
    low, high = 0.0, 0.1
    assert np.sign(np.subtract(*log_sums(low)[:2])) != np.sign(np.subtract(*log_sums(high)[:2]))
    for _ in range(60):
        middle = (low + high) / 2
        same_sign = np.sign(np.subtract(*log_sums(middle)[:2])) == np.sign(np.subtract(*log_sums(low)[:2]))
        low, high = (middle, high) if same_sign else (low, middle)
    whole, every_other, log_f = log_sums(low)
    assert abs(whole - every_other) < 1e-4 and abs(whole) > 0.05  # accepted, and wrong (the integral is log 1)
    near = log_f > log_f.max() - 25
    assert (largest_curvature(log_f, near) > 0.5).all()
    wide = gaussian_on_grid((0.3, low), (0.4, 0.3), spacing)
    assert (largest_curvature(wide, wide > wide.max() - 25) <= 0.5).all()  # (0.2 / 0.3)^2 = 0.44: resolved
    assert abs(log_integrate_grid(wide[0], spacing, wide.shape[-1])) < 1e-8  # and so exact


def test_log_marginal_likelihood_is_vectorized_per_image():
    enc, dec = six_pixel_vae(2)
    x = (np.random.default_rng(3).random((5, 6)) < 0.5).astype(np.float64)
    together = log_marginal_likelihood(dec, x, block_size=2)  # blocks of 2, 2 and 1
    alone = np.array([log_marginal_likelihood(dec, x[i:i + 1])[0] for i in range(len(x))])
    np.testing.assert_allclose(together, alone, rtol=1e-12)


def test_images_sharing_cells_get_the_numbers_they_get_alone(monkeypatch):
    """Each cell is decoded once per r for every image that needs it there, the r taken in
    increasing order, so an image sent on from a smaller r meets those starting at its new r; and
    the second integrals of twice ride along. Together, every image gets what it gets alone."""
    _, dec = six_pixel_vae(3)
    x = (np.random.default_rng(4).random((8, 6)) < 0.5).astype(np.float64)
    refine = np.array([4, 8, 4, 16, 8, 4, 4, 8])
    options = dict(bound=5.0, spacing=0.5)
    twice = [1, 2, 6]
    decoded = []
    monkeypatch.setattr(quadrature, "decoder", lambda params, z: decoded.append(z) or decoder(params, z))
    together, info = log_marginal_likelihood(dec, x, refine=refine, return_info=True, twice=twice, **options)
    sub_points = np.concatenate(decoded[1:])  # after the coarse grid: no point decoded twice
    assert len(np.unique(sub_points, axis=0)) == len(sub_points)
    monkeypatch.undo()
    assert (info["refine"] > refine).any() and len(np.unique(info["refine"])) > 1  # some sent on, to shared r
    for i in range(len(x)):
        alone, alone_info = log_marginal_likelihood(dec, x[i:i + 1], refine=refine[i], return_info=True, **options)
        np.testing.assert_allclose(together[i], alone[0], rtol=1e-13)
        assert alone_info["refine"][0] == info["refine"][i]
        assert alone_info["refined_cells"][0] == info["refined_cells"][i] > 0
    # The second integrals are those of a call of their own on twice the sub-points of each.
    again = log_marginal_likelihood(dec, x[twice], refine=2 * info["refine"][twice], refine_all=True, **options)
    np.testing.assert_allclose(info["twice"], again, rtol=1e-13)
    assert np.all(info["twice"] != together[twice]) and np.allclose(info["twice"], together[twice], atol=1e-8)
    assert len(log_marginal_likelihood(dec, x, return_info=True, **options)[1]["twice"]) == 0


def test_an_image_resolved_at_max_refine_is_checked_at_twice_it():
    """The check of an image that needed max_refine sub-points per cell side is its integral at twice as
    many, not a refusal (a trained relu decoder needed 128, the default max_refine, for 1% of its images)."""
    _, dec = six_pixel_vae(3)
    x = (np.random.default_rng(4).random((8, 6)) < 0.5).astype(np.float64)
    options = dict(bound=5.0, spacing=0.5)
    _, info = log_marginal_likelihood(dec, x, refine=4, return_info=True, **options)
    finest = int(info["refine"].max())
    assert finest > 4  # an image sent on from r = 4
    image = int(np.argmax(info["refine"]))
    log_px, checked = log_marginal_likelihood(dec, x, refine=4, return_info=True, max_refine=finest, twice=[image],
                                              **options)
    again = log_marginal_likelihood(dec, x[[image]], refine=2 * finest, refine_all=True, max_refine=2 * finest,
                                    **options)
    np.testing.assert_allclose(checked["twice"], again, rtol=1e-13)
    with pytest.raises(ValueError, match="too narrow to resolve"):  # a first integral beyond it still is refused
        log_marginal_likelihood(dec, x, refine=4, max_refine=finest // 2, **options)


def test_a_second_integral_refines_an_image_the_coarse_grid_resolved():
    _, dec = six_pixel_vae(1)
    x = (np.random.default_rng(1).random((8, 6)) < 0.5).astype(np.float64)
    log_px, info = log_marginal_likelihood(dec, x, return_info=True, twice=[2, 3, 0])
    np.testing.assert_array_equal(info["refine"][[2, 3, 0]], [1, 1, 4])  # the grid resolved two of them
    assert info["refined_cells"][2] == info["refined_cells"][3] == 0 < info["refined_cells"][0]
    again = log_marginal_likelihood(dec, x[[2, 3, 0]], refine=[4, 4, 8], refine_all=True)
    np.testing.assert_allclose(info["twice"], again, rtol=1e-13)
    np.testing.assert_allclose(info["twice"], log_px[[2, 3, 0]], atol=1e-9)


def test_log_marginal_likelihood_rejects_bad_input():
    _, dec = six_pixel_vae()
    with pytest.raises(ValueError, match=r"x must be a batch of flat images \(N, 6\)"):
        log_marginal_likelihood(dec, np.zeros((3, 5)))
    with pytest.raises(ValueError, match=r"pass x\[None\]"):
        log_marginal_likelihood(dec, np.zeros(6))
    with pytest.raises(ValueError, match=r"holds no images"):
        log_marginal_likelihood(dec, np.zeros((0, 6)))
    with pytest.raises(ValueError, match=r"binary.*\(x > 0.5\).astype\(np.float32\)"):
        log_marginal_likelihood(dec, np.full((3, 6), 255.0))
    with pytest.raises(ValueError, match=r"0 < spacing <= bound .* got bound 10.0 and spacing 0.0"):
        log_marginal_likelihood(dec, np.zeros((3, 6)), spacing=0.0)
    with pytest.raises(ValueError, match=r"a finite bound > 0 .* got bound 0.0"):
        log_marginal_likelihood(dec, np.zeros((3, 6)), bound=0.0)
    with pytest.raises(ValueError, match="refine must be an integer >= 4"):
        log_marginal_likelihood(dec, np.zeros((3, 6)), refine=3)
    with pytest.raises(ValueError, match="max_curvature must be > 0"):
        log_marginal_likelihood(dec, np.zeros((3, 6)), max_curvature=0)
    with pytest.raises(ValueError, match=r"refine must be an integer >= 4 \(or one per image\), got 2"):
        log_marginal_likelihood(dec, np.zeros((3, 6)), refine=np.array([4, 2, 8]))
    with pytest.raises(ValueError, match=r"refine must be one integer or one per image \(3\), got shape \(2,\)"):
        log_marginal_likelihood(dec, np.zeros((3, 6)), refine=np.array([4, 8]))
    with pytest.raises(ValueError, match="too narrow to resolve with 4 x 4 points per cell .* larger max_refine"):
        log_marginal_likelihood(dec, np.zeros((3, 6)), refine=4, max_refine=4, max_curvature=1e-9)


def test_too_small_grid_is_detected():
    _, dec = six_pixel_vae()
    x = np.ones((2, 6))
    with pytest.warns(UserWarning, match="at the edge"):
        _, info = log_marginal_likelihood(dec, x, bound=0.5, spacing=0.1, return_info=True)
    assert info["edge_mass"].max() > 0.01
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _, info = log_marginal_likelihood(dec, x, return_info=True)
    assert info["edge_mass"].max() < 1e-6


@pytest.fixture(scope="module")
def trained_quadrature(trained_params, mnist):
    """quadrature_of_sets of the first 200 test images under the trained decoder, the first 100
    integrated again at twice the sub-points (shared by the tests below, which read it)."""
    return quadrature_of_sets(trained_params[1], {"test": mnist[2][:200]}, num_checked=100)["test"]


def test_twice_the_sub_points_move_log_px_by_float32_rounding_only(trained_params, mnist, trained_quadrature):
    """Every image integrated again with its spacing halved (quadrature_of_sets' check, at twice
    the sub-points per axis each image used): the quadrature's error, a few 1e-6 nats (the
    float32 decoder's rounding), far below anything the study reports. The second integrals
    share the first ones' decoded cells (twice); 10 of them are checked against calls of their own."""
    default, finer = trained_quadrature["log_px"][:100], trained_quadrature["finer"]
    assert finer.shape == default.shape == (100,)
    assert abs(default.mean() - finer.mean()) < 1e-5
    assert np.max(np.abs(default - finer)) < 1e-4 and np.mean(default != finer) > 0.9
    some = np.arange(0, 100, 10)
    _, info = log_marginal_likelihood(trained_params[1], mnist[2][some], return_info=True)
    twice = np.maximum(4, 2 * info["refine"])
    alone, alone_info = log_marginal_likelihood(trained_params[1], mnist[2][some], refine=twice, refine_all=True,
                                                return_info=True)
    assert (alone_info["refine"] >= twice).all()
    assert np.allclose(alone, finer[some], atol=2e-5)


def test_sets_integrated_together_give_each_its_own_log_px(trained_params, mnist):
    test_x, train_x = mnist[2][:30], mnist[0][:20]
    together = quadrature_of_sets(trained_params[1], {"test": test_x, "train": train_x}, num_checked=10)
    for name, x in (("test", test_x), ("train", train_x)):
        alone = log_marginal_likelihood(trained_params[1], x)
        assert together[name]["log_px"].shape == (len(x),) and np.allclose(together[name]["log_px"], alone, atol=2e-5)
        assert together[name]["finer"].shape == (10,)
        assert np.allclose(together[name]["finer"], together[name]["log_px"][:10], atol=1e-4)
    assert quadrature_of_sets(trained_params[1], {"test": test_x[:5]}, num_checked=0)["test"]["finer"] is None


def test_the_bounds_log_weights_in_chunks_are_log_importance_weights():
    """The ELBO and IWAE bounds decode a few thousand points at a time: the very same draws and numbers."""
    enc, dec = six_pixel_vae()
    x = (np.random.default_rng(7).random((13, 6)) < 0.5).astype(np.float64)
    proposal = (np.random.default_rng(8).standard_normal((13, 2)), np.full((13, 2), -1.0))
    for num_samples, batch_size, points, q in ((20, 5, 30, None), (7, 13, 1, None), (9, 4, 10, proposal)):
        expected = log_importance_weights(enc, dec, x, np.random.default_rng(9), num_samples, batch_size, q)
        chunked = log_importance_weights(enc, dec, x, np.random.default_rng(9), num_samples, batch_size, q,
                                         samples_per_chunk(batch_size, points))
        np.testing.assert_array_equal(chunked, expected)
    expected = log_importance_weights(enc, dec, x, np.random.default_rng(9), 30, 4).astype(np.float64)
    np.testing.assert_array_equal(iwae_bound(enc, dec, x, np.random.default_rng(9), 30, 4),
                                  logsumexp(expected, axis=0) - np.log(30))


def test_log_px_agrees_with_importance_sampling_and_bounds_it(trained_params, mnist, trained_quadrature):
    x = mnist[2][:100]
    log_px = trained_quadrature["log_px"][:100]
    rng = np.random.default_rng(0)
    bounds = {k: iwae_bound(*trained_params, x, rng, k) for k in (1, 10, 1000)}
    assert bounds[1].mean() < bounds[10].mean() < bounds[1000].mean()
    # IWAE is a lower bound in expectation that tightens to log p(x); with K = 1000 the
    # remaining gap is a small fraction of a nat.
    assert -0.5 < bounds[1000].mean() - log_px.mean() < 0.02


def test_study_reports_a_nonnegative_gap(trained_params, mnist, trained_quadrature):
    study = marginal_likelihood_study(*trained_params, mnist[2][:200], np.random.default_rng(0),
                                      elbo_samples=20, iwae_ks=(1, 100), iwae_images=50, quadrature=trained_quadrature)
    summary = study["summary"]
    assert summary["gap"] > 0 and summary["consistent_with_mc_error"]
    assert summary["elbo"] < summary["log_px"]
    assert summary["iwae"][1] < summary["iwae"][100] < summary["log_px_on_iwae_images"] + 0.05
    assert abs(summary["halved_spacing_change"]) < 0.01
    grid = summary["coarse_grid"]
    assert abs(grid["prior_log_riemann_sum"] - grid["prior_log_mass_in_cells"]) < 1e-6
    fig = fig_log_px_vs_elbo(study["log_px"], study["elbo"], summary)
    assert len(fig.axes) == 2 and len(fig.axes[0].collections[0].get_offsets()) == 200
    assert "within Monte Carlo error" in fig.axes[0].get_title() or "no image" in fig.axes[0].get_title()


def test_the_prior_grid_check_is_one_a_wrong_grid_fails():
    check = prior_grid_check()
    # The prior's mass in the cells of the 81 x 81 grid, by scipy: what the Riemann sum must give.
    expected = 2 * np.log(scipy.stats.norm.cdf(4.05) - scipy.stats.norm.cdf(-4.05))
    assert check["prior_log_mass_in_cells"] == pytest.approx(expected, abs=1e-15)
    assert check["prior_log_riemann_sum"] == pytest.approx(-1.0e-4, abs=5e-6)
    assert abs(check["prior_log_riemann_sum"] - expected) < 1e-6
    # The edge term of the midpoint rule, h^2 a phi(a) / 12 per axis, is what is left.
    edge = 2 * 0.1**2 * 4.05 * scipy.stats.norm.pdf(4.05) / 12
    assert check["prior_log_riemann_sum"] - expected == pytest.approx(edge, rel=0.01)
    # A grid one cell narrower (or a spacing 1% off) misses by far more than 1e-6.
    z_grid, axis = latent_grid(-3.9, 3.9, 0.1)
    narrower = log_integrate_grid(scipy.stats.norm.logpdf(z_grid).sum(axis=1), 0.1, len(axis))
    assert abs(narrower - expected) > 1e-5
    z_grid, axis = latent_grid(-4, 4, 0.1)
    assert abs(log_integrate_grid(scipy.stats.norm.logpdf(z_grid).sum(axis=1), 0.101, 81) - expected) > 1e-3


def test_coarse_grid_matches_the_plain_sum():
    _, dec = six_pixel_vae()
    x = (np.random.default_rng(5).random((7, 6)) < 0.5).astype(np.float64)
    coarse = coarse_grid_log_marginal_likelihood(dec, x, block_size=3)
    z_grid, axis = latent_grid(-4, 4, 0.1)
    assert len(axis) == 81
    log_joint = joint_log_density(dec, x, z_grid[:, None, :]).T  # (7, 6561)
    np.testing.assert_allclose(coarse["log_px"], log_integrate_grid(log_joint, 0.1, 81), rtol=1e-12)
    # The tiny model's posteriors are near the prior, wide against 0.1: the grid is accurate,
    # and little of them reaches the square's edge.
    np.testing.assert_allclose(coarse["log_px"], log_marginal_likelihood(dec, x), atol=1e-3)
    assert np.all(coarse["edge_mass"] < 1e-3)


def test_coarse_grid_sees_a_posterior_leave_the_square():
    _, dec = six_pixel_vae()
    x = np.ones((2, 6))
    coarse = coarse_grid_log_marginal_likelihood(dec, x, bound=0.5, spacing=0.1)
    assert np.all(coarse["edge_mass"] > 0.1)


def test_study_on_the_tiny_model_follows_the_convention():
    enc, dec = six_pixel_vae()
    x = (np.random.default_rng(6).random((30, 6)) < 0.5).astype(np.float64)
    study = marginal_likelihood_study(enc, dec, x, np.random.default_rng(0), elbo_samples=5,
                                      iwae_ks=(1, 10), iwae_images=10)
    assert set(study) == {"summary", "log_px", "elbo", "elbo_se", "iwae"}
    assert all(study[key].shape == (30,) for key in ("log_px", "elbo", "elbo_se"))
    assert set(study["iwae"]) == {1, 10} and all(b.shape == (10,) for b in study["iwae"].values())
    assert study["summary"]["iwae"] == {k: float(b.mean()) for k, b in study["iwae"].items()}
    log_w = log_importance_weights(enc, dec, x, np.random.default_rng(0), 5, 500).astype(np.float64)
    np.testing.assert_array_equal(study["elbo"], log_w.mean(axis=0))  # the ELBO draws first from the stream
    summary = study["summary"]
    json.dumps(summary, allow_nan=False)
    for key in ("log_px", "elbo", "elbo_se", "gap", "min_gap_in_se", "max_edge_mass", "iwae_images",
                "log_px_on_iwae_images", "iwae", "num_images", "fraction_above", "expected_min_z",
                "halved_spacing_change", "coarse_grid"):
        assert key in summary
    assert summary["coarse_grid"]["points_per_axis"] == 81
    assert summary["coarse_grid"]["mean_abs_error"] < 1e-3
    no_halving = marginal_likelihood_study(enc, dec, x, np.random.default_rng(0), 5, (), 0, num_checked=0)
    assert no_halving["summary"]["halved_spacing_change"] is None and no_halving["summary"]["iwae"] == {}
    sentences = describe_marginal_likelihood(summary, no_halving["summary"])
    assert len(sentences) == 6 and all(isinstance(s, str) for s in sentences)


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
