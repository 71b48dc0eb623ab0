"""What a sweep writes, on made-up rows (no training): the mean and standard deviation over seeds, the record
of a work folder's options, the ETA, the page's sentences (each computed from the numbers) and its figure."""
import json
from types import SimpleNamespace

import numpy as np
import pytest

import vae_autograd.seeds.sweep as sweep_module
from tests.helpers import unreadable_text
from vae_autograd.core.text import percent
from vae_autograd.figures.seeds import fig_seed_values
from vae_autograd.io.files import OutputError
from vae_autograd.report.seeds import (
    CAPTION,
    README_HEADLINES,
    beside_published,
    describe_sweep,
    gap_changes,
    readme_seed_block,
    sweep_page,
    training_summary,
)
from vae_autograd.seeds.analysis import METRICS
from vae_autograd.seeds.outputs import (
    check_work_folder,
    draw_page,
    figure_values,
    mean_and_sd,
    ordered_sweeps,
    sweep_options,
    sweep_summary,
    write_page,
)
from vae_autograd.seeds.settings import DAVIDSON_2018, setting_config
from vae_autograd.seeds.sweep import Job, Progress, clock, worker_environment
from vae_autograd.train.options import TrainConfig

ANALYSED = {"test_images": 10000, "gap_train_images": 10000, "iwae_images": 1000, "iwae_k": 1000,
            "quadrature_checked": 50}


def made_up_rows(seeds, seed=0, dynamic=True, shift=0.0):
    """Rows with every metric, random but fixed, and dynamic-only ones None for a thresholded setting."""
    rng = np.random.default_rng(seed)
    rows = []
    for k in seeds:
        row = {metric: float(rng.normal(-140 + shift, 2)) for metric in METRICS}
        row.update(seed=k, analysed=ANALYSED, epochs=50, best_epoch=int(rng.integers(30, 51)), stopped_early=False,
                   iwae_minus_log_px=float(-abs(rng.normal(3, 1))),
                   seconds={"train": float(rng.uniform(100, 200)), "analysis": float(rng.uniform(300, 400))})
        if not dynamic:
            row.update(test_threshold_elbo=None, test_threshold_log_px=None, best_epoch=None, stopped_early=None)
        rows.append(row)
    return rows


def made_up_sweep(setting="literature", seeds=(3, 0, 1, 2, 4), **options):
    config = setting_config(setting, 0, {}, "data/seeds")
    rows = made_up_rows(seeds, dynamic=config.binarization == "dynamic", **options)
    return sweep_summary(setting, rows, config, ANALYSED)


def test_mean_and_sd_are_numpys_with_ddof_1_and_none_where_undefined():
    values = [-141.2, -139.9, -140.5, -142.0]
    assert mean_and_sd(values) == (np.mean(values), np.std(values, ddof=1))
    assert mean_and_sd([-140.0]) == (-140.0, None)
    assert mean_and_sd([1.0, None]) == (None, None) and mean_and_sd([]) == (None, None)


def test_a_sweep_summary_holds_sorted_rows_and_numpys_mean_and_sd_of_every_metric():
    sweep = made_up_sweep()
    assert sweep["seeds"] == [0, 1, 2, 3, 4] and [row["seed"] for row in sweep["rows"]] == [0, 1, 2, 3, 4]
    for metric in METRICS:
        values = [row[metric] for row in sweep["rows"]]
        assert sweep["mean"][metric] == pytest.approx(np.mean(values), rel=1e-14)
        assert sweep["sd"][metric] == pytest.approx(np.std(values, ddof=1), rel=1e-14)
    assert sweep["options"]["binarization"] == "dynamic" and sweep["options"]["patience"] == 10
    assert "seed" not in sweep["options"] and "out" not in sweep["options"]
    assert sweep["published"] == DAVIDSON_2018
    assert sweep["seconds"]["train"] == pytest.approx(sum(row["seconds"]["train"] for row in sweep["rows"]))
    threshold = made_up_sweep("assignment")
    assert threshold["mean"]["test_threshold_log_px"] is None and threshold["options"]["patience"] is None
    json.dumps(sweep, allow_nan=False)  # JSON-ready


def test_a_work_folder_keeps_the_options_of_its_seeds(tmp_path):
    options = sweep_options(TrainConfig(epochs=50))
    check_work_folder(tmp_path, options)
    check_work_folder(tmp_path, options)  # the same options: accepted
    with pytest.raises(OutputError, match="holds seeds trained with epochs=50, not 60; move it away"):
        check_work_folder(tmp_path, sweep_options(TrainConfig(epochs=60)))
    assert json.loads((tmp_path / "options.json").read_text()) == options



@pytest.mark.parametrize("text", ["null", "5", "[1, 2]", '"epochs"'])
def test_a_record_of_options_that_is_no_dict_is_refused_in_one_line_and_kept(tmp_path, text):
    (tmp_path / "options.json").write_text(text)
    with pytest.raises(OutputError, match=r"options.json cannot be read \(not a record of options\); move"):
        check_work_folder(tmp_path, sweep_options(TrainConfig(epochs=50)))
    assert (tmp_path / "options.json").read_text() == text

def fake_job(name, planned, epochs=20):
    return Job("literature", int(name), None, SimpleNamespace(epochs=epochs), {}, planned)


def test_the_eta_lays_the_seeds_left_on_the_free_cores_and_scales_the_plan_by_finished_steps(monkeypatch):
    now = [0.0]
    monkeypatch.setattr(sweep_module.time, "perf_counter", lambda: now[0])
    jobs = [fake_job(k, (60.0, 40.0)) for k in range(3)]
    lines = []
    progress = Progress(jobs, 2, lines.append)
    assert progress.eta(0.0) == 200.0  # two seeds at once, then the third
    progress.step(jobs[0], "training", "training")
    progress.step(jobs[1], "training", "training")
    now[0] = 30.0
    assert progress.eta(now[0]) == 170.0  # 70 left of each running seed, then 100 for the third
    progress.step(jobs[0], "analysing", "trained", spent=("training", 60.0))  # in 30 s of a planned 60
    assert progress.scale("training") == 0.5
    # Seed 0: its 40 s of analysis; seed 1: 30 - 30 of training left, and 40; seed 2 after seed 0: 30 + 40.
    assert progress.eta(now[0]) == 110.0
    assert lines[-1] == "[0:30] literature seed 0: trained; 0/3 seeds done, ETA 1:50"


def test_a_resumed_training_scales_the_plan_by_the_epochs_it_trained(monkeypatch):
    now = [0.0]
    monkeypatch.setattr(sweep_module.time, "perf_counter", lambda: now[0])
    job = fake_job(0, (60.0, 40.0), epochs=20)
    lines = []
    progress = Progress([job], 1, lines.append)
    progress.event(job, {"step": "training", "reused": False, "from_epoch": 10})
    assert "training from epoch 10;" in lines[-1]
    now[0] = 15.0
    progress.event(job, {"step": "trained", "reused": False, "epochs": 20, "best_epoch": 18, "stopped_early": False})
    assert progress.scale("training") == 0.5  # 10 epochs in 15 s, planned at 30
    assert "trained to epoch 20, kept epoch 18 in 0:15; analysing" in lines[-1]
    progress.event(job, {"step": "training", "reused": False, "from_epoch": 20})  # evaluated only: no epoch
    progress.event(job, {"step": "trained", "reused": False, "epochs": 20, "best_epoch": 18, "stopped_early": False})
    assert progress.scale("training") == 0.5 and "no epoch left to train" in lines[-1]
    assert clock(3725) == "1:02:05" and clock(59.6) == "1:00"


def test_workers_compute_on_one_blas_thread_with_this_very_package(monkeypatch):
    monkeypatch.setenv("PYTHONPATH", "/elsewhere")
    environment = worker_environment()
    assert environment["OPENBLAS_NUM_THREADS"] == environment["OMP_NUM_THREADS"] == "1"
    first, rest = environment["PYTHONPATH"].split(":", 1)
    assert (sweep_module.Path(first) / "vae_autograd" / "seeds" / "worker.py").is_file() and rest == "/elsewhere"


def test_sentences_say_what_the_numbers_show():
    sweep = made_up_sweep()
    published = sweep["published"]
    sweep["mean"].update(test_log_px=-140.0, iwae=-137.0, test_elbo=-136.0, iwae_minus_log_px=-3.0)
    sweep["sd"].update(test_log_px=1.0, iwae=0.5, test_elbo=0.3)
    for row in sweep["rows"]:
        row["iwae_minus_log_px"] = -3.0
    sweep["rows"][0]["iwae_minus_log_px"] = 0.5
    sweep["mean"]["test_threshold_log_px"] = -137.5
    sweep["mean"]["test_threshold_elbo"], sweep["sd"]["test_threshold_elbo"] = -137.0, 0.7
    iwae, literature, thresholded, thresholded_elbo, epochs, seconds = describe_sweep(sweep, published)
    assert "IWAE with K = 1000 lies 3.00 nats below the exact log p(x) of those images" in iwae
    assert "(below in 4 of 5)" in iwae
    assert "the exact test log p(x) 4.27 nats below their LL (more than the sum of the two standard deviations, " \
           "1.83)" in literature
    # Its IWAE is of the first 1,000 test images: not set beside their LL, the whole test set's.
    assert "IWAE estimate" not in literature
    assert "(its IWAE, of the first 1,000 test images only, is not set beside their LL" in literature
    assert "the test ELBO 1.08 nats above their ELBO (within" in literature
    assert "exact log p(x) of -137.50 ± " in thresholded
    assert "2.50 nats above that of the same images as drawn" in thresholded
    assert "ELBO of the whole test set thresholded at 0.5, -137.00 ± 0.70, lies 0.08 nats above their ELBO (within " \
           "the sum of the two standard deviations, 1.53)" in thresholded_elbo
    sweep["analysed"] = {**sweep["analysed"], "iwae_images": sweep["options"]["test_size"]}
    literature = describe_sweep(sweep, published)[1]
    assert "the IWAE estimate 1.27 nats below their LL (within the sum" in literature
    assert "not set beside" not in literature
    assert "epochs kept (best validation ELBO) range from" in epochs and "patience 10" in epochs
    assert ("not shown to be converged" in epochs) == (not any(row["stopped_early"] for row in sweep["rows"]))
    sweep["rows"][1]["stopped_early"] = True
    assert "not shown to be converged" not in describe_sweep(sweep, published)[4]
    assert "a seed's training took" in seconds and "minutes" in seconds
    threshold = made_up_sweep("assignment")
    sentences = describe_sweep(threshold, published)
    assert any("thresholded at 0.5, not dynamically binarized as Davidson" in s for s in sentences)
    assert not any("epochs kept" in s for s in sentences)  # no validation set


def test_the_page_sets_each_setting_beside_the_published_row(tmp_path):
    sweeps = [made_up_sweep("assignment"), made_up_sweep(shift=3.0)]
    page = sweep_page(sweeps, "seeds.png")
    assert "| Davidson et al. (2018) |  | 10,000 | -135.73 ± 0.83 |  |  | -137.08 ± 0.83 |  |" in page
    mean, sd = sweeps[1]["mean"]["test_log_px"], sweeps[1]["sd"]["test_log_px"]
    assert f"| literature | 5 | 10,000 / 1,000 | {mean:.2f} ± {sd:.2f} |" in page
    assert "784-500-tanh encoder and its mirror as decoder, 2-D latent, trained on the first 50,000 training " \
           "images, each minibatch binarized afresh (dynamic binarization) for up to 50 epochs, the next 10,000 " \
           "held out" in page
    assert training_summary({**sweeps[1]["options"], "hidden": [256, 128], "activation": "relu"}).startswith(
        "784-256-128-relu encoder")
    assert "![Per seed](seeds.png)" in page
    for sweep in sweeps:  # the page reads them in order, whatever order the files are found in
        (tmp_path / f"{sweep['setting']}.json").write_text(json.dumps(sweep))
    (tmp_path / "notes.json").write_text("[1, 2]")  # not a sweep: skipped
    assert [s["setting"] for s in ordered_sweeps(tmp_path)] == ["assignment", "literature"]
    draw_page(tmp_path, ordered_sweeps(tmp_path))
    assert (tmp_path / "report.md").read_text() == page
    assert (tmp_path / "seeds.png").read_bytes()[:4] == b"\x89PNG"



@pytest.mark.parametrize("text", ['{"setting": "mine", "rows": []}', '{"setting": "mine", "rows": [1]}',
                                  '{"setting": "mine", "rows": [{"seed": 0}]}', '{"setting": 5, "rows": [{}]}'])
def test_a_json_the_page_cannot_be_drawn_from_is_skipped_naming_it(tmp_path, text):
    """A JSON in the sweeps folder with a setting and rows but not a sweep's (another tool's, a hand-made
    one) is left out of the page with a line naming it, not a traceback after the whole sweep."""
    sweep = made_up_sweep()
    (tmp_path / "literature.json").write_text(json.dumps(sweep))
    (tmp_path / "mine.json").write_text(text)
    lines = []
    write_page(tmp_path, lines.append)
    assert (tmp_path / "report.md").read_text() == sweep_page([sweep], "seeds.png")
    assert lines[0].startswith(f"{tmp_path / 'mine.json'} left out of the page: not a sweep's JSON (")
    assert (tmp_path / "mine.json").read_text() == text

def test_the_figure_shows_every_seed_and_its_text_is_readable(no_open_figures):
    sweeps = [made_up_sweep("assignment"), made_up_sweep(shift=3.0), made_up_sweep(shift=5.0)]
    sweeps[2]["setting"] = "davidson"
    panels = figure_values(sweeps)
    assert [len(values) for _, _, values, _ in panels] == [3] * 6
    assert panels[0][3] == (DAVIDSON_2018["log_px"], DAVIDSON_2018["log_px_sd"])
    np.testing.assert_array_equal(panels[0][2][1], [row["test_log_px"] for row in sweeps[1]["rows"]])
    fig = fig_seed_values([s["setting"] for s in sweeps], panels)
    assert unreadable_text(fig) == []
    dots = [line for line in fig.axes[0].get_lines() if line.get_marker() == "o"]
    assert sorted(len(line.get_xdata()) for line in dots) == [5, 5, 5]


def test_the_readme_block_gives_each_headline_numbers_mean_sd_and_range_over_seeds():
    sweep = made_up_sweep("assignment")
    lines = readme_seed_block(sweep).splitlines()
    for metric, name, digits in README_HEADLINES:
        values = np.array([row[metric] for row in sweep["rows"]])
        name = name.format(iwae_k=f"K = {sweep['analysed']['iwae_k']}")
        shown = next(line for line in lines if line.startswith(f"| {name} |")).split(" | ")
        def form(value, digits=digits):  # a share as a percentage
            return percent(value) if digits is None else f"{value:.{digits}f}"
        mean_sd = f"{form(values.mean())} ± {form(values.std(ddof=1))}"
        assert shown[1:] == [mean_sd, form(values.min()), f"{form(values.max())} |"]


def test_a_row_without_every_metric_is_stale_and_computed_again(tmp_path, monkeypatch):
    """A row of this very model and sizes that lacks a number (an older version's row, a hand-edited one) is
    not current: trusted, it made the sweep's summary a KeyError traceback after every seed had run."""
    import vae_autograd.seeds.analysis as analysis

    monkeypatch.setattr(analysis, "params_digest", lambda params: "digest")
    row = {**made_up_rows([0])[0], "params_digest": "digest"}
    path = tmp_path / "seed0-analysis.json"
    path.write_text(json.dumps(row))
    assert analysis.current_row(path, None, ANALYSED) == row
    del row["test_log_px"]
    path.write_text(json.dumps(row))
    assert analysis.current_row(path, None, ANALYSED) is None


def test_the_gaps_of_each_setting_are_set_beside_the_first_settings():
    first, other = made_up_sweep("assignment"), made_up_sweep(shift=3.0)
    test, train = gap_changes([first, other])
    for sentence, split in ((test, "test"), (train, "train")):
        for sweep in (first, other):
            key = f"{split}_amortization_gap"
            assert f"{sweep['mean'][key]:.2f} ± {sweep['sd'][key]:.2f}" in sentence
    assert "in the assignment setting" in test and "in the literature setting" in test
    assert gap_changes([first]) == []


def test_a_setting_analysed_on_a_subset_of_the_test_set_sets_only_its_elbo_beside_the_published_row():
    sweep = made_up_sweep()
    published = sweep["published"]
    assert "the exact test log p(x)" in describe_sweep(sweep, published)[1]   # the whole test set: compared
    sweep["analysed"] = {**sweep["analysed"], "test_images": 50}
    sentences = describe_sweep(sweep, published)
    assert "the exact test log p(x)" not in sentences[1] and "IWAE estimate" not in sentences[1]
    assert "the test ELBO" in sentences[1]
    mean = sweep["mean"]
    subset_elbo = mean["test_log_px"] - mean["test_approximation_gap"] - mean["test_amortization_gap"]
    subset = sentences[2]
    assert "first 50 test images only" in subset and f"{subset_elbo:.2f}" in subset
    shown = abs(float(f"{subset_elbo:.2f}") - float(f"{mean['test_elbo']:.2f}"))  # the two numbers as printed
    assert f"{shown:.2f} nats" in subset and "not set beside the published LL" in subset


def table_cells(page, first_cell):
    """{header: cell} of the row of the page's first table that starts with first_cell."""
    lines = page.splitlines()
    header = next(line for line in lines if line.startswith("| setting | seeds |"))
    row = next(line for line in lines if line.startswith(f"| {first_cell} |"))
    return dict(zip(header.strip("|").split(" | "), row.strip("|").split(" | ")))


def test_the_published_ll_stands_where_log_px_is_in_the_table_the_caption_and_the_figure():
    """Davidson et al.'s LL estimates the test set's mean log p(x): the table put it in the IWAE column while
    the caption and the figure set it beside the exact log p(x)."""
    sweeps = [made_up_sweep("assignment"), made_up_sweep(shift=3.0)]
    published = sweeps[0]["published"]
    page = sweep_page(sweeps, "seeds.png")
    cells = {header.strip(): cell.strip() for header, cell in table_cells(page, "Davidson et al. (2018)").items()}
    ll, elbo = (f"{published[key]:.2f} ± {published[key + '_sd']:.2f}" for key in ("log_px", "elbo"))
    assert cells["exact log p(x)"] == ll and cells["test ELBO"] == elbo
    assert cells["IWAE, K = 1000"] == "" and [header for header, cell in cells.items() if cell == ll] == [
        "exact log p(x)"]
    assert "their LL, an importance-sampling estimate of the mean log p(x) of the whole test set, stands in the " \
        "exact log p(x) column" in page and "counterpart of the IWAE column" not in page
    assert "their LL beside the exact log p(x)" in CAPTION
    drawn = {title: reference for title, _, _, reference in figure_values(sweeps) if reference is not None}
    assert drawn == {"exact test log p(x)": (published["log_px"], published["log_px_sd"]),
                     "test ELBO": (published["elbo"], published["elbo_sd"])}


def test_a_difference_that_prints_as_zero_is_level_not_below():
    """above_or_below(0) said 'below', and a difference rounding to 0.00 read '0.00 nats below'."""
    sweep = made_up_sweep()
    published = sweep["published"]
    sweep["mean"]["test_log_px"] = -139.34  # printed alike with any difference below 0.005
    for difference in (0.0, -0.004, 0.003):
        sweep["mean"]["iwae_minus_log_px"] = difference
        sweep["mean"]["test_threshold_log_px"] = sweep["mean"]["test_log_px"] + difference
        sweep["mean"]["test_elbo"] = published["elbo"] + difference
        iwae, literature, thresholded = describe_sweep(sweep, published)[:3]
        for sentence in (iwae, literature, thresholded):
            assert "0.00 nats" not in sentence
        assert "IWAE with K = 1000 lies level (to 2 decimals) with the exact log p(x)" in iwae
        assert "off by that much" not in iwae
        assert "the test ELBO level (to 2 decimals) with their ELBO" in literature
        assert "level (to 2 decimals) with that of the same images as drawn" in thresholded
    sweep["mean"]["iwae_minus_log_px"] = -0.006
    assert "lies 0.01 nats below the exact log p(x)" in describe_sweep(sweep, published)[0]


def test_the_distance_to_the_published_row_is_set_against_its_width_as_printed():
    """A distance and a sum of standard deviations that print alike are neither 'more than' nor 'within'."""
    sweep = made_up_sweep()
    published = sweep["published"]
    sweep["sd"]["test_elbo"] = 0.40  # the sum of the two standard deviations: 1.23
    sweep["mean"]["test_elbo"] = published["elbo"] - 1.2331
    said = beside_published(sweep, "test_elbo", published, "elbo")
    assert said == ("1.23 nats below their ELBO (as much as, to 2 decimals, the sum of the two standard deviations, "
                    "1.23)")
    sweep["mean"]["test_elbo"] = published["elbo"] - 1.2
    assert "(within the sum" in beside_published(sweep, "test_elbo", published, "elbo")
    sweep["mean"]["test_elbo"] = published["elbo"] + 1.3
    assert "1.30 nats above their ELBO (more than the sum" in beside_published(sweep, "test_elbo", published, "elbo")


def test_the_iwae_k_and_the_seeds_are_read_from_the_sweeps_json():
    """'K = 1000' and '--seeds 0-4' were written into the page, the figure and the README block."""
    sweep = made_up_sweep("assignment", seeds=(0, 2, 5))
    sweep["analysed"] = {**sweep["analysed"], "iwae_k": 100}
    page = sweep_page([sweep], "seeds.png")
    assert "| IWAE, K = 100 |" in page and "the IWAE bound with K = 100 and" in page and "1000" not in page
    assert "IWAE with K = 100 lies" in describe_sweep(sweep, sweep["published"])[0]
    assert [title for title, *_ in figure_values([sweep])][1] == "IWAE (K = 100) minus exact log p(x)"
    block = readme_seed_block(sweep)
    assert "| IWAE (K = 100) minus exact log p(x) |" in block and "K = 1000" not in block
    assert "`python -m vae_autograd.seeds --setting assignment --seeds 0,2,5`" in block
    other = made_up_sweep(shift=3.0)  # K = 1000: each IWAE cell names its own K
    page = sweep_page([sweep, other], "seeds.png")
    assert "the IWAE bound with each setting's K (in its IWAE cell)" in page and "| IWAE | IWAE - log p(x) |" in page
    assert f"{other['mean']['iwae']:.2f} ± {other['sd']['iwae']:.2f} (K = 1000) |" in page
    assert [title for title, *_ in figure_values([sweep, other])][1] == "IWAE (each setting's K) minus exact log p(x)"


def test_a_wrong_basin_share_is_never_shown_as_0_0_percent():
    sweep = made_up_sweep()
    for split in ("test", "train"):
        sweep["mean"][f"{split}_wrong_basin_fraction"], sweep["sd"][f"{split}_wrong_basin_fraction"] = 1e-4, 2e-4
    page = sweep_page([sweep], "seeds.png")
    assert "0.0%" not in page and "| 0.01% ± 0.02% |" in page
    # Nor 100% for a share below 1 (core.text.percent, which the figure titles share).
    sweep["mean"]["test_wrong_basin_fraction"] = 0.998
    assert "| above 99% ± 0.02% |" in sweep_page([sweep], "seeds.png")
    assert [percent(share) for share in (0.994, 0.995, 0.998, 1.0)] == ["99%", "above 99%", "above 99%", "100%"]


def test_two_means_printed_two_decimals_apart_are_that_far_apart_in_the_sentence():
    """Found by an adversarial review: -99.996 and -100.004 print as -100.00 and -100.00, yet the sentence said
    '0.01 nats above'; -100.006 and -100.004 print as -100.01 and -100.00, yet it said 'level with'."""
    sweep = made_up_sweep()
    published = sweep["published"]
    sweep["mean"].update(test_log_px=-100.004, test_threshold_log_px=-99.996)
    thresholded = describe_sweep(sweep, published)[2]
    assert "-100.00" in thresholded and "level (to 2 decimals) with that of the same images" in thresholded
    sweep["mean"].update(test_log_px=-100.004, test_threshold_log_px=-100.006)
    thresholded = describe_sweep(sweep, published)[2]
    assert "-100.01" in thresholded and "0.01 nats below that of the same images" in thresholded


def test_one_seed_is_set_beside_the_published_standard_deviation_alone():
    """With one seed the sweep has no standard deviation: 'the sum of the two standard deviations' was the
    published one alone."""
    sweep = made_up_sweep(seeds=(0,))
    said = beside_published(sweep, "test_elbo", sweep["published"], "elbo")
    assert "their standard deviation, 0.83)" in said and "sum of the two" not in said
    assert "over the 1 seed 0 of the assignment setting" in readme_seed_block(made_up_sweep("assignment", seeds=(0,)))
