"""Run an entry point and send a signal to it at a file operation in its working folder.

    python tests/kill_at.py STEP N SIGNAL STEPS_FILE (SCRIPT | -m MODULE) [ARGS...]

The operations are the steps of the project's writers: a checkpoint's arrays written, a file
synced, renamed into place or removed, a folder renamed or deleted. Each is described by a
line such as "rename .figures-quick.PID.new" (the pid and random part of a temporary's name
replaced by PID, so that the same step has the same line in every run). The signal is sent
at the Nth step described as STEP; with N = 0 none is sent; with STEP "exit", as the
interpreter shuts down after the entry point is over. The steps are written to
STEPS_FILE, one line each, so that a test can choose among them. A signal
sent to oneself lands as one from outside would at that moment: SIGKILL ends the process at
once; SIGINT and SIGTERM reach its handlers (or wait while it blocks them).
"""
import atexit
import os
import re
import runpy
import shutil
import sys
from pathlib import Path

import numpy as np

kill_step, kill_nth, signum, steps_file = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
entry = sys.argv[5:]
here = Path.cwd().resolve()
steps = []


def in_working_folder(operand):
    """operand's path relative to the working folder, or None if it lies outside."""
    if isinstance(operand, int):  # a file descriptor: the file it is open on
        operand = os.readlink(f"/proc/self/fd/{operand}")
    if not isinstance(operand, (str, os.PathLike)):
        return None
    path = Path(os.path.abspath(operand))
    if here not in path.parents:
        return None
    return re.sub(r"\.\d+\.[a-z0-9_]{8}(?=\.|$)", ".PID", str(path.relative_to(here)))


def instrument(owner, name, always=False):
    real = getattr(owner, name)

    def step(*a, **k):
        where = "(a checkpoint)" if always else in_working_folder(a[0]) if a else None
        if where is not None:
            steps.append(f"{name} {where}")
            if steps[-1] == kill_step and steps.count(kill_step) == kill_nth:
                os.kill(os.getpid(), signum)
        return real(*a, **k)

    setattr(owner, name, step)


for name in ("replace", "rename", "fsync", "unlink", "remove", "rmdir"):
    instrument(os, name)
instrument(shutil, "rmtree")
instrument(np.lib.format, "write_array", always=True)  # the checkpoint's arrays, one by one
atexit.register(lambda: Path(steps_file).write_text("".join(line + "\n" for line in steps)))
if kill_step == "exit":
    atexit.register(os.kill, os.getpid(), signum)
if entry[0] == "-m":
    sys.argv = [entry[1], *entry[2:]]
    runpy.run_module(entry[1], run_name="__main__", alter_sys=True)
else:
    sys.argv = entry
    runpy.run_path(entry[0], run_name="__main__")
