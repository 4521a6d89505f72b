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
