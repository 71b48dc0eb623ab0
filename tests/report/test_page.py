"""The page's own sentences (vae_autograd.report.page): the model, the images trained on and the
counts the captions name are read off results.json, never written in."""
import ast
import re

from tests.helpers import REPO
from vae_autograd.report.page import computed_captions, readme_results, report_text


def test_the_model_is_named_as_the_training_metadata_records_it(results):
    text = report_text(results)
    assert "Kingma & Welling (2013), Appendix C model (one hidden layer of 500 tanh units in the encoder and in " \
        "the decoder), 2-D latent space;" in text
    results["training"].update(hidden=[256, 128], activation="relu", latent_dim=3)
    text = report_text(results)
    assert "(2013), Appendix C model" not in text and "2-D latent space" not in text
    assert "an encoder with hidden layers of 256, 128 relu units and a decoder mirroring them (not Kingma & " \
        "Welling's Appendix C model, one hidden layer of 500 tanh units), 3-D latent space;" in text
    results["training"].update(hidden=[300], activation="tanh")
    assert "an encoder with hidden layer of 300 tanh units and a decoder mirroring it" in report_text(results)


def test_held_out_images_are_not_called_trained_on(results):
    training = results["training"]
    assert f"on the first {training['train_size']:,} training images" in report_text(results)
    training.update(train_size=10000, validation_size=1000)
    said = "on the first 9,000 training images, keeping the epoch whose ELBO on the next 1,000 (held out, never " \
        "trained on) was the highest"
    assert said in report_text(results) and said in readme_results(results)
    assert "first 10,000" not in report_text(results) + readme_results(results)


def test_the_captions_count_what_results_json_holds(results):
    """Counts of shown images, pairs and steps from the lists, not 'four', 'Three' and 'ten' written in."""
    posteriors, paths = results["posteriors"]["true_vs_approx"], results["interpolations"]
    for part in ("train", "test"):
        for key in ("kl", "best_gaussian_kl", "edge_mass"):
            posteriors[part][key] = posteriors[part][key][:2]
    results["reconstructions"] = {"labels": [7, 2, 1], "knn_classes": [7, 2, 1]}
    paths.update({key: paths[key][:2] for key in ("a", "b", "labels_a", "labels_b")},
                 path_classes=[row[:6] for row in paths["path_classes"][:2]])
    captions = computed_captions(results)
    assert "for the first two training images (top row) and the first two test images (bottom row)" \
        in captions["true_vs_approx_posterior"] and "first four" not in captions["true_vs_approx_posterior"]
    assert captions["reconstructions"].startswith("**4.2 Reconstructions.** Three test images (left)")
    assert captions["interpolations"].startswith("**5.3 Interpolations.** Two pairs of test images of different "
                                                 "classes;")
    assert "for six evenly spaced alpha" in captions["interpolations"]
    paths["labels_b"] = list(paths["labels_a"])
    assert captions["interpolations"].count("different classes") == 1
    assert "different classes" not in computed_captions(results)["interpolations"]


def test_a_run_without_iwae_bounds_gets_a_report_without_them(results):
    results["integration_test"].update(iwae={}, iwae_images=0, log_px_on_iwae_images=None)
    text = report_text(results)
    assert "Importance-weighted bounds on the first" not in text and "| IWAE bound |" not in text


def test_the_top_half_caption_counts_the_rows_results_json_implies(results):
    """'the bottom 14 rows' was written in; the rows are half of the image's side (data_dim)."""
    assert "with the bottom 14 rows unobserved" in computed_captions(results)["top_half_posterior"]
    results["training"]["data_dim"] = 100
    caption = computed_captions(results)["top_half_posterior"]
    assert "with the bottom 5 rows unobserved" in caption and "14" not in caption


def test_the_readme_block_never_shows_a_wrong_basin_share_as_0_0_percent(results):
    results["inference_gaps"]["test"]["wrong_basin_fraction"] = 1e-4
    block = readme_results(results)
    assert "0.0%" not in block and "| 0.01% |" in block


def test_the_report_package_holds_no_test_only_code():
    """Every function, class and constant of vae_autograd.report is used by the package (or run_all.py):
    readme_block was used only by tests."""
    sources = [path.read_text() for path in (*(REPO / "vae_autograd").rglob("*.py"), REPO / "run_all.py")]
    unused = []
    for path in sorted((REPO / "vae_autograd" / "report").glob("*.py")):
        for node in ast.parse(path.read_text()).body:
            names = ([node.name] if isinstance(node, (ast.FunctionDef, ast.ClassDef)) else
                     [t.id for t in node.targets if isinstance(t, ast.Name)] if isinstance(node, ast.Assign) else [])
            unused += [f"{path.name}: {name}" for name in names
                       if sum(len(re.findall(rf"\b{name}\b", source)) for source in sources) < 2]
    assert unused == []


def test_the_gap_histograms_caption_says_when_a_set_has_no_red_bars(results):
    """The caption names a red histogram of the images in a wrong basin, which a set without any does not draw."""
    from vae_autograd.report.page import computed_captions

    gaps = results["inference_gaps"]
    gaps["test"]["wrong_basin_fraction"], gaps["train"]["wrong_basin_fraction"] = 0.05, 0.0
    assert computed_captions(results)["inference_gaps"].endswith(
        "No image of the training set is in a wrong basin: its histogram has no red bars.")
    gaps["test"]["wrong_basin_fraction"] = 0.0
    assert "test or the training set is in a wrong basin: their histograms have" in \
        computed_captions(results)["inference_gaps"]
    gaps["test"]["wrong_basin_fraction"] = gaps["train"]["wrong_basin_fraction"] = 0.01
    assert "red bars" not in computed_captions(results)["inference_gaps"].split("(red)")[1]
