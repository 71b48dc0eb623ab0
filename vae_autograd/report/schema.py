"""The schema of results.json, the one contract between the study (run_all.py) and the report; report.conform
checks a file against it. Nats per image; X_se: the standard error of the mean X; {K: ...} keyed by str(K)."""
from typing import Literal, TypedDict


class Training(TypedDict):
    """The trained model's checkpoint metadata (train.checkpoints.current_metadata) and final ELBOs (run_training)."""
    epochs: int
    data_dim: int
    hidden: list[int]                    # the hidden widths from the image side; the decoder mirrors them
    activation: Literal["tanh", "relu"]  # of every hidden layer
    latent_dim: int
    seed: int
    lr: float
    batch_size: int
    train_size: int
    binarization: Literal["threshold"]
    validation_size: int
    train_elbo: float
    train_elbo_se: float
    test_elbo: float
    test_elbo_se: float
    eval_samples: int
    test_size: int
    train_seconds: float


class CoarseGrid(TypedDict):
    """The assignment's 81 x 81 grid on [-4, 4]^2 against the adaptive quadrature (coarse minus adaptive)."""
    bound: float
    spacing: float
    points_per_axis: int
    prior_log_riemann_sum: float
    prior_log_mass_in_cells: float
    mean_error: float
    mean_abs_error: float
    max_abs_error: float
    edge_threshold: float
    images_at_edge: int
    mean_abs_error_inside: float | None
    max_abs_error_inside: float | None
    median_q_std: float
    narrow_fraction: float | None
    mean_abs_error_narrow: float | None
    mean_abs_error_wide: float | None


class MarginalLikelihood(TypedDict):
    """Part 3 on one set (study.marginal_likelihood.marginal_likelihood_study)."""
    num_images: int
    elbo_samples: int
    log_px: float
    log_px_se: float
    elbo: float
    elbo_se: float
    gap: float
    num_above: int                       # images whose ELBO lies above log p(x)
    fraction_above: float
    min_gap_in_se: float                 # smallest (log p(x) - ELBO) / SE over images
    expected_min_z: float                # and where the smallest of N Student-t draws lies
    min_gap_probability: float | None
    consistent_with_mc_error: bool
    quadrature_bound: float
    max_edge_mass: float
    halved_spacing_images: int | None    # the first images integrated again on twice the sub-points per axis
    halved_spacing_change: float | None
    halved_spacing_max_change: float | None
    iwae_images: int
    log_px_on_iwae_images: float | None
    iwae: dict[str, float]               # {K: mean IWAE bound with q(z|x)}
    coarse_grid: CoarseGrid


class ConfusedPair(TypedDict):
    pair: list[int]
    share: float
    a_as_b: int
    b_as_a: int


# How one digit's training embeddings split into separate clusters ("class" is a keyword: no class syntax).
ClassClusters = TypedDict("ClassClusters", {"class": int, "num_points": int, "clusters": int,
                                            "component_shares": list[float], "outside_largest": float, "gap": float})


class LatentClasses(TypedDict):
    """Parts 4-5: k-NN labels of the test images in the latent plane (study.latent_classes)."""
    k: int
    num_train: int
    num_test: int
    test_accuracy: float
    class_accuracy: list[float | None]
    accuracy_by_k: dict[str, float]
    confusion: list[list[int]]           # row: true digit, column: k-NN label
    min_pair_share: float
    confused_pairs: list[ConfusedPair]
    cluster_k: int
    sparse_share: float
    gap_factor: float
    min_cluster_share: float
    clusters: list[ClassClusters]


# The shown test images' labels, and the k-NN classes of the z each reconstruction decodes.
Reconstructions = TypedDict("Reconstructions", {"labels": list[int], "knn_classes": list[int]})


class Interpolations(TypedDict):
    a: list[int]                         # test image indices of each path's two ends
    b: list[int]
    labels_a: list[int]
    labels_b: list[int]
    faithful: bool                       # both ends lie among their own digit's embeddings
    path_classes: list[list[int]]        # k-NN class of every point of every path


class WindowChecks(TypedDict):
    """Per image: the share of the posterior on its window's edge ring, and outside the window."""
    edge_mass: list[float]
    mass_outside_window: list[float]


class EncoderAgainstPosterior(WindowChecks):
    """6.1, per shown image: KL(q || p(z|x)), the best diagonal Gaussian's, and the window's checks."""
    kl: list[float]
    best_gaussian_kl: list[float]
    amortization_gap: list[float]


class TrueVsApprox(TypedDict):
    train: EncoderAgainstPosterior
    test: EncoderAgainstPosterior


class TopHalf(WindowChecks):
    """6.2, per shown test image: p(z | x_top) against p(z|x)."""
    posterior_mean: list[list[float]]
    posterior_std: list[list[float]]
    whole_image_std: list[list[float]]
    whole_image_outside_window: list[float]  # the share of p(z|x) of the whole image outside the same windows
    num_modes: list[int]
    mode_shares: list[list[float]]
    mode_mass: float
    mode_min_share: float


class NoUncertainPair(TypedDict):
    """(b) for a digit with fewer than two uncertain bottom pixels: nothing can be correlated."""
    num_uncertain_pixels: int
    max_abs_correlation: float
    pixels: None


class UncertainPair(TypedDict):
    """(b): the most correlated pair of uncertain bottom pixels under p(x_bottom | x_top)."""
    num_uncertain_pixels: int
    max_abs_correlation: float
    pixels: list[int]
    marginals: list[float]
    joint: float
    product_of_marginals: float
    covariance: float
    correlation: float


class Posteriors(TypedDict):
    true_vs_approx: TrueVsApprox
    top_half: TopHalf
    bottom_dependence: list[UncertainPair | NoUncertainPair]


class Svi(WindowChecks):
    """6.3, per image: the SVI Gaussian for p(z | x_top) against quadrature (study.svi.svi_study)."""
    mu: list[list[float]]
    log_std: list[list[float]]
    sigma: list[list[float]]
    svi_elbo: list[float]
    svi_elbo_se: list[float]
    log_p_x_top: list[float]
    kl: list[float]
    kl_from_elbo: list[float]
    kl_difference_in_se: list[float]
    kl_agree: list[bool]
    agreement_se: float
    posterior_mean: list[list[float]]
    posterior_std: list[list[float]]
    mu_error_in_posterior_stds: list[list[float]]
    num_steps: int
    num_samples: int
    lr: float
    converged: list[bool]
    elbo_change_last_window: list[float]
    elbo_change_se: list[float]
    convergence_tol: float
    steps_to_converge: list[int | None]
    quadrature_points_per_axis: int


class EstimatorRow(TypedDict):
    """One row of image 0's table: an estimator averaged over n draws."""
    estimator: str
    draws: int
    num_estimates: int
    mean: float
    std: float
    se: float
    bias_in_se: float
    variance: float
    variance_per_draw: float
    exact: float
    variance_per_draw_over_smallest_n: float
    variance_ratio_to_reparameterization: float


class FocusImage(TypedDict):
    component: str
    num_estimates: int
    exact: float
    exact_gradient: list[float]
    table: list[EstimatorRow]


class Quartiles(TypedDict):
    min: float
    q25: float
    median: float
    q75: float
    max: float
    count: int


class OverImages(TypedDict):
    num_images: int
    estimates_per_image: int
    variance_ratio: dict[str, dict[Literal["mean_1", "mean", "log_std"], Quartiles]]  # {estimator: {part: ...}}
    focus_rank: dict[str, float]


EstimatorTest = TypedDict("EstimatorTest", {"max_abs_z": float, "passes": bool})


class Unbiasedness(TypedDict):
    family_wise_level: float
    components_per_estimator: int
    num_tests: int
    z_threshold: float
    estimators: dict[str, EstimatorTest]


class GradientEstimators(TypedDict):
    """Part 7 (study.estimator_study.gradient_estimator_study)."""
    estimators: list[str]
    labels: dict[str, str]
    group_sizes: list[int]
    group_size: dict[str, int]           # draws per group K of each estimator (1: no baseline)
    component_order: list[str]
    focus: FocusImage
    images: OverImages
    unbiasedness: Unbiasedness
    elbo_quadrature_mean: float


class GapSummary(TypedDict):
    """Part 8 over a set of images (study.inference_gaps.gap_summary): means and X_se over images."""
    num_images: int
    log_px: float
    log_px_se: float
    elbo_amortized: float
    elbo_amortized_se: float
    elbo_refined: float
    elbo_refined_se: float
    elbo_optimal: float
    elbo_optimal_se: float
    approximation_gap: float
    approximation_gap_se: float
    amortization_gap: float
    amortization_gap_se: float
    total_gap: float
    total_gap_se: float
    gap_after_refinement: float
    gap_after_refinement_se: float
    refinement_gain: float
    refinement_gain_se: float
    wrong_basin_fraction: float
    wrong_basin_fraction_se: float
    wrong_basin_share_of_gap: float
    wrong_basin_share_of_amortization_gap: float
    refined_below_optimal_in_wrong_basins: float
    min_approximation_gap: float
    refinement_unconverged_fraction: float


class Convergence(TypedDict):
    num_images: int
    another_start: float
    another_start_max_per_image: float
    more_iterations: float
    more_iterations_max_per_image: float


class IwaeProposals(TypedDict):
    num_images: int
    log_px: float
    encoder: dict[str, list[float]]      # {K: [mean, se] of the IWAE bound with q(z|x)}
    optimal: dict[str, list[float]]      # {K: [mean, se]} with q*


class TestGaps(GapSummary):
    convergence: Convergence
    iwae: IwaeProposals


class EpochGaps(GapSummary):
    epoch: int
    split: Literal["test", "train"]


class GapSettings(TypedDict):
    """The settings of part 8 that its sentences quote (study.gap_study.gap_settings)."""
    converged_nats: float
    max_rounds: int
    wrong_basin_nats: float
    num_modes: int
    mode_grid_spacing: float
    mode_grid_bound: float
    mode_within_nats: float


class InferenceGaps(TypedDict):
    test: TestGaps
    train: GapSummary
    over_training: list[EpochGaps]
    over_training_images: dict[str, int]
    settings: GapSettings


class Results(TypedDict):
    """results.json."""
    seed: int
    quick: bool
    training: Training
    integration_test: MarginalLikelihood
    integration_train: MarginalLikelihood
    latent_classes: LatentClasses
    reconstructions: Reconstructions
    interpolations: Interpolations
    posteriors: Posteriors
    svi: Svi
    gradient_estimators: GradientEstimators
    inference_gaps: InferenceGaps
