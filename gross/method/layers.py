"""The GroSS series layer: a convolution decomposed at several group sizes at once.

A :class:`GroSSConv2d` replaces a ``k×k`` convolution ``t → u`` by a bottleneck
``P`` (1×1, ``t → width``) → ``R`` (``k×k`` grouped, ``width → width``,
``groups = width // s``) → ``Q`` (1×1, ``width → u``, original bias), whose
weights are the sum of a *series* of terms (Section 3.3, Eqs. 5–6 of the
paper).  For group sizes ``s_1 < … < s_N`` (each dividing the next) it stores
the lowest-order weights ``P1, R1, Q1`` and the difference terms
``p_i, r_i, q_i`` (orders ``i = 2..N``)::

    P_n = P1 + Σ_{i≤n} p_i,   Q_n = Q1 + Σ_{i≤n} q_i,
    R_n = Ψ_{s1→sn}(R1) + Σ_{2≤i≤n} Ψ_{si→sn}(r_i).

Switching ``layer.group_size`` selects the order used in the forward pass;
only the terms of order ``≤ n`` are touched, so training at ``s_n`` also trains
every lower order (they share those terms).

Asymmetric bottleneck: ``width=(w_in, w_out)`` (the structure of Wang et al.
[26], Table 4) makes ``P`` map ``t → w_in``, ``R`` map ``w_in → w_out`` with
``groups = w_in // s`` and ``Q`` map ``w_out → u``; ``s`` must divide ``w_in``
and ``w_out`` must be divisible by every number of groups ``w_in // s``.  An
int ``width`` (the default, ``t``) is the paper's symmetric bottleneck.
"""

from __future__ import annotations

import math
import operator
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.modules.utils import _pair

from gross.method.expansion import expand_grouped_weight

__all__ = ["GroSSConv2d", "gross_layers", "as_group_sizes", "as_widths", "valid_group_sizes"]


def as_group_sizes(sizes, where: str = "group_sizes") -> tuple[int, ...]:
    """``sizes`` as a tuple of positive ints; a string, a non-sequence, an empty one or any other entry is an error.

    ``where`` names the argument in the message (``"group_sizes['conv2']"``).
    """
    if isinstance(sizes, (str, bytes)) or not isinstance(sizes, Iterable):
        raise ValueError(f"{where} must be a sequence of positive integers such as (1, 2, 4, 8), got {sizes!r}")
    sizes = list(sizes)
    out = []
    for s in sizes:
        try:
            if isinstance(s, bool):
                raise TypeError
            value = operator.index(s)
        except TypeError:
            raise ValueError(f"{where} must hold positive integers, got {s!r} in {tuple(sizes)!r}") from None
        if value < 1:
            raise ValueError(f"{where} must hold positive integers, got {value} in {tuple(sizes)!r}")
        out.append(value)
    if not out:
        raise ValueError(f"{where} is empty: give at least one group size")
    return tuple(out)


def as_widths(width, default: int, where: str = "width") -> tuple[int, int]:
    """Bottleneck widths ``(w_in, w_out)`` from ``None`` (``default`` for both), an int or a pair.

    ``where`` names the argument in the message (``"width['conv1_2']"``).
    """
    if width is None:
        return int(default), int(default)
    if isinstance(width, (str, bytes)):
        raise ValueError(f"{where} must be a positive integer or a pair (in, out) of them, got {width!r}")
    pair = tuple(width) if isinstance(width, Iterable) else (width, width)
    if len(pair) != 2:
        raise ValueError(f"{where} must be a positive integer or a pair (in, out) of them, got {width!r}")
    out = []
    for w in pair:
        try:
            if isinstance(w, bool):
                raise TypeError
            value = operator.index(w)
        except TypeError:
            value = 0
        if value < 1:
            raise ValueError(f"{where} must be a positive integer or a pair (in, out) of them, got {width!r}")
        out.append(value)
    return out[0], out[1]


def valid_group_sizes(width: int, width_out: int | None = None) -> tuple[int, ...]:
    """Group sizes a bottleneck ``width → width_out`` admits: divisors ``s`` of ``width`` with ``width_out % (width // s) == 0``."""
    w_out = width if width_out is None else width_out
    return tuple(d for d in range(1, width + 1) if width % d == 0 and w_out % (width // d) == 0)


def _validate_group_sizes(group_sizes, width: int, width_out: int | None = None,
                          name: str | None = None) -> tuple[int, ...]:
    """Return ``group_sizes`` as an ascending tuple after checking it forms a valid series.

    ``width_out`` (default ``width``) is the output width of ``R`` (asymmetric bottleneck);
    ``name`` (a layer's) is quoted in the messages.
    """
    sizes = list(as_group_sizes(group_sizes))
    if len(set(sizes)) != len(sizes):
        raise ValueError(f"group sizes must be distinct, got {tuple(sizes)}")
    sizes = tuple(sorted(sizes))
    divisors = tuple(d for d in range(1, width + 1) if width % d == 0)
    where = f" of layer {name!r}" if name else ""
    for s in sizes:
        if width % s:
            raise ValueError(
                f"group size {s} does not divide the bottleneck width {width}{where}: "
                f"valid group sizes are the divisors of {width}: {divisors}"
            )
    if width_out is not None and width_out != width:
        for s in sizes:
            if width_out % (width // s):
                raise ValueError(
                    f"group size {s}{where} gives {width // s} groups (width {width} / {s}), which do not "
                    f"divide the bottleneck output width {width_out}: valid group sizes for widths "
                    f"({width}, {width_out}) are {valid_group_sizes(width, width_out)}"
                )
    for a, b in zip(sizes, sizes[1:]):
        if b % a:
            raise ValueError(
                f"group sizes must each divide the next so that the expansion Ψ is defined: "
                f"{a} does not divide {b} in group_sizes={sizes}"
            )
    return sizes


def _check_conv(conv) -> None:
    if not isinstance(conv, nn.Conv2d):
        raise ValueError(f"conv must be an nn.Conv2d, got {type(conv).__name__}")
    if conv.groups != 1:
        raise ValueError(f"conv must be an ungrouped convolution (groups=1), got groups={conv.groups}")
    if conv.padding_mode != "zeros":
        raise ValueError(
            f"conv must use padding_mode='zeros' (the only mode GroSSConv2d supports), got {conv.padding_mode!r}"
        )


def _sum(tensors: list[Tensor]) -> Tensor:
    """Sum a non-empty list of same-shaped tensors (few kernel launches, differentiable)."""
    if len(tensors) == 1:
        return tensors[0]
    if len(tensors) == 2:
        return tensors[0] + tensors[1]
    return torch.stack(tensors).sum(0)


class GroSSConv2d(nn.Module):
    r"""Group-size series (GroSS) decomposition of a 2-D convolution.

    Usually built with :meth:`from_conv` (runs BTD at every group size) or
    :meth:`from_factors` (from given per-size bottleneck weights).  The
    constructor creates a randomly initialised series (``P1, R1, Q1`` like
    :class:`torch.nn.Conv2d`, difference terms zero).

    Parameters
    ----------
    in_channels, out_channels : int
        ``t`` and ``u`` of the original convolution.
    kernel_size : int or tuple of int
        Spatial size of the grouped convolution ``R`` (the original kernel).
    group_sizes : sequence of int
        Group sizes of the series; sorted ascending, each must divide
        ``width`` and the next size.
    width : int or (int, int), optional
        Bottleneck width (channels of ``R``); defaults to ``in_channels``.  A
        pair ``(w_in, w_out)`` is an asymmetric bottleneck: ``R`` maps ``w_in``
        to ``w_out`` channels with ``w_in // s`` groups.
    stride, padding, dilation : int, tuple or str
        Applied by ``R``, as in the original convolution.
    bias : bool
        Whether ``Q`` has a bias (the original convolution's).
    device, dtype : optional
        Factory arguments for the parameters.

    Attributes
    ----------
    group_sizes : tuple of int
        The series' group sizes, ascending.
    group_size : int
        Active group size (default: the largest).
    width, width_out : int
        Input and output widths of ``R`` (equal unless asymmetric).
    P1, R1, Q1 : Parameter
        Lowest-order weights ``(width, t, 1, 1)``, ``(width_out, s1, kh, kw)``,
        ``(u, width_out, 1, 1)``.
    p, r, q : nn.ParameterList
        Difference terms of orders 2..N (Eq. 6); ``r[i-2]`` has shape
        ``(width_out, s_i, kh, kw)``.
    bias : Parameter or None
        Bias of ``Q`` (the original convolution's bias).
    btd_errors : dict of int to float
        Final relative BTD error per group size (filled by :meth:`from_conv`).
    name : str or None
        Qualified name in the model (set by model surgery), used in messages.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size,
        group_sizes: Sequence[int],
        width: int | tuple[int, int] | None = None,
        stride=1,
        padding=0,
        dilation=1,
        bias: bool = True,
        *,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        factory = {"device": device, "dtype": dtype}
        self.name: str | None = None
        self.in_channels = int(in_channels)
        self.out_channels = int(out_channels)
        self.width, self.width_out = as_widths(width, self.in_channels)
        self.kernel_size = _pair(kernel_size)
        self.stride = _pair(stride)
        if isinstance(padding, str):
            if padding not in ("same", "valid"):
                raise ValueError(f"padding string must be 'same' or 'valid', got {padding!r}")
            if padding == "same" and any(st != 1 for st in self.stride):
                raise ValueError("padding='same' is not supported for strided convolutions")
            self.padding = padding
        else:
            self.padding = _pair(padding)
        self.dilation = _pair(dilation)
        self.group_sizes = _validate_group_sizes(group_sizes, self.width, self.width_out)
        self._group_size = self.group_sizes[-1]
        self.btd_errors: dict[int, float] = {}
        self._cache: dict = {}

        kh, kw = self.kernel_size
        s1 = self.group_sizes[0]
        self.P1 = nn.Parameter(torch.empty(self.width, self.in_channels, 1, 1, **factory))
        self.R1 = nn.Parameter(torch.empty(self.width_out, s1, kh, kw, **factory))
        self.Q1 = nn.Parameter(torch.empty(self.out_channels, self.width_out, 1, 1, **factory))
        self.p = nn.ParameterList(
            [nn.Parameter(torch.empty(self.width, self.in_channels, 1, 1, **factory)) for _ in self.group_sizes[1:]]
        )
        self.r = nn.ParameterList(
            [nn.Parameter(torch.empty(self.width_out, s, kh, kw, **factory)) for s in self.group_sizes[1:]]
        )
        self.q = nn.ParameterList(
            [nn.Parameter(torch.empty(self.out_channels, self.width_out, 1, 1, **factory))
             for _ in self.group_sizes[1:]]
        )
        if bias:
            self.bias = nn.Parameter(torch.empty(self.out_channels, **factory))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    # ------------------------------------------------------------------ init
    def reset_parameters(self) -> None:
        """Initialise ``P1, R1, Q1`` (and the bias) like ``nn.Conv2d``; zero the difference terms."""
        for w in (self.P1, self.R1, self.Q1):
            nn.init.kaiming_uniform_(w, a=math.sqrt(5))
        for w in (*self.p, *self.r, *self.q):
            nn.init.zeros_(w)
        if self.bias is not None:
            fan_in = self.Q1.shape[1]
            bound = 1 / math.sqrt(fan_in)
            nn.init.uniform_(self.bias, -bound, bound)
        self.clear_cache()

    @classmethod
    def from_factors(cls, conv: nn.Conv2d, factors: Mapping, width=None) -> "GroSSConv2d":
        """Build the series from given bottleneck weights at every group size (Eq. 6).

        Parameters
        ----------
        conv : nn.Conv2d
            The convolution being replaced (ungrouped, ``padding_mode='zeros'``);
            supplies shapes, stride, padding, dilation, bias, dtype and device.
        factors : mapping of int to (P, R, Q)
            For each group size ``s``: ``P (width, t, 1, 1)``,
            ``R (width_out, s, kh, kw)`` and ``Q (u, width_out, 1, 1)``, e.g. a
            :func:`gross.method.btd.btd` result.  Differences are taken in float64.
        width : int or (int, int), optional
            Bottleneck width (or ``(width, width_out)``); inferred from the
            factors (``P`` and ``R``) when omitted.

        Returns
        -------
        GroSSConv2d
            A layer which, at every ``s``, computes exactly the bottleneck
            ``Q ∘ R ∘ P`` of ``factors[s]`` (up to the rounding of the
            conv's dtype), with the conv's bias on ``Q``.
        """
        _check_conv(conv)
        if not isinstance(factors, Mapping) or not factors:
            raise ValueError("factors must be a non-empty mapping {group_size: (P, R, Q)}")
        t, u = conv.in_channels, conv.out_channels
        kh, kw = conv.kernel_size
        first = factors[next(iter(factors))]
        if len(first) < 3:
            raise ValueError("each entry of factors must be a (P, R, Q) triple")
        if width is None:
            inferred = (int(first[0].shape[0]), int(first[1].shape[0]))
            width = inferred if inferred[0] != inferred[1] else inferred[0]
        w_in, w_out = as_widths(width, t)
        sizes = _validate_group_sizes(list(factors), w_in, w_out)
        expected = {"P": (w_in, t, 1, 1), "Q": (u, w_out, 1, 1)}
        terms = {}
        for s in sizes:
            entry = factors[s]
            if len(entry) < 3:
                raise ValueError(f"factors[{s}] must be a (P, R, Q) triple")
            P, R, Q = (torch.as_tensor(x).detach().to(torch.float64) for x in entry[:3])
            for label, x, shape in (("P", P, expected["P"]), ("R", R, (w_out, s, kh, kw)), ("Q", Q, expected["Q"])):
                if tuple(x.shape) != shape:
                    raise ValueError(
                        f"factors[{s}].{label} has shape {tuple(x.shape)}, expected {shape} "
                        f"(t={t}, u={u}, width={width}, group size {s}, kernel {kh}x{kw})"
                    )
            terms[s] = (P, R, Q)

        layer = cls(
            t, u, conv.kernel_size, sizes, width=width, stride=conv.stride, padding=conv.padding,
            dilation=conv.dilation, bias=conv.bias is not None,
            device=conv.weight.device, dtype=conv.weight.dtype,
        )
        target = {"device": conv.weight.device, "dtype": conv.weight.dtype}
        with torch.no_grad():
            P_prev, R_prev, Q_prev = terms[sizes[0]]
            layer.P1.copy_(P_prev.to(**target))
            layer.R1.copy_(R_prev.to(**target))
            layer.Q1.copy_(Q_prev.to(**target))
            for i, (s_prev, s) in enumerate(zip(sizes, sizes[1:])):
                P, R, Q = terms[s]
                layer.p[i].copy_((P - P_prev).to(**target))
                layer.r[i].copy_((R - expand_grouped_weight(R_prev, s_prev, s, in_channels=w_in)).to(**target))
                layer.q[i].copy_((Q - Q_prev).to(**target))
                P_prev, R_prev, Q_prev = P, R, Q
            if conv.bias is not None:
                layer.bias.copy_(conv.bias.detach())
        layer.clear_cache()
        return layer

    @classmethod
    def from_conv(cls, conv: nn.Conv2d, group_sizes: Sequence[int], width=None, **btd_options) -> "GroSSConv2d":
        """Decompose ``conv`` with BTD at every group size and build the series.

        Parameters
        ----------
        conv : nn.Conv2d
            Ungrouped convolution with ``padding_mode='zeros'``.
        group_sizes : sequence of int
            Group sizes; each divides ``width`` and the next size.
        width : int or (int, int), optional
            Bottleneck width; defaults to ``conv.in_channels``.  A pair
            ``(w_in, w_out)``: asymmetric bottleneck, each BTD block of rank
            ``(w_out / groups, s)``.
        **btd_options
            Passed to :func:`gross.method.btd.btd` (``tol``, ``max_iter``, ``seed``,
            ``method``, ``ridge``).

        Returns
        -------
        GroSSConv2d
            The series layer (conv's dtype and device), active group size the
            largest, with ``btd_errors[s]`` the final relative BTD error at
            each ``s``.
        """
        from gross.method.btd import btd as _run_btd  # imported lazily: heavy (tensorly) and optional for the layer itself

        _check_conv(conv)
        if width is not None:
            w_in, w_out = as_widths(width, conv.in_channels)
            width = w_in if w_in == w_out else (w_in, w_out)
        else:
            w_in = w_out = conv.in_channels
        sizes = _validate_group_sizes(group_sizes, w_in, w_out)
        factors, errors = {}, {}
        weight = conv.weight.detach()
        for s in sizes:
            result = _run_btd(weight, s, width=width, **btd_options)
            factors[s] = (result.P, result.R, result.Q)
            errs = list(result.errors)
            errors[s] = float(errs[-1]) if errs else float("nan")
        layer = cls.from_factors(conv, factors, width=width)
        layer.btd_errors = errors
        return layer

    # --------------------------------------------------------- group size
    def _resolve(self, s) -> int:
        if s is None:
            return self._group_size
        try:
            s_int = operator.index(s)
        except TypeError:
            s_int = None
        if s_int is None or s_int not in self.group_sizes:
            where = f"layer {self.name!r}" if self.name else "this GroSSConv2d layer"
            raise ValueError(f"group size {s!r} is not valid for {where}: allowed sizes are {self.group_sizes}")
        return s_int

    @property
    def group_size(self) -> int:
        """Active group size (one of :attr:`group_sizes`)."""
        return self._group_size

    @group_size.setter
    def group_size(self, s: int) -> None:
        self._group_size = self._resolve(s)

    @property
    def groups(self) -> int:
        """Number of groups of ``R`` at the active group size."""
        return self.width // self._group_size

    # ------------------------------------------------------------ weights
    def _terms(self, order: int) -> tuple[list[Tensor], list[Tensor], list[Tensor]]:
        """Parameters of orders 1..order (1-based) for P, R and Q."""
        n = order - 1
        return (
            [self.P1, *(self.p[i] for i in range(n))],
            [self.R1, *(self.r[i] for i in range(n))],
            [self.Q1, *(self.q[i] for i in range(n))],
        )

    def _build(self, order: int, Ps, Rs, Qs) -> tuple[Tensor, Tensor, Tensor]:
        sizes = self.group_sizes
        R = Rs[0]
        for i in range(1, order):
            # Ψ_{s1→sn}(R1) + Σ Ψ_{si→sn}(r_i), accumulated by expanding step by step
            # (Ψ_{b→c} ∘ Ψ_{a→b} = Ψ_{a→c}), so each term is expanded only as far as needed.
            R = expand_grouped_weight(R, sizes[i - 1], sizes[i], in_channels=self.width) + Rs[i]
        return _sum(Ps), R, _sum(Qs)

    def weights(self, s: int | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """Bottleneck weights ``(P, R, Q)`` at group size ``s`` (Eq. 5).

        Only the terms of order ``≤ s`` are used.  When gradients are disabled
        the result is cached per ``s`` and rebuilt after any parameter change
        (in-place update, reload, device or dtype move); do not modify the
        returned tensors in place.

        Parameters
        ----------
        s : int, optional
            Group size; defaults to the active :attr:`group_size`.

        Returns
        -------
        P, R, Q : Tensor
            ``(width, t, 1, 1)``, ``(width_out, s, kh, kw)`` and ``(u, width_out, 1, 1)``.
        """
        s = self._resolve(s)
        order = self.group_sizes.index(s) + 1
        Ps, Rs, Qs = self._terms(order)
        terms = (*Ps, *Rs, *Qs)
        if torch.is_grad_enabled() or any(t.is_inference() for t in terms):
            # inference tensors (made under torch.inference_mode) have no version
            # counter, so a cache could not notice in-place updates: build afresh.
            return self._build(order, Ps, Rs, Qs)
        key = tuple((t.data_ptr(), t._version, t.dtype, t.device) for t in terms)
        hit = self._cache.get(s)
        if hit is not None and hit[0] == key:
            return hit[1]
        built = self._build(order, Ps, Rs, Qs)
        self._cache[s] = (key, built)
        return built

    def clear_cache(self) -> None:
        """Drop the cached no-grad weights (they are rebuilt on demand)."""
        self._cache = {}

    # ------------------------------------------------------------ forward
    def forward(self, x: Tensor) -> Tensor:
        """1×1 ``P`` → grouped ``R`` (``groups = width // group_size``) → 1×1 ``Q`` (+ bias)."""
        s = self._group_size
        P, R, Q = self.weights(s)
        x = F.conv2d(x, P)
        x = F.conv2d(x, R, None, self.stride, self.padding, self.dilation, self.width // s)
        return F.conv2d(x, Q, self.bias)

    def to_bottleneck(self, s: int | None = None) -> nn.Sequential:
        """Export the layer at group size ``s`` as a plain bottleneck.

        Parameters
        ----------
        s : int, optional
            Group size; defaults to the active :attr:`group_size`.

        Returns
        -------
        nn.Sequential
            ``Sequential(P=Conv2d(t, width, 1), R=Conv2d(width, width_out, k, groups=width // s),
            Q=Conv2d(width_out, u, 1))`` holding detached copies of the weights
            (same dtype and device), numerically equal to this layer at ``s``.
        """
        s = self._resolve(s)
        with torch.no_grad():
            P, R, Q = (w.detach().clone() for w in self.weights(s))
        factory = {"device": self.P1.device, "dtype": self.P1.dtype}
        conv_p = nn.utils.skip_init(nn.Conv2d, self.in_channels, self.width, 1, bias=False, **factory)
        conv_r = nn.utils.skip_init(
            nn.Conv2d, self.width, self.width_out, self.kernel_size, stride=self.stride, padding=self.padding,
            dilation=self.dilation, groups=self.width // s, bias=False, **factory,
        )
        conv_q = nn.utils.skip_init(
            nn.Conv2d, self.width_out, self.out_channels, 1, bias=self.bias is not None, **factory
        )
        conv_p.weight = nn.Parameter(P)
        conv_r.weight = nn.Parameter(R)
        conv_q.weight = nn.Parameter(Q)
        if self.bias is not None:
            conv_q.bias = nn.Parameter(self.bias.detach().clone())
        return nn.Sequential(OrderedDict(P=conv_p, R=conv_r, Q=conv_q))

    @property
    def widths(self) -> tuple[int, int]:
        """``(width, width_out)``: input and output channels of ``R``."""
        return self.width, self.width_out

    @property
    def widths_repr(self):
        """``width`` (symmetric) or ``(width, width_out)`` (asymmetric), as the constructor takes it."""
        return self.width if self.width == self.width_out else (self.width, self.width_out)

    # ---------------------------------------------------------- plumbing
    def _apply(self, fn, *args, **kwargs):
        self.clear_cache()
        return super()._apply(fn, *args, **kwargs)

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_cache"] = {}
        return state

    def extra_repr(self) -> str:
        text = (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, width={self.widths_repr}, "
            f"group_sizes={self.group_sizes}, group_size={self._group_size}, stride={self.stride}"
        )
        if self.padding != (0, 0):
            text += f", padding={self.padding}"
        if self.dilation != (1, 1):
            text += f", dilation={self.dilation}"
        if self.bias is None:
            text += ", bias=False"
        return text


def gross_layers(model: nn.Module) -> "OrderedDict[str, GroSSConv2d]":
    """The GroSS layers of ``model`` by qualified name, in module order."""
    return OrderedDict((n, m) for n, m in model.named_modules() if isinstance(m, GroSSConv2d))
