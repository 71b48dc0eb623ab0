"""The report's number formatting (vae_autograd.report.format)."""
import re

import numpy as np

from tests.helpers import REPO
from vae_autograd.core.text import at_most


def test_at_most_never_rounds_down():
    assert at_most(3.05e-5) == "3.1e-05" and at_most(3e-5) == "3.0e-05"  # not "3e-05" for 3.05e-05
    assert at_most(12.34) == "13" and at_most(0.0042) == "0.0042" and at_most(2.5, 3) == "2.50"
    values = np.random.default_rng(0).lognormal(-3, 4, 2000)
    assert all(float(at_most(v)) >= v for v in values)


def test_every_at_most_in_the_report_is_rounded_up():
    """Each "at most" of the report's sentences prints its bound with at_most: a new sentence that
    rounds a bound down (3e-05 for 3.05e-05) fails here."""
    for path in sorted((REPO / "vae_autograd" / "report").glob("*.py")):
        source = path.read_text()
        for match in re.finditer(r"at most", source):
            following = source[match.end():match.end() + 200]
            field = following.find("{")
            if field < 0 or "\n\n" in following[:field] or '"""' in following[:field]:
                continue  # prose in a docstring or comment, not a sentence with a number
            assert following[field:].startswith("{at_most("), f"{path.name}: at most {following[:60]!r}"
