"""What a sweep leaves: a setting's JSON (its options, per-seed rows, and the mean and standard deviation
over seeds) in the sweeps folder, and the page and figure of every setting's JSON there, drawn again after
each sweep (report.seeds.sweep_page and figures.seeds.fig_seed_values: the page is a function of the
JSONs alone). Also the record of the options a work folder's seeds were trained with."""
import json
import math
import time
from dataclasses import fields

import numpy as np

from ..figures import save_png
from ..figures.seeds import fig_seed_values
from ..io.files import OutputError, atomic_write, sole_writer
from ..report.seeds import figure_panels, sweep_page
from ..train.options import TrainConfig
from .analysis import METRICS, TIMING, row_bytes
from .settings import DAVIDSON_2018, SETTINGS

# TrainConfig fields that differ between the seeds of one sweep, or say where files go: not its options.
PER_SEED = ("seed", "out", "data_dir", "resume", "force", "quiet", "keep_epochs")
PAGE, FIGURE = "report.md", "seeds.png"
PAGE_WAIT_SECONDS = 60  # how long a sweep waits for another one drawing the page


def sweep_options(config):
    """The options a sweep's seeds share: config's TrainConfig fields but the per-seed ones, JSON-ready, with
    the patience training stops at (None without a validation set)."""
    options = {f.name: list(v) if isinstance(v := getattr(config, f.name), tuple) else v
               for f in fields(TrainConfig) if f.name not in PER_SEED}
    return {**options, "patience": config.stop_patience}


def mean_and_sd(values):
    """(mean, sample standard deviation with ddof = 1) of the seeds' values, None for what is not defined:
    both when a value is missing (None), the sd with fewer than two seeds."""
    if not values or any(v is None for v in values):
        return None, None
    values = np.asarray(values, np.float64)
    return float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else None


def sweep_summary(setting, rows, config, analysed):
    """The JSON of a setting's sweep: its options and sizes, its rows (sorted by seed), the mean and sd over
    seeds of each of analysis.METRICS, the seconds they took, and the published row compared with."""
    rows = sorted(rows, key=lambda row: row["seed"])
    stats = {metric: mean_and_sd([row[metric] for row in rows]) for metric in METRICS}
    return {"setting": setting, "description": SETTINGS[setting].description, "options": sweep_options(config),
            "analysed": analysed, "seeds": [row["seed"] for row in rows], "rows": rows,
            "mean": {metric: mean for metric, (mean, _) in stats.items()},
            "sd": {metric: sd for metric, (_, sd) in stats.items()},
            "published": DAVIDSON_2018,
            TIMING: {step: sum(row[TIMING][step] for row in rows) for step in rows[0][TIMING]}}


def check_work_folder(folder, options):
    """Raise OutputError if the work folder of a setting holds seeds trained with other options than these;
    record these options there if it holds none (the sweep holds the folder's lock)."""
    record = folder / "options.json"
    try:
        recorded = json.loads(record.read_text())
    except FileNotFoundError:
        recorded = None
    except (OSError, ValueError) as err:
        raise OutputError(f"{record} cannot be read ({err}); move {folder} away or pass another --work-dir") from None
    else:
        if not isinstance(recorded, dict):  # valid JSON, but no options: "null" must not count as no record
            raise OutputError(f"{record} cannot be read (not a record of options); move {folder} away or pass "
                              "another --work-dir")
    if recorded is None:
        atomic_write(record, lambda f: f.write(row_bytes(options)))
    elif recorded != options:
        key = next(k for k in sorted(set(options) | set(recorded)) if options.get(k) != recorded.get(k))
        raise OutputError(f"{folder} holds seeds trained with {key}={recorded.get(key)!r}, not {options.get(key)!r}; "
                          "move it away or pass another --work-dir")


def ordered_sweeps(out_dir, log=print):
    """Every sweep JSON in out_dir, in SETTINGS' order and then by name: what the page is made of.
    A file that is not a sweep's (no rows) is skipped; one with a setting and rows that the page cannot
    be drawn from (another tool's JSON) is skipped with a line naming it."""
    sweeps = []
    for path in sorted(out_dir.glob("*.json")):
        try:
            sweep = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(sweep, dict) and isinstance(sweep.get("rows"), list) and sweep.get("setting"):
            problem = page_problem(sweep)
            if problem is None:
                sweeps.append(sweep)
            else:
                log(f"{path} left out of the page: not a sweep's JSON ({problem})")
    order = list(SETTINGS)
    return sorted(sweeps, key=lambda s: (order.index(s["setting"]) if s["setting"] in order else len(order),
                                         s["setting"]))


def page_problem(sweep):
    """Why the page and figure cannot be drawn from sweep (a JSON with a setting and rows), or None."""
    if not isinstance(sweep["setting"], str) or not sweep["rows"]:
        return "its setting is no name" if not isinstance(sweep["setting"], str) else "no rows"
    try:
        sweep_page([sweep], FIGURE)
        figure_values([sweep])
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as err:
        return f"{type(err).__name__} {err}"
    return None


def figure_values(sweeps):
    """The figure's arrays from the sweeps: [(title, ylabel, [(n_seeds,) values per sweep], reference or
    None)], one per panel of report.seeds.FIGURE_PANELS (its titles for these sweeps: report.seeds.figure_panels)."""
    panels = []
    for metric, title, ylabel, reference in figure_panels(sweeps):
        values = [np.array([math.nan if row[metric] is None else row[metric] for row in sweep["rows"]])
                  for sweep in sweeps]
        published = sweeps[0]["published"] if sweeps else None
        panels.append((title, ylabel, values,
                       None if reference is None or published is None
                       else (published[reference], published[f"{reference}_sd"])))
    return panels


def draw_page(out_dir, sweeps):
    """Write the figure and the page of sweeps (their JSONs, in order) into out_dir."""
    figure = fig_seed_values([s["setting"] for s in sweeps], figure_values(sweeps))
    atomic_write(out_dir / FIGURE, lambda f: save_png(figure, f))
    atomic_write(out_dir / PAGE, lambda f: f.write(sweep_page(sweeps, FIGURE).encode()))


def write_page(out_dir, log=print):
    """Draw the figure and write the page of every sweep JSON in out_dir. If another sweep is drawing
    them, wait for it (up to PAGE_WAIT_SECONDS), then draw them with its JSON too."""
    waited = time.perf_counter()
    while True:
        try:
            with sole_writer([out_dir / PAGE], "--out-dir"):
                draw_page(out_dir, ordered_sweeps(out_dir, log))
                log(f"page {out_dir / PAGE} and figure {out_dir / FIGURE} of every sweep in {out_dir}")
                return
        except OutputError:
            if time.perf_counter() - waited > PAGE_WAIT_SECONDS:
                raise
            time.sleep(0.5)
