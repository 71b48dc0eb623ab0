"""TrainConfig: every option of a training run with its default and its rule, and the argparse
options derived from it, so the training command and run_all.py validate alike."""
import argparse
import math
from dataclasses import dataclass, field, fields
from pathlib import Path

from ..core.model import ACTIVATIONS
from ..io.mnist import NUM_TEST, NUM_TRAIN

BINARIZATIONS = ("threshold", "dynamic")
# Epochs without a better validation ELBO before training stops, unless --patience says otherwise:
# 10% of the default 200 epochs. Late in training the validation ELBO of this model moves by
# hundredths of a nat per epoch, on plateaus of several epochs, so a short patience would stop on
# a plateau; once it overfits (the 200-epoch model's test ELBO lies 15 nats below its training
# ELBO) 20 epochs without a gain are a clear sign, and cost at most 20 epochs of training.
DEFAULT_PATIENCE = 20


class ConfigError(ValueError):
    """A training option with a value that cannot work; the message names it and the rule."""


def option(default, help, valid=None, rule="", kind=None, parse=None, aliases=()):
    """A TrainConfig field: its default, its --help text and the rule its values obey.

    valid(value) -> bool is the rule, stated to the user as rule; kind is the type of its
    values (default: the type of the default); parse turns command-line text into one
    (default: kind); aliases are other spellings of its command-line option.
    """
    kind = kind or type(default)
    return field(default=default, metadata={"help": help, "valid": valid, "rule": rule,
                                            "kind": kind, "parse": parse or kind, "aliases": aliases})


def parse_epochs(text):
    """'1,10,50' -> (1, 10, 50); '' -> ()."""
    return tuple(int(part) for part in text.split(",") if part.strip())


def parse_widths(text):
    """'256,128' -> (256, 128); '500' -> (500,). Unlike parse_epochs, an empty part is an error
    (ValueError): '256,,128' is a typo, not two layers."""
    return tuple(int(part) for part in text.split(","))


@dataclass(frozen=True)
class TrainConfig:
    """Every option of a training run, its default and its rule, in one place.

    The command line of vae_autograd.train is derived from these fields and run_all.py
    builds one; constructing a TrainConfig with a value that breaks its rule raises
    ConfigError, so both entry points validate the same way.
    """
    epochs: int = option(200, "total epochs (with --resume, the total to reach)",
                         lambda n: n > 0, "must be a positive int")
    batch_size: int = option(100, "minibatch size", lambda n: n > 0, "must be a positive int")
    lr: float = option(1e-3, "Adam step size", lambda x: x > 0 and math.isfinite(x), "must be a positive float")
    seed: int = option(0, "seeds the initialization, minibatch order, Monte Carlo noise and dynamic binarization",
                       lambda n: n >= 0, "must be a non-negative int")
    # --hidden-dim, the option's name when the model had one hidden layer, stays an alias: an old
    # command line `--hidden-dim 500` means the same model (and checkpoint) as before.
    hidden: tuple = option((500,), "hidden layer widths of the encoder from the image side, comma-separated; the "
                           "decoder mirrors them (256,128: encoder 784-256-128-2+2, decoder 2-128-256-784)",
                           lambda t: len(t) > 0 and all(type(n) is int and n > 0 for n in t),
                           "must be positive layer widths separated by commas, such as 500 or 256,128",
                           parse=parse_widths, aliases=("--hidden-dim",))
    activation: str = option("tanh", "activation of every hidden layer", lambda a: a in ACTIVATIONS,
                             f"must be one of {', '.join(ACTIVATIONS)}")
    latent_dim: int = option(2, "latent dimensions", lambda n: n > 0, "must be a positive int")
    train_size: int = option(10000, "the first images of the MNIST training split",
                             lambda n: 1 <= n <= NUM_TRAIN, f"must be an int in 1..{NUM_TRAIN}")
    test_size: int = option(10000, "the first images of the MNIST test split",
                            lambda n: 1 <= n <= NUM_TEST, f"must be an int in 1..{NUM_TEST}")
    binarization: str = option("threshold", "how training images become 0/1: threshold (pixel/255 > 0.5, once) or "
                               "dynamic (each pixel of each minibatch drawn afresh as Bernoulli(pixel/255); "
                               "evaluated on sets drawn once from fixed seeds, and on the thresholded test set)",
                               lambda b: b in BINARIZATIONS, "must be threshold or dynamic")
    validation_size: int = option(0, "hold out the last N of the --train-size images, never trained on; the "
                                  "validation ELBO after each epoch chooses the model kept (0: none, the last epoch's)",
                                  lambda n: 0 <= n < NUM_TRAIN, f"must be an int in 0..{NUM_TRAIN - 1}")
    patience: int | None = option(None, f"with --validation-size: stop once the validation ELBO has not improved "
                                  f"for this many epochs (default {DEFAULT_PATIENCE}); a run that stopped is "
                                  "trained further by --resume only if a larger --patience and --epochs allow it, "
                                  "as an uninterrupted run with them would have been",
                                  lambda n: n is None or n > 0, "must be a positive int", kind=int)
    eval_samples: int = option(10, "samples of z per image for the final train/test ELBO",
                               lambda n: n >= 2, "must be an int >= 2 (a standard error needs two samples)")
    # Path("") is the working directory: an empty value would download MNIST there.
    data_dir: str | None = option(None, "folder with the MNIST .gz files (default $MNIST_DIR, else data/mnist)",
                                  lambda d: d is None or d != "", "must not be empty", kind=str)
    out: Path = option(Path("data") / "vae.npz", "checkpoint path; results go beside it as .json",
                       lambda p: p.suffix.lower() == ".npz",
                       "must end in .npz (not .json: the results go beside the checkpoint as .json)",
                       kind=Path)
    keep_epochs: tuple = option((), "also keep the checkpoints of these epochs (comma-separated), beside "
                                "--out as NAME-epochN.npz", lambda t: all(type(e) is int and e > 0 for e in t),
                                "must be positive epochs separated by commas", parse=parse_epochs)
    resume: bool = option(False, "continue training from the checkpoint at --out up to --epochs")
    force: bool = option(False, "without --resume, overwrite an existing checkpoint at --out")
    quiet: bool = option(False, "no per-epoch lines")

    def __post_init__(self):
        object.__setattr__(self, "out", Path(self.out))
        for f in fields(self):
            problem = rule_broken(f, getattr(self, f.name))
            if problem:
                raise ConfigError(f"{f.name} {problem}, got {getattr(self, f.name)!r}")
        beyond = [e for e in self.keep_epochs if e > self.epochs]
        if beyond:
            raise ConfigError(f"keep_epochs {beyond} lie beyond epochs {self.epochs}: such a checkpoint would never "
                              "be written; keep only epochs up to --epochs")
        if self.validation_size >= self.train_size:
            raise ConfigError(f"validation_size {self.validation_size} leaves no training images of train_size "
                              f"{self.train_size}: choose a --validation-size below --train-size")
        if self.patience is not None and not self.validation_size:
            raise ConfigError(f"patience {self.patience} needs a validation set to watch: add --validation-size N, "
                              "or leave --patience out")

    @property
    def stop_patience(self):
        """Epochs without a better validation ELBO after which training stops; None without a validation set."""
        if not self.validation_size:
            return None
        return DEFAULT_PATIENCE if self.patience is None else self.patience

    def kept_path(self, epoch):
        """Where --keep-epochs keeps the checkpoint of that epoch: data/vae-epoch10.npz."""
        return self.out.with_name(f"{self.out.stem}-epoch{epoch}{self.out.suffix}")

    def checkpoint_paths(self):
        """Every checkpoint the run writes: --out and its kept epochs."""
        return [self.out] + [self.kept_path(epoch) for epoch in self.keep_epochs]

    def written_paths(self):
        """Every file the run writes, each locked while it runs: its checkpoints and results file
        (vae.npz and vae.NPZ share vae.json, so the results file needs a lock of its own)."""
        return self.checkpoint_paths() + [self.results_path]

    @property
    def results_path(self):
        """The .json beside the checkpoint: final ELBOs, metadata and the training curve."""
        return self.out.with_suffix(".json")

    def metadata(self):
        """What a checkpoint records of the run that made it, and must match to be reused. The sizes
        and the activation are what load_params builds the networks from (hidden as a list: JSON's).
        Not patience: it changes no epoch's parameters, only the epoch training stops at (the results
        file records it)."""
        return {"data_dim": 784, "hidden": list(self.hidden), "activation": self.activation,
                "latent_dim": self.latent_dim, "seed": self.seed, "lr": self.lr, "batch_size": self.batch_size,
                "train_size": self.train_size, "binarization": self.binarization,
                "validation_size": self.validation_size}


def rule_broken(config_field, value):
    """The rule value breaks (e.g. "must be a positive int"), or None if it obeys it."""
    kind, valid, rule = (config_field.metadata[k] for k in ("kind", "valid", "rule"))
    if valid is None:
        return None
    accepted = (int, float) if kind is float else kind  # Python numbers only: they go into JSON metadata
    if value is not None and (isinstance(value, bool) or not isinstance(value, accepted)):
        return rule
    return None if valid(value) else rule


def option_type(name):
    """The argparse type of TrainConfig's field name: parses the text and applies its rule."""
    config_field = next(f for f in fields(TrainConfig) if f.name == name)

    def parse(text):
        try:
            value = config_field.metadata["parse"](text)
        except ValueError:
            value = None
        if value is None or rule_broken(config_field, value):
            raise argparse.ArgumentTypeError(f"{config_field.metadata['rule']}, got {text!r}")
        return value
    return parse


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line, "error: ...", with a pointer to --help."""

    def error(self, message):
        self.exit(2, f"error: {message}; see {self.prog} --help\n")


def add_options(parser, names=None):
    """Add TrainConfig's fields (all, or those in names) to parser as --dashed-options."""
    for f in fields(TrainConfig):
        if names is not None and f.name not in names:
            continue
        flags = ["--" + f.name.replace("_", "-"), *f.metadata["aliases"]]
        if f.metadata["kind"] is bool:
            parser.add_argument(*flags, action="store_true", help=f.metadata["help"])
        else:
            shown = "" if f.default is None else f" (default {shown_value(f.default)})"
            parser.add_argument(*flags, type=option_type(f.name), default=f.default,
                                help=f.metadata["help"] + shown)


def shown_value(value):
    """A default as it is typed on the command line: (256, 128) as 256,128."""
    return ",".join(str(v) for v in value) if isinstance(value, tuple) and value else str(value)


def config_from_args(args):
    """The TrainConfig of the parsed args' TrainConfig fields."""
    return TrainConfig(**{f.name: getattr(args, f.name) for f in fields(TrainConfig) if hasattr(args, f.name)})
