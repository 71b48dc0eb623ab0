"""Binarized MNIST: find, verify, download and parse the official IDX files (study part 2.1);
the images binarized at intensity 0.5, or as grey intensities for drawing binary ones.

The loader looks in ``data_dir``, else ``$MNIST_DIR``, else ``data/mnist/`` (relative to
the working directory). Every file is checked against its SHA-256 before it is parsed;
missing files are downloaded from public mirrors, verified, and only then renamed into
place, so a failed or partial download never replaces a good file.
"""
import gzip
import hashlib
import http.client
import os
import urllib.error
import urllib.request
import zlib
from pathlib import Path

import numpy as np

from .files import atomic_write

DEFAULT_DATA_DIR = Path("data") / "mnist"


MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)


SHA256 = {
    "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
}


NUM_TRAIN, NUM_TEST = 60000, 10000


class DataError(Exception):
    """A data problem the user can fix; the message says how."""


def sha256_of(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def download_file(name, dest_dir, mirrors=MIRRORS, timeout=30):
    """Fetch ``name`` from the first mirror that serves it with the right SHA-256.

    The bytes stream into a temporary file in dest_dir, renamed into place only once
    verified. Raises DataError naming every mirror's failure if none works.
    """
    failures = []
    for mirror in mirrors:
        url = mirror.rstrip("/") + "/" + name

        def fetch(out, url=url):
            digest = hashlib.sha256()
            with urllib.request.urlopen(url, timeout=timeout) as resp:
                for chunk in iter(lambda: resp.read(1 << 20), b""):
                    digest.update(chunk)
                    out.write(chunk)
            if digest.hexdigest() != SHA256[name]:
                raise ValueError("checksum mismatch")

        try:
            atomic_write(Path(dest_dir) / name, fetch)
            return Path(dest_dir) / name
        except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as err:
            failures.append(f"{url}: {getattr(err, 'reason', err)}")
    raise DataError(
        f"could not download {name} ({'; '.join(failures) or 'no mirrors given'}); "
        f"copy the four MNIST .gz files into {dest_dir} or point MNIST_DIR / --data-dir at them"
    )


def mnist_paths(data_dir=None):
    """The four files find_mnist(data_dir) reads (or downloads), resolved: a run's inputs, which no
    output path may name."""
    if data_dir is None:
        data_dir = os.environ.get("MNIST_DIR") or DEFAULT_DATA_DIR
    return [(Path(data_dir) / name).resolve() for name in SHA256]


def find_mnist(data_dir=None, mirrors=MIRRORS):
    """The directory holding the four verified MNIST files, downloading any that are missing."""
    source = "MNIST directory"
    if data_dir is None and os.environ.get("MNIST_DIR"):
        data_dir, source = os.environ["MNIST_DIR"], "MNIST directory from $MNIST_DIR"
    if data_dir is None:
        data_dir = DEFAULT_DATA_DIR
    elif str(data_dir) == "":  # Path("") is the working directory: never download there by accident
        raise DataError(f"{source} is empty; pass the folder that holds the four MNIST .gz files, "
                        "or leave it out to use data/mnist")
    elif Path(data_dir).exists() and not Path(data_dir).is_dir():
        raise DataError(f"{source} {data_dir} is a file, not a folder; pass the folder that holds "
                        "the four MNIST .gz files")
    elif not Path(data_dir).is_dir():
        raise DataError(f"{source} {data_dir} does not exist; pass the folder that holds "
                        "the four MNIST .gz files, or leave it unset to download into data/mnist")
    data_dir = Path(data_dir)
    for name, expected in SHA256.items():
        path = data_dir / name
        if path.is_dir():
            raise DataError(f"{path} is a folder where the MNIST file should be; "
                            "remove it and run again to download the file")
        if not path.exists():
            download_file(name, data_dir, mirrors)
            continue
        try:
            digest = sha256_of(path)
        except OSError as err:
            raise DataError(f"cannot read {path} ({err.strerror}); make it readable "
                            "(chmod a+r) or point --data-dir at another copy") from None
        if digest != expected:
            raise DataError(f"{path} is corrupt or truncated (SHA-256 mismatch); "
                            "delete it and run again to download a fresh copy")
    return data_dir


def read_idx(path, expected_magic):
    """Parse a gzipped IDX file into a uint8 array of the shape its header gives."""
    if not Path(path).is_file():
        raise DataError(f"{path} does not exist; put the MNIST .gz files there or point --data-dir at them")
    try:
        with gzip.open(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError, zlib.error) as err:
        raise DataError(f"{path} is not a readable gzip file ({err}); delete it and run again") from None
    ndim = expected_magic & 0xFF
    header = np.frombuffer(raw[:4 + 4 * ndim], dtype=">u4") if len(raw) >= 4 + 4 * ndim else []
    if len(header) != 1 + ndim or header[0] != expected_magic:
        raise DataError(f"{path} is not an IDX file of the expected kind; delete it and run again")
    shape = tuple(int(n) for n in header[1:])
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != np.prod(shape):
        raise DataError(f"{path} holds {data.size} values, its header promises {np.prod(shape)}; "
                        "delete it and run again")
    return data.reshape(shape)


def load_binarized_mnist(train_size=10000, test_size=10000, data_dir=None, mirrors=MIRRORS):
    """The first train_size training and test_size test images, binarized at pixel/255 > 0.5.

    Returns train_x (train_size, 784) and test_x (test_size, 784) as float32 0/1 arrays,
    and train_labels, test_labels as int64 arrays.
    """
    train_pixels, train_labels, test_pixels, test_labels = load_mnist_pixels(train_size, test_size, data_dir, mirrors)
    # On the uint8 pixels, so no float copy of the whole set is made: p > 127.5 is p / 255 > 0.5.
    return ((train_pixels > 127.5).astype(np.float32), train_labels,
            (test_pixels > 127.5).astype(np.float32), test_labels)


def load_grey_mnist(train_size=10000, test_size=10000, data_dir=None, mirrors=MIRRORS):
    """load_binarized_mnist's images before binarization: grey intensities pixel/255 in [0, 1].

    Returns train_grey (train_size, 784) and test_grey (test_size, 784) as float32 arrays,
    and the labels as load_binarized_mnist does. threshold(grey) is load_binarized_mnist's images,
    bit for bit; the grey images are for drawing binary ones (dynamic binarization), not for the
    Bernoulli likelihood, which is defined for 0/1 pixels only.
    """
    train_pixels, train_labels, test_pixels, test_labels = load_mnist_pixels(train_size, test_size, data_dir, mirrors)
    return (train_pixels.astype(np.float32) / 255.0, train_labels, test_pixels.astype(np.float32) / 255.0, test_labels)


def threshold(grey):
    """Grey intensities (N, 784) in [0, 1] -> float32 0/1 images at intensity > 0.5, the binarization of
    load_binarized_mnist (for any pixel p, float32(p / 255) > 0.5 exactly when p > 127.5)."""
    return (np.asarray(grey) > 0.5).astype(np.float32)


def load_mnist_pixels(train_size, test_size, data_dir=None, mirrors=MIRRORS):
    """The first train_size training and test_size test images as uint8 pixels (N, 784) in 0..255,
    and their labels as int64 (N,): what both loaders above read, after the one check of sizes."""
    if not all(isinstance(n, (int, np.integer)) for n in (train_size, test_size)) \
            or not 1 <= train_size <= NUM_TRAIN or not 1 <= test_size <= NUM_TEST:
        raise DataError(f"train_size must be an integer in 1..{NUM_TRAIN} and test_size in "
                        f"1..{NUM_TEST}, got {train_size!r} and {test_size!r}")
    data_dir = find_mnist(data_dir, mirrors)

    def images(name, n):
        pixels = read_idx(data_dir / name, 0x0803)[:n]
        return pixels.reshape(len(pixels), -1)

    def labels(name, n):
        return read_idx(data_dir / name, 0x0801)[:n].astype(np.int64)

    return (images("train-images-idx3-ubyte.gz", train_size),
            labels("train-labels-idx1-ubyte.gz", train_size),
            images("t10k-images-idx3-ubyte.gz", test_size),
            labels("t10k-labels-idx1-ubyte.gz", test_size))
