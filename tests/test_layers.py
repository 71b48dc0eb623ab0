"""The package's layer rules, checked on its source, so that a new module cannot break them silently.

Every module under vae_autograd/ is read as text and parsed with ast (nothing is imported):
  * no module is over 350 lines, and each opens with a docstring;
  * only modules under vae_autograd/figures/ import matplotlib;
  * imports run one way: core and io import nothing else of the package; train imports
    core and io; study imports core; figures imports core and study; seeds (the sweeps, an orchestration
    layer like run_all.py) imports any of them; report imports only
    report (the report is a pure function of results.json), but for io.files, whose atomic
    writes it may use, and core.text, the percent formatter it shares with the figure titles.
    Each layer may import its own modules; relative imports are resolved.
"""
import ast

from tests.helpers import REPO

PACKAGE = "vae_autograd"
MAX_LINES = 350
ALLOWED = {  # layer -> the other layers (or single modules) it may import
    "core": set(),
    "io": set(),
    "train": {"core", "io"},
    "study": {"core"},
    "figures": {"core", "study"},
    "report": {"io.files", "core.text"},
    # An orchestration layer, like run_all.py: it trains, analyses, draws and writes the page.
    "seeds": {"core", "io", "train", "study", "figures", "report"},
}


def package_modules():
    """{dotted module name: path} of every module of the package, __init__ and __main__ included."""
    modules = {}
    for path in sorted((REPO / PACKAGE).rglob("*.py")):
        parts = path.relative_to(REPO).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


MODULES = package_modules()


def parse(name):
    return ast.parse(MODULES[name].read_text(), filename=str(MODULES[name]))


def imported_modules(name):
    """The absolute names of what module `name` imports anywhere in its body (function-level too)."""
    return imports_in(parse(name), name, MODULES[name].name == "__init__.py")


def imports_in(tree, name, is_package=False):
    """What the module `name` (a package's __init__ if is_package), parsed as `tree`, imports."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                # from . import x in a.b.c resolves against a.b; in a.b/__init__.py against a.b itself.
                anchor = name.split(".")
                anchor = anchor[:len(anchor) - node.level + (1 if is_package else 0)]
                base = ".".join(anchor + ([node.module] if node.module else []))
            else:
                base = node.module
            for alias in node.names:
                # `from pkg import submodule` imports the submodule; `from module import name`, the module.
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base)
    return found


def layer(name):
    """'core', 'io', ... for a module of a layer; None for the package root."""
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else None


def test_no_module_is_over_350_lines():
    too_long = [f"{name}: {n} lines" for name, path in MODULES.items()
                if (n := len(path.read_text().splitlines())) > MAX_LINES]
    assert not too_long, f"modules over {MAX_LINES} lines: " + "; ".join(too_long)


def test_every_module_opens_with_a_docstring():
    missing = [name for name in MODULES if ast.get_docstring(parse(name)) is None]
    assert not missing, "modules without an opening docstring: " + ", ".join(missing)


def test_only_the_figures_layer_imports_matplotlib():
    offenders = [f"{name} imports {', '.join(sorted(hits))}" for name in MODULES if layer(name) != "figures"
                 for hits in [{m for m in imported_modules(name) if m.split(".")[0] == "matplotlib"}] if hits]
    assert not offenders, "matplotlib outside vae_autograd/figures/: " + "; ".join(offenders)


def test_imports_run_one_way_between_layers():
    wrong = []
    for name in MODULES:
        own = layer(name)
        if own is None:
            continue
        for target in sorted(imported_modules(name)):
            if target.split(".")[0] != PACKAGE or target == PACKAGE:
                continue  # other packages, and the root package (a docstring only)
            other = layer(target)
            inner = target[len(PACKAGE) + 1:]
            if other == own or other in ALLOWED[own] or inner in ALLOWED[own]:
                continue
            wrong.append(f"{name} ({own}) imports {target}")
    assert not wrong, "imports against the layer order: " + "; ".join(wrong)


def test_relative_and_nested_imports_are_resolved():
    """The checks' own parser: relative imports resolve against the module's package."""
    source = ("from . import grids\nfrom .grids import latent_grid\nfrom ..core.model import encoder\n"
              "def f():\n    from ...vae_autograd import io\n    import matplotlib.pyplot as plt\n")
    tree = ast.parse(source)
    assert imports_in(tree, "vae_autograd.study.svi") >= {
        "vae_autograd.study.grids", "vae_autograd.core.model", "matplotlib.pyplot"}
    assert "vae_autograd.study.grids" in imports_in(ast.parse("from . import grids"), "vae_autograd.study", True)
    assert layer("vae_autograd.study.svi") == "study" and layer(PACKAGE) is None


# What writes, renames or removes a file: only io.files may call these, so that every file the
# project writes is written atomically, checked before any work and cleaned up after a kill.
FILE_WRITERS = {"write_text", "write_bytes", "rename", "unlink", "remove", "rmtree", "save", "savez",
                "savez_compressed", "savetxt", "mkstemp", "mkdtemp", "touch"}
# str.replace and dataclasses.replace are everywhere; os.replace is the one that renames a file.
MODULE_WRITERS = {("os", "replace")}


def test_only_io_files_writes_files():
    sources = {name: path for name, path in MODULES.items() if name != f"{PACKAGE}.io.files"}
    sources["run_all"] = REPO / "run_all.py"
    found = []
    for name, path in sources.items():
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if not isinstance(node, ast.Call):
                continue
            called = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            mode = node.args[1] if called == "open" and len(node.args) > 1 else next(
                (k.value for k in node.keywords if k.arg == "mode"), None) if called == "open" else None
            writes_open = isinstance(mode, ast.Constant) and any(c in str(mode.value) for c in "wax+")
            owner = getattr(node.func, "value", None)
            by_module = isinstance(owner, ast.Name) and (owner.id, called) in MODULE_WRITERS
            if called in FILE_WRITERS or by_module or writes_open:
                found.append((name, called, node.lineno))
    # The exceptions: a checkpoint's zip members and a figure's PNG (figures.save_png), each written
    # into the file object of atomic_write's temporary file, and the kernel's /proc/self/clear_refs,
    # which resets the peak memory (PartClock): no file is written.
    assert sorted((name, called) for name, called, _ in found) == [(f"{PACKAGE}.figures", "save"),
                                                                  (f"{PACKAGE}.io.process", "open"),
                                                                  (f"{PACKAGE}.train.checkpoints", "open")], found
