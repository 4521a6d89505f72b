"""Tests of gross.data.imagenet: offline weights, image folders, prefix-tree evaluation."""

import numpy as np
import pytest
import torch
from PIL import Image

from gross.data import imagenet as inet


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return inet.generate_folder(tmp_path_factory.mktemp("inet"), classes=4, train_per_class=6, val_per_class=2,
                                size=48)


def test_torchvision_file_names_match_the_weight_urls():
    from torchvision.models import ResNet18_Weights, VGG16_Weights

    assert VGG16_Weights.IMAGENET1K_V1.url.endswith("/" + inet.WEIGHT_FILES["vgg16"])
    assert ResNet18_Weights.IMAGENET1K_V1.url.endswith("/" + inet.WEIGHT_FILES["resnet18"])


def test_full_size_architectures_have_torchvision_keys_and_layer_counts():
    import torchvision
    from gross.method.decomposition import decomposable_layers

    with torch.device("meta"):
        for name, tv in (("vgg16", torchvision.models.vgg16), ("resnet18", torchvision.models.resnet18)):
            ours, ref = inet.build(name), tv(weights=None)
            assert {k: v.shape for k, v in ours.state_dict().items()} == \
                {k: v.shape for k, v in ref.state_dict().items()}
            assert len(decomposable_layers(ours)) == inet.ARCHITECTURES[name]


def test_weights_from_file_and_from_cache(tmp_path, monkeypatch):
    torch.manual_seed(0)
    ref = inet.build("resnet18", num_classes=5, width_mult=0.125)
    f = tmp_path / "r.pth"
    torch.save(ref.state_dict(), f)
    got = inet.load_pretrained("resnet18", f, num_classes=5, width_mult=0.125)
    assert all(torch.equal(a, b) for a, b in zip(got.state_dict().values(), ref.state_dict().values()))
    # torchvision's cache directory with torchvision's file name
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    with pytest.raises(FileNotFoundError, match="resnet18-f37072fd.pth") as err:
        inet.load_pretrained("resnet18", "", num_classes=5, width_mult=0.125)
    assert "resnet18_weights" in str(err.value) and str(tmp_path / "hub" / "checkpoints") in str(err.value)
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
    torch.save(ref.state_dict(), tmp_path / "hub" / "checkpoints" / "resnet18-f37072fd.pth")
    got = inet.load_pretrained("resnet18_imagenet", None, num_classes=5, width_mult=0.125)
    assert torch.equal(got.fc.weight, ref.fc.weight)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        inet.load_pretrained("resnet18", tmp_path / "nope.pth")


def test_wrong_architecture_or_truncated_weights(tmp_path):
    vgg = inet.build("vgg16", num_classes=5, width_mult=0.125, hidden=16)
    f = tmp_path / "vgg.pth"
    torch.save(vgg.state_dict(), f)
    with pytest.raises(ValueError, match="does not fit resnet18.*vgg16-397923af|does not fit resnet18"):
        inet.load_pretrained("resnet18", f, num_classes=5, width_mult=0.125)
    with pytest.raises(ValueError, match="shape mismatches"):
        inet.load_pretrained("vgg16", f, num_classes=7, width_mult=0.125, hidden=16)
    data = f.read_bytes()
    (tmp_path / "cut.pth").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="truncated"):
        inet.load_pretrained("vgg16", tmp_path / "cut.pth", num_classes=5, width_mult=0.125, hidden=16)
    with pytest.raises(ValueError, match="unknown ImageNet model"):
        inet.build("alexnet")


def test_folder_splits_held_out_and_preprocessing(folder):
    ds = inet.imagenet(folder, resize=40, crop=32, held_out=8, split_seed=3)
    assert len(ds.train) == 16 and len(ds.val) == 8 and len(ds.test) == 8 and len(ds.classes) == 4
    assert not set(ds.train.samples) & set(ds.val.samples)
    assert set(ds.train.samples) | set(ds.val.samples) == set(inet.imagenet(folder, 40, 32).train.samples)
    assert ds.val.samples == inet.imagenet(folder, resize=40, crop=32, held_out=8, split_seed=3).val.samples
    assert ds.val.samples != inet.imagenet(folder, resize=40, crop=32, held_out=8, split_seed=4).val.samples
    # evaluation: shorter side 40 (PIL bilinear), centre 32 crop -- independent reference
    x, y = ds.test[1]
    img = Image.open(ds.test.samples[1][0]).convert("RGB")
    w, h = img.size
    nw, nh = (40, int(40 * h / w)) if w < h else (int(40 * w / h), 40)
    ref = np.asarray(img.resize((nw, nh), Image.BILINEAR))
    top, left = int(round((nh - 32) / 2.0)), int(round((nw - 32) / 2.0))
    ref = torch.from_numpy(ref[top:top + 32, left:left + 32].transpose(2, 0, 1).copy())
    assert x.shape == (3, 32, 32) and (x.int() - ref.int()).abs().max() <= 1 and y == ds.test.samples[1][1]
    # training: a seeded crop is a window of the resized image, flipped or not, and reproducible
    a, _ = ds.train[(0, 123)]
    assert torch.equal(a, ds.train[(0, 123)][0])
    big = np.asarray(Image.open(ds.train.samples[0][0]).convert("RGB").resize(
        _resized(Image.open(ds.train.samples[0][0]).size, 40), Image.BILINEAR)).transpose(2, 0, 1)
    big = torch.from_numpy(big.copy()).int()
    hits = [(t, l, f) for t in range(big.shape[1] - 31) for l in range(big.shape[2] - 31) for f in (0, 1)
            if (big[:, t:t + 32, l:l + 32].flip(-1) if f else big[:, t:t + 32, l:l + 32]).sub(a.int()).abs().max() <= 1]
    assert hits
    # both flip states occur over seeds (p = 0.5 each)
    crops = [ds.train[(0, s)][0] for s in range(12)]
    assert len({tuple(c.flatten()[:64].tolist()) for c in crops}) > 1


def _resized(size, short):
    w, h = size
    return (short, int(short * h / w)) if w < h else (int(short * w / h), short)


def test_bad_folders(tmp_path, folder):
    with pytest.raises(FileNotFoundError, match="train/<class>"):
        inet.imagenet(tmp_path)
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(folder, bad)
    shutil.rmtree(bad / "val" / "n00000001")
    (bad / "val" / "extra").mkdir()
    with pytest.raises(ValueError, match=r"only in train/: \['n00000001'\].*only in val/: \['extra'\]"):
        inet.imagenet(bad)
    with pytest.raises(ValueError, match="held_out must be between 0 and 23"):
        inet.imagenet(folder, held_out=24)


def test_loader_workers_give_the_same_batches(folder):
    ds = inet.imagenet(folder, resize=40, crop=32, held_out=4)
    keys = [[(i, i + 7) for i in range(j, j + 5)] for j in range(0, 15, 5)]
    one = [x for x, _ in inet.loader(ds.train, keys, workers=0)]
    two = [x for x, _ in inet.loader(ds.train, keys, workers=2, persistent_workers=True)]
    assert all(torch.equal(a, b) for a, b in zip(one, two)) and len(one) == 3


def test_gross_data_imagenet_is_this_function(folder):
    from gross import data

    a = inet.imagenet(folder, 40, 32, held_out=4, split_seed=1)
    b = inet.imagenet(folder, resize=40, crop=32, held_out=4, split_seed=1)
    assert a.val.samples == b.val.samples and a.test.samples == b.test.samples and a.info == b.info
