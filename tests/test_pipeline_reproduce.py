"""Tests of gross.pipeline.reproduce (``make reproduce``): the run lock and argument checks."""

import pytest

from gross.pipeline import reproduce
from gross.runs import store


def test_second_run_on_the_same_runs_folder_refuses(gross_runs, capsys):
    with store.lock("smoke"):
        assert reproduce.main(["--profile", "smoke", "--notebooks", "03_exhaustive_search"]) == 2
    err = capsys.readouterr().err
    assert "refusing to start" in err and "is in use by another run" in err and "GROSS_RUNS" in err


def test_unknown_notebook_is_rejected(gross_runs):
    with pytest.raises(ValueError, match=r"unknown notebook\(s\) \['07_x'\]: choose from \['00_grouped"):
        reproduce.run_notebooks("smoke", ["07_x"])


def _fail_with(monkeypatch, exc):
    import papermill

    def execute_notebook(src, out, **kwargs):
        raise exc

    monkeypatch.setattr(papermill, "execute_notebook", execute_notebook)


@pytest.mark.probe
def test_a_failing_notebook_names_its_cell_and_error(gross_runs, monkeypatch, capsys):
    from papermill.exceptions import PapermillExecutionError

    exc = PapermillExecutionError(cell_index=3, exec_count=2, source="cfg = load(profile)\nrun(cfg)",
                                  ename="ValueError", evalue="four_layer.repeats must be >= 1, got 0",
                                  traceback=[])
    _fail_with(monkeypatch, exc)
    assert reproduce.main(["--profile", "smoke", "--notebooks", "03_exhaustive_search"]) == 1
    err = capsys.readouterr().err
    assert "notebooks/03_exhaustive_search.ipynb failed in code cell [2]" in err
    assert "    | cfg = load(profile)\n    | run(cfg)" in err
    assert "ValueError: four_layer.repeats must be >= 1, got 0" in err
    assert str(gross_runs / "smoke" / "executed" / "03_exhaustive_search.ipynb") in err


@pytest.mark.probe
def test_a_missing_kernel_is_named(gross_runs, monkeypatch, capsys):
    from jupyter_client.kernelspec import NoSuchKernel

    _fail_with(monkeypatch, NoSuchKernel("nokernel"))
    assert reproduce.main(["--profile", "smoke", "--kernel", "nokernel", "--notebooks", "03_exhaustive_search"]) == 1
    err = capsys.readouterr().err
    assert "could not run: NoSuchKernel" in err and "nokernel" in err


@pytest.mark.probe
def test_unknown_notebook_message_reaches_the_terminal(gross_runs, capsys):
    assert reproduce.main(["--profile", "smoke", "--notebooks", "02"]) == 2
    assert "unknown notebook(s) ['02']: choose from" in capsys.readouterr().err


@pytest.mark.probe
@pytest.mark.parametrize("profile", ["../../etc/passwd", "nosuchprofile", ".hidden"])
def test_a_bad_profile_is_refused_before_anything_is_written(gross_runs, tmp_path, monkeypatch, capsys, profile):
    monkeypatch.setenv("GROSS_OUTPUTS", str(tmp_path / "out"))
    assert reproduce.main(["--profile", profile]) == 2
    assert "valid profiles are" in capsys.readouterr().err
    assert list(gross_runs.rglob("*")) == [] and not (tmp_path / "out").exists()
