"""The notebooks: committed clean, parametrised, and runnable end to end under ``smoke``.

Static checks (fast) run on every ``notebooks/*.ipynb``:
valid nbformat, no outputs or execution counts, the first code cell is tagged
``parameters`` and holds only annotated literal assignments (including ``profile``),
no ``def``/``class`` in code cells (library code lives in ``gross/``), kernel ``gross``.

The smoke run (``slow``, but part of ``make test`` and CI) executes ``notebooks/0*.ipynb``
in order with papermill, kernel ``gross`` and ``-p profile smoke`` -- exactly what
``make reproduce PROFILE=smoke`` does -- with ``$GROSS_RUNS`` in a temporary folder, then
checks that every file listed in ``gross.pipeline.EXPECTED_OUTPUTS`` (derived from the step
declarations, located by ``gross.pipeline.expected_paths("smoke")``) exists and is non-empty.
A notebook given a parameter its ``parameters`` cell does not declare fails, naming it.
"""

from __future__ import annotations

import ast
import json
import os
import re
import sys
import time
from pathlib import Path

import nbformat
import pytest

from gross.utils import paths

KERNEL = "gross"
#: Located from this test file, not from ``gross.utils.paths``: if that module moved or pointed elsewhere,
#: the notebook tests must fail (``test_notebooks_are_found``), not find nothing and skip.
NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
ALL_NOTEBOOKS = sorted(NOTEBOOKS.glob("*.ipynb"))
PIPELINE = sorted(NOTEBOOKS.glob("0*.ipynb"))  # the order ``make reproduce`` uses
DEF_OR_CLASS = re.compile(r"^\s*(async\s+def|def|class)\s+\w+", re.MULTILINE)
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _ids(notebooks):
    return [nb.stem for nb in notebooks]


def _read(path: Path):
    return nbformat.read(path, as_version=4)


def _code_cells(nb):
    return [cell for cell in nb.cells if cell.cell_type == "code"]


# --------------------------------------------------------------------------- static checks


def parameter_errors(source: str) -> list[str]:
    """Problems with a ``parameters`` cell: every statement must be ``name: type = literal``.

    Returns an empty list when the cell is fine.
    """
    try:
        tree = ast.parse(source)
    except SyntaxError as err:
        return [f"parameters cell does not parse: {err}"]
    errors = []
    for node in tree.body:
        line = ast.get_source_segment(source, node) or f"line {node.lineno}"
        if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)):
            errors.append(f"{line!r} is not an annotated assignment like `profile: str = \"cpu\"`")
            continue
        if node.value is None:
            errors.append(f"{line!r} has no value; give a default")
            continue
        try:
            ast.literal_eval(node.value)
        except ValueError:
            errors.append(f"{line!r} is not a literal (papermill can only override literals)")
    return errors


def test_notebooks_are_found():
    assert PIPELINE, f"no notebooks/0*.ipynb in {NOTEBOOKS}"
    assert paths.NOTEBOOKS.resolve() == NOTEBOOKS, f"gross.utils.paths.NOTEBOOKS is {paths.NOTEBOOKS}, not {NOTEBOOKS}"


def test_notebook_progress_bars_render():
    """tqdm's notebook bars need ipywidgets (pinned); without it they warn and fall back to text."""
    import warnings

    from tqdm.notebook import tqdm as notebook_tqdm

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # TqdmWarning: IProgress not found ... when ipywidgets is missing
        bar = notebook_tqdm(total=1, file=open(os.devnull, "w"))
        bar.update(1)
        bar.close()


@pytest.mark.parametrize("path", ALL_NOTEBOOKS, ids=_ids(ALL_NOTEBOOKS))
def test_papermill_sees_every_parameter(path):
    """``papermill -p NAME VALUE`` works without "Passed unknown parameter" for every declared knob.

    Papermill's parameter pattern reads annotations such as ``int`` or ``list[int]`` but not
    ``int | None``, so knobs whose default ``None`` means the profile's value are annotated with
    their value type (``four_layer_gross_epochs: int = None``).
    """
    from papermill.inspection import inspect_notebook

    cell = next(c for c in _code_cells(_read(path)) if "parameters" in c.metadata.get("tags", []))
    declared = [n.target.id for n in ast.parse(cell.source).body]
    assert list(inspect_notebook(str(path))) == declared


def test_parameter_errors_detects_bad_cells():
    assert parameter_errors('profile: str = "cpu"\nseed: int = 0\nsizes: tuple = (1, 2)\n') == []
    assert parameter_errors('profile = "cpu"')  # not annotated
    assert parameter_errors("import os")  # not an assignment
    assert parameter_errors("n: int = len([1])")  # not a literal
    assert parameter_errors("n: int")  # no value
    assert parameter_errors("n: int = ")  # syntax error


def test_def_or_class_pattern():
    assert DEF_OR_CLASS.search("x = 1\ndef f(x):\n    return x")
    assert DEF_OR_CLASS.search("    class A:\n        pass")
    assert not DEF_OR_CLASS.search("f = lambda x: x  # define nothing\nundefined = 1")


@pytest.mark.parametrize("path", ALL_NOTEBOOKS, ids=_ids(ALL_NOTEBOOKS))
def test_notebook_is_valid_and_clean(path):
    nb = _read(path)
    nbformat.validate(nb)
    dirty = [
        i for i, cell in enumerate(nb.cells)
        if cell.cell_type == "code" and (cell.get("outputs") or cell.get("execution_count") is not None)
    ]
    assert not dirty, f"{path.name}: cells {dirty} carry outputs/execution counts; clear them before committing"
    kernel = nb.metadata.get("kernelspec", {}).get("name")
    assert kernel == KERNEL, f"{path.name}: kernelspec is {kernel!r}, expected {KERNEL!r}"


@pytest.mark.parametrize("path", ALL_NOTEBOOKS, ids=_ids(ALL_NOTEBOOKS))
def test_notebook_parameters_cell(path):
    cells = _code_cells(_read(path))
    assert cells, f"{path.name} has no code cells"
    first = cells[0]
    assert "parameters" in first.metadata.get("tags", []), (
        f"{path.name}: the first code cell must be tagged 'parameters' (papermill injects after it)"
    )
    errors = parameter_errors(first.source)
    assert not errors, f"{path.name}: " + "; ".join(errors)
    names = {node.target.id for node in ast.parse(first.source).body}
    assert "profile" in names, f"{path.name}: the parameters cell must define `profile: str`"


@pytest.mark.parametrize("path", ALL_NOTEBOOKS, ids=_ids(ALL_NOTEBOOKS))
def test_notebook_defines_no_functions_or_classes(path):
    offenders = [
        f"cell {i}: {match.group(0).strip()}"
        for i, cell in enumerate(_code_cells(_read(path)))
        for match in DEF_OR_CLASS.finditer(cell.source)
    ]
    assert not offenders, f"{path.name} defines code that belongs in gross/: {offenders}"


def test_every_notebook_has_expected_outputs():
    from gross.pipeline import EXPECTED_OUTPUTS

    stems = {nb.stem for nb in PIPELINE}
    missing = sorted(stems - set(EXPECTED_OUTPUTS))
    unknown = sorted(set(EXPECTED_OUTPUTS) - stems)
    assert not missing, f"gross.pipeline.EXPECTED_OUTPUTS has no entry for notebooks {missing}"
    assert not unknown, f"EXPECTED_OUTPUTS names notebooks that do not exist: {unknown}"


@pytest.mark.parametrize("path", ALL_NOTEBOOKS, ids=_ids(ALL_NOTEBOOKS))
def test_config_cell_checks_the_parameters(path):
    """The cell after ``parameters`` loads the config through ``gross.runs.config.load_notebook(In, profile, ...)``."""
    cells = _code_cells(_read(path))
    assert len(cells) > 1 and "gross.runs.config.load_notebook(" in cells[1].source, (
        f"{path.name}: the second code cell must call gross.runs.config.load_notebook(In, profile, ...) so that "
        f"unknown parameters fail and every parameter reaches gross.runs.config"
    )
    assert "In, profile" in cells[1].source.replace("\n", " ").replace("(  ", "(")


@pytest.mark.slow
def test_unknown_notebook_parameter_fails(tmp_path):
    """``papermill ... -p epochs_typo 3`` stops at the config cell, naming the name and the valid ones."""
    import papermill as pm

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GROSS_RUNS", str(tmp_path / "runs"))
        _use_this_interpreter_as_kernel(mp, tmp_path / "jupyter")
        nb = paths.NOTEBOOKS / "03_exhaustive_search.ipynb"
        with pytest.raises(pm.PapermillExecutionError) as err:
            pm.execute_notebook(str(nb), str(tmp_path / "out.ipynb"), parameters={"profile": "smoke", "epochs_typo": 3},
                                kernel_name=KERNEL, cwd=str(paths.NOTEBOOKS), progress_bar=False)
    msg = ANSI.sub("", str(err.value))
    assert "unknown notebook parameter(s) ['epochs_typo']" in msg
    assert "this notebook's parameters are ['profile', 'seed', 'device', " in msg


def _pins(lines) -> set[str]:
    return {m.group(1) for line in lines if (m := re.match(r"^[\s-]*([A-Za-z0-9_.\-]+==[^\s#]+)", line))}


def test_environment_yml_has_the_requirements_pins():
    requirements = _pins((paths.ROOT / "requirements.txt").read_text().splitlines())
    conda = _pins((paths.ROOT / "environment.yml").read_text().splitlines())
    assert requirements, "requirements.txt pins nothing"
    assert conda == requirements, (
        f"environment.yml and requirements.txt disagree: only in requirements.txt {sorted(requirements - conda)}, "
        f"only in environment.yml {sorted(conda - requirements)}"
    )


# --------------------------------------------------------------------------- smoke run


def _kernel_argv0() -> str | None:
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        return KernelSpecManager().get_kernel_spec(KERNEL).argv[0]
    except NoSuchKernel:
        return None


def _is_this_interpreter(argv0: str | None) -> bool:
    """Same ``bin/`` folder as ``sys.executable`` (a venv's python is only a symlink to the base one)."""
    return argv0 is not None and Path(argv0).parent.resolve() == Path(sys.executable).parent.resolve()


def _use_this_interpreter_as_kernel(mp: pytest.MonkeyPatch, spare_dir: Path) -> None:
    """Make kernel ``gross`` resolve to the interpreter running the tests.

    ``make env`` installs the kernel into the venv (``--sys-prefix``); putting that folder
    first on ``JUPYTER_PATH`` beats a ``gross`` kernel another clone left in the user folder.
    Without ``make env`` (e.g. conda users), a temporary kernelspec is written instead.
    """
    jupyter_path = [str(Path(sys.prefix) / "share" / "jupyter")]
    mp.setenv("JUPYTER_PATH", os.pathsep.join(jupyter_path + [os.environ.get("JUPYTER_PATH", "")]).rstrip(os.pathsep))
    argv0 = _kernel_argv0()
    if not _is_this_interpreter(argv0):
        spec_dir = spare_dir / "kernels" / KERNEL
        spec_dir.mkdir(parents=True, exist_ok=True)
        spec = {
            "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "Python (gross)",
            "language": "python",
        }
        (spec_dir / "kernel.json").write_text(json.dumps(spec))
        mp.setenv("JUPYTER_PATH", os.pathsep.join([str(spare_dir), os.environ["JUPYTER_PATH"]]))
    argv0 = _kernel_argv0()
    assert _is_this_interpreter(argv0), (
        f"kernel {KERNEL!r} resolves to {argv0}, not to {sys.executable}"
    )


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    """Run every pipeline notebook in order under ``profile=smoke``; stop at the first failure.

    Returns a dict ``stem -> {"error": str | None, "seconds": float, "output": Path}``;
    notebooks after a failure are absent.
    """
    import papermill as pm

    tmp = tmp_path_factory.mktemp("smoke")
    report = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GROSS_RUNS", str(tmp / "runs"))
        mp.setenv("MPLBACKEND", "Agg")
        _use_this_interpreter_as_kernel(mp, tmp / "jupyter")
        for path in PIPELINE:
            output = tmp / "executed" / path.name
            output.parent.mkdir(parents=True, exist_ok=True)
            start = time.perf_counter()
            error = None
            try:
                pm.execute_notebook(
                    str(path), str(output), parameters={"profile": "smoke"}, kernel_name=KERNEL,
                    cwd=str(paths.NOTEBOOKS), progress_bar=False, log_output=False,
                )
            except Exception as exc:  # papermill's error names the failing cell
                error = ANSI.sub("", str(exc))
            report[path.stem] = {"error": error, "seconds": time.perf_counter() - start, "output": output}
            if error is not None:
                break
        # the checks below read GROSS_RUNS through gross.utils.paths, so keep it set while they run
        yield report


@pytest.mark.slow
@pytest.mark.parametrize("path", PIPELINE, ids=_ids(PIPELINE))
def test_notebook_smoke_run(smoke_run, path, record_property):
    from gross.pipeline import expected_paths

    if path.stem in smoke_run:
        record_property("smoke_seconds", round(smoke_run[path.stem]["seconds"], 1))
    if path.stem not in smoke_run:
        failed = next(stem for stem, run in smoke_run.items() if run["error"])
        pytest.fail(f"{path.name} did not run: the earlier notebook {failed} failed")
    run = smoke_run[path.stem]
    if run["error"] is not None:
        pytest.fail(
            f"{path.name} failed under profile smoke after {run['seconds']:.0f} s "
            f"(executed copy: {run['output']}):\n{run['error']}",
            pytrace=False,
        )
    expected = expected_paths("smoke").get(path.stem, [])
    problems = [f"{f.name}: missing" for f in expected if not f.is_file()]
    problems += [f"{f.name}: empty" for f in expected if f.is_file() and f.stat().st_size == 0]
    assert not problems, (
        f"{path.name} ran in {run['seconds']:.0f} s but its outputs are wrong "
        f"(looked in {paths.run_dir('smoke')}): {problems}"
    )
