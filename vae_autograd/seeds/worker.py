"""One seed of a sweep, in a process of its own (started by seeds.sweep, one per seed, with one BLAS
thread set in its environment before numpy is imported):

    python -m vae_autograd.seeds.worker SETTING SEED --work-dir DIR --options JSON --parent-pid PID

It trains the seed's model, or resumes it from the checkpoint an interrupted sweep left, or reuses it if
its training finished; then analyses it, unless its row already describes that very model. Each step
is announced by an event line (EVENT and a JSON object) that the sweep reads for its progress lines;
everything else it prints goes to the seed's log. A refusal or failure is one line "error: ..." and exit
status 1; an interrupt (Ctrl-C, SIGTERM, or its sweep ending) exit status 130, resumable.
"""
from ..io.process import exit_on_interrupt_while_starting, ignore_interrupts

exit_on_interrupt_while_starting()  # before the imports below, which take a second

import argparse
import json
import sys

from ..io.files import OutputError, atomic_write, sole_writer
from ..io.mnist import DataError
from ..io.process import end_with_parent, interrupt_on_sigterm, keep_freed_memory
from ..train.checkpoints import CheckpointError, load_checkpoint
from ..train.data import load_run_data, run_images
from ..train.loop import TrainingDiverged
from ..train.options import ConfigError, OneLineParser
from ..train.reuse import reusable_model, trained_model
from .analysis import analysed_images, current_row, model_row, row_bytes
from .settings import ANALYSIS_SIZE_OPTIONS, SettingError, analysis_sizes, seed_path, setting_config

EVENT = "sweep event: "


def announce(step, **facts):
    """Print the event line of a step ("training", "trained", "analysed", "done")."""
    print(EVENT + json.dumps({"step": step, **facts}), flush=True)


def run_seed(setting, seed, overrides, analysis_overrides, work_dir, data_dir=None, log=print):
    """Train (or resume, or reuse) and analyse one seed of setting; write its row beside its checkpoint.

    overrides: {TrainConfig field: value} of the sweep's size options; analysis_overrides: its
    gap_train_images and iwae_images, if given. Returns the row.
    """
    config = setting_config(setting, seed, overrides, work_dir, data_dir)
    analysed = analysis_sizes(setting, config, analysis_overrides)
    row_path = seed_path(work_dir, setting, seed, "-analysis.json")
    with sole_writer(config.written_paths() + [row_path], "--work-dir"):
        reused = reusable_model(config, retrain=False)
        row = current_row(row_path, reused[0], analysed) if reused else None
        if row is not None:
            announce("done")
            return row
        data = load_run_data(config)
        announce("training", reused=reused is not None,
                 from_epoch=load_checkpoint(config.out).epoch if reused is None and config.out.exists() else 0)
        params, training = trained_model(config, False, reused, data, log)
        announce("trained", epochs=training["epochs"], best_epoch=training.get("best_epoch"),
                 stopped_early=training.get("stopped_early"), reused=reused is not None)
        # Its row, if any, describes other parameters or other sizes (else the seed was done, above).
        row = model_row(seed, params, training, analysed_images(run_images(config, data), analysed), analysed, log)
        atomic_write(row_path, lambda f: f.write(row_bytes(row)))
        announce("analysed")
        return row


def json_object(text):
    """A JSON object given on the command line, as a dict."""
    try:
        value = json.loads(text)
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"must be a JSON object, got {text!r}")
    return value


def parse_args(argv=None):
    parser = OneLineParser(prog="python -m vae_autograd.seeds.worker", description=__doc__.splitlines()[0])
    parser.add_argument("setting")
    parser.add_argument("seed", type=int)
    parser.add_argument("--work-dir", required=True)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--options", type=json_object, default={}, help="the sweep's TrainConfig overrides, as JSON")
    parser.add_argument("--analysis", type=json_object, default={}, help="the sweep's analysis sizes, as JSON")
    parser.add_argument("--parent-pid", type=int, default=None)
    args = parser.parse_args(argv)
    # JSON has no tuples; TrainConfig's tuple fields (hidden) take them.
    args.options = {k: tuple(v) if isinstance(v, list) else v for k, v in args.options.items()}
    for name, size in args.analysis.items():
        if name not in ANALYSIS_SIZE_OPTIONS or type(size) is not int or size < 1:
            parser.error(f"argument --analysis: {name!r} must be one of {', '.join(ANALYSIS_SIZE_OPTIONS)}, "
                         f"a positive int, got {size!r}")
    return args


def main(argv=None):
    args = parse_args(argv)
    try:
        interrupt_on_sigterm()  # from here an interrupt is a KeyboardInterrupt, handled below
        if args.parent_pid is not None:
            end_with_parent(args.parent_pid)
        keep_freed_memory()
        run_seed(args.setting, args.seed, args.options, args.analysis, args.work_dir, args.data_dir)
    except (DataError, CheckpointError, ConfigError, SettingError, OutputError, TrainingDiverged) as err:
        sys.exit(f"error: {err}")
    except OSError as err:  # a write that failed half way: disk full, quota, a folder gone read-only
        sys.exit(f"error: could not write in {args.work_dir} ({err.strerror or err}); free some space")
    except MemoryError:
        sys.exit("error: out of memory; free some memory, or run fewer seeds at once (--jobs)")
    except KeyboardInterrupt:
        print(f"interrupted; seed {args.seed} resumes from its last saved epoch on the next sweep", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    try:
        main()
    finally:
        ignore_interrupts()
