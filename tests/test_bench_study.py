"""benchmarks/bench_study.py reads the table that run_all.py's log ends with (io.process.PartClock)."""
import importlib.util
import time

from tests.helpers import REPO
from vae_autograd.io.process import PartClock


def test_the_benchmark_reads_the_table_run_all_prints():
    spec = importlib.util.spec_from_file_location("bench_study", REPO / "benchmarks" / "bench_study.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    clock = PartClock()
    for name in bench.TRAINING_PARTS + bench.ANALYSIS_PARTS:
        with clock.part(name):
            block = b"\x01" * 30_000_000  # 30 MB written, so resident, in this part
            time.sleep(0.1)
            del block
    log = "\n".join(f"[{i:6.1f}s] {line}" for i, line in enumerate(["part 8: ...", *clock.table()]))
    table = bench.part_table(log)
    assert list(table) == [*bench.TRAINING_PARTS, *bench.ANALYSIS_PARTS, "whole run"]
    assert all(seconds >= 0.1 for seconds, _ in table.values())
    assert all(peak >= 30 for _, peak in table.values())  # each part's own peak holds its 30 MB
