"""The report's tests read a stored results.json (a --quick run's, results-quick.json beside this
file) and change its numbers to reach every branch of a sentence: they compute no science."""
import json
from pathlib import Path

import pytest

STORED_RESULTS = Path(__file__).with_name("results-quick.json")


@pytest.fixture
def results():
    """A fresh copy of the stored results.json, free to change."""
    return json.loads(STORED_RESULTS.read_text())
