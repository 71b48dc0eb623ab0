"""Binarized MNIST: find, verify, download and parse the official IDX files (study part 2.1).

The loader looks in ``data_dir``, else ``$MNIST_DIR``, else ``data/mnist/`` (relative to
the working directory). Every file is checked against its SHA-256 before it is parsed;
missing files are downloaded from public mirrors, verified, and only then renamed into
place, so a failed or partial download never replaces a good file.
"""
import gzip
import hashlib
import http.client
import os
import shutil
import signal
import tempfile
import urllib.error
import urllib.request
import zlib
from pathlib import Path

import numpy as np

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


class OutputError(Exception):
    """An output path that cannot be written; the message says why and what to do."""


def sha256_of(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def writer_is_gone(temporary, target):
    """Whether temporary (a sibling named .{target name}.{pid}.*) was made by a process now gone.

    The pid in the name is what makes a leftover of a killed writer decidable; a live pid,
    even a reused one, keeps the file (removing too little is safe, too much is not).
    """
    prefix = f".{target.name}."
    if not temporary.name.startswith(prefix):
        return False
    pid = temporary.name[len(prefix):].split(".")[0]
    if not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except OSError:  # PermissionError: alive, but another user's
        pass
    return False


def remove_stale_temporaries(target):
    """Remove temporary files and folders beside target left by writers killed mid-write."""
    target = Path(target)
    if not target.parent.is_dir():
        return
    for entry in target.parent.glob(f".{target.name}.*"):
        if writer_is_gone(entry, target):
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)


def atomic_write(path, write):
    """Call write(file) on a temporary file beside path, then rename it over path.

    If write raises, the temporary file is removed and path is untouched: a half-written
    or unverified file never replaces a good one. The temporary's name carries this
    process's pid, so leftovers of a killed writer are removed by the next write.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{os.getpid()}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(tmp, 0o666 & ~mask)  # mkstemp makes it private; give the usual mode
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def replace_folder(folder, write):
    """Call write(staging) to fill a new folder beside folder, then swap it in for folder.

    The old folder is renamed aside, the new one renamed in, and the old one deleted, with
    Ctrl-C and SIGTERM held off for the two renames: folder always holds one whole set of
    files, the old or the new, never a mix. If write raises, folder is untouched.
    """
    folder = Path(folder).absolute()  # "." has no name to build the staging folder's from
    folder.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(folder)
    staging = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.{os.getpid()}.", suffix=".new"))
    aside = staging.with_suffix(".old")
    try:
        write(staging)
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(staging, 0o777 & ~mask)  # mkdtemp makes it private; give the usual mode
        # Query the mask first: blocking runs any handler already due, and a KeyboardInterrupt
        # raised there must still find the mask restored and nothing renamed.
        held = signal.pthread_sigmask(signal.SIG_BLOCK, [])
        try:
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
            if folder.exists():
                os.rename(folder, aside)
            try:
                os.rename(staging, folder)
            except OSError:
                if aside.exists():
                    os.rename(aside, folder)
                raise
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, held)
    finally:
        for leftover in (staging, aside):
            if leftover.exists():
                shutil.rmtree(leftover)


def check_writable_file(path, option):
    """Raise OutputError unless path can be written as a file (by atomic_write), before any work.

    option names the setting that gave the path, for the message (e.g. "--out").
    """
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{option} {path} is a folder; name a file inside it instead")
    check_writable_folder(path.parent, option)


def check_writable_folder(folder, option):
    """Raise OutputError unless a file can be created in folder (made if missing).

    Tries to create and remove a file in the nearest existing ancestor: permission bits
    alone do not tell (read-only mounts, ACLs).
    """
    folder = Path(folder)
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise OutputError(f"{option}: {existing} is a file, not a folder; choose a path in a folder")
    try:
        fd, probe = tempfile.mkstemp(dir=existing, prefix=f".write-check.{os.getpid()}.")
        os.close(fd)
        os.remove(probe)
    except OSError as err:
        raise OutputError(f"{option}: cannot write in {existing} ({err.strerror}); "
                          "choose a writable folder") from None


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
    if not all(isinstance(n, (int, np.integer)) for n in (train_size, test_size)) \
            or not 1 <= train_size <= NUM_TRAIN or not 1 <= test_size <= NUM_TEST:
        raise DataError(f"train_size must be an integer in 1..{NUM_TRAIN} and test_size in "
                        f"1..{NUM_TEST}, got {train_size!r} and {test_size!r}")
    data_dir = find_mnist(data_dir, mirrors)

    def images(name, n):
        pixels = read_idx(data_dir / name, 0x0803)[:n]
        return (pixels.reshape(len(pixels), -1) > 127.5).astype(np.float32)

    def labels(name, n):
        return read_idx(data_dir / name, 0x0801)[:n].astype(np.int64)

    return (images("train-images-idx3-ubyte.gz", train_size),
            labels("train-labels-idx1-ubyte.gz", train_size),
            images("t10k-images-idx3-ubyte.gz", test_size),
            labels("t10k-labels-idx1-ubyte.gz", test_size))


def minibatches(x, batch_size, rng):
    """Yield x in minibatches of batch_size rows, in an order shuffled by rng (last may be short)."""
    order = rng.permutation(len(x))
    for start in range(0, len(x), batch_size):
        yield x[order[start:start + batch_size]]
