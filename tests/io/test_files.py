"""Tests for vae_autograd.io.files: atomic writes, output checks, whole-folder swaps."""
import os
import subprocess
import sys

import pytest

import vae_autograd.io.files as files
from tests.helpers import REPO, dir_listing, hold_lock
from vae_autograd.io.files import OutputError, atomic_write, check_writable_file, replace_folder, sole_writer


def dead_pid():
    """The pid of a process that has exited (and been reaped)."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_atomic_write_removes_leftovers_of_killed_writers_only(tmp_path):
    target = tmp_path / "vae.npz"
    stale = tmp_path / f".vae.npz.{dead_pid()}.k2j4x0ab.part"
    live = tmp_path / f".vae.npz.{os.getpid()}.a8b9c0ab.part"  # a writer still at work
    other = tmp_path / f".other.npz.{dead_pid()}.q1w2e0ab.part"  # another target's
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
    stale = tmp_path / f".figures.{dead_pid()}.x1y2abcd.new"
    stale.mkdir()
    (stale / "a.png").write_bytes(b"half")
    replace_folder(tmp_path / "figures", lambda new: (new / "a.png").write_bytes(b"whole"))
    assert dir_listing(tmp_path) == ["figures"]


def test_a_second_writer_is_refused_naming_the_first_and_a_killed_ones_lock_is_recovered(tmp_path):
    target = tmp_path / "vae.npz"
    holder = hold_lock(target)
    try:
        with pytest.raises(OutputError, match=rf"^--out {target} is being written by another process "
                                              rf"\(pid {holder.pid}\); wait for it to end, or choose another --out$"):
            with sole_writer([tmp_path / "other.npz", target], "--out"):
                pass
        assert dir_listing(tmp_path) == [".vae.npz.lock"]  # the first lock of the pair was let go
    finally:
        holder.kill()
        holder.wait()
    assert dir_listing(tmp_path) == [".vae.npz.lock"]  # SIGKILL leaves the file; the kernel let go of the lock
    with sole_writer([target], "--out"):
        assert (tmp_path / ".vae.npz.lock").read_text() == f"{os.getpid()}\n"
    assert dir_listing(tmp_path) == []


def test_a_lock_removed_under_a_waiting_writer_is_taken_again(tmp_path, monkeypatch):
    """The race of an unlinked lock file: a writer that locked the old file must not go on
    believing it holds the lock; it opens the new one."""
    target = tmp_path / "vae.npz"
    real_flock, calls = files.fcntl.flock, []

    def flock_after_the_holder_left(fd, operation):
        calls.append(fd)
        if len(calls) == 1:  # the holder finished and removed its file between our open and our flock
            os.unlink(tmp_path / ".vae.npz.lock")
        return real_flock(fd, operation)

    monkeypatch.setattr(files.fcntl, "flock", flock_after_the_holder_left)
    with sole_writer([target], "--out"):
        assert len(calls) == 2 and (tmp_path / ".vae.npz.lock").exists()
    assert dir_listing(tmp_path) == []


def test_a_swap_killed_between_its_renames_gets_the_previous_folder_back(tmp_path):
    out = tmp_path / "figures"
    aside = tmp_path / f".figures.{dead_pid()}.abcdefgh.old"  # renamed aside, then the writer was killed
    aside.mkdir()
    (aside / "report.md").write_text("the previous run\n")
    staged = tmp_path / f".figures.{dead_pid()}.ijklmnop.new"
    staged.mkdir()

    def fails(folder):
        raise OSError("disk full")

    with pytest.raises(OSError):
        replace_folder(out, fails)
    assert (out / "report.md").read_text() == "the previous run\n"
    assert dir_listing(tmp_path) == ["figures"] and dir_listing(out) == ["report.md"]


def test_the_temporaries_and_lock_of_another_output_whose_name_begins_alike_are_left_alone(tmp_path):
    """figures.2024 beside figures, vae.npz.999999.npz beside vae.npz: their files are not ours."""
    dead = dead_pid()
    others = [tmp_path / f".figures.2024.{dead}.abcdefgh.old", tmp_path / f".figures.2024.{dead}.abcdefgh.new",
              tmp_path / f".vae.npz.999999.npz.{dead}.abcdefgh.part"]
    for other in others[:2]:
        other.mkdir()
        (other / "report.md").write_text("figures.2024's\n")
    others[2].write_bytes(b"vae.npz.999999.npz's")
    (tmp_path / ".figures.2024.lock").write_text("1\n")
    (tmp_path / ".vae.npz.999999.npz.lock").write_text("1\n")
    before = dir_listing(tmp_path)
    replace_folder(tmp_path / "figures", lambda new: (new / "a.png").write_bytes(b"whole"))
    atomic_write(tmp_path / "vae.npz", lambda f: f.write(b"whole"))
    with sole_writer([tmp_path / "figures", tmp_path / "vae.npz"], "--out"):
        pass
    assert dir_listing(tmp_path) == sorted(before + ["figures", "vae.npz"])
    assert dir_listing(tmp_path / "figures") == ["a.png"]


@pytest.mark.parametrize("planted", ["symlink", "folder"])
def test_a_symbolic_link_or_folder_planted_as_the_lock_is_refused_in_one_line(tmp_path, planted):
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    lock = tmp_path / "out" / ".vae.npz.lock"
    lock.parent.mkdir()
    if planted == "symlink":
        lock.symlink_to(victim)
    else:
        lock.mkdir()
    with pytest.raises(OutputError, match=r"^--out .*vae.npz: cannot take the lock .*\.vae\.npz\.lock \(.*\); if no "
                                          r"run is writing there, remove it$"):
        with sole_writer([tmp_path / "out" / "vae.npz"], "--out"):
            pass
    assert victim.read_text() == "precious\n"


def test_the_lock_of_dot_is_beside_the_folder_and_folders_made_for_nothing_are_removed(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "here").mkdir()
    monkeypatch.chdir(tmp_path / "here")
    with sole_writer(["."], "--out-dir"):
        assert (tmp_path / ".here.lock").exists()
    with sole_writer([tmp_path / "new" / "deeper" / "vae.npz"], "--out"):
        assert (tmp_path / "new" / "deeper").is_dir()
    assert dir_listing(tmp_path) == ["here"]  # nothing was written under new/: it is gone again
