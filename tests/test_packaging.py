"""The declared support range and the pins CI tests its lowest end with say the same thing."""
import configparser
import re

from tests.helpers import REPO


def declared_floors():
    """{package: lowest version} from setup.cfg's install_requires and test extra."""
    config = configparser.ConfigParser()
    config.read(REPO / "setup.cfg")
    lines = (config["options"]["install_requires"] + "\n"
             + config["options.extras_require"]["test"]).splitlines()
    floors = {}
    for line in lines:
        match = re.match(r"\s*([A-Za-z0-9_-]+)\s*>=\s*([0-9.]+)", line)
        if match:
            floors[match.group(1).lower()] = match.group(2)
    return floors


def release(version):
    """'1.7' -> (1, 7, 0): versions compared as numbers, missing parts zero."""
    parts = [int(p) for p in version.split(".")]
    return tuple(parts + [0] * (3 - len(parts)))


def test_lowest_leg_pins_exactly_the_declared_floors():
    text = (REPO / ".ci" / "lowest-versions.txt").read_text()
    pins = dict(line.split("==") for line in text.splitlines() if line and not line.startswith("#"))
    floors = declared_floors()
    floors.pop("ruff")  # the linter runs in the README's own leg only
    assert {name: release(v) for name, v in pins.items()} == {name: release(v) for name, v in floors.items()}


def test_the_package_and_run_all_import_without_the_test_extras():
    """scipy is a test dependency only: nothing `pip install -e .` runs may import it."""
    import subprocess
    import sys
    code = ("import importlib, pkgutil, sys; sys.modules['scipy'] = None; sys.path.insert(0, sys.argv[1]); "
            "import vae_autograd; "
            "[importlib.import_module('vae_autograd.' + m.name) for m in pkgutil.iter_modules(vae_autograd.__path__)]; "
            "import run_all")
    result = subprocess.run([sys.executable, "-c", code, str(REPO)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
