"""Tests for vae_autograd.io.files: atomic writes, output checks, whole-folder swaps."""
import os
import subprocess
import sys

import pytest

from tests.helpers import REPO, dir_listing
from vae_autograd.io.files import OutputError, atomic_write, check_writable_file, replace_folder


def dead_pid():
    """The pid of a process that has exited (and been reaped)."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_atomic_write_removes_leftovers_of_killed_writers_only(tmp_path):
    target = tmp_path / "vae.npz"
    stale = tmp_path / f".vae.npz.{dead_pid()}.k2j4x.part"
    live = tmp_path / f".vae.npz.{os.getpid()}.a8b9c.part"  # a writer still at work
    other = tmp_path / f".other.npz.{dead_pid()}.q1w2e.part"  # another target's
    for path in (stale, live, other):
        path.write_bytes(b"half")
    atomic_write(target, lambda f: f.write(b"whole"))
    assert target.read_bytes() == b"whole"
    assert not stale.exists() and live.exists() and other.exists()


def test_killed_writer_leaves_a_part_file_the_next_write_removes(tmp_path):
    target = tmp_path / "vae.npz"
    writer = subprocess.run(
        [sys.executable, "-c", "import os, sys; from vae_autograd.io.files import atomic_write; "
         f"atomic_write({str(target)!r}, lambda f: (f.write(b'half'), f.flush(), os._exit(9)))"],
        env={**os.environ, "PYTHONPATH": str(REPO)})
    assert writer.returncode == 9 and len(list(tmp_path.glob(".vae.npz.*.part"))) == 1
    atomic_write(target, lambda f: f.write(b"whole"))
    assert dir_listing(tmp_path) == ["vae.npz"]


def test_check_writable_file(tmp_path):
    check_writable_file(tmp_path / "new" / "deeper" / "vae.npz", "--out")  # folders made later are fine
    assert dir_listing(tmp_path) == []  # the check leaves nothing behind
    with pytest.raises(OutputError, match="--out .* is a folder"):
        check_writable_file(tmp_path, "--out")
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match="is a file, not a folder"):
        check_writable_file(tmp_path / "file" / "vae.npz", "--out")


def test_replace_folder_swaps_in_one_whole_set(tmp_path):
    folder = tmp_path / "figures"
    folder.mkdir()
    (folder / "old-only.png").write_bytes(b"old")
    (folder / "shared.png").write_bytes(b"old")
    replace_folder(folder, lambda new: [(new / n).write_bytes(b"new") for n in ("shared.png", "new.png")])
    assert dir_listing(folder) == ["new.png", "shared.png"] and (folder / "shared.png").read_bytes() == b"new"
    assert dir_listing(tmp_path) == ["figures"]  # no staging or old folder left


def test_replace_folder_interrupted_while_writing_keeps_the_old_set(tmp_path):
    folder = tmp_path / "figures"
    folder.mkdir()
    (folder / "a.png").write_bytes(b"old a")
    (folder / "b.png").write_bytes(b"old b")

    def write_then_interrupt(new):
        (new / "a.png").write_bytes(b"new a")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        replace_folder(folder, write_then_interrupt)
    assert [(folder / n).read_bytes() for n in ("a.png", "b.png")] == [b"old a", b"old b"]
    assert dir_listing(tmp_path) == ["figures"]


def test_replace_folder_removes_staging_folders_of_killed_runs(tmp_path):
    stale = tmp_path / f".figures.{dead_pid()}.x1y2.new"
    stale.mkdir()
    (stale / "a.png").write_bytes(b"half")
    replace_folder(tmp_path / "figures", lambda new: (new / "a.png").write_bytes(b"whole"))
    assert dir_listing(tmp_path) == ["figures"]
