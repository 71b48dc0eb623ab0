"""Tests for vae_autograd.io.mnist: real MNIST files, IDX parsing, checksums, downloads.

Everything runs offline: downloads go to a small HTTP server on 127.0.0.1 that serves
copies (good, truncated, byte-flipped) of the real files from the ``mnist_dir`` fixture.
"""
import functools
import gzip
import hashlib
import http.server
import os
import shutil
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import vae_autograd.io.mnist as vae_data
from tests.helpers import dir_listing
from vae_autograd.io.mnist import (
    NUM_TEST,
    NUM_TRAIN,
    SHA256,
    DataError,
    download_file,
    find_mnist,
    load_binarized_mnist,
    load_grey_mnist,
    read_idx,
    threshold,
)

TRAIN_IMAGES = "train-images-idx3-ubyte.gz"
TRAIN_LABELS = "train-labels-idx1-ubyte.gz"
TEST_IMAGES = "t10k-images-idx3-ubyte.gz"
TEST_LABELS = "t10k-labels-idx1-ubyte.gz"
ALL_FILES = (TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS)
SMALL_FILES = (TRAIN_LABELS, TEST_IMAGES, TEST_LABELS)  # quick to serve and hash


def sha256_file(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def raw_labels(path, n):
    """The first n labels of a gzipped IDX1 file, parsed without vae_autograd."""
    with gzip.open(path, "rb") as f:
        header = np.frombuffer(f.read(8), dtype=">u4")
        body = f.read(n)
    assert header[0] == 0x00000801
    assert header[1] >= n
    return np.frombuffer(body, dtype=np.uint8)


def raw_images(path, n):
    """The first n images (n, 784) of a gzipped IDX3 file, parsed without vae_autograd."""
    with gzip.open(path, "rb") as f:
        header = np.frombuffer(f.read(16), dtype=">u4")
        body = f.read(n * 784)
    assert header[0] == 0x00000803
    assert header[1] >= n and header[2] == 28 and header[3] == 28
    return np.frombuffer(body, dtype=np.uint8).reshape(n, 784)


def idx_bytes(magic, array, compress=True):
    """``array`` (uint8) as the bytes of an IDX file with the given magic; dims from its shape."""
    array = np.asarray(array, dtype=np.uint8)
    payload = np.array([magic, *array.shape], dtype=">u4").tobytes() + array.tobytes()
    return gzip.compress(payload) if compress else payload


def write_idx(path, magic, array, compress=True):
    """Write ``array`` (uint8) as an IDX file with the given magic; dims from its shape."""
    Path(path).write_bytes(idx_bytes(magic, array, compress))
    return Path(path)


def flip_byte(path, position=None):
    """XOR one byte (by default one in the middle) with 0xFF, in place."""
    data = bytearray(Path(path).read_bytes())
    i = len(data) // 2 if position is None else position
    data[i] ^= 0xFF
    Path(path).write_bytes(bytes(data))


def truncate(path, keep_fraction=0.5):
    data = Path(path).read_bytes()
    Path(path).write_bytes(data[: int(len(data) * keep_fraction)])


def copy_real(mnist_dir, dest, names=ALL_FILES):
    """Copy real files into dest (copyfile: the originals may be read-only)."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    for name in names:
        shutil.copyfile(Path(mnist_dir) / name, dest / name)
    return dest


def closed_port_url():
    """An http URL on 127.0.0.1 where nothing listens (connection refused)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


def assert_one_line(err):
    message = str(err)
    assert message.strip(), "empty error message"
    assert "\n" not in message, f"error message spans several lines: {message!r}"
    return message


def test_real_shapes_dtypes_and_values(mnist):
    train_x, train_y, test_x, test_y = mnist
    assert train_x.shape == (10000, 784)
    assert test_x.shape == (10000, 784)
    assert train_x.dtype == np.float32 and test_x.dtype == np.float32
    assert set(np.unique(train_x).tolist()) == {0.0, 1.0}
    assert set(np.unique(test_x).tolist()) == {0.0, 1.0}
    assert train_y.shape == (10000,) and test_y.shape == (10000,)
    assert np.issubdtype(train_y.dtype, np.integer) and np.issubdtype(test_y.dtype, np.integer)
    assert train_y.dtype == np.int64 and test_y.dtype == np.int64  # as the docstring promises
    assert set(np.unique(train_y).tolist()) == set(range(10))
    assert set(np.unique(test_y).tolist()) == set(range(10))


@pytest.mark.parametrize("split, labels_file, first_label", [
    ("train", TRAIN_LABELS, 5),
    ("test", TEST_LABELS, 7),
])
def test_real_labels_match_raw_file(mnist, mnist_dir, split, labels_file, first_label):
    labels = mnist[1] if split == "train" else mnist[3]
    raw = raw_labels(Path(mnist_dir) / labels_file, 10000)
    assert labels[0] == first_label
    np.testing.assert_array_equal(labels, raw)
    counts = np.bincount(labels, minlength=10)
    np.testing.assert_array_equal(counts, np.bincount(raw, minlength=10))
    assert counts.sum() == 10000
    assert np.all((counts >= 800) & (counts <= 1200)), counts


@pytest.mark.parametrize("split, images_file", [("train", TRAIN_IMAGES), ("test", TEST_IMAGES)])
def test_real_binarization_matches_raw_pixels(mnist, mnist_dir, split, images_file):
    x = mnist[0] if split == "train" else mnist[2]
    raw = raw_images(Path(mnist_dir) / images_file, 100)
    expected = (raw / 255.0 > 0.5).astype(np.float32)
    np.testing.assert_array_equal(x[:100], expected)
    # the threshold matters: pixels in 1..254 exist, so a wrong cut-off would show
    assert np.any((raw > 0) & (raw < 128)) and np.any((raw >= 128) & (raw < 255))


def test_real_grey_images_are_the_raw_pixels_over_255_and_threshold_to_the_binarized_ones(mnist, mnist_dir):
    train_grey, train_y, test_grey, test_y = load_grey_mnist(train_size=120, test_size=45, data_dir=mnist_dir)
    assert train_grey.shape == (120, 784) and test_grey.shape == (45, 784)
    assert train_grey.dtype == np.float32 and test_grey.dtype == np.float32
    for grey, images_file, binary in ((train_grey, TRAIN_IMAGES, mnist[0]), (test_grey, TEST_IMAGES, mnist[2])):
        raw = raw_images(Path(mnist_dir) / images_file, len(grey))
        np.testing.assert_array_equal(grey, raw.astype(np.float32) / 255)
        assert grey.min() == 0 and grey.max() == 1 and np.any((grey > 0) & (grey < 1))
        np.testing.assert_array_equal(threshold(grey), binary[:len(grey)])  # the very binarized images
    np.testing.assert_array_equal(train_y, mnist[1][:120])
    np.testing.assert_array_equal(test_y, mnist[3][:45])


def test_threshold_of_every_grey_level_is_the_loaders_cut():
    pixels = np.arange(256, dtype=np.uint8)
    grey = pixels.astype(np.float32) / 255
    binary = threshold(grey[None])
    assert binary.dtype == np.float32
    np.testing.assert_array_equal(binary[0], (pixels > 127.5).astype(np.float32))  # 128 is the first 1
    assert binary[0, 127] == 0 and binary[0, 128] == 1


def test_real_small_sizes_are_the_first_images_in_order(mnist, mnist_dir):
    train_x, train_y, test_x, test_y = load_binarized_mnist(
        train_size=123, test_size=45, data_dir=mnist_dir)
    assert train_x.shape == (123, 784) and test_x.shape == (45, 784)
    assert train_y.shape == (123,) and test_y.shape == (45,)
    np.testing.assert_array_equal(train_x, mnist[0][:123])
    np.testing.assert_array_equal(train_y, mnist[1][:123])
    np.testing.assert_array_equal(test_x, mnist[2][:45])
    np.testing.assert_array_equal(test_y, mnist[3][:45])
    np.testing.assert_array_equal(train_y, raw_labels(Path(mnist_dir) / TRAIN_LABELS, 123))
    np.testing.assert_array_equal(test_y, raw_labels(Path(mnist_dir) / TEST_LABELS, 45))


def test_real_size_boundaries_are_accepted(mnist_dir):
    train_x, train_y, test_x, test_y = load_binarized_mnist(
        train_size=NUM_TRAIN, test_size=1, data_dir=mnist_dir)
    assert train_x.shape == (60000, 784) and train_y.shape == (60000,)
    assert test_x.shape == (1, 784) and test_y.tolist() == [7]
    np.testing.assert_array_equal(np.bincount(train_y, minlength=10),
                                  np.bincount(raw_labels(Path(mnist_dir) / TRAIN_LABELS, 60000),
                                              minlength=10))


def test_real_files_match_published_checksums(mnist_dir):
    for name in ALL_FILES:
        assert sha256_file(Path(mnist_dir) / name) == SHA256[name], name


def test_read_idx_parses_images_and_labels(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(7, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=7, dtype=np.uint8)
    img_path = write_idx(tmp_path / "img.gz", 0x00000803, images)
    lbl_path = write_idx(tmp_path / "lbl.gz", 0x00000801, labels)

    got_images = read_idx(img_path, 0x0803)
    got_labels = read_idx(lbl_path, 0x0801)
    assert got_images.shape == (7, 28, 28) and got_images.dtype == np.uint8
    assert got_labels.shape == (7,) and got_labels.dtype == np.uint8
    np.testing.assert_array_equal(got_images, images)
    np.testing.assert_array_equal(got_labels, labels)


def test_read_idx_uses_header_dims(tmp_path):
    images = np.arange(3 * 5 * 4, dtype=np.uint8).reshape(3, 5, 4)
    got = read_idx(write_idx(tmp_path / "odd.gz", 0x00000803, images), 0x0803)
    assert got.shape == (3, 5, 4)
    np.testing.assert_array_equal(got, images)


GOOD_DEFLATE = gzip.compress(b"\x00" * 100)
CUT_GZIP = idx_bytes(0x803, np.random.default_rng(1).integers(0, 256, (20, 28, 28)))


# Each way an MNIST file can be broken: its bytes, the magic read_idx is asked for, and what
# the one-line error must say besides the file's path and "delete it".
@pytest.mark.parametrize("content, magic, fragments", [
    pytest.param(gzip.compress(np.array([0x803, 4, 28, 28], dtype=">u4").tobytes() + bytes(4 * 784 - 100)),
                 0x0803, (), id="body-shorter-than-header-promises"),
    pytest.param(gzip.compress(np.array([0x801, 3], dtype=">u4").tobytes() + bytes([1, 2, 3, 4])),
                 0x0801, (), id="body-longer-than-header-promises"),
    pytest.param(CUT_GZIP[:int(len(CUT_GZIP) * 0.5)], 0x0803, (), id="truncated-gzip-stream"),
    # header dims and body size are right for 0x0803; only the magic is wrong
    *[pytest.param(gzip.compress(np.array([file_magic, 2, 28, 28], dtype=">u4").tobytes() + bytes(2 * 784)),
                   0x0803, (), id=f"wrong-magic-{why}")
      for file_magic, why in [(0x00000802, "ndim-2"), (0x00000903, "unknown-data-type"),
                              (0x01000803, "non-zero-leading-bytes"), (0x03080000, "little-endian")]],
    pytest.param(idx_bytes(0x00000801, np.arange(50) % 10), 0x0803, (), id="labels-file-read-as-images"),
    # a perfectly valid IDX file, just not compressed
    pytest.param(idx_bytes(0x803, np.zeros((2, 28, 28)), compress=False), 0x0803, ("gzip",), id="not-gzip"),
    pytest.param(b"<html><body>404 Not Found</body></html>\n", 0x0801, (), id="html-page-instead-of-gzip"),
    pytest.param(gzip.compress(b""), 0x0803, (), id="empty-decompressed-content"),
    pytest.param(gzip.compress(b"\x00\x00\x08\x03\x00"), 0x0803, (), id="images-header-cut-after-5-bytes"),
    pytest.param(gzip.compress(np.array([0x801, 2], dtype=">u4").tobytes() + b"\x01\x02"), 0x0803, (),
                 id="2-label-file-read-as-images"),
    # the 10-byte gzip header kept, the deflate data replaced by an invalid block type (0b11)
    pytest.param(GOOD_DEFLATE[:10] + b"\x07\x00\x00\x00" + GOOD_DEFLATE[-8:], 0x0803, (),
                 id="corrupt-deflate-stream"),
])
def test_read_idx_refuses_a_broken_file_in_one_line(tmp_path, content, magic, fragments):
    path = tmp_path / "broken.gz"
    path.write_bytes(content)
    with pytest.raises(DataError) as info:
        read_idx(path, magic)
    message = assert_one_line(info.value)
    assert str(path) in message and "delete it" in message
    for fragment in fragments:
        assert fragment in message


def test_read_idx_real_labels_file_read_as_images(mnist_dir):
    with pytest.raises(DataError):
        read_idx(Path(mnist_dir) / TEST_LABELS, 0x0803)


def test_find_mnist_missing_directory(tmp_path):
    missing = tmp_path / "no-such-dir"
    with pytest.raises(DataError) as info:
        find_mnist(missing, mirrors=[closed_port_url()])
    message = assert_one_line(info.value)
    assert str(missing) in message
    assert "does not exist" in message
    assert not missing.exists()  # an explicit, wrong path is not silently created


def test_load_missing_directory(tmp_path):
    missing = tmp_path / "no-such-dir"
    with pytest.raises(DataError) as info:
        load_binarized_mnist(train_size=5, test_size=5, data_dir=missing,
                             mirrors=[closed_port_url()])
    message = assert_one_line(info.value)
    assert str(missing) in message and "does not exist" in message


@pytest.mark.parametrize("name", ALL_FILES)
@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_find_mnist_corrupt_file(mnist_dir, tmp_path, name, damage):
    data_dir = copy_real(mnist_dir, tmp_path / "mnist")
    (flip_byte if damage == "flip" else truncate)(data_dir / name)
    damaged_bytes = (data_dir / name).read_bytes()
    with pytest.raises(DataError) as info:
        find_mnist(data_dir, mirrors=[closed_port_url()])
    message = assert_one_line(info.value)
    assert str(data_dir / name) in message
    assert "corrupt" in message
    assert "delete it" in message
    # the other files are not blamed, and nothing was changed on disk
    for other in ALL_FILES:
        if other != name:
            assert other not in message
    assert (data_dir / name).read_bytes() == damaged_bytes
    assert dir_listing(data_dir) == sorted(ALL_FILES)


def test_load_corrupt_file(mnist_dir, tmp_path):
    data_dir = copy_real(mnist_dir, tmp_path / "mnist")
    flip_byte(data_dir / TEST_LABELS, position=100)
    with pytest.raises(DataError) as info:
        load_binarized_mnist(train_size=5, test_size=5, data_dir=data_dir,
                             mirrors=[closed_port_url()])
    message = assert_one_line(info.value)
    assert str(data_dir / TEST_LABELS) in message and "corrupt" in message


@pytest.mark.parametrize("train_size, test_size, bad", [
    (0, 10, "0"),
    (-1, 10, "-1"),
    (NUM_TRAIN + 1, 10, "60001"),
    (10, NUM_TEST + 1, "10001"),
    (10, 0, "0"),
])
@pytest.mark.parametrize("load", [load_binarized_mnist, load_grey_mnist])
def test_load_bad_sizes(mnist_dir, train_size, test_size, bad, load):
    with pytest.raises(DataError) as info:
        load(train_size=train_size, test_size=test_size, data_dir=mnist_dir)
    message = assert_one_line(info.value)
    assert ("train_size" if bad == str(train_size) else "test_size") in message
    assert bad in message
    assert "1..60000" in message and "1..10000" in message  # says what is allowed


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    requests = []  # replaced per server; paths of GET requests, in order

    def do_GET(self):
        type(self).requests.append(self.path)
        super().do_GET()

    def log_message(self, format, *args):
        pass


@pytest.fixture(scope="module")
def mirror_server(mnist_dir, tmp_path_factory):
    """A local HTTP server with mirrors good/, truncated/, corrupt/ and empty/ (all 404).

    Yields (base_url, requests), where requests lists the paths asked for.
    """
    root = tmp_path_factory.mktemp("mirrors")
    copy_real(mnist_dir, root / "good")
    copy_real(mnist_dir, root / "truncated")
    copy_real(mnist_dir, root / "corrupt")
    (root / "empty").mkdir()
    for name in ALL_FILES:
        truncate(root / "truncated" / name, 0.9)
        flip_byte(root / "corrupt" / name)

    handler = type("Handler", (_QuietHandler,), {"requests": []})
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(handler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", handler.requests
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def mirrors(mirror_server):
    """Mirror URLs by kind, with the request log cleared for this test."""
    base, requests = mirror_server
    requests.clear()
    return {kind: base + kind + "/" for kind in ("good", "truncated", "corrupt", "empty")}


@pytest.fixture
def requests_log(mirror_server):
    return mirror_server[1]


def test_find_mnist_downloads_all_four(mirrors, requests_log, mnist_dir, tmp_path):
    dest = tmp_path / "fresh"
    dest.mkdir()
    assert find_mnist(dest, mirrors=[mirrors["good"]]) == dest
    assert dir_listing(dest) == sorted(ALL_FILES)  # no leftover .part files
    for name in ALL_FILES:
        assert sha256_file(dest / name) == SHA256[name]
        assert (dest / name).read_bytes() == (Path(mnist_dir) / name).read_bytes()
    assert sorted(requests_log) == sorted("/good/" + n for n in ALL_FILES)

    # everything is in place now: loading needs no further requests
    requests_log.clear()
    train_x, train_y, test_x, test_y = load_binarized_mnist(
        train_size=50, test_size=20, data_dir=dest, mirrors=[mirrors["good"]])
    assert requests_log == []
    np.testing.assert_array_equal(train_y, raw_labels(Path(mnist_dir) / TRAIN_LABELS, 50))
    np.testing.assert_array_equal(test_y, raw_labels(Path(mnist_dir) / TEST_LABELS, 20))
    expected = (raw_images(Path(mnist_dir) / TEST_IMAGES, 20) / 255 > 0.5).astype(np.float32)
    np.testing.assert_array_equal(test_x, expected)
    assert train_x.shape == (50, 784)


def test_load_downloads_missing_files_only(mirrors, requests_log, mnist_dir, tmp_path):
    dest = copy_real(mnist_dir, tmp_path / "partial", names=(TRAIN_IMAGES, TRAIN_LABELS))
    before = {n: (dest / n).stat().st_mtime_ns for n in (TRAIN_IMAGES, TRAIN_LABELS)}
    _, _, test_x, test_y = load_binarized_mnist(
        train_size=3, test_size=4, data_dir=dest, mirrors=[mirrors["good"]])
    assert sorted(requests_log) == sorted(["/good/" + TEST_IMAGES, "/good/" + TEST_LABELS])
    assert dir_listing(dest) == sorted(ALL_FILES)
    assert test_y.tolist() == raw_labels(Path(mnist_dir) / TEST_LABELS, 4).tolist()
    for name, mtime in before.items():
        assert (dest / name).stat().st_mtime_ns == mtime  # present good files untouched


def test_download_file_mirror_url_without_trailing_slash(mirrors, mnist_dir, tmp_path):
    path = download_file(TEST_LABELS, tmp_path, mirrors=[mirrors["good"].rstrip("/")], timeout=5)
    assert Path(path) == tmp_path / TEST_LABELS
    assert sha256_file(path) == SHA256[TEST_LABELS]
    assert dir_listing(tmp_path) == [TEST_LABELS]


@pytest.mark.parametrize("kind", ["truncated", "corrupt"])
@pytest.mark.parametrize("name", SMALL_FILES)
def test_download_file_bad_mirror(mirrors, tmp_path, kind, name):
    dest = tmp_path / "dest"
    with pytest.raises(DataError) as info:
        download_file(name, dest, mirrors=[mirrors[kind]], timeout=5)
    message = assert_one_line(info.value)
    assert message.startswith(f"could not download {name}")
    assert mirrors[kind] + name in message
    assert "checksum mismatch" in message
    assert not (dest / name).exists()
    assert dir_listing(dest) == []  # no .part file, nothing half-written


def test_download_file_bad_mirror_large_file(mirrors, tmp_path):
    with pytest.raises(DataError) as info:
        download_file(TRAIN_IMAGES, tmp_path, mirrors=[mirrors["truncated"], mirrors["corrupt"]],
                      timeout=5)
    message = assert_one_line(info.value)
    # every mirror's failure is named
    assert mirrors["truncated"] + TRAIN_IMAGES in message
    assert mirrors["corrupt"] + TRAIN_IMAGES in message
    assert message.count("checksum mismatch") == 2
    assert dir_listing(tmp_path) == []


def test_failed_download_keeps_existing_good_files(mirrors, mnist_dir, tmp_path):
    dest = copy_real(mnist_dir, tmp_path / "dest", names=(TRAIN_LABELS, TEST_LABELS))
    before = {n: ((dest / n).read_bytes(), (dest / n).stat().st_mtime_ns)
              for n in (TRAIN_LABELS, TEST_LABELS)}

    # a failing download of another file
    with pytest.raises(DataError):
        download_file(TEST_IMAGES, dest, mirrors=[mirrors["corrupt"]], timeout=5)
    # a failing download of the same file over a good copy (download_file does not check)
    with pytest.raises(DataError):
        download_file(TEST_LABELS, dest, mirrors=[mirrors["truncated"]], timeout=5)
    # and through find_mnist: the missing train images fail to download
    with pytest.raises(DataError) as info:
        find_mnist(dest, mirrors=[mirrors["corrupt"]])
    assert "checksum mismatch" in str(info.value)

    assert dir_listing(dest) == sorted([TRAIN_LABELS, TEST_LABELS])
    for name, (data, mtime) in before.items():
        assert (dest / name).read_bytes() == data
        assert (dest / name).stat().st_mtime_ns == mtime


@pytest.mark.parametrize("first", ["empty", "corrupt", "truncated"])
def test_download_file_falls_back_to_second_mirror(mirrors, requests_log, tmp_path, first):
    path = download_file(TEST_IMAGES, tmp_path, mirrors=[mirrors[first], mirrors["good"]],
                         timeout=5)
    assert sha256_file(path) == SHA256[TEST_IMAGES]
    assert requests_log == [f"/{first}/{TEST_IMAGES}", f"/good/{TEST_IMAGES}"]
    assert dir_listing(tmp_path) == [TEST_IMAGES]


@pytest.fixture
def garbage_server():
    """A TCP server on 127.0.0.1 that answers any request with a non-HTTP line."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(0.1)
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(2)
                try:
                    conn.recv(65536)
                    conn.sendall(b"SSH-2.0-OpenSSH_9.2\r\n")
                except OSError:
                    pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}/"
    stop.set()
    thread.join(timeout=5)
    listener.close()


def test_download_file_non_http_mirror_falls_through(garbage_server, mirrors, tmp_path):
    path = download_file(TEST_LABELS, tmp_path, mirrors=[garbage_server, mirrors["good"]],
                         timeout=5)
    assert sha256_file(path) == SHA256[TEST_LABELS]


def test_download_file_stops_at_first_good_mirror(mirrors, requests_log, tmp_path):
    download_file(TEST_LABELS, tmp_path, mirrors=[mirrors["good"], mirrors["corrupt"]], timeout=5)
    assert requests_log == [f"/good/{TEST_LABELS}"]


def test_find_mnist_falls_back_to_second_mirror(mirrors, tmp_path):
    dest = tmp_path / "dest"
    dest.mkdir()
    assert find_mnist(dest, mirrors=[mirrors["empty"], mirrors["good"]]) == dest
    assert dir_listing(dest) == sorted(ALL_FILES)
    for name in ALL_FILES:
        assert sha256_file(dest / name) == SHA256[name]


def test_download_file_404_names_the_url(mirrors, tmp_path):
    with pytest.raises(DataError) as info:
        download_file(TEST_LABELS, tmp_path, mirrors=[mirrors["empty"]], timeout=5)
    message = assert_one_line(info.value)
    assert mirrors["empty"] + TEST_LABELS in message
    assert "Not Found" in message or "404" in message
    assert dir_listing(tmp_path) == []


def test_download_file_no_server(tmp_path):
    url = closed_port_url()
    start = time.monotonic()
    with pytest.raises(DataError) as info:
        download_file(TEST_LABELS, tmp_path, mirrors=[url], timeout=5)
    assert time.monotonic() - start < 5
    message = assert_one_line(info.value)
    assert message.startswith(f"could not download {TEST_LABELS}")
    assert url + TEST_LABELS in message
    assert "copy" in message and "MNIST_DIR" in message and str(tmp_path) in message
    assert dir_listing(tmp_path) == []


def test_find_mnist_no_server(tmp_path):
    dest = tmp_path / "dest"
    dest.mkdir()
    start = time.monotonic()
    with pytest.raises(DataError) as info:
        find_mnist(dest, mirrors=[closed_port_url(), closed_port_url()])
    assert time.monotonic() - start < 5
    message = assert_one_line(info.value)
    assert "could not download" in message
    assert "copy the four MNIST .gz files" in message and "MNIST_DIR" in message
    assert str(dest) in message
    assert dir_listing(dest) == []


def test_mnist_dir_env_is_used(mnist_dir, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # so a fallback to data/mnist would show
    monkeypatch.setenv("MNIST_DIR", str(mnist_dir))
    assert Path(find_mnist(mirrors=[closed_port_url()])) == Path(mnist_dir)
    _, train_y, _, test_y = load_binarized_mnist(train_size=5, test_size=3,
                                                 mirrors=[closed_port_url()])
    assert train_y.tolist() == raw_labels(Path(mnist_dir) / TRAIN_LABELS, 5).tolist()
    assert test_y.tolist() == raw_labels(Path(mnist_dir) / TEST_LABELS, 3).tolist()
    assert not (tmp_path / "data").exists()


def test_mnist_dir_env_missing_directory(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    missing = tmp_path / "env-dir-that-does-not-exist"
    monkeypatch.setenv("MNIST_DIR", str(missing))
    with pytest.raises(DataError) as info:
        find_mnist(mirrors=[closed_port_url()])
    message = assert_one_line(info.value)
    assert str(missing) in message and "does not exist" in message
    assert not (tmp_path / "data").exists()


def test_mnist_dir_env_corrupt_copy(mnist_dir, monkeypatch, tmp_path):
    data_dir = copy_real(mnist_dir, tmp_path / "envcopy")
    truncate(data_dir / TRAIN_LABELS)
    monkeypatch.setenv("MNIST_DIR", str(data_dir))
    with pytest.raises(DataError) as info:
        load_binarized_mnist(train_size=5, test_size=5, mirrors=[closed_port_url()])
    assert str(data_dir / TRAIN_LABELS) in str(info.value)


def test_explicit_data_dir_beats_mnist_dir_env(mnist_dir, monkeypatch, tmp_path):
    monkeypatch.setenv("MNIST_DIR", str(tmp_path / "not-there"))
    assert Path(find_mnist(mnist_dir, mirrors=[closed_port_url()])) == Path(mnist_dir)


def test_default_dir_without_env(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MNIST_DIR", raising=False)
    with pytest.raises(DataError) as info:
        find_mnist(mirrors=[closed_port_url()])
    message = assert_one_line(info.value)
    assert str(Path("data") / "mnist") in message  # downloads go to ./data/mnist
    assert (tmp_path / "data" / "mnist").is_dir()
    assert dir_listing(tmp_path / "data" / "mnist") == []


def test_empty_mnist_dir_env_means_unset(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MNIST_DIR", "")
    with pytest.raises(DataError) as info:
        find_mnist(mirrors=[closed_port_url()])
    assert str(Path("data") / "mnist") in str(info.value)


def test_folder_in_place_of_an_mnist_file(mnist_dir, tmp_path):
    data_dir = copy_real(mnist_dir, tmp_path / "mnist", names=SMALL_FILES)
    (data_dir / TRAIN_IMAGES).mkdir()
    with pytest.raises(DataError) as info:
        find_mnist(data_dir, mirrors=[closed_port_url()])
    message = assert_one_line(info.value)
    assert str(data_dir / TRAIN_IMAGES) in message and "is a folder" in message and "remove it" in message


def test_unreadable_mnist_file(mnist_dir, tmp_path, monkeypatch):
    data_dir = copy_real(mnist_dir, tmp_path / "mnist")
    (data_dir / TEST_LABELS).chmod(0)
    if os.geteuid() == 0:  # root reads through permission bits: make the read fail as it would
        def refuse(path, real=vae_data.sha256_of):
            if Path(path).name == TEST_LABELS:
                raise PermissionError(13, "Permission denied", str(path))
            return real(path)
        monkeypatch.setattr(vae_data, "sha256_of", refuse)
    with pytest.raises(DataError) as info:
        find_mnist(data_dir, mirrors=[closed_port_url()])
    message = assert_one_line(info.value)
    assert f"cannot read {data_dir / TEST_LABELS}" in message and "chmod" in message


def test_mnist_dir_env_naming_a_file(monkeypatch, tmp_path):
    a_file = tmp_path / "train-images-idx3-ubyte.gz"
    a_file.write_bytes(b"x")
    monkeypatch.setenv("MNIST_DIR", str(a_file))
    with pytest.raises(DataError) as info:
        find_mnist(mirrors=[closed_port_url()])
    message = assert_one_line(info.value)
    assert "$MNIST_DIR" in message and "is a file, not a folder" in message and "does not exist" not in message


def test_empty_data_dir_never_means_the_working_directory(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataError, match="is empty"):
        find_mnist("", mirrors=[closed_port_url()])
    assert dir_listing(tmp_path) == []
