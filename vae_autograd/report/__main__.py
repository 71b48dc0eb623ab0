"""``python -m vae_autograd.report RESULTS_JSON [--readme README.md]``: rewrite report.md beside a
results.json (and, with --readme, the README's results block, and its block of the same numbers over seeds
from sweeps/assignment.json beside the README) from the numbers alone, no science."""
import argparse
import json
import sys
from pathlib import Path

from ..io.files import atomic_write
from .conform import check_results
from .page import README_END, README_START, readme_with_block, readme_with_results, write_report
from .seeds import README_SEEDS_END, README_SEEDS_START, readme_seed_block


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m vae_autograd.report", description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, help="a results.json written by run_all.py")
    parser.add_argument("--readme", type=Path, default=None,
                        help=f"also rewrite the block between {README_START.strip()} and {README_END.strip()} "
                             "of this README")
    args = parser.parse_args(argv)
    try:
        results = json.loads(args.results.read_text())
    except OSError as err:
        sys.exit(f"error: cannot read {args.results} ({err.strerror}); pass the results.json that run_all.py wrote")
    except ValueError as err:
        sys.exit(f"error: {args.results} is not JSON ({err}); pass the results.json that run_all.py wrote")
    try:
        check_results(results)
    except ValueError as err:
        sys.exit(f"error: {args.results} does not follow the schema of results.json ({err}); "
                 "rerun `python run_all.py` to write one that does")
    try:
        readme = None if args.readme is None else readme_with_block(
            readme_with_results(args.readme.read_text(), results), README_SEEDS_START, README_SEEDS_END,
            readme_seed_block(assignment_sweep(args.readme.parent / "sweeps" / "assignment.json")))
        write_report(args.results.with_name("report.md"), results)
    except OSError as err:
        sys.exit(f"error: cannot read or write {err.filename} ({err.strerror})")
    except ValueError as err:  # a README without its blocks, or a sweep JSON that is not JSON
        sys.exit(f"error: {args.readme}: {err}")
    if readme is not None:
        atomic_write(args.readme, lambda f: f.write(readme.encode()))


def assignment_sweep(path):
    """The assignment setting's sweep JSON at path, or None if there is none (OSError for another failure)."""
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None


if __name__ == "__main__":
    main()
