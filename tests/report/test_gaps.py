"""Part 8's description (vae_autograd.report.gaps) follows the numbers and quotes the settings the
run recorded."""
from vae_autograd.report.gaps import describe_inference_gaps, first_epoch_apart


def test_description_follows_the_numbers(results):
    gaps = results["inference_gaps"]
    summary = gaps["test"]

    def row(epoch, split, amortization_gap):
        return dict(summary, epoch=epoch, split=split, amortization_gap=amortization_gap,
                    amortization_gap_se=0.1, wrong_basin_fraction=0.0)

    together = [row(e, s, 1.0) for e in (1, 10, 50) for s in ("test", "train")]
    apart = together[:4] + [row(50, "test", 3.0), row(50, "train", 1.0)]
    assert first_epoch_apart(together, "amortization_gap") is None
    assert first_epoch_apart(apart, "amortization_gap") == 50
    said_together = " ".join(describe_inference_gaps({**gaps, "over_training": together}).values())
    said_apart = " ".join(describe_inference_gaps({**gaps, "over_training": apart}).values())
    assert "stay within 3 standard errors" in said_together and "no test image is in a wrong basin" in said_together
    assert "first exceeds the training one by more than 3 standard errors at epoch 50" in said_apart
    assert f"{summary['approximation_gap']:.3f}" in said_together


def test_the_settings_quoted_are_those_recorded(results):
    gaps = results["inference_gaps"]
    gaps["settings"].update(converged_nats=0.005, wrong_basin_nats=0.25, num_modes=3, mode_grid_spacing=0.1,
                            mode_grid_bound=5.0, mode_within_nats=8.0)
    sentences = describe_inference_gaps(gaps)
    assert list(sentences) == ["gap_split", "refinement", "convergence", "iwae", "along_training"]
    assert "until a step would gain less than 0.005 nats" in sentences["refinement"]
    assert "stops more than 0.25 nats below q*" in sentences["refinement"]
    assert ("the posterior's 3 highest local maxima on a 0.1 grid over [-5, 5]^2 (those within 8 nats"
            in sentences["convergence"])
    del gaps["test"]["convergence"], gaps["test"]["iwae"]
    assert list(describe_inference_gaps(gaps)) == ["gap_split", "refinement", "along_training"]
