"""Files and folders that are never half written: atomic writes, whole-folder swaps, one writer
per path, and the checks that an output path can be written before any work."""
import fcntl
import glob
import os
import re
import shutil
import signal
import tempfile
from contextlib import ExitStack, contextmanager
from pathlib import Path


class OutputError(Exception):
    """An output path that cannot be written; the message says why and what to do."""


def temporary_pattern(target):
    """The names of target's temporaries, ".NAME.PID.RANDOM.part" (a file) or ".new" / ".old" (a
    folder), with the pid and the suffix as groups. Matched whole: a temporary of another output
    whose name only begins like target's (figures.2024 beside figures) never matches."""
    return re.compile(rf"\.{re.escape(target.name)}\.(\d+)\.[a-z0-9_]{{8}}\.(part|new|old)")


def writer_is_gone(temporary, target):
    """Whether temporary (one of target's, by temporary_pattern) was made by a process now gone.

    The pid in the name is what makes a leftover of a killed writer decidable; a live pid,
    even a reused one, keeps the file (removing too little is safe, too much is not).
    """
    match = temporary_pattern(target).fullmatch(temporary.name)
    if match is None:
        return False
    try:
        os.kill(int(match.group(1)), 0)
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
    for entry in target.parent.glob(f".{glob.escape(target.name)}.*"):
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


def log_file(path):
    """path opened for appending (binary, unbuffered): a log that a run adds to and never replaces, so
    that an interrupted run's lines stay beside those of the run that resumed it. Its folder is made."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return open(path, "ab", buffering=0)


@contextmanager
def sole_writer(paths, option):
    """Hold the lock of each of paths (".NAME.lock" beside it) while the block writes them.

    A second process that asks for one of them is refused with an OutputError naming the
    first one's pid. The lock is an flock, which the kernel releases when its holder ends,
    however it ends: the lock of a killed writer is taken over by the next one, and its
    file removed when that one is done.
    """
    with ExitStack() as stack:
        for path in paths:
            stack.enter_context(_locked(Path(path), option))
        yield


@contextmanager
def _locked(given, option):
    path = Path(given).absolute()  # "." has no name to build the lock's from
    lock = path.with_name(f".{path.name}.lock")
    existing = nearest_existing(path.parent)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            # O_NOFOLLOW: a symbolic link planted as the lock must not make us write through it.
            fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 20, 0).decode(errors="replace").strip()
                os.close(fd)
                raise OutputError(f"{option} {given} is being written by another process"
                                  f"{f' (pid {holder})' if holder.isdigit() else ''}; wait for it to end, "
                                  f"or choose another {option}") from None
            try:  # the lock is ours unless its holder removed the file between our open and our flock
                if os.stat(lock, follow_symlinks=False).st_ino == os.fstat(fd).st_ino:
                    break
            except FileNotFoundError:
                pass
            os.close(fd)
    except OSError as err:  # a folder, a symbolic link or an unreadable file where the lock goes
        remove_empty_folders(path.parent, existing)
        raise OutputError(f"{option} {given}: cannot take the lock {lock} ({err.strerror}); if no run is "
                          "writing there, remove it") from None
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield
    finally:
        os.unlink(lock)  # while still holding it: a process that opened this file sees it gone and retries
        os.close(fd)
        remove_empty_folders(path.parent, existing)


def remove_empty_folders(folder, stop):
    """Remove folder and its parents up to (not including) stop while they are empty: what a
    run made for its outputs and did not use."""
    folder = Path(folder)
    while folder != Path(stop) and Path(stop) in folder.parents:
        try:
            folder.rmdir()
        except OSError:  # not empty (or gone): the run wrote there
            return
        folder = folder.parent


def replace_folder(folder, write):
    """Call write(staging) to fill a new folder beside folder, then swap it in for folder.

    The old folder is renamed aside, the new one renamed in, and the old one deleted, with
    Ctrl-C and SIGTERM held off for the two renames: folder always holds one whole set of
    files, the old or the new, never a mix. If write raises, folder is untouched.
    """
    folder = Path(folder).absolute()  # "." has no name to build the staging folder's from
    folder.parent.mkdir(parents=True, exist_ok=True)
    recover_interrupted_swap(folder)
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


def recover_interrupted_swap(folder):
    """Put back the folder a replace_folder killed between its two renames (SIGKILL, power loss)
    left aside as .NAME.PID.*.old, its writer gone: the previous run's files are not lost."""
    folder = Path(folder).absolute()
    if folder.exists() or folder.is_symlink():
        return
    for aside in folder.parent.glob(f".{glob.escape(folder.name)}.*.old"):
        if aside.is_dir() and not aside.is_symlink() and writer_is_gone(aside, folder):
            os.rename(aside, folder)
            return


def check_writable_file(path, option):
    """Raise OutputError unless path can be written as a file (by atomic_write), before any work.

    option names the setting that gave the path, for the message (e.g. "--out").
    """
    path = Path(path)
    if path.is_symlink():  # a rename would replace the link with a file and leave its target as it was
        raise OutputError(f"{option} {path} is a symbolic link; pass the path it points to ({path.resolve()})")
    if path.is_dir():
        raise OutputError(f"{option} {path} is a folder; name a file inside it instead")
    check_writable_folder(path.parent, option)
    check_name_fits(path, option)


def check_not_an_input(path, inputs, option):
    """Raise OutputError if path is one of the run's input files (resolved paths) or a folder holding one."""
    path = Path(path).resolve()
    for source in inputs:
        if source == path or path in source.parents:
            raise OutputError(f"{option} {path} would overwrite the run's input {source}; choose another path")


def check_name_fits(path, option):
    """Raise OutputError if the temporary beside path (".NAME.PID.RANDOM.part", or .new / .old for a
    folder) would have a name longer than its file system allows: the first save would fail."""
    path = Path(path).absolute()
    try:
        limit = os.pathconf(nearest_existing(path.parent), "PC_NAME_MAX")
    except (OSError, ValueError):
        limit = 255
    extra = len(os.fsencode(f"..{os.getpid()}.XXXXXXXX.part"))  # mkstemp's random part has 8 characters
    if len(os.fsencode(path.name)) + extra > limit:
        raise OutputError(f"{option} {path.name[:20]}...: a name of {len(os.fsencode(path.name))} bytes is too long "
                          f"to write safely here (at most {limit - extra}); choose a shorter name")


def nearest_existing(folder):
    """folder, or its nearest ancestor that exists (a folder that does not exist yet is made there)."""
    existing = Path(folder)
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    return existing


def check_writable_folder(folder, option):
    """Raise OutputError unless a file can be created in folder (made if missing).

    Tries to create and remove a file in the nearest existing ancestor: permission bits
    alone do not tell (read-only mounts, ACLs).
    """
    folder = Path(folder)
    existing = nearest_existing(folder)
    if not existing.is_dir():
        raise OutputError(f"{option}: {existing} is a file, not a folder; choose a path in a folder")
    try:
        fd, probe = tempfile.mkstemp(dir=existing, prefix=f".write-check.{os.getpid()}.")
        os.close(fd)
        os.remove(probe)
    except OSError as err:
        raise OutputError(f"{option}: cannot write in {existing} ({err.strerror}); "
                          "choose a writable folder") from None
