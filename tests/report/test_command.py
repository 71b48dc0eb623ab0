"""The report is a pure function of results.json: `python -m vae_autograd.report` rebuilds report.md
and the README block from a stored results.json, and refuses a file that does not follow the schema."""
import copy
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from vae_autograd.report.conform import check_results, schema_problems
from vae_autograd.report.page import README_END, README_START, readme_results, readme_with_results, report_text
from vae_autograd.report.seeds import README_SEEDS_END, README_SEEDS_START, readme_seed_block

STORED = Path(__file__).with_name("results-quick.json")
REPO = Path(__file__).resolve().parents[2]


def run_report(*args):
    return subprocess.run([sys.executable, "-m", "vae_autograd.report", *map(str, args)],
                          capture_output=True, text=True, timeout=60)


def assert_one_line_error(result, *fragments):
    assert result.returncode == 1, result.stderr
    assert result.stderr.startswith("error: ") and result.stderr.strip().count("\n") == 0, result.stderr
    assert all(fragment in result.stderr for fragment in fragments), result.stderr


@pytest.fixture
def results():
    return json.loads(STORED.read_text())


def test_stored_and_committed_results_follow_the_schema(results):
    assert schema_problems(results) == []
    assert schema_problems(json.loads((REPO / "figures" / "results.json").read_text())) == []


def test_the_command_writes_report_md_beside_results_json(tmp_path, results):
    shutil.copy(STORED, tmp_path / "results.json")
    assert run_report(tmp_path / "results.json").returncode == 0
    assert (tmp_path / "report.md").read_text() == report_text(results)


def test_the_command_rewrites_only_the_readme_block(tmp_path, results):
    shutil.copy(STORED, tmp_path / "results.json")
    readme = tmp_path / "README.md"
    readme.write_text(f"# title\n\n{README_START}old numbers\n{README_END}\n{README_SEEDS_START}old\n"
                      f"{README_SEEDS_END}\n\nafter\n")
    assert run_report(tmp_path / "results.json", "--readme", readme).returncode == 0
    # No sweeps/assignment.json beside this README: its block over seeds says so.
    assert readme.read_text() == (f"# title\n\n{README_START}{readme_results(results)}{README_END}\n"
                                  f"{README_SEEDS_START}{readme_seed_block(None)}{README_SEEDS_END}\n\nafter\n")
    # Rewriting an up-to-date README changes nothing.
    assert readme_with_results(readme.read_text(), results) == readme.read_text()


@pytest.mark.parametrize("content, fragments", [
    (None, ["cannot read", "pass the results.json"]),
    ("{", ["is not JSON"]),
    ("[]", ["does not follow the schema", "not an object", "rerun `python run_all.py`"]),
])
def test_unreadable_results_are_refused_in_one_line(tmp_path, content, fragments):
    path = tmp_path / "results.json"
    if content is not None:
        path.write_text(content)
    assert_one_line_error(run_report(path), *fragments)
    assert not (tmp_path / "report.md").exists()


def test_a_readme_without_its_block_is_refused_and_kept(tmp_path):
    shutil.copy(STORED, tmp_path / "results.json")
    readme = tmp_path / "README.md"
    readme.write_text("# no block here\n")
    assert_one_line_error(run_report(tmp_path / "results.json", "--readme", readme), "results:start")
    assert readme.read_text() == "# no block here\n"


def paths(value, where=()):
    """Every path (tuple of keys and indices) into a parsed JSON value, containers included."""
    yield where
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        yield from paths(item, where + (key,))


FREE_MAPS = {"iwae", "accuracy_by_k", "labels", "group_size", "variance_ratio", "focus_rank", "estimators",
             "encoder", "optimal", "over_training_images"}  # {K or name: ...}: any keys may be missing


def test_any_key_removed_or_value_retyped_is_refused_naming_its_place(results):
    """Fault injection at random places: the schema names every key of results.json, so no change of
    the study's output can reach the report unnoticed."""
    rng = np.random.default_rng(0)
    places = [p for p in paths(results) if p]
    for index in rng.choice(len(places), 80, replace=False):
        place = places[index]
        broken = copy.deepcopy(results)
        parent = broken
        for key in place[:-1]:
            parent = parent[key]
        if isinstance(parent, dict) and rng.random() < 0.5:
            del parent[place[-1]]
            if not schema_problems(broken):
                assert place[-2] in FREE_MAPS, place
                continue
        else:
            parent[place[-1]] = 1.5 if isinstance(parent[place[-1]], str) else "not a number"
        with pytest.raises(ValueError, match=str(place[-1])):
            check_results(broken)


def test_an_unknown_key_is_refused(results):
    results["inference_gaps"]["test"]["new_number"] = 1.0
    with pytest.raises(ValueError, match="inference_gaps.test holds new_number"):
        check_results(results)

