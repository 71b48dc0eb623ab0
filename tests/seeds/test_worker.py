"""A worker ends with the sweep that started it, even while it prints nothing (a quiet analysis: no broken
pipe would tell it), so that a killed sweep leaves no worker writing beside the next one."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.helpers import REPO

ENVIRONMENT = {**os.environ, "PYTHONPATH": str(REPO)}
QUIET_CHILD = ("import os, time\nfrom vae_autograd.io.process import end_with_parent\n"
               "end_with_parent(os.getppid())\nprint('ready', flush=True)\ntime.sleep(60)\n")
PARENT = ("import subprocess, sys, time\n"
          f"child = subprocess.Popen([sys.executable, '-c', {QUIET_CHILD!r}], stdout=subprocess.PIPE)\n"
          "print(child.pid, child.stdout.readline().decode().strip(), flush=True)\ntime.sleep(60)\n")


def running(pid):
    """Whether pid is a live process (a zombie, ended but not yet reaped, is not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def test_a_quiet_worker_ends_when_its_parent_is_killed():
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True, env=ENVIRONMENT)
    pid, ready = parent.stdout.readline().split()
    assert ready == "ready" and running(int(pid))
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 10
    while running(int(pid)):
        assert time.monotonic() < deadline, "the child outlived its killed parent"
        time.sleep(0.02)


def test_a_worker_whose_parent_is_gone_already_ends_at_once():
    # Its parent is the test process; it is told another pid is its parent: that one is "gone".
    child = subprocess.run([sys.executable, "-c", "import os, time\nfrom vae_autograd.io.process import "
                            "end_with_parent\nend_with_parent(os.getppid() + 1)\ntime.sleep(60)\n"],
                           env=ENVIRONMENT, timeout=30)
    assert child.returncode == -signal.SIGTERM


def test_a_worker_killed_by_a_signal_is_said_to_be_killed_in_its_line_and_its_log(tmp_path, monkeypatch):
    """Killed outright (the kernel's out-of-memory killer, a kill -9), a worker's last line is some progress
    line and its log ends there: its failed line says how it ended instead, and so does its log."""
    import vae_autograd.seeds.sweep as sweep_module

    popen = subprocess.Popen

    def killed_worker(command, **options):
        return popen([sys.executable, "-c", "import os, signal\nprint('  epoch 3', flush=True)\n"
                      "os.kill(os.getpid(), signal.SIGKILL)\n"], **options)

    monkeypatch.setattr(sweep_module.subprocess, "Popen", killed_worker)
    jobs = sweep_module.make_jobs(["assignment"], [0], {"epochs": 1}, {}, tmp_path)
    lines = []
    rows = sweep_module.run_jobs(jobs, 1, {"epochs": 1}, {}, log=lines.append)
    assert list(rows.values()) == [None]
    failed = [line for line in lines if "assignment seed 0: failed" in line]
    assert len(failed) == 1 and "failed (killed by SIGKILL" in failed[0] and "epoch 3" not in failed[0], failed
    log = (tmp_path / "assignment" / "seed0.log").read_text()
    assert log.startswith("  epoch 3\n") and "killed by SIGKILL" in log.splitlines()[-1]


def test_a_worker_run_by_hand_refuses_bad_options_in_one_line(tmp_path):
    for args in (["--options", "{bad"], ["--options", "[1]"], ["--options", '{"nope": 1}'],
                 ["--analysis", '{"iwae_images": "x"}'], ["--analysis", '{"iwae": 5}']):
        result = subprocess.run([sys.executable, "-m", "vae_autograd.seeds.worker", "literature", "0", "--work-dir",
                                 str(tmp_path / "work"), *args], capture_output=True, text=True, env=ENVIRONMENT,
                                timeout=60)
        assert result.returncode in (1, 2) and result.stderr.count("\n") == 1, (args, result.stderr)
        assert "error: " in result.stderr and "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == []
