"""The README's Python example runs as written, on a checkpoint in data/vae.npz."""
import re

import numpy as np

from tests.helpers import REPO
from vae_autograd.core.model import init_vae_params
from vae_autograd.train.checkpoints import save_params
from vae_autograd.train.options import TrainConfig


def readme_python_block():
    text = (REPO / "README.md").read_text()
    marker = text.index("<!-- python-usage:")
    return re.search(r"```python\n(.*?)```", text[marker:], re.S).group(1)


def readme_block(readme, start_mark, end_mark):
    """What lies between start_mark and end_mark in the README text readme."""
    return readme[readme.index(start_mark) + len(start_mark):readme.index(end_mark)]


def test_python_usage_example_runs_as_written(tmp_path, monkeypatch, mnist_dir, capsys):
    params = init_vae_params(np.random.default_rng(0), 784, 20, 2)
    config = TrainConfig(hidden=(20,), epochs=1)
    save_params(tmp_path / "data" / "vae.npz", params, config.metadata(), epoch=1)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MNIST_DIR", str(mnist_dir))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    exec(compile(readme_python_block(), "README.md", "exec"), {})
    first, rest = capsys.readouterr().out.split("\n", 1)
    elbo = float(first)
    log_px = np.array(rest.replace("[", " ").replace("]", " ").split(), dtype=float)
    assert log_px.shape == (5,) and np.all(np.isfinite(log_px))
    assert elbo <= log_px.mean() + 1.0  # an untrained model: both near -784 log 2
    assert (tmp_path / "posterior.png").read_bytes()[:4] == b"\x89PNG"


def test_readme_results_are_those_of_the_committed_results_json():
    import json

    from vae_autograd.report.page import README_END, README_START, readme_results

    results = json.loads((REPO / "figures" / "results.json").read_text())
    assert readme_block((REPO / "README.md").read_text(), README_START, README_END) == readme_results(results)


def test_readme_numbers_over_seeds_are_those_of_the_committed_assignment_sweep():
    import json

    from vae_autograd.report.seeds import README_SEEDS_END, README_SEEDS_START, readme_seed_block

    sweep = json.loads((REPO / "sweeps" / "assignment.json").read_text())
    assert len(sweep["seeds"]) == 5
    block = readme_block((REPO / "README.md").read_text(), README_SEEDS_START, README_SEEDS_END)
    assert block == readme_seed_block(sweep)


def test_committed_report_is_the_one_its_results_make():
    import json

    from vae_autograd.report.page import report_text

    results = json.loads((REPO / "figures" / "results.json").read_text())
    assert (REPO / "figures" / "report.md").read_text() == report_text(results)


def test_the_module_table_names_every_module():
    """A module the README's table does not name is one a reader cannot find by its job."""
    text = (REPO / "README.md").read_text()
    table = text[text.index("| module | what it holds |"):]
    table = table[:table.index("\n\n")]
    named = set()
    for row in table.splitlines()[2:]:
        cell = row.split("|")[1]
        folder = None
        for name in re.findall(r"`([^`]+)`", cell):
            if "/" in name:
                folder = name.rsplit("/", 1)[0]
                named.add(name)
            elif folder:  # `report/marginal_likelihood.py`, `latent_classes.py`: the same folder
                named.add(f"{folder}/{name}")
    modules = {str(p.relative_to(REPO / "vae_autograd")) for p in (REPO / "vae_autograd").rglob("*.py")
               if p.name not in ("__init__.py", "__main__.py")}
    assert modules - named == set()


def test_committed_sweep_page_is_the_one_its_jsons_make():
    from vae_autograd.report.seeds import sweep_page
    from vae_autograd.seeds.outputs import FIGURE, PAGE, ordered_sweeps

    sweeps = ordered_sweeps(REPO / "sweeps")
    assert [s["setting"] for s in sweeps] == ["assignment", "literature", "davidson"]
    assert (REPO / "sweeps" / PAGE).read_text() == sweep_page(sweeps, FIGURE)
