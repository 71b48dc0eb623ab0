"""The seeds of a sweep as worker processes: at most `width` at once (one per core), the longest first,
each with one BLAS thread; a seed whose row already describes its finished checkpoint is not started
again. One progress line per event (a seed started, trained, analysed, failed) with the elapsed time and
an ETA: the planned seconds of the steps left (settings.planned_seconds), scaled by what the finished
steps took against their plan, laid out on the free cores as they will run.

Why processes started as `python -m vae_autograd.seeds.worker` rather than multiprocessing: the one-thread
setting of the BLAS must be in the environment before numpy is imported, which a fresh interpreter with
that environment guarantees; a worker's output is its seed's log; and a worker is the same entry point
a user can run by hand, with the same one-line errors and exit statuses.
"""
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import vae_autograd

from ..io.files import log_file
from ..train.checkpoints import CheckpointError
from ..train.reuse import reusable_model
from .analysis import current_row
from .settings import analysis_sizes, planned_seconds, seed_path, setting_config
from .worker import EVENT

# Each worker computes on one core: one BLAS thread (two workers of two threads each on two cores would
# contend for them); unbuffered output, so that its event lines arrive as they happen.
WORKER_ENVIRONMENT = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
                      "PYTHONUNBUFFERED": "1"}
STOP_SECONDS = 60  # how long an interrupted worker may take to save and end before it is killed


@dataclass(frozen=True, eq=False)  # hashed by identity: each Job is one seed of the sweep
class Job:
    """One seed of a setting: its training config, its analysis sizes and its planned seconds."""
    setting: str
    seed: int
    work_dir: Path
    config: object     # TrainConfig
    analysed: dict     # settings.analysis_sizes
    planned: tuple     # (training, analysis) seconds, settings.planned_seconds

    @property
    def name(self):
        return f"{self.setting} seed {self.seed}"

    def path(self, suffix):
        """Its files: seed_path(work_dir, setting, seed, suffix)."""
        return seed_path(self.work_dir, self.setting, self.seed, suffix)


def make_jobs(settings, seeds, overrides, analysis_overrides, work_dir, data_dir=None):
    """The Jobs of settings x seeds, in the order they start: the longest planned first (a short one last
    leaves a core idle for less time), seeds in their order within a setting."""
    jobs = []
    for setting in settings:
        for seed in seeds:
            config = setting_config(setting, seed, overrides, work_dir, data_dir)
            analysed = analysis_sizes(setting, config, analysis_overrides)
            jobs.append(Job(setting, seed, Path(work_dir), config, analysed, planned_seconds(config, analysed)))
    return sorted(jobs, key=lambda job: -sum(job.planned))


def finished_row(job):
    """The job's row if its seed is finished: its training complete and its row describing that very
    model. Else None (the worker then says what is wrong, if anything is)."""
    try:
        reused = reusable_model(job.config, retrain=False)
    except CheckpointError:
        return None
    return current_row(job.path("-analysis.json"), reused[0], job.analysed) if reused else None


def worker_environment():
    """This environment with one BLAS thread, and this very package first on the import path."""
    package_root = str(Path(vae_autograd.__file__).resolve().parents[1])
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, **WORKER_ENVIRONMENT, "PYTHONPATH": package_root + (os.pathsep + path if path else "")}


def start_worker(job, overrides, analysis_overrides, data_dir, events):
    """Start the worker of job; a thread copies its output to the seed's log and puts each line on events
    as (job, line), and (job, None) when the output ends. Returns (process, thread)."""
    command = [sys.executable, "-m", "vae_autograd.seeds.worker", job.setting, str(job.seed),
               "--work-dir", str(job.work_dir), "--options", json.dumps(overrides),
               "--analysis", json.dumps(analysis_overrides), "--parent-pid", str(os.getpid())]
    if data_dir is not None:
        command += ["--data-dir", str(data_dir)]
    log = log_file(job.path(".log"))
    process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               env=worker_environment())

    def relay():
        with log:
            for line in process.stdout:
                log.write(line)
                events.put((job, line.decode(errors="replace").rstrip("\n")))
        events.put((job, None))

    thread = threading.Thread(target=relay, daemon=True)
    thread.start()
    return process, thread


def stop_workers(workers):
    """Ask each worker (process, thread) still running to stop (SIGTERM: it saves what it can and ends,
    resumable) and wait for all, and for their last lines to reach their logs; one that takes longer than
    STOP_SECONDS is killed (its last saved epoch is kept)."""
    for process, _ in workers:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process, thread in workers:
        try:
            process.wait(timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        thread.join(timeout=STOP_SECONDS)


def run_jobs(jobs, width, overrides, analysis_overrides, data_dir=None, log=print):
    """Run the jobs' workers, at most width at once. Returns {job: its row, or None if its worker failed}.
    On an interrupt the running workers are stopped (and the KeyboardInterrupt raised again)."""
    progress = Progress(jobs, width, log)
    rows = {}
    for job in jobs:
        rows[job] = finished_row(job)
        if rows[job] is not None:
            progress.step(job, "finished", "finished already: its row describes its checkpoint")
    pending = [job for job in jobs if rows[job] is None]
    running, last_line, events = {}, {}, queue.Queue()
    try:
        while pending or running:
            while pending and len(running) < width:
                job = pending.pop(0)
                running[job] = start_worker(job, overrides, analysis_overrides, data_dir, events)
                progress.step(job, "starting", f"started (pid {running[job][0].pid}; log {job.path('.log')})")
            job, line = events.get()
            if line is None:
                status = running.pop(job)[0].wait()
                rows[job] = read_row(job) if status == 0 else None
                if rows[job] is None:
                    why = f"exit status {status}): {last_line.get(job, 'no output')}"
                    if status < 0:  # killed outright: its last line is no error, and its log ends mid-run
                        killed = f"killed by {signal_name(-status)}, perhaps for want of memory"
                        with log_file(job.path(".log")) as seed_log:
                            seed_log.write(f"{killed}\n".encode())
                        why = killed + ")"
                    progress.step(job, "failed", f"failed ({why}; see {job.path('.log')}")
                elif progress.phase[job] != "finished":
                    progress.step(job, "finished", describe(rows[job]))
            elif line.startswith(EVENT):
                progress.event(job, json.loads(line[len(EVENT):]))
            elif line.strip():
                last_line[job] = line.strip()
    except KeyboardInterrupt:
        stop_workers(list(running.values()))
        raise
    return rows


def signal_name(number):
    """'SIGKILL' for 9, or 'signal N' for a number with no name."""
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def read_row(job):
    """The row a worker that ended well wrote, or None if it cannot be read."""
    try:
        return json.loads(job.path("-analysis.json").read_text())
    except (OSError, ValueError):
        return None


def describe(row):
    """A finished seed's headline numbers, for its progress line."""
    return (f"analysed: test log p(x) {row['test_log_px']:.2f}, IWAE {row['iwae_minus_log_px']:+.2f} from it on its "
            f"{row['analysed']['iwae_images']} images, amortization gap {row['test_amortization_gap']:.2f}")


class Progress:
    """The sweep's progress lines, one per event, each with the elapsed time and the ETA."""

    def __init__(self, jobs, width, log):
        self.started, self.width, self.log = time.perf_counter(), width, log
        self.phase = {job: "pending" for job in jobs}  # pending, starting, training, analysing, finished, failed
        self.since = {}
        # Seconds taken and planned by the finished steps of this sweep, per step: what scales the plan.
        self.spent = {"training": [0.0, 0.0], "analysing": [0.0, 0.0]}
        self.from_epoch = {}  # the epoch each seed's training started from (0, or where it was resumed)

    def event(self, job, event):
        """A worker's event line (worker.announce) as a progress line, or none for the quiet ones."""
        step = event["step"]
        if step == "training":
            resumed = f" from epoch {event['from_epoch']}" if event["from_epoch"] else ""
            self.step(job, "training", "reusing its finished training" if event["reused"] else f"training{resumed}")
            self.from_epoch[job] = event["from_epoch"]
        elif step == "trained":
            trained = event["epochs"] - self.from_epoch.get(job, 0)
            if event["reused"] or not trained:
                self.step(job, "analysing", "analysing (no epoch left to train)")
            else:
                kept = f", kept epoch {event['best_epoch']}" if event.get("best_epoch") else ""
                stopped = " (stopped early)" if event.get("stopped_early") else ""
                # The plan is of all the epochs; these took what this many of them were planned to.
                planned = job.planned[0] * trained / job.config.epochs
                self.step(job, "analysing", f"trained to epoch {event['epochs']}{stopped}{kept} in "
                          f"{clock(self.elapsed_in_phase(job))}; analysing", spent=("training", planned))
        elif step == "analysed":
            self.spent["analysing"][0] += self.elapsed_in_phase(job)
            self.spent["analysing"][1] += job.planned[1]
        elif step == "done":
            self.step(job, "finished", "finished already: its row describes its checkpoint")

    def elapsed_in_phase(self, job):
        return time.perf_counter() - self.since[job]

    def step(self, job, phase, note, spent=None):
        """Move job to phase and print note with the elapsed time and the ETA; spent=(step, its planned
        seconds) adds the phase just ended to the seconds that scale the plan."""
        now = time.perf_counter()
        if spent is not None:
            self.spent[spent[0]][0] += now - self.since[job]
            self.spent[spent[0]][1] += spent[1]
        self.phase[job], self.since[job] = phase, now
        done = sum(p in ("finished", "failed") for p in self.phase.values())
        self.log(f"[{clock(now - self.started)}] {job.name}: {note}; {done}/{len(self.phase)} seeds done, "
                 f"ETA {clock(self.eta(now))}")

    def scale(self, step):
        taken, planned = self.spent[step]
        return taken / planned if planned else 1.0

    def left(self, job, now):
        """Planned seconds left of job, scaled by what the finished steps took against their plan."""
        training, analysis = job.planned[0] * self.scale("training"), job.planned[1] * self.scale("analysing")
        phase, elapsed = self.phase[job], now - self.since.get(job, now)
        if phase in ("pending", "starting"):
            return training + analysis
        if phase == "training":
            return max(training - elapsed, 0.0) + analysis
        if phase == "analysing":
            return max(analysis - elapsed, 0.0)
        return 0.0

    def eta(self, now):
        """Seconds until the last seed is done: the running seeds' time left on their cores, and each
        pending seed, in the order they start, on the core that frees first."""
        active = [job for job, phase in self.phase.items() if phase in ("starting", "training", "analysing")]
        cores = sorted([self.left(job, now) for job in active] + [0.0] * max(self.width - len(active), 0))
        for job in (job for job, phase in self.phase.items() if phase == "pending"):
            cores[0] += self.left(job, now)
            cores.sort()
        return max(cores, default=0.0)


def clock(seconds):
    """'m:ss', or 'h:mm:ss' from an hour on."""
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
