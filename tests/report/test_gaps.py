"""Part 8's description (vae_autograd.report.gaps) follows the numbers."""



def test_description_follows_the_numbers(gap_result):
    from vae_autograd.report.gaps import describe_inference_gaps, first_epoch_apart

    summary = gap_result["summary"]

    def row(epoch, split, amortization_gap):
        return dict(summary, epoch=epoch, split=split, amortization_gap=amortization_gap,
                    amortization_gap_se=0.1, wrong_basin_fraction=0.0)

    together = [row(e, s, 1.0) for e in (1, 10, 50) for s in ("test", "train")]
    apart = together[:4] + [row(50, "test", 3.0), row(50, "train", 1.0)]
    assert first_epoch_apart(together, "amortization_gap") is None
    assert first_epoch_apart(apart, "amortization_gap") == 50
    gaps = {"test": summary, "train": summary, "over_training_images": {"test": 5, "train": 5}}
    said_together = " ".join(describe_inference_gaps({**gaps, "over_training": together}))
    said_apart = " ".join(describe_inference_gaps({**gaps, "over_training": apart}))
    assert "stay within 3 standard errors" in said_together and "no test image is in a wrong basin" in said_together
    assert "first exceeds the training one by more than 3 standard errors at epoch 50" in said_apart
    assert f"{summary['approximation_gap']:.3f}" in said_together
