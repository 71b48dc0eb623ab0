"""Process settings of the command-line entry points: one line for an interrupt at any moment
(start-up and shut-down included), SIGTERM as Ctrl-C, glibc told to keep freed memory, and the
peak resident memory of a stretch of the run."""
import os
import signal
import time
from contextlib import contextmanager

STARTING = b"interrupted while starting; nothing was written\n"


def exit_on_interrupt_while_starting():
    """Until interrupt_on_sigterm() is called, end the process on Ctrl-C or SIGTERM with one line
    and exit status 130.

    Called first by the entry points, before their imports (numpy, autograd, matplotlib take
    a second): an interrupt there would otherwise print a KeyboardInterrupt traceback, and a
    SIGTERM would end the process with no message. Nothing is written before the entry point
    takes over, so exiting at once (os._exit, no clean-up) loses nothing.
    """
    def exit_now(signum, frame):
        os.write(2, STARTING)
        os._exit(130)

    signal.signal(signal.SIGINT, exit_now)
    signal.signal(signal.SIGTERM, exit_now)


def interrupt_on_sigterm():
    """Make Ctrl-C and SIGTERM raise KeyboardInterrupt, so that temporary files are removed and
    the entry point prints its one-line message. Called at the start of its try block.

    One interrupt is enough: the first one ignores the next, which would otherwise cut short the
    clean-up the first one started and print a traceback.
    """
    def raise_interrupt(signum, frame):
        ignore_interrupts()
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, raise_interrupt)
    signal.signal(signal.SIGTERM, raise_interrupt)


def ignore_interrupts():
    """Ignore Ctrl-C and SIGTERM from here on. Called by the entry points once main() is over
    (done, refused or interrupted), so that its exit status and last line stand: as Python shuts
    down it puts back the default handlers, and a signal then would end the process by that
    signal, with no message, after a run that finished."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def end_with_parent(parent_pid):
    """Have the kernel send this process SIGTERM when its parent ends, however it ends (Linux's
    PR_SET_PDEATHSIG; a no-op elsewhere), and send it now if parent_pid is gone already: a worker
    whose sweep was killed stops (resumably) instead of writing on beside the next sweep."""
    import ctypes  # here, not at the top, as in keep_freed_memory

    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # 1: PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent_pid:  # the parent ended before the request above
        os.kill(os.getpid(), signal.SIGTERM)


def keep_freed_memory():
    """Ask glibc to keep freed memory instead of handing it back to the OS.

    Every training step allocates and frees the same few-hundred-KB arrays (activations,
    autograd's gradient buffers). By default glibc serves such blocks with fresh mmaps and
    trims freed memory, so each step page-faults them in again: measured here, 4x slower.
    Called by the command-line entry points only; a no-op where glibc is absent.
    """
    import ctypes  # here, not at the top: the entry points import this module before setting their handlers

    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-1, 1 << 30)  # M_TRIM_THRESHOLD
        libc.mallopt(-3, 1 << 30)  # M_MMAP_THRESHOLD
    except (OSError, AttributeError):
        pass


def peak_resident_bytes(reset=False):
    """This process's peak resident memory in bytes, since it started or since the last reset
    (Linux's VmHWM), and with reset=True start a new peak from here (/proc/self/clear_refs).
    None where /proc does not tell it (the entry points then print no memory column)."""
    try:
        with open("/proc/self/status") as status:
            peak = next((int(line.split()[1]) * 1024 for line in status if line.startswith("VmHWM:")), None)
        if reset:
            with open("/proc/self/clear_refs", "w") as clear:
                clear.write("5")
    except OSError:
        return None
    return peak


class PartClock:
    """Wall time and peak resident memory of the named parts of a run: the table its log ends with.

    Each part's peak is its own (the peak is reset as it starts); the run's peak is the largest
    of them and of the stretches between parts. Use: ``with clock.part("part 3"): ...``.
    """

    def __init__(self):
        self.started = time.perf_counter()
        self.rows = []  # (name, seconds, peak bytes or None)
        self.peak_between = peak_resident_bytes()

    @contextmanager
    def part(self, name):
        self.peak_between = max_known(self.peak_between, peak_resident_bytes(reset=True))
        start = time.perf_counter()
        try:
            yield
        finally:
            self.rows.append((name, time.perf_counter() - start, peak_resident_bytes(reset=True)))

    def seconds(self, name):
        """Total seconds of the parts so named."""
        return sum(seconds for part, seconds, _ in self.rows if part == name)

    def table(self):
        """Lines of a table: each part's seconds and peak memory, and the whole run's."""
        peak = max_known(self.peak_between, peak_resident_bytes(), *(row[2] for row in self.rows))
        rows = [*self.rows, ("whole run", time.perf_counter() - self.started, peak)]
        width = max(len(name) for name, _, _ in rows)
        return [f"{'part':{width}}  seconds  peak memory (MB, 10^6 bytes)"] + [
            f"{name:{width}}  {seconds:7.1f}  {'-' if peak is None else f'{peak / 1e6:,.0f}':>29}"
            for name, seconds, peak in rows]


def max_known(*values):
    """The largest of values that are not None, or None."""
    known = [v for v in values if v is not None]
    return max(known) if known else None
