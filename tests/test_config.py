"""Tests of gross.runs.config: profile loading, merging and validation."""

import tomllib

import pytest

from gross.runs import config
from gross.utils import paths


def test_every_profile_loads_and_has_the_paper_schema():
    paper = config.flatten(config.load("paper"))
    assert set(config.profiles()) >= {"smoke", "cpu", "paper"}
    for name in config.profiles():
        cfg = config.load(name)
        assert cfg["profile"] == name
        assert set(config.flatten(cfg)) == set(paper)


def test_paper_profile_has_the_papers_values():
    cfg = config.load("paper")
    assert cfg["four_layer"]["gross_epochs"] == 150
    assert cfg["four_layer"]["repeats"] == 5
    assert cfg["four_layer"]["btd_tol"] == 1e-6
    assert cfg["vgg16"]["btd_tol"] == 1e-5
    assert cfg["vgg16"]["group_sizes"] == [1, 4, 16, 32]
    assert (cfg["vgg16"]["bfs_runs"], cfg["vgg16"]["bfs_max_steps"]) == (20, 25)
    assert cfg["ap"]["n_configs"] == 45 and cfg["ap"]["partial_epochs"] == 5
    assert "partial_epochs" not in cfg["four_layer"]  # the partial fine-tune is Table 5's: ap.partial_epochs
    assert cfg["four_layer"]["btd_max_iter"] == 500_000
    assert config.reductions(cfg) == []


def test_profile_overrides_merge_over_paper():
    with open(paths.CONFIGS / "smoke.toml", "rb") as fh:
        raw = tomllib.load(fh)
    cfg = config.load("smoke")
    assert cfg["four_layer"]["gross_epochs"] == raw["four_layer"]["gross_epochs"]
    # a key smoke.toml does not set keeps the paper's value
    assert "config_epochs" not in raw.get("ap", {})
    assert cfg["vgg16"]["group_sizes"] == config.load("paper")["vgg16"]["group_sizes"]


def test_unknown_profile_lists_valid_ones():
    with pytest.raises(ValueError, match=r"unknown profile 'gpu'.*'cpu'.*'paper'.*'smoke'"):
        config.load("gpu")


def test_unknown_override_key_names_key_and_valid_keys():
    with pytest.raises(ValueError, match=r"unknown config key 'n_epochs'.*four_layer__gross_epochs"):
        config.load("smoke", n_epochs=3)


def test_unknown_key_in_a_profile_file_is_rejected(tmp_path, monkeypatch):
    (tmp_path / "paper.toml").write_bytes((paths.CONFIGS / "paper.toml").read_bytes())
    (tmp_path / "bad.toml").write_text("[four_layer]\ngross_epoch = 3\n")
    monkeypatch.setattr(paths, "CONFIGS", tmp_path)
    with pytest.raises(ValueError, match=r"unknown config key 'four_layer.gross_epoch' in configs/bad.toml"):
        config.load("bad")


@pytest.mark.parametrize(
    "override, message",
    [
        ({"seed": "1"}, r"'seed' must be of type int"),
        ({"seed": True}, r"'seed' must be of type int"),
        ({"four_layer__repeats": 2.5}, r"'four_layer.repeats' must be of type int"),
        ({"data_path": 3}, r"'data.path' must be of type str"),
        ({"vgg16__group_sizes": [1, "4"]}, r"'vgg16.group_sizes' must be of type int"),
        ({"four_layer__baselines": 32}, r"'four_layer.baselines' must be of type list"),
    ],
)
def test_type_mismatch_is_rejected(override, message):
    with pytest.raises(ValueError, match=message):
        config.load("smoke", **override)


def test_value_constraints():
    with pytest.raises(ValueError, match=r"'data.source' must be one of"):
        config.load("smoke", data__source="mnist")
    with pytest.raises(ValueError, match=r"'four_layer.gross_epochs' must be > 0"):
        config.load("smoke", four_layer__gross_epochs=0)
    with pytest.raises(ValueError, match=r"'seed' must be >= 0"):
        config.load("smoke", seed=-1)


def test_override_spellings():
    cfg = config.load("smoke", seed=7, four_layer__repeats=3, data_path="/x", held_out=12,
                      vgg16__btd_tol=1)
    assert cfg["seed"] == 7
    assert cfg["four_layer"]["repeats"] == 3
    assert cfg["data"]["path"] == "/x"
    assert cfg["imagenet"]["held_out"] == 12  # a bare key unique to one section
    # int accepted for a float key, stored as float
    assert cfg["vgg16"]["btd_tol"] == 1.0 and isinstance(cfg["vgg16"]["btd_tol"], float)
    # other sections untouched
    assert cfg["four_layer"]["btd_tol"] == config.load("smoke")["four_layer"]["btd_tol"]


def test_ambiguous_override_is_rejected():
    with pytest.raises(ValueError, match=r"'bfs_runs' is ambiguous.*imagenet.bfs_runs.*vgg16.bfs_runs"):
        config.load("smoke", bfs_runs=3)


def test_load_returns_independent_dicts():
    a = config.load("smoke")
    a["vgg16"]["group_sizes"].append(64)  # a copy: the config itself cannot be changed
    assert config.load("smoke")["vgg16"]["group_sizes"] == [1, 4, 16, 32]


def test_reductions_diff_against_paper():
    cfg = config.load("paper", four_layer__gross_epochs=3, device="cpu")
    assert config.reductions(cfg) == ["four_layer.gross_epochs = 3 (paper: 150)"]
    smoke = config.reductions(config.load("smoke"))
    assert "four_layer.repeats = 1 (paper: 5)" in smoke
    assert not any(r.startswith(("device", "num_threads", "data.eval_batch_size")) for r in smoke)


def test_parse_overrides_reads_toml_values():
    parsed = config.parse_overrides(["four_layer__repeats=2", "btd_tol = 1e-5", "device=cpu", 'data_path="x y"',
                                     "baselines=[4, 16]", "ap__drops=[0,1]"])
    assert parsed == {"four_layer__repeats": 2, "btd_tol": 1e-5, "device": "cpu", "data_path": "x y",
                      "baselines": [4, 16], "ap__drops": [0, 1]}
    cfg = config.load("smoke", **config.parse_overrides(["four_layer__repeats=3"]))
    assert cfg["four_layer"]["repeats"] == 3
    for bad in ("repeats", "=3"):
        with pytest.raises(ValueError, match="must look like KEY=VALUE"):
            config.parse_overrides([bad])


def test_config_records_the_keys_read():
    cfg = config.load("smoke")
    with config.recording() as outer:
        with config.recording() as inner:
            cfg["seed"]
            cfg["four_layer"].get("btd_tol")
        list(cfg["ap"].items())
        cfg["profile"]  # the profile name is not a setting
    assert inner == {"seed", "four_layer.btd_tol"}
    assert outer == inner | {f"ap.{k}" for k in cfg["ap"]}
    with config.recording() as reads:
        cfg.to_dict()
        config.reductions(cfg)
    assert reads == set()  # serialising and diffing read nothing
    cfg["seed"]  # outside a recording: nothing to record into, no error


def test_config_is_read_only_and_names_missing_keys():
    cfg = config.load("smoke")
    with pytest.raises(TypeError):
        cfg["seed"] = 3
    with pytest.raises(KeyError, match=r"no config key 'four_layer.partial_epochs'"):
        cfg["four_layer"]["partial_epochs"]
    assert config.lookup(cfg, "vgg16.bfs_runs") == cfg["vgg16"]["bfs_runs"]


def test_reductions_restricted_to_keys():
    cfg = config.load("smoke")
    assert config.reductions(cfg, keys=["vgg16.width_mult"]) == ["vgg16.width_mult = 0.0625 (paper: 1.0)"]
    assert config.reductions(cfg, keys=["device", "data.eval_batch_size"]) == []  # no effect on results


@pytest.mark.parametrize(
    "override, message",
    [
        ({"four_layer__baselines": [3]}, r"'four_layer.baselines' has invalid entries \[3\]: the 4-layer network's "
                                         r"group sizes are \[1, 2, 4, 8, 16, 32, 64\]"),
        ({"four_layer__depthwise": 5}, r"'four_layer.depthwise' has invalid entries \[5\]"),
        ({"vgg16__group_sizes": [1, 3]}, r"'vgg16.group_sizes' has invalid entries \[3\]"),
        ({"vgg16__baselines": [8]}, r"'vgg16.baselines' has invalid entries \[8\]: the sizes in vgg16.group_sizes "
                                    r"are \[1, 4, 16, 32\]"),
        ({"imagenet__models": ["resnet50"]}, r"'imagenet.models' has invalid entries \['resnet50'\]"),
        ({"imagenet__baselines": [2]}, r"'imagenet.baselines' has invalid entries \[2\]"),
        ({"four_layer__baselines": []}, r"'four_layer.baselines' must be a non-empty list without repeats"),
        ({"ap__drops": [0, 0]}, r"'ap.drops' must be a non-empty list without repeats"),
        ({"ap__k": 7}, r"ap.k = 7 .* ap.n_configs = 6"),
        ({"ap__repeat": 1}, r"ap.repeat = 1 must be below four_layer.repeats = 1 \(valid: 0..0\)"),
    ],
)
def test_list_valued_settings_are_validated_at_load(override, message):
    with pytest.raises(ValueError, match=message):
        config.load("smoke", **override)


PARAMS = 'profile: str = "cpu"  # profile\nseed: int = 0  # seed\n'


def test_check_notebook_parameters_rejects_unknown_injected_names():
    history = ["", PARAMS, '# Parameters\nprofile = "smoke"\nepochs_typo = 3\n', "cfg = ..."]
    with pytest.raises(ValueError, match=r"unknown notebook parameter\(s\) \['epochs_typo'\]: this notebook's "
                                         r"parameters are \['profile', 'seed'\]"):
        config.check_notebook_parameters(history, ["seed"])
    ok = ["", PARAMS, '# Parameters\nprofile = "smoke"\nseed = 2\n']
    assert config.check_notebook_parameters(ok, ["seed"]) == ["profile", "seed"]
    assert config.check_notebook_parameters(["", PARAMS], ["seed"]) == ["profile", "seed"]  # run by hand


def test_check_notebook_parameters_requires_every_parameter_passed_on():
    with pytest.raises(ValueError, match=r"\['seed'\] are declared but not passed to gross.runs.config"):
        config.check_notebook_parameters(["", PARAMS], [])


def test_load_notebook_passes_overrides_and_keeps_local_parameters():
    history = ["", PARAMS + "width: int = 4  # local\n", '# Parameters\nprofile = "smoke"\nseed = 2\n']
    cfg = config.load_notebook(history, "smoke", local={"width": 4}, seed=2)
    assert cfg["seed"] == 2 and cfg.notebook_parameters == {"width": 4}


def test_config_pickles_for_job_executors():
    """A Profile sent to another process (e.g. a submitit job) keeps its values and still records reads."""
    import pickle

    cfg = config.load("smoke", seed=4)
    back = pickle.loads(pickle.dumps(cfg))
    assert back.to_dict() == cfg.to_dict()
    with config.recording() as reads:
        assert back["seed"] == 4
    assert reads == {"seed"}


def test_no_effect_keys_come_from_one_list_each():
    from gross.pipeline import table4

    paper = config.load("paper")
    assert set(config.EXECUTOR_KEYS) == set(paper["executor"])  # every [executor] key, none invented
    assert set(config.IMAGENET_MACHINE_KEYS) <= set(paper["imagenet"])
    assert table4.MACHINE_KEYS is config.IMAGENET_MACHINE_KEYS
    assert {f"executor.{k}" for k in config.EXECUTOR_KEYS} <= config.NO_EFFECT
    assert {f"imagenet.{k}" for k in config.IMAGENET_MACHINE_KEYS} <= config.NO_EFFECT
    for key in config.NO_EFFECT:
        config.lookup(paper, key)  # KeyError: a key that is not in the schema


def test_config_logs_reads_for_notebooks_and_steps():
    cfg = config.load("smoke")
    cfg["seed"], cfg["four_layer"]["repeats"]
    assert cfg.keys_read == ["four_layer.repeats", "seed"]
    assert cfg["four_layer"].keys_read == cfg.keys_read  # sections share the log
    assert cfg.take_reads() == {"four_layer.repeats", "seed"}
    assert cfg.take_reads() == set()
    cfg["device"]
    assert cfg.take_reads() == {"device"} and "device" in cfg.keys_read


def test_load_notebook_none_means_the_profile_value():
    params = 'profile: str = "smoke"\nseed: int | None = None\nfour_layer_gross_epochs: int | None = None\n'
    cfg = config.load_notebook(["", params], "smoke", seed=None, four_layer_gross_epochs=None)
    smoke = config.load("smoke")
    assert cfg.to_dict() == smoke.to_dict()
    cfg = config.load_notebook(["", params], "smoke", seed=None, four_layer_gross_epochs=2)
    assert cfg["four_layer"]["gross_epochs"] == 2 and cfg["seed"] == smoke["seed"]


@pytest.mark.probe
def test_a_toml_syntax_error_names_the_file_line_and_column(tmp_path, monkeypatch):
    from gross.utils import paths

    configs = tmp_path / "configs"
    configs.mkdir()
    for f in paths.CONFIGS.glob("*.toml"):
        (configs / f.name).write_text(f.read_text())
    (configs / "broken.toml").write_text("[four_layer]\nbase_epochs = = 3\n")
    monkeypatch.setattr(paths, "CONFIGS", configs)
    with pytest.raises(ValueError, match=r"broken\.toml is not valid TOML: .*\(at line 2, column 15\)"):
        config.load("broken")


def test_paper_code_profile_selects_the_authors_code_values():
    cfg = config.load("paper_code")
    for name in ("four_layer", "vgg16"):
        assert cfg[name]["augment_padding"] == 4 and cfg[name]["finetune_weight_decay"] == 1e-3
        assert cfg[name]["btd_max_iter"] == 50000
    assert cfg["vgg16"]["base_weight_decay"] == 1e-3 and cfg["four_layer"]["base_weight_decay"] == 1e-3
    # the selection split stays ours (40k/10k of the training set), never CIFAR-10's test set
    paper = config.load("paper")
    assert cfg["data"].to_dict() == paper["data"].to_dict()
    assert sorted(config.reductions(cfg)) == sorted([
        "four_layer.augment_padding = 4 (paper: 2)", "four_layer.finetune_weight_decay = 0.001 (paper: 0.0)",
        "four_layer.btd_max_iter = 50000 (paper: 500000)", "vgg16.augment_padding = 4 (paper: 2)",
        "vgg16.base_weight_decay = 0.001 (paper: 0.0005)", "vgg16.finetune_weight_decay = 0.001 (paper: 0.0)",
        "vgg16.btd_max_iter = 50000 (paper: 500000)"])


def test_load_with_a_base_profile_merges_paper_base_profile_overrides():
    cfg = config.load("cpu", base="paper_code", seed=4)
    cpu, code = config.load("cpu").to_dict(), config.load("paper_code").to_dict()
    assert cfg["profile"] == "cpu-paper_code"
    assert cfg["four_layer"]["augment_padding"] == 4 and cfg["vgg16"]["base_weight_decay"] == 1e-3  # from the base
    assert cfg["four_layer"]["btd_max_iter"] == cpu["four_layer"]["btd_max_iter"] == 100  # the profile wins
    assert cfg["four_layer"]["base_epochs"] == cpu["four_layer"]["base_epochs"] and cfg["seed"] == 4
    flat = config.flatten(cfg.to_dict())
    for key, value in flat.items():  # every value comes from overrides, else cpu.toml, else paper_code.toml
        if key == ("profile",) or key == ("seed",):
            continue
        cpu_file = config.flatten(config._read("cpu"))
        expected = cpu_file[key] if key in cpu_file else config.flatten(code)[key]
        assert value == expected, key
    assert config.load("paper", base="paper").to_dict() | {"profile": "paper"} == config.load("paper").to_dict()
    with pytest.raises(ValueError, match="unknown profile 'nope'"):
        config.load("cpu", base="nope")


def test_recipe_name_tells_which_recipe_the_keys_read_hold():
    paper, code = config.load("paper"), config.load("paper_code")
    assert config.recipe_name(paper) == "paper text" and config.recipe_name(code) == "authors' code"
    assert config.recipe_name(config.load("cpu", base="paper_code")) == "authors' code"
    assert config.recipe_name(code, keys=["four_layer.base_weight_decay"]) == "paper text"  # both agree: first wins
    assert config.recipe_name(code, keys=["ap.k", "seed"]) is None
    mixed = config.load("paper", four_layer__augment_padding=4)
    assert config.recipe_name(mixed) == "mixed"
    assert config.recipe_name(mixed, keys=["vgg16.augment_padding"]) == "paper text"
    assert set(config.RECIPE_KEYS) <= {config._dotted(k) for k in config.flatten(paper.to_dict())}
