"""``make reproduce``: run the notebooks in order with papermill, holding the lock of ``runs/<profile>/``.

A second run on the same ``runs/<profile>/`` folder (same ``$GROSS_RUNS``) refuses
with a message naming the holder (or waits, ``--wait``) instead of both writing the
same files. Executed copies go to :func:`gross.utils.paths.executed_dir`.

Examples
--------
::

    python -m gross.pipeline.reproduce --profile smoke
    python -m gross.pipeline.reproduce --profile cpu --wait --notebooks 03_exhaustive_search
"""

from __future__ import annotations

import argparse
import sys
import textwrap
import time
from collections.abc import Sequence

from gross.utils import paths
from gross.runs.store import RunLocked, lock

__all__ = ["NotebookFailed", "describe_failure", "run_notebooks", "main"]


class NotebookFailed(RuntimeError):
    """A notebook of the run failed; the message names it, the failing cell and the error."""


def describe_failure(stem: str, output, exc: BaseException) -> str:
    """What failed, for the terminal: the notebook, the failing cell's source and the error's message.

    A :class:`papermill.exceptions.PapermillExecutionError` carries the cell (its source and
    execution count) and the exception raised in the kernel; any other error (no such
    kernel, an unreadable notebook) is named with its type and message.
    """
    from papermill.exceptions import PapermillExecutionError

    if isinstance(exc, PapermillExecutionError):
        source = textwrap.indent(str(exc.source).rstrip(), "    | ")
        return (f"notebooks/{stem}.ipynb failed in code cell [{exc.exec_count}]:\n{source}\n"
                f"{exc.ename}: {exc.evalue}\n(the executed copy, with the outputs so far: {output})")
    return f"notebooks/{stem}.ipynb could not run: {type(exc).__name__}: {exc} (executed copy: {output})"


def run_notebooks(profile: str, notebooks: Sequence[str] | None = None, kernel: str = "gross",
                  wait: bool = False, log=print) -> list[str]:
    """Execute ``notebooks`` (stems; default every ``notebooks/0*.ipynb``) in order under the run lock.

    The profile and notebook names are checked before anything is written. Returns the
    executed notebooks' paths.

    Raises
    ------
    ValueError
        An unknown profile or notebook (names the valid ones).
    RunLocked
        Another run holds the lock (and ``wait`` is false).
    NotebookFailed
        At the first failing notebook: names it, the failing cell's source and the error
        (:func:`describe_failure`); the original error is its ``__cause__``.
    """
    import papermill as pm

    from gross.runs.config import profiles

    if profile not in profiles():
        raise ValueError(f"unknown profile {profile!r}: valid profiles are {profiles()} (files in {paths.CONFIGS})")
    available = sorted(p.stem for p in paths.NOTEBOOKS.glob("0*.ipynb"))
    chosen = list(available if notebooks is None else notebooks)
    unknown = [n for n in chosen if n not in available]
    if unknown:
        raise ValueError(f"unknown notebook(s) {unknown}: choose from {available}")
    out_dir = paths.executed_dir(profile)
    done = []
    with lock(profile, wait=wait):
        for stem in chosen:
            output = out_dir / f"{stem}.ipynb"
            log(f"==> notebooks/{stem}.ipynb  (profile {profile}; executed copy: {output})")
            start = time.perf_counter()
            try:
                pm.execute_notebook(str(paths.NOTEBOOKS / f"{stem}.ipynb"), str(output), parameters={"profile": profile},
                                    kernel_name=kernel, cwd=str(paths.NOTEBOOKS), log_output=False,
                                    progress_bar=False)
            except Exception as exc:
                raise NotebookFailed(describe_failure(stem, output, exc)) from exc
            log(f"    done in {time.perf_counter() - start:.0f} s")
            done.append(str(output))
    return done


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="cpu", help="profile in configs/ (default: cpu)")
    parser.add_argument("--notebooks", nargs="*", default=None, help="notebook stems (default: all, in order)")
    parser.add_argument("--kernel", default="gross", help="Jupyter kernel (default: gross)")
    parser.add_argument("--wait", action="store_true", help="wait for another run on the same runs/ folder")
    args = parser.parse_args(argv)
    try:
        run_notebooks(args.profile, args.notebooks, args.kernel, args.wait)
    except RunLocked as exc:
        print(f"refusing to start: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except NotebookFailed as exc:
        print(f"FAILED: {exc}", file=sys.stderr)
        return 1
    print(f"all notebooks ran (profile {args.profile}); tables in {paths.results_dir(args.profile)}, "
          f"figures in {paths.figures_dir(args.profile)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
