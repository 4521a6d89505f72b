"""One evaluation path for top-1 accuracy, with the prefix tree as its fast case.

Every accuracy in gross goes through :func:`_count_correct`: per batch of a
split, normalised with ``(x / 255 - mean) / std`` (:func:`gross.data.batches`),
cast to the model's dtype, optionally in ``channels_last`` layout, the number
of correct top-1 predictions is counted for one or several configurations of
the model. Three ways of walking the configurations perform the same
floating-point operations per configuration, so they give identical results:

* **one by one** (``tree=False``): one full pass over the data per
  configuration (also used for a single configuration or a plain network);
* **per batch** (``tree=True``, a model :func:`units` cannot cut into a chain
  of modules): every configuration is run on each batch;
* **prefix tree** (``tree=True``, a ``nn.Sequential`` as built by
  :mod:`gross.models`, torchvision's VGG and ResNet): the modules before the
  first GroSS layer run once per batch and configurations sharing the sizes of
  their first ``d`` *units* (a layer; a residual block, holding two GroSS
  layers) share the activations up to the ``(d+1)``-th unit.

Public entry points: :func:`accuracy` (one network, optionally at one
configuration; :func:`gross.training.loop.evaluate` is this function),
:func:`evaluate_configs` (many configurations, a DataFrame),
:func:`count_correct` (the counts over batches from any source, e.g. a shard of
ImageNet read by a DataLoader: :func:`gross.training.distributed.evaluate`),
:class:`ConfigEvaluator` (the ``evaluate(configs) -> accuracies`` callable the
search algorithms take) and :func:`time_switching_vs_rebuild` (Sec. 5.2
timing).

``device=None`` means CUDA when available, else CPU
(:func:`gross.utils.resolve_device`); the model is moved there.

Performance notes
-----------------
The cost of a tree evaluation is dominated by the last decomposed layer and
the classifier, run once per configuration and batch. On CPU,
``channels_last=True`` roughly halves the time (PyTorch's grouped convolutions
and max-pooling are much faster in that layout) at the price of bit-level
differences to an evaluation in the default layout. On a heavily shared CPU
use ``torch.set_num_threads(1)``: busy-waiting intra-op threads can make
small operations many times slower.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn

from gross.data import CIFAR_MEAN, CIFAR_STD, Dataset, Split, batches
from gross.method.decomposition import export, get_config, gross_layers, set_config
from gross.method.layers import GroSSConv2d
from gross.method.space import Config, SearchSpace
from gross.utils import resolve_device
from gross.utils.timing import timed

__all__ = ["accuracy", "evaluate_configs", "count_correct", "correct_images", "paired_change", "units",
           "ConfigEvaluator", "get_split", "time_switching_vs_rebuild"]


# ----------------------------------------------------------------------------- inputs


def get_split(data, split: str = "val"):
    """The split to evaluate: ``data`` itself if it is a split, else ``data.split(split)``.

    Raises
    ------
    ValueError
        ``data`` is neither a :class:`gross.data.Dataset` nor a split / torch dataset.
    """
    if isinstance(data, Split) or (isinstance(data, torch.utils.data.Dataset) and not isinstance(data, Dataset)):
        return data
    if not isinstance(data, Dataset):
        raise ValueError(f"data must be a gross.data.Dataset or Split, got {type(data).__name__}")
    return data.split(split)


def _norm_stats(data, mean, std) -> tuple[tuple, tuple]:
    """Normalisation: the given values, else the dataset's defaults, else 0.5 / 0.5."""
    if mean is None:
        mean = data.mean if isinstance(data, Dataset) else CIFAR_MEAN
    if std is None:
        std = data.std if isinstance(data, Dataset) else CIFAR_STD
    return tuple(mean), tuple(std)


def _check_batch_size(batch_size) -> int:
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    return int(batch_size)


def _model_dtype(model: nn.Module) -> torch.dtype:
    for p in model.parameters():
        return p.dtype
    return torch.float32


def _gross_configs(model: nn.Module, configs) -> list[Config]:
    """``configs`` validated against the model's search space."""
    space = SearchSpace.from_model(model)
    if isinstance(configs, (str, bytes)) or not isinstance(configs, Iterable):
        raise ValueError("configs must be a sequence of configurations (tuples of group sizes)")
    return [space.validate(c) for c in configs]


class _Feed:
    """Re-iterable batches for the model, counting images.

    ``make()`` returns a fresh iterator of ``(x, y)`` batches, already normalised and on
    ``device``; they are cast to ``dtype`` and, with ``channels_last``, laid out so.
    """

    def __init__(self, make, device, dtype, channels_last=False):
        self.make, self.device, self.dtype, self.channels_last = make, device, dtype, channels_last
        self.n_images = 0

    @classmethod
    def of_split(cls, split_data, batch_size, mean, std, device, dtype, channels_last) -> "_Feed":
        """The batches of one in-memory split (:func:`gross.data.batches`)."""
        return cls(lambda: batches(split_data, batch_size, mean=mean, std=std, device=device), device, dtype,
                   channels_last)

    def __iter__(self):
        self.n_images = 0
        for x, y in self.make():
            self.n_images += len(y)
            x = x.to(self.dtype)
            yield (x.contiguous(memory_format=torch.channels_last) if self.channels_last else x), y


# ----------------------------------------------------------------------------- the prefix tree


def units(model: nn.Module) -> list[nn.Module] | None:
    """The model as a list of modules whose chained calls are its forward, or ``None`` if unknown.

    A ``nn.Sequential``: its children. torchvision VGG: every child of ``features``,
    ``avgpool``, flatten, every child of ``classifier``. torchvision ResNet: the stem
    modules, each residual block, ``avgpool``, flatten, ``fc``.
    """
    if isinstance(model, nn.Sequential):
        return list(model.children())
    from torchvision.models.resnet import ResNet
    from torchvision.models.vgg import VGG

    if isinstance(model, VGG):
        return [*model.features, model.avgpool, nn.Flatten(1), *model.classifier]
    if isinstance(model, ResNet):
        blocks = [b for layer in (model.layer1, model.layer2, model.layer3, model.layer4) for b in layer]
        return [model.conv1, model.bn1, model.relu, model.maxpool, *blocks, model.avgpool, nn.Flatten(1), model.fc]
    return None


def _stages(model: nn.Module, layers: Sequence[nn.Module]):
    """``(prefix, segments)`` of the model's :func:`units`, or None when it has none.

    ``prefix`` are the units before the first unit holding a GroSS layer; ``segments[d]``
    is ``(modules, owned, keeps_input)``: from the ``d``-th unit holding GroSS layers
    (inclusive; a layer itself, or a residual block holding two) to the next one
    (exclusive), the last one to the output; the indices of the GroSS layers of its first
    unit, in order; and whether that unit surely leaves its input unchanged (a GroSS layer
    or a torchvision residual block), else branches of the tree get copies of it.
    """
    from torchvision.models.resnet import BasicBlock, Bottleneck

    seq = units(model)
    if seq is None or not layers:
        return None
    ids = {id(m): i for i, m in enumerate(layers)}
    owned = [[ids[id(m)] for m in u.modules() if id(m) in ids] for u in seq]
    if [i for o in owned for i in o] != list(range(len(layers))):
        return None  # a GroSS layer outside the units, or out of order: no stage-by-stage execution
    cuts = [k for k, o in enumerate(owned) if o]
    safe = (GroSSConv2d, BasicBlock, Bottleneck)
    return seq[:cuts[0]], [(seq[a:b], owned[a], isinstance(seq[a], safe))
                           for a, b in zip(cuts, cuts[1:] + [len(seq)])]


def _run(modules: Sequence[nn.Module], x: torch.Tensor) -> torch.Tensor:
    # Identical to the model's forward over these units. A segment that starts with a GroSS
    # layer or a residual block reads its input without modifying it (a 1x1 conv; the block
    # keeps its input as the identity), so an activation shared by several branches of the
    # tree is never changed in place by a later ReLU or addition; other segments get a copy.
    for m in modules:
        x = m(x)
    return x


def _trie(configs: Sequence[Config], segments) -> dict:
    """Prefix tree ``{sizes of a segment's layers: subtree}``; leaves are lists of (unique) config indices."""
    root: dict = {}
    for idx, c in enumerate(configs):
        node = root
        for segment in segments[:-1]:
            node = node.setdefault(tuple(c[j] for j in segment[1]), {})
        node.setdefault(tuple(c[j] for j in segments[-1][1]), []).append(idx)
    return root


def _walk(segments, layers, h, node, depth, visit) -> None:
    modules, owned, keeps_input = segments[depth]
    last = depth == len(segments) - 1
    keys = sorted(node)
    for k, key in enumerate(keys):
        for j, s in zip(owned, key):
            layers[j].group_size = s
        out = _run(modules, h if keeps_input or k == len(keys) - 1 else h.clone())
        if last:
            visit(node[key], out)
        else:
            _walk(segments, layers, out, node[key], depth + 1, visit)


class _Restore:
    """Context manager: eval mode during the block; put back the configuration and train/eval mode."""

    def __init__(self, model: nn.Module):
        self.model = model

    def __enter__(self):
        self.config = get_config(self.model) if gross_layers(self.model) else None
        self.training = self.model.training
        self.model.eval()
        return self

    def __exit__(self, *exc):
        if self.config is not None:
            set_config(self.model, self.config)
        self.model.train(self.training)
        return False


# ----------------------------------------------------------------------------- the engine


def _count_correct(model: nn.Module, configs: Sequence[Config | None], feed: _Feed, tree: bool) -> list[int]:
    """Correct top-1 predictions over ``feed`` for each of the distinct ``configs``.

    ``[None]`` evaluates the model as it is (a plain network or the active configuration).
    """
    correct = torch.zeros(len(configs), dtype=torch.int64, device=feed.device)
    layers = list(gross_layers(model).values())
    stages = _stages(model, layers) if tree and configs[0] is not None else None
    with _Restore(model), torch.inference_mode():
        if configs[0] is None or not tree:
            for i, c in enumerate(configs):
                if c is not None:
                    set_config(model, c)
                for x, y in feed:
                    correct[i] += (model(x).argmax(1) == y).sum()
        elif stages is not None:
            prefix, segments = stages
            trie = _trie(configs, segments)
            for x, y in feed:

                def visit(idxs, logits, y=y):
                    hits = (logits.argmax(1) == y).sum()
                    for i in idxs:
                        correct[i] += hits

                _walk(segments, layers, _run(prefix, x), trie, 0, visit)
        else:
            for x, y in feed:
                for i, c in enumerate(configs):
                    set_config(model, c)
                    correct[i] += (model(x).argmax(1) == y).sum()
    return correct.cpu().tolist()


def _split_feed(model, data, split, batch_size, device, mean, std, channels_last) -> _Feed:
    """The batches of one split of ``data`` for ``model``, moved to ``device`` (``None``: the default)."""
    mean, std = _norm_stats(data, mean, std)
    device = resolve_device(device)
    model.to(device)
    return _Feed.of_split(get_split(data, split), _check_batch_size(batch_size), mean, std, device,
                          _model_dtype(model), channels_last)


def _accuracies(model, configs, data, split, batch_size, device, mean, std, tree, channels_last) -> list[float]:
    """Top-1 accuracy (percent) of each of the distinct ``configs`` (``[None]``: the model as is)."""
    feed = _split_feed(model, data, split, batch_size, device, mean, std, channels_last)
    correct = _count_correct(model, configs, feed, tree)
    if feed.n_images == 0:
        raise ValueError(f"split {split!r} is empty")
    return [100.0 * int(n) / feed.n_images for n in correct]


def accuracy(model: nn.Module, data, config=None, split: str = "val", batch_size: int = 1000, device=None,
             mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
             channels_last: bool = False) -> float:
    """Top-1 accuracy (percent) of ``model`` on one split.

    Parameters
    ----------
    model : nn.Module
        Any classifier; a GroSS model is evaluated at ``config`` (or its active
        configuration). Its configuration and train/eval mode are restored afterwards.
    data : gross.data.Dataset or gross.data.Split
        A dataset (``split`` selects the split) or the split itself.
    config : sequence of int, str or mapping of str to int, optional
        Group-size configuration of a GroSS model (see :meth:`gross.method.space.SearchSpace.validate`).
    split : {"val", "test", "train"}, default "val"
    batch_size : int, default 1000
    device : torch.device or str, optional
        ``None``: CUDA when available, else CPU (:func:`gross.utils.resolve_device`); the model is moved there.
    mean, std : sequence of float, optional
        Input normalisation; default ``data.mean`` / ``data.std`` (0.5 / 0.5 for a bare split).
    channels_last : bool, default False
        Feed the batches in ``torch.channels_last`` layout (faster on CPU, last-bit differences).

    Returns
    -------
    float
    """
    configs = [None] if config is None else _gross_configs(model, [config])
    return _accuracies(model, configs, data, split, batch_size, device, mean, std, False, channels_last)[0]


def correct_images(model: nn.Module, data, config=None, split: str = "val", batch_size: int = 1000, device=None,
                   mean: Sequence[float] | None = None, std: Sequence[float] | None = None) -> torch.Tensor:
    """Which images of one split ``model`` classifies correctly (top-1), in the split's order.

    The per-image form of :func:`accuracy` (same arguments, same predictions): two such
    masks of one split give a paired comparison of two networks, e.g. the images a
    fine-tune lost and gained (:func:`gross.pipeline.claims.paired_se`).

    Returns
    -------
    torch.Tensor
        Boolean, one entry per image of the split, on the CPU;
        ``100 * mask.float().mean()`` equals :func:`accuracy`.
    """
    feed = _split_feed(model, data, split, batch_size, device, mean, std, False)
    hits = []
    with _Restore(model), torch.inference_mode():
        if config is not None:
            set_config(model, _gross_configs(model, [config])[0])
        for x, y in feed:
            hits.append((model(x).argmax(1) == y).cpu())
    if not hits:
        raise ValueError(f"split {split!r} is empty")
    return torch.cat(hits)


def paired_change(before: torch.Tensor, after: torch.Tensor) -> dict:
    """Two :func:`correct_images` masks of one split compared: accuracies (%) and the images that moved.

    Returns
    -------
    dict
        ``before``, ``after`` (accuracies in percent), ``lost`` (images right before and wrong
        after), ``gained`` (wrong before, right after) and ``n_images``;
        ``after - before = 100 * (gained - lost) / n_images``.
    """
    if before.shape != after.shape:
        raise ValueError(f"paired_change needs two masks of the same images, got shapes {tuple(before.shape)} "
                         f"and {tuple(after.shape)}")
    return {"before": 100.0 * before.double().mean().item(), "after": 100.0 * after.double().mean().item(),
            "lost": int((before & ~after).sum()), "gained": int((~before & after).sum()), "n_images": len(before)}


def count_correct(model: nn.Module, configs, batches, *, device=None, tree: bool = True,
                  channels_last: bool = False) -> tuple[list[int], int]:
    """Correct top-1 predictions per configuration over batches from any source, and the image count.

    The engine of :func:`accuracy` and :func:`evaluate_configs` for data that is not an
    in-memory split, e.g. one rank's shard of ImageNet read by a DataLoader
    (:func:`gross.training.distributed.evaluate` all-reduces these integer counts).

    Parameters
    ----------
    model : nn.Module
        A GroSS model (``configs`` given) or any classifier (``configs=None``); its
        configuration and train/eval mode are restored afterwards.
    configs : sequence of configurations or None
        ``None``: the model as it is (one count).
    batches : callable
        ``batches()`` returns a fresh iterator of ``(x, y)``: normalised inputs on
        ``device`` (cast to the model's dtype here) and labels. Called once per pass over
        the data (once with the tree, once per configuration without).
    device : torch.device, optional
        Where the counts accumulate; default: the model's.
    tree, channels_last : bool
        As in :func:`evaluate_configs`.

    Returns
    -------
    (list of int, int)
        Counts in the order of ``configs`` (duplicates allowed) and the number of images.
    """
    if device is None:
        device = next(iter(model.parameters()), torch.empty(0)).device
    feed = _Feed(batches, torch.device(device), _model_dtype(model), channels_last)
    if configs is None:
        return _count_correct(model, [None], feed, tree), feed.n_images
    configs = _gross_configs(model, configs)
    unique = list(dict.fromkeys(configs))
    if not unique:
        return [], 0
    counts = dict(zip(unique, _count_correct(model, unique, feed, tree)))
    return [counts[c] for c in configs], feed.n_images


def evaluate_configs(
    model: nn.Module,
    configs,
    data,
    split: str = "val",
    batch_size: int = 1000,
    device=None,
    mean=None,
    std=None,
    tree: bool = True,
    channels_last: bool = False,
) -> pd.DataFrame:
    """Top-1 accuracy of many configurations of a GroSS model.

    With ``tree=True`` the data are read once and the configurations are
    walked as a prefix tree (flat ``nn.Sequential``) or one after the other
    inside the batch loop (other models); with ``tree=False`` every
    configuration gets its own pass over the data. All give the same
    accuracies as :func:`accuracy` at each configuration (same floating-point
    operations).

    Parameters
    ----------
    model : nn.Module
        GroSS-decomposed model. Its configuration and train/eval mode are restored afterwards.
    configs : sequence of configurations
        Tuples (or ``"8 16 64"`` strings) of group sizes in
        :func:`gross.method.decomposition.search_space` order; duplicates are allowed.
    data, split, batch_size, device, mean, std, channels_last
        As in :func:`accuracy`.
    tree : bool, default True
        Share computation between configurations (see above).

    Returns
    -------
    pandas.DataFrame
        Columns ``config`` (tuple) and ``accuracy`` (top-1, percent), one row
        per entry of ``configs``, in order.
    """
    configs = _gross_configs(model, configs)
    unique = list(dict.fromkeys(configs))
    if not unique:
        return pd.DataFrame({"config": [], "accuracy": []})
    acc = dict(zip(unique, _accuracies(model, unique, data, split, batch_size, device, mean, std, tree,
                                       channels_last)))
    return pd.DataFrame({"config": configs, "accuracy": [acc[c] for c in configs]})


class ConfigEvaluator:
    """``evaluate(configs) -> accuracies`` of a GroSS model, the callable the search algorithms take.

    Parameters
    ----------
    model : nn.Module
        GroSS-decomposed model.
    data : gross.data.Dataset or Split
    split, batch_size, device, mean, std, tree, channels_last
        As in :func:`evaluate_configs`.
    """

    def __init__(self, model: nn.Module, data, *, split: str = "val", batch_size: int = 1000, device=None,
                 mean=None, std=None, tree: bool = True, channels_last: bool = False):
        self.model, self.data = model, data
        self.options = dict(split=split, batch_size=_check_batch_size(batch_size), device=device, mean=mean,
                            std=std, tree=tree, channels_last=channels_last)

    def __call__(self, configs) -> list[float]:
        return evaluate_configs(self.model, configs, self.data, **self.options)["accuracy"].tolist()

    def input_size(self) -> tuple[int, ...]:
        """``(C, H, W)`` of the evaluated images (for MAC counting)."""
        return tuple(get_split(self.data, self.options["split"]).images.shape[1:])


# ----------------------------------------------------------------------------- timing (Sec. 5.2)


def time_switching_vs_rebuild(model: nn.Module, configs, data, *, tmp_dir=None, **options) -> pd.DataFrame:
    """Switching GroSS group sizes vs building and loading one network per configuration (Sec. 5.2).

    *Switching*: :func:`evaluate_configs` on the GroSS model. *Rebuild*: the
    conventional route, where every configuration is its own network whose
    weights sit on disk: for each configuration, build the decomposed network
    (:func:`gross.method.decomposition.export`), load its ``state_dict`` with
    :func:`torch.load` from a file and evaluate it (:func:`accuracy`). The
    files are written before the clock starts (untimed), as they would exist
    after fine-tuning.

    Parameters
    ----------
    model : nn.Module
        GroSS-decomposed model.
    configs : sequence of configurations
        E.g. the 45 random configurations of Sec. 5.2.
    data : gross.data.Dataset or Split
    tmp_dir : path, optional
        Where the per-configuration weight files go (default: a temporary
        directory, removed afterwards).
    **options
        ``split, batch_size, device, mean, std, tree, channels_last`` as in
        :func:`evaluate_configs` (``channels_last`` applies to both routes).

    Returns
    -------
    pandas.DataFrame
        One row: ``device, n_configs, switching_s, rebuild_s, ratio`` (rebuild /
        switching) and ``max_abs_diff`` between the two accuracy lists.
    """
    switching = ConfigEvaluator(model, data, **options)
    opts = switching.options
    configs = _gross_configs(model, configs)
    device = resolve_device(opts["device"])
    split_data = get_split(data, opts["split"])
    mean, std = _norm_stats(data, opts["mean"], opts["std"])
    kwargs = dict(batch_size=opts["batch_size"], device=device, mean=mean, std=std,
                  channels_last=opts["channels_last"])
    model.to(device)
    with tempfile.TemporaryDirectory(dir=tmp_dir) as tmp:
        files = [os.path.join(tmp, f"config_{i}.pt") for i in range(len(configs))]
        for c, path in zip(configs, files):
            torch.save(export(model, c).state_dict(), path)

        def rebuild():
            acc = []
            for c, path in zip(configs, files):
                net = export(model, c)
                net.load_state_dict(torch.load(path, map_location=device, weights_only=True))
                acc.append(accuracy(net, split_data, **kwargs))
            return acc

        switched, t_switch = timed(lambda: np.asarray(switching(configs)), device)
        rebuilt, t_rebuild = timed(rebuild, device)
    return pd.DataFrame([{
        "device": str(device),
        "n_configs": len(configs),
        "switching_s": t_switch,
        "rebuild_s": t_rebuild,
        "ratio": t_rebuild / t_switch,
        "max_abs_diff": float(np.max(np.abs(switched - np.asarray(rebuilt)))),
    }])
