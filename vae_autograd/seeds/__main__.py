"""``python -m vae_autograd.seeds --setting literature --seeds 0-4``: train the seeds of a setting (or of
several, comma-separated) as parallel processes, one per core, resuming what an interrupted sweep left and
never redoing a finished seed; analyse each model; write sweeps/<setting>.json, and the page and figure
of every sweep in sweeps/."""
from ..io.process import exit_on_interrupt_while_starting, ignore_interrupts

exit_on_interrupt_while_starting()  # before the imports below, which take a second

import argparse
import os
import sys
from pathlib import Path

from ..io.files import OutputError, atomic_write, check_not_an_input, check_writable_file, sole_writer
from ..io.mnist import mnist_paths
from ..io.process import interrupt_on_sigterm
from ..train.options import ConfigError, OneLineParser, option_type
from .analysis import row_bytes
from .outputs import FIGURE, PAGE, check_work_folder, sweep_options, sweep_summary, write_page
from .settings import ANALYSIS_SIZE_OPTIONS, SETTINGS, TRAIN_SIZE_OPTIONS, SettingError
from .sweep import make_jobs, run_jobs

# More seeds than any sweep runs (each takes minutes of a core): a range such as 0-99999999999 is a typo, refused
# before its millions of jobs fill the memory.
MAX_SEEDS = 10000


def parse_seeds(text):
    """'0-4' -> [0, 1, 2, 3, 4]; '0,2,7-9' -> [0, 2, 7, 8, 9]; each seed once, in order."""
    if not text.strip():
        raise argparse.ArgumentTypeError(f"an empty range of seeds, got {text!r}; give seeds such as 0-4")
    ranges = []
    for part in text.split(","):
        low, dash, high = part.strip().partition("-")
        try:
            low, high = int(low), int(high if dash else low)  # "0-" has no end: refused, not taken for "0"
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be seeds such as 0-4 or 0,2,5, got {text!r}") from None
        if low < 0:
            raise argparse.ArgumentTypeError(f"seeds must be non-negative ints, got {text!r}")
        ranges.append(range(low, high + 1))
    count = sum(max(0, seeds.stop - seeds.start) for seeds in ranges)  # before any list: "0-99999999999" fills memory
    if count > MAX_SEEDS:
        raise argparse.ArgumentTypeError(f"{count} seeds, more than a sweep runs (at most {MAX_SEEDS}), got {text!r}; "
                                         "give seeds such as 0-4")
    seeds = []
    for seeds_of_part in ranges:
        seeds += [seed for seed in seeds_of_part if seed not in seeds]
    if not seeds:
        raise argparse.ArgumentTypeError(f"an empty range of seeds, got {text!r}; give seeds such as 0-4")
    return seeds


def parse_settings(text):
    """'literature' or 'assignment,literature' -> the setting names, each one known."""
    names = [name.strip() for name in text.split(",")]
    unknown = [name for name in names if name not in SETTINGS]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown setting {unknown[0]!r}; choose from {', '.join(SETTINGS)}")
    return list(dict.fromkeys(names))


def positive_int(text):
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive int, got {text!r}")
    return value


def available_cores():
    """The cores this process may run on (its affinity, where the system tells it), at least 1."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def build_parser():
    parser = OneLineParser(prog="python -m vae_autograd.seeds", description=__doc__.splitlines()[0])
    parser.add_argument("--setting", type=parse_settings, required=True,
                        help=f"one of {', '.join(SETTINGS)}, or several separated by commas")
    parser.add_argument("--seeds", type=parse_seeds, required=True, help="seeds such as 0-4 or 0,2,5")
    parser.add_argument("--jobs", type=positive_int, default=available_cores(),
                        help="seeds trained at once, one process each (default: the cores this process may use)")
    parser.add_argument("--work-dir", type=Path, default=Path("data") / "seeds",
                        help="checkpoints, training results, analysis rows and logs, in a folder per setting "
                             "(default data/seeds)")
    parser.add_argument("--out-dir", type=Path, default=Path("sweeps"),
                        help="where <setting>.json, report.md and seeds.png go (default sweeps)")
    parser.add_argument("--data-dir", type=option_type("data_dir"), default=None,
                        help="folder with the MNIST .gz files (default $MNIST_DIR, else data/mnist)")
    for name in TRAIN_SIZE_OPTIONS:  # each overrides the setting's value; the setting's is the default
        parser.add_argument("--" + name.replace("_", "-"), type=option_type(name), default=None,
                            help=f"instead of the setting's {name} (for a shorter sweep or a test)")
    for name, default in ANALYSIS_SIZE_OPTIONS.items():
        parser.add_argument("--" + name.replace("_", "-"), type=positive_int, default=None,
                            help=f"instead of the setting's (default {default or 'all'}; at most the images there are)")
    return parser


def parse_args(argv=None):
    """The parsed options, with .overrides ({TrainConfig field: value}) and .analysis (analysis sizes)
    given, and .jobs built: every refusal of bad input here, before anything is written."""
    parser = build_parser()
    args = parser.parse_args(argv)
    args.overrides = {name: getattr(args, name) for name in TRAIN_SIZE_OPTIONS if getattr(args, name) is not None}
    args.analysis = {name: getattr(args, name) for name in ANALYSIS_SIZE_OPTIONS if getattr(args, name) is not None}
    try:
        args.jobs_list = make_jobs(args.setting, args.seeds, args.overrides, args.analysis, args.work_dir,
                                   args.data_dir)
    except (SettingError, ConfigError) as err:
        parser.error(str(err))
    return args


def check_paths(args):
    """Raise OutputError before any work if a sweep's outputs cannot be written or would overwrite its inputs."""
    outputs = [args.out_dir / f"{name}.json" for name in args.setting] + [args.out_dir / PAGE, args.out_dir / FIGURE]
    for path in outputs:
        check_writable_file(path, "--out-dir")
    for job in args.jobs_list:
        for path in job.config.written_paths() + [job.path("-analysis.json"), job.path(".log")]:
            check_writable_file(path, "--work-dir")
    for path in outputs + [args.work_dir]:
        check_not_an_input(path, mnist_paths(args.data_dir), "--out-dir" if path in outputs else "--work-dir")


def sweep(args, log=print):
    """Run the sweep of args; returns the exit status (0, or 1 if a seed failed)."""
    folders = [args.work_dir / name for name in args.setting]
    with sole_writer(folders, "--work-dir"), sole_writer([args.out_dir / f"{name}.json" for name in args.setting],
                                                         "--out-dir"):
        first = {job.setting: job for job in args.jobs_list if job.seed == args.seeds[0]}
        for name in args.setting:
            check_work_folder(args.work_dir / name, sweep_options(first[name].config))
        count = len(args.jobs_list)
        log(f"{count} seed{'s' if count > 1 else ''} of {', '.join(args.setting)}, {min(args.jobs, count)} at once")
        rows = run_jobs(args.jobs_list, args.jobs, args.overrides, args.analysis, args.data_dir, log)
        failed = [job.name for job, row in rows.items() if row is None]
        written = 0
        for name in args.setting:
            missing = [job.seed for job, row in rows.items() if job.setting == name and row is None]
            if missing:
                log(f"{args.out_dir / (name + '.json')} not written: seeds {missing} failed")
                continue
            summary = sweep_summary(name, [row for job, row in rows.items() if job.setting == name],
                                    first[name].config, first[name].analysed)
            atomic_write(args.out_dir / f"{name}.json", lambda f, s=summary: f.write(row_bytes(s)))
            log(f"{args.out_dir / (name + '.json')}: {len(summary['rows'])} seeds")
            written += 1
        if written:
            write_page(args.out_dir, log)
    if failed:
        print(f"error: {len(failed)} of {len(rows)} seeds failed ({', '.join(failed)}); each one's log says why",
              file=sys.stderr)
        return 1
    return 0


def main(argv=None):
    args = parse_args(argv)
    try:
        interrupt_on_sigterm()  # from here an interrupt is a KeyboardInterrupt, handled below
        check_paths(args)
        status = sweep(args)
    except OutputError as err:
        sys.exit(f"error: {err}")
    except OSError as err:
        sys.exit(f"error: could not write in {args.work_dir} or {args.out_dir} ({err.strerror or err}); "
                 "free some space")
    except KeyboardInterrupt:
        print("interrupted; the seeds that finished are kept, the others resume from their last saved epoch "
              "on the next sweep", file=sys.stderr)
        sys.exit(130)
    sys.exit(status)


if __name__ == "__main__":
    try:
        main()
    finally:
        ignore_interrupts()
