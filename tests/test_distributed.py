"""Tests of gross.training.distributed: DDP (2 gloo processes via torchrun) equals 1 process, resume, sharded evaluation.

Tolerance: the model runs in float64; 2-process DDP and 1-process weights agree to 1e-12
(only the order of floating-point sums differs: measured 3e-17).
"""

import copy
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from gross.training import distributed as D
from gross.data import imagenet as inet
from gross.training.described import build_described, describe_model
from gross.training.loop import RECIPES

ROOT = Path(__file__).resolve().parents[1]
TOL = 1e-12


def _env(**extra):
    env = dict(os.environ, PYTHONPATH=f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", OMP_NUM_THREADS="1")
    env.pop("GROSS_FAIL_AT", None)
    env.update(extra)
    return env


def _torchrun(nproc, *args, **env):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(nproc), *args]
    return subprocess.run(cmd, env=_env(**env), capture_output=True, text=True, timeout=300)


_DDP_SCRIPT = """
import sys, torch
from gross.training import distributed as D
from gross.data import imagenet as inet
ctx = D.init("cpu")
from gross.training.described import build_described
model = build_described(torch.load(sys.argv[1], weights_only=True))
configs = torch.load(sys.argv[2], weights_only=True)
ds = inet.imagenet(sys.argv[3], resize=40, crop=32, held_out=16)
df = D.evaluate(model, configs, ds.test, ctx=ctx, batch_size=3, workers=1)
if ctx.rank == 0:
    torch.save(df.to_dict("list"), sys.argv[4])
D.main(["finetune", "--job", sys.argv[5], "--device", "cpu"])
"""


def _calibrate_batch_norm(model, split):
    """Batch-norm statistics of ``split`` (as in a trained network; random ones collapse to one class)."""
    x = torch.stack([inet.normalise(split[i][0][None], "cpu")[0] for i in range(len(split))])
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    for m in norms:
        m.momentum = None  # cumulative average over the one batch
    model.train()
    with torch.no_grad():
        model(x)
    for m in norms:
        m.momentum = 0.1
    model.eval()


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """Folder, model, job files, the 1-process reference run and ONE 2-rank torchrun launch.

    The launch evaluates configurations of the 1-process fine-tuned network sharded over the
    2 ranks (15 test images: shards of 8 and 7) and then runs the DDP fine-tune of the job (``python -m gross.training.distributed
    finetune``), so the equality tests share one process start.
    """
    tmp = tmp_path_factory.mktemp("ddp")
    root = inet.generate_folder(tmp / "data", classes=5, train_per_class=16, val_per_class=3, size=40)
    data_kw = dict(root=str(root), resize=40, crop=32, held_out=16)  # 64 training images: 4 steps of 16
    torch.manual_seed(0)
    model = inet.build("resnet18", num_classes=5, width_mult=1 / 16)
    _calibrate_batch_norm(model, inet.imagenet(**data_kw).train)
    inet.decompose_imagenet(model, (1, 2, 4), tol=1e-2, max_iter=1)
    model = model.double().eval()
    recipe = RECIPES["resnet18_imagenet_gross"].replace(batch_size=16, lr=0.05).scaled(2)
    options = dict(checkpoint_every_steps=3, workers=1, persistent_workers=True)
    arch = dict(name="resnet18", num_classes=5, width_mult=1 / 16)
    job = D.write_job(tmp / "job.pt", model, data_kw, recipe, tmp / "ddp", arch=arch, **options)
    kill_job = D.write_job(tmp / "kill.pt", model, data_kw, recipe, tmp / "kill", arch=arch, **options)
    ref = build_described(D.read_job(job)["model"])
    D.finetune(ref, inet.imagenet(**data_kw).train, recipe, run_dir=tmp / "one", checkpoint_every_steps=3, workers=0)
    ref_state = D.read_checkpoint(tmp / "one" / f"{recipe.name}.pt")
    configs = [tuple(c) for c in ref_state["run"]["configs"][:6]] + [(1,) * 16, (4,) * 16]
    tuned = copy.deepcopy(model)
    tuned.load_state_dict(ref_state["model"])
    torch.save(describe_model(tuned, arch), tmp / "model.pt")
    torch.save(configs, tmp / "configs.pt")
    (tmp / "ddp.py").write_text(_DDP_SCRIPT)
    out = _torchrun(2, str(tmp / "ddp.py"), str(tmp / "model.pt"), str(tmp / "configs.pt"), data_kw["root"],
                    str(tmp / "acc.pt"), str(job))
    assert out.returncode == 0, out.stderr[-3000:]
    return dict(tmp=tmp, job=job, kill_job=kill_job, data_kw=data_kw, model=model, tuned=tuned, ref=ref_state,
                configs=configs)


def _max_diff(a, b):
    return max((a[k] - b[k]).abs().max().item() for k in a)


def test_shard_sampler_splits_each_global_batch():
    one = list(D.ShardSampler(50, 12, 1, 0, seed=3, epoch=1))
    parts = [list(D.ShardSampler(50, 12, 3, r, seed=3, epoch=1)) for r in range(3)]
    assert len(one) == 4 and all(len(p) == 4 for p in parts)
    for step in range(4):
        assert sum((p[step] for p in parts), []) == one[step]
    assert {i for b in one for i, _ in b} <= set(range(50)) and len({i for b in one for i, _ in b}) == 48
    assert one != list(D.ShardSampler(50, 12, 1, 0, seed=3, epoch=2))
    assert list(D.ShardSampler(50, 12, 1, 0, seed=3, epoch=1, start_step=2)) == one[2:]
    with pytest.raises(ValueError, match="global batch 12 .* not divisible by the 5 processes"):
        D.ShardSampler(50, 12, 5, 0)
    with pytest.raises(ValueError, match="fewer than one global batch"):
        D.ShardSampler(5, 12, 1, 0)


def test_two_gloo_processes_equal_one_process(setup):
    tmp, model, ref = setup["tmp"], setup["model"], setup["ref"]
    got = D.read_checkpoint(tmp / "ddp" / "resnet18_imagenet_gross.pt")
    assert got["world"] == 2 and ref["world"] == 1
    assert got["run"]["configs"] == ref["run"]["configs"] and len(ref["run"]["configs"]) == 8
    assert len({tuple(c) for c in ref["run"]["configs"]}) > 1
    assert _max_diff(got["model"], ref["model"]) < TOL
    # training changed the GroSS weights (the comparison is not trivial) and nothing else
    init = model.state_dict()
    changed = {k for k in init if not torch.equal(init[k], ref["model"][k])}
    assert changed and all(".P1" in k or ".R1" in k or ".Q1" in k or ".p." in k or ".r." in k or ".q." in k
                           or k.endswith("bias") for k in changed)
    assert got["run"]["history"][-1]["train_loss"] == pytest.approx(ref["run"]["history"][-1]["train_loss"], abs=TOL)


def test_killed_rank_resumes_from_checkpoint_with_same_or_other_world(setup):
    tmp, job, data_kw, ref = setup["tmp"], setup["kill_job"], setup["data_kw"], setup["ref"]
    out = _torchrun(2, "-m", "gross.training.distributed", "finetune", "--job", str(job), "--device", "cpu",
                    GROSS_FAIL_AT="1:6")  # rank 1 SIGKILLs itself before global step 7 (epoch 2, mid-epoch)
    assert out.returncode != 0
    ckpt = tmp / "kill" / "resnet18_imagenet_gross.pt"
    state = D.read_checkpoint(ckpt)
    assert state["run"]["global_step"] == 6 and state["run"]["epoch"] == 1 and state["run"]["step"] == 2
    shutil.copytree(tmp / "kill", tmp / "kill_one")
    out = _torchrun(2, "-m", "gross.training.distributed", "finetune", "--job", str(job), "--device", "cpu")
    assert out.returncode == 0, out.stderr[-3000:]
    got = D.read_checkpoint(ckpt)
    assert got["run"]["configs"] == ref["run"]["configs"] and _max_diff(got["model"], ref["model"]) < TOL
    # the same checkpoint resumed by one process (N changed from 2 to 1)
    jobd = D.read_job(job)
    D.finetune(build_described(jobd["model"]), inet.imagenet(**data_kw).train, D.Recipe(**jobd["recipe"]), run_dir=tmp / "kill_one",
               name=jobd["name"], checkpoint_every_steps=3, workers=0)
    one = D.read_checkpoint(tmp / "kill_one" / "resnet18_imagenet_gross.pt")
    assert one["run"]["configs"] == ref["run"]["configs"] and _max_diff(one["model"], ref["model"]) < TOL


def test_sharded_evaluation_equals_single_process(setup):
    tmp, data_kw, model, configs = setup["tmp"], setup["data_kw"], setup["tuned"], setup["configs"]
    got = torch.load(tmp / "acc.pt", weights_only=True)
    test = inet.imagenet(**data_kw).test
    one = D.evaluate(model, configs, test, batch_size=15, workers=0)
    assert got["accuracy"] == one["accuracy"].tolist() and got["images"][0] == len(test) == 15
    assert len(set(one["accuracy"])) > 1  # the configurations differ: the comparison is not trivial
    # and the plain model at each configuration (independent of the prefix tree)
    from gross.method.decomposition import export

    x = torch.stack([inet.normalise(test[i][0][None], "cpu", torch.float64)[0] for i in range(len(test))])
    y = torch.tensor([test[i][1] for i in range(len(test))])
    with torch.no_grad():
        ref_acc = [100.0 * float((export(model, c)(x).argmax(1) == y).double().mean()) for c in configs]
    assert one["accuracy"].tolist() == pytest.approx(ref_acc, abs=1e-9)


def test_more_processes_than_gpus_and_bad_batches(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    with pytest.raises(ValueError, match="--nproc-per-node 2 is larger than the 1 GPU"):
        D.init("auto")
    with pytest.raises(ValueError, match="--nproc-per-node 4 is larger than the 1 GPU"):
        D.launch("job.pt", 4)
    with pytest.raises(ValueError, match="device must be"):
        D.init("tpu")
    with pytest.raises(ValueError, match="global batch 128 .* not divisible by the 3 processes"):
        D.check_batch(128, 3)
    assert D.check_batch(512, 8) == 64




@pytest.mark.probe
def test_a_crafted_job_file_is_refused_without_running_code(tmp_path, code_in_a_pickle):
    evil, marker = code_in_a_pickle
    torch.save({"format": "gross-ddp-job", "model": evil}, tmp_path / "evil.job")
    with pytest.raises(ValueError, match=r"job file .*evil.job is unreadable or cannot be read as plain data \(UnpicklingError: WeightsUnpickler error: Unsupported global"):
        D.read_job(tmp_path / "evil.job")
    assert not marker.exists()
    torch.save({"model": 1}, tmp_path / "other.job")
    with pytest.raises(ValueError, match="is not a sealed 'gross-ddp-job' file"):
        D.read_job(tmp_path / "other.job")


def test_trainable_modes():
    """``gross``: only the GroSS layers train; ``gross_all`` (Table 4's [26] rows): every weight; bad names refused."""
    from gross.method.decomposition import random_gross
    from gross.models import four_layer_net

    model = random_gross(four_layer_net(), group_sizes=(1, 4))
    gross_params = {id(p) for n, p in model.named_parameters() if n.split(".")[0] in ("conv2", "conv3", "conv4")}
    assert {id(p) for p in D._trainable(model, "gross")} == gross_params
    assert {id(p) for p in D._trainable(model, "gross_all")} == {id(p) for p in model.parameters()}
    assert all(p.requires_grad for p in model.parameters())
    with pytest.raises(ValueError, match="trainable must be 'gross', 'gross_all' or 'all', got 'some'"):
        D._trainable(model, "some")


def test_keep_best_selects_the_best_held_out_epoch_without_changing_training(tmp_path):
    root = inet.generate_folder(tmp_path / "data", classes=5, train_per_class=16, val_per_class=3, size=40)
    data = inet.imagenet(root=str(root), resize=40, crop=32, held_out=16)
    torch.manual_seed(0)
    net = inet.build("vgg16", num_classes=5, width_mult=1 / 16).double()
    recipe = RECIPES["vgg16_imagenet_wang_config"].replace(batch_size=16, lr=0.05).scaled(4)
    plain, kept = copy.deepcopy(net), copy.deepcopy(net)
    D.finetune(plain, data.train, recipe, run_dir=tmp_path / "plain", trainable="all", workers=0)
    history = D.finetune(kept, data.train, recipe, run_dir=tmp_path / "kept", trainable="all", workers=0,
                         select=data.val, select_batch_size=8)
    last = D.read_checkpoint(tmp_path / "plain" / f"{recipe.name}.pt")["model"]
    state = D.read_checkpoint(tmp_path / "kept" / f"{recipe.name}.pt")
    # measuring the held-out accuracy between epochs leaves training as it was
    assert _max_diff(state["model"], last) < TOL
    accs = history["select_accuracy"].tolist()
    best = accs.index(max(accs)) + 1  # first best epoch
    assert len(accs) == 4 and state["best"]["epoch"] == best == history["kept"].iloc[-1]
    assert list(history["kept"]) == [accs.index(max(accs[:e])) + 1 for e in range(1, 5)]
    # each recorded accuracy is the network's: the last epoch's weights, and the kept ones, measured again
    plain_last = copy.deepcopy(net)
    plain_last.load_state_dict(last)
    assert D.evaluate_plain(plain_last, data.val, batch_size=5, workers=0) == pytest.approx(accs[-1], abs=1e-9)
    assert D.evaluate_plain(kept, data.val, batch_size=5, workers=0) == pytest.approx(max(accs), abs=1e-9)
    assert _max_diff(kept.state_dict(), D.kept_weights(state)) == 0
    # a finished run resumed ends with the same kept weights
    again = copy.deepcopy(net)
    D.finetune(again, data.train, recipe, run_dir=tmp_path / "kept", trainable="all", workers=0, select=data.val)
    assert _max_diff(again.state_dict(), kept.state_dict()) == 0
    with pytest.raises(ValueError, match="needs a plain network, trainable='all'"):
        D.finetune(copy.deepcopy(net), data.train, recipe, run_dir=tmp_path / "g", trainable="gross", select=data.val)
