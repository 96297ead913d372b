"""MS³-Conv: multi-scale, cross-scale, share-weights convolution.

The three steps of the method (``../shared/docs/MS3CONV_SPEC.md``; patent CN111353939B; Feng et al.,
arXiv 2008.00239), one class each:

- S1 ``MS3Split``: the network's first convolution is kept as it is (full resolution); its output is split into
  ``n_scales`` branches of equal depth and branch i (i = 1…n) is downsampled i−1 times.
- S2 ``MS3Conv``: replaces every convolution in between. Branch i's output is the same-scale kernel applied to
  branch i plus what the cross-scale kernels deliver to branch i. The n same-scale kernels are ONE parameter
  tensor. A finer source is downsampled before its cross-scale kernel, a coarser source is upsampled after it.
- S3 ``MS3Fuse``: replaces the last convolution of the trunk: one convolution per branch maps it back to the
  replaced convolution's depth, branch i is upsampled i−1 times, and the n results are summed.

Multi-scale features travel between layers as a list of tensors, finest first. Non-linearities, residual
additions and scalings between converted convolutions act branch by branch (``branchwise``, ``add_scaled``).

Choices the patent leaves open (all documented in the README):

- Branch width. Every branch has ``num_feat // n_scales`` channels, so the same-scale kernel has one shape for all
  branches. When ``num_feat`` is not a multiple of ``n_scales``, the split uses the first
  ``n_scales * (num_feat // n_scales)`` channels of the first convolution's output; the remaining
  ``num_feat % n_scales`` channels are not branched (a network whose first features also feed a long skip, like
  EDSR, still carries them through that skip).
- Down-/up-sampling. Defaults: 2×2 average pooling down and nearest-neighbour up. Average pooling is the
  anti-aliasing box filter, nearest is its adjoint (together they preserve the local mean), both are exact on
  even sizes, cost no parameters and next to no operations, and run well in channels_last. Also offered:
  ``downsample='max'``, ``upsample='bilinear'``, and learned ones whose parameters and multiply-adds are counted:
  ``downsample='learned'`` (a depthwise 3×3 stride-2 filter per cross-scale kernel, initialised as the 2×2
  average) and ``upsample='learned'`` (nearest, then a depthwise 3×3 filter per cross-scale kernel and per fuse
  level, initialised as [1/4, 1/2, 1/4] in each direction: bilinear). They start exactly as ``'avg'`` and
  ``'bilinear'``. The split (S1) pools by averaging with ``'learned'`` too: its input is the output of the network's
  own first convolution, which already learns what the pooling sees.
- Sizes. At the split the features are padded (replicate, bottom/right) to a multiple of ``2**(n_scales - 1)``;
  the fuse crops back, so the output has exactly the size the plain network would give, for any input size.
- Biases. Only the same-scale kernel (shared, like its weight) and the finest fuse convolution carry a bias:
  every other bias would add a constant to the same sum, and a constant survives up-/down-sampling unchanged.
"""
import math
import re
from functools import partial

import torch
from basicsr.archs.arch_util import default_init_weights
from torch import nn as nn
from torch.nn import functional as F

INTERACTIONS = ('adjacent', 'full')
SCOPES = ('trunk', 'whole')
DOWNSAMPLES = ('avg', 'max', 'learned')
UPSAMPLES = ('nearest', 'bilinear', 'learned')


def check_ms3_args(n_scales, interaction='adjacent', downsample='avg', upsample='nearest', num_feat=None):
    """Raise ``ValueError`` naming the argument and its valid values when an MS³ option is invalid.

    ``num_feat`` (the width that is split into branches) is checked when given.
    """
    if isinstance(n_scales, bool) or not isinstance(n_scales, int) or n_scales < 1:
        raise ValueError(f'n_scales must be an integer >= 1 (1 is a plain convolution), got {n_scales!r}.')
    if interaction not in INTERACTIONS:
        raise ValueError(f'interaction must be one of {INTERACTIONS}, got {interaction!r}.')
    if downsample not in DOWNSAMPLES:
        raise ValueError(f'downsample must be one of {DOWNSAMPLES}, got {downsample!r}.')
    if upsample not in UPSAMPLES:
        raise ValueError(f'upsample must be one of {UPSAMPLES}, got {upsample!r}.')
    if num_feat is not None and num_feat < n_scales:
        raise ValueError(f'num_feat ({num_feat}) must be >= n_scales ({n_scales}) so that each branch keeps '
                         f'at least one channel; valid n_scales here: 1..{num_feat}.')


# Cross-scale kernels start at zero by default (since 2026-12-01; 1 before): in the two-seed ablations of
# docs/when_to_use_ms3.md, 0 gave MS3EDSR n=2 +0.22 dB over 1 and MS3CARN n=2 -0.05 dB (inside the seed spread).
DEFAULT_CROSS_SCALE_INIT = 0.


def check_cross_scale_init(cross_scale_init):
    """Validate the scale of the cross-scale kernels' initial weights (a number >= 0)."""
    if isinstance(cross_scale_init, bool) or not isinstance(cross_scale_init, (int, float)) or not (
            0 <= cross_scale_init < float('inf')):
        raise ValueError(f'cross_scale_init must be a finite number >= 0 (1: initialised like the same-scale kernel, '
                         f'0: start at zero), got {cross_scale_init!r}.')


def scale_cross_scale_init_(module, cross_scale_init):
    """Multiply the weights of every cross-scale kernel of ``module``'s S2 layers by ``cross_scale_init``, in place.

    Called at the end of a network's ``__init__``. 1 leaves the initialisation alone; 0 starts the network as
    ``n_scales`` paths that do not communicate (each S2 output is its same-scale kernel's, whose output variance is
    then that of one convolution rather than the sum of two or three), and lets training grow the interaction.
    """
    check_cross_scale_init(cross_scale_init)
    if cross_scale_init != 1:
        with torch.no_grad():
            for m in module.modules():
                if isinstance(m, MS3Conv):
                    for kernel in m.cross_scale.values():
                        kernel.weight.mul_(cross_scale_init)
    return module


def check_scope(scope):
    """Validate a network's conversion scope: 'trunk' (split … fuse around the feature trunk) or 'whole'."""
    if scope not in SCOPES:
        raise ValueError(f'scope must be one of {SCOPES}, got {scope!r}.')


def cross_scale_sources(i, n_scales, interaction):
    """Branches (0-based) whose features a cross-scale kernel delivers to branch ``i``."""
    if interaction == 'adjacent':
        return [j for j in (i - 1, i + 1) if 0 <= j < n_scales]
    return [j for j in range(n_scales) if j != i]


def num_cross_scale_kernels(n_scales, interaction):
    """2n−2 for adjacent interaction, n(n−1) for full interaction."""
    return 2 * n_scales - 2 if interaction == 'adjacent' else n_scales * (n_scales - 1)


def num_resampling_steps(n_scales, interaction):
    """Halvings (equally, doublings) of H and W that an S2 layer's cross-scale kernels apply, summed over the
    kernels from finer (equally, coarser) branches: n−1 for adjacent interaction, (n−1)n(n+1)/6 for full."""
    return sum(i - j for i in range(n_scales) for j in cross_scale_sources(i, n_scales, interaction) if j < i)


def downsample(x, times, mode='avg'):
    """Halve height and width ``times`` times."""
    if times == 0:
        return x
    factor = 2**times
    return F.avg_pool2d(x, factor) if mode == 'avg' else F.max_pool2d(x, factor)


def upsample(x, times, mode='nearest'):
    """Double height and width ``times`` times."""
    if times == 0:
        return x
    if mode == 'nearest':  # one call: repeated nearest doubling equals one nearest 2**times enlargement
        return F.interpolate(x, scale_factor=2**times, mode='nearest')
    for _ in range(times):
        x = F.interpolate(x, scale_factor=2, mode='bilinear', align_corners=False)
    return x


def _add_to_blocks_(x, y, factor):
    """``x += `` nearest enlargement of ``y`` by ``factor``, for a channels_last ``x``: one broadcast addition into
    ``x`` seen as blocks of factor × factor."""
    n, c, h, w = y.shape
    x.view(n, c, h, factor, w, factor).add_(y.view(n, c, h, 1, w, 1))
    return x


class _AddNearestUpsampled(torch.autograd.Function):
    """``_add_to_blocks_`` for autograd: backward passes ``x``'s gradient through and gives ``y`` the sum of each
    block of it (average pooling times factor², exact: a power of two). Autograd's own backward of the in-place
    addition into a view of ``x`` goes through ``CopySlices``/``as_strided`` and copies the whole gradient; in an
    EDSR-M ×2 training step on the CPU that cost about 13% of the step."""

    @staticmethod
    def forward(ctx, x, y, factor):
        ctx.factor, ctx.y_dtype = factor, y.dtype
        ctx.mark_dirty(x)
        return _add_to_blocks_(x, y, factor)

    @staticmethod
    def backward(ctx, grad):
        factor = ctx.factor
        return grad, (F.avg_pool2d(grad, factor) * factor**2).to(ctx.y_dtype), None


def add_upsampled_(x, y, times, mode='nearest'):
    """``x += upsample(y, times, mode)``, in place; returns ``x``.

    Nearest on a channels_last ``x`` (whose size is ``2**times`` times ``y``'s): one broadcast addition into ``x``
    seen as blocks of 2^times × 2^times, without building the enlarged copy of ``y`` — the same numbers (every
    element of a block gains the same value of ``y``) at a fraction of the time; when autograd records, through
    ``_AddNearestUpsampled``, whose backward is one pooling. Otherwise upsample, then add.
    """
    if mode == 'nearest' and x.is_contiguous(memory_format=torch.channels_last):
        if (torch.is_grad_enabled() and (x.requires_grad or y.requires_grad)
                and not torch.compiler.is_compiling()):  # compiled graphs: the compiler differentiates the view
            return _AddNearestUpsampled.apply(x, y, 2**times)
        return _add_to_blocks_(x, y, 2**times)
    return x.add_(upsample(y, times, mode))


class LearnedDownsample(nn.Module):
    """Halve height and width with a learned depthwise 3×3 filter of stride 2 (``downsample='learned'``).

    Initialised as 2×2 average pooling, which it equals exactly on even sizes (taps (1…2, 1…2) at 1/4, the others
    at 0); it can learn, for instance, the smoother [1/4, 1/2, 1/4] filter in each direction. 9 parameters per
    channel, 9 multiply-adds per output element (counted by ``complexity.count``).
    """

    def __init__(self, channels):
        super().__init__()
        weight = torch.zeros(channels, 1, 3, 3)
        weight[:, :, 1:, 1:] = 0.25
        self.weight = nn.Parameter(weight)  # not an nn.Conv2d: network-wide re-initialisations leave it alone

    def forward(self, x):
        return F.conv2d(x, self.weight, stride=2, padding=1, groups=self.weight.size(0))


class LearnedUpsample(nn.Module):
    """Double height and width: nearest enlargement, then a learned depthwise 3×3 filter over its replicate-padded
    result (``upsample='learned'``).

    Initialised as [1/4, 1/2, 1/4] in each direction, so that it starts exactly as bilinear enlargement
    (``align_corners=False``), borders included: the better of the fixed choices in the EDSR-M ablations (the
    identity would be nearest). 9 parameters per channel, 9 multiply-adds per output element (counted by
    ``complexity.count``).
    """

    def __init__(self, channels):
        super().__init__()
        taps = torch.tensor([0.25, 0.5, 0.25])
        self.weight = nn.Parameter((taps[:, None] * taps[None, :]).repeat(channels, 1, 1, 1))

    def forward(self, x):
        x = F.pad(F.interpolate(x, scale_factor=2, mode='nearest'), (1, 1, 1, 1), mode='replicate')
        return F.conv2d(x, self.weight, groups=self.weight.size(0))


def learned_resampling(times, channels, mode):
    """``times`` learned halvings (``mode='down'``) or doublings (``'up'``) of ``channels`` channels, in order."""
    step = LearnedDownsample if mode == 'down' else LearnedUpsample
    return nn.Sequential(*[step(channels) for _ in range(times)])


def resampling_drift(state_dict):
    """How far the learned resampling filters in ``state_dict`` have moved from their initialisation.

    Returns ``{'down': d, 'up': u}``: the mean absolute difference per tap between each ``LearnedDownsample``
    (``LearnedUpsample``) filter and its initial value, over all of them; ``None`` for a kind the network lacks.
    Cross-scale filters are told apart by their key ('jtoi': down when j < i); the fuse's are up.
    """
    initial = {'down': LearnedDownsample(1).weight.detach(), 'up': LearnedUpsample(1).weight.detach()}
    diffs = {'down': [], 'up': []}
    for key, value in state_dict.items():
        match = re.search(r'cross_scale_resample\.(\d+)to(\d+)\.\d+\.weight$', key)
        if match:
            kind = 'down' if int(match.group(1)) < int(match.group(2)) else 'up'
        elif re.search(r'(^|\.)fuse\.resample\.\d+\.weight$', key):
            kind = 'up'
        else:
            continue
        diffs[kind].append((value.float().cpu() - initial[kind]).abs().flatten())
    return {kind: torch.cat(d).mean().item() if d else None for kind, d in diffs.items()}


class _AvgPoolKeepingNoInput(torch.autograd.Function):
    """``avg_pool2d(x, factor)`` of a tensor whose size divides by ``factor``, keeping nothing of ``x`` for backward,
    which spreads each gradient evenly over its block: the numbers of ``avg_pool2d``'s own backward (the division
    by a power of two is exact)."""

    @staticmethod
    def forward(ctx, x, factor):
        ctx.factor = factor
        return F.avg_pool2d(x, factor)

    @staticmethod
    def backward(ctx, grad):
        return F.interpolate(grad, scale_factor=ctx.factor, mode='nearest') / ctx.factor**2, None


class _ConvRecomputingInputs(torch.autograd.Function):
    """``conv2d(*prepare(*sources), bias)`` keeping only ``sources`` for backward, which rebuilds from them the
    convolution's input and weight (``prepare``: cheap work, pooling and stacking kernels).

    The sources (branch features, parameters) are kept anyway, so the pooled copies and stacked kernels cost no
    memory between forward and backward. Backward runs the convolution's own backward on the rebuilt tensors and
    autograd through ``prepare``: the gradients are those of the plain composition, no convolution is repeated.
    """

    @staticmethod
    def forward(ctx, prepare, padding, bias, *sources):
        ctx.prepare, ctx.padding = prepare, padding
        ctx.bias_sizes = None if bias is None else list(bias.shape)
        ctx.save_for_backward(*sources)
        x, weight = prepare(*sources)
        return F.conv2d(x, weight, bias, padding=padding)

    @staticmethod
    def backward(ctx, grad):
        sources = [s.detach().requires_grad_(need) for s, need in zip(ctx.saved_tensors, ctx.needs_input_grad[3:])]
        with torch.enable_grad():
            x, weight = ctx.prepare(*sources)
            # Under autocast the forward convolution ran in the lower precision of its output (and gradient).
            x, weight = x.to(grad.dtype), weight.to(grad.dtype)
        grad_x, grad_weight, grad_bias = torch.ops.aten.convolution_backward(
            grad, x, weight, ctx.bias_sizes, [1, 1], [ctx.padding] * 2, [1, 1], False, [0, 0], 1,
            [x.requires_grad, weight.requires_grad, ctx.needs_input_grad[2]])
        built = [(t, g) for t, g in ((x, grad_x), (weight, grad_weight)) if t.requires_grad]
        wanted = [s for s in sources if s.requires_grad]
        grads = iter(torch.autograd.grad([t for t, _ in built], wanted, [g for _, g in built], allow_unused=True)
                     if built and wanted else [])
        return (None, None, grad_bias, *(next(grads) if s.requires_grad else None for s in sources))


def _stacked(x, *weights):
    """``conv2d_of``'s preparation for kernels that read one input: stack them along the output channels."""
    return x, torch.cat(weights)


def _pooled_and_stacked(*tensors, times, mode):
    """``conv2d_of``'s preparation for kernels that read finer branches: ``tensors`` are the branches, then one
    kernel each; branch k is downsampled ``times[k]`` times, and branches and kernels concatenated along the input
    channels."""
    branches, weights = tensors[:len(times)], tensors[len(times):]
    pooled = [downsample(b, k, mode) for b, k in zip(branches, times)]
    return (torch.cat(pooled, 1), torch.cat(weights, 1)) if len(pooled) > 1 else (pooled[0], weights[0])


def conv2d_of(prepare, sources, bias=None, padding=1, recompute=True):
    """``F.conv2d(*prepare(*sources), bias, padding=padding)``.

    With ``recompute`` and autograd recording, backward rebuilds ``prepare``'s tensors from ``sources`` instead
    of keeping them (``_ConvRecomputingInputs``). Under ``torch.compile`` the plain composition is traced, and the
    compiler decides itself what to recompute.
    """
    if recompute and torch.is_grad_enabled() and not torch.compiler.is_compiling():
        return _ConvRecomputingInputs.apply(prepare, padding, bias, *sources)
    x, weight = prepare(*sources)
    return F.conv2d(x, weight, bias, padding=padding)


def branchwise(fn, xs):
    """Apply ``fn`` (an activation, a scaling…) to every branch."""
    return [fn(x) for x in xs]


def add_scaled(xs, ys, scale=1.):
    """Branch-wise residual addition ``x + y * scale``."""
    if scale == 1:  # skip a multiplication per branch: y * 1 == y exactly
        return [x + y for x, y in zip(xs, ys)]
    return [x + y * scale for x, y in zip(xs, ys)]


def branchwise_cat(*multi_scale_features):
    """Branch-wise channel concatenation (dense connections): branch i of the result concatenates branch i of
    every argument, in order."""
    return [torch.cat(parts, 1) for parts in zip(*multi_scale_features)]


class Branchwise(nn.Module):
    """Module form of ``branchwise``: applies a parameter-free module (activation, pixel shuffle…) to every branch."""

    def __init__(self, module):
        super().__init__()
        self.module = module

    def forward(self, xs):
        return branchwise(self.module, xs)


class MS3Split(nn.Module):
    """S1: split full-resolution features into ``n_scales`` branches; branch i is downsampled i−1 times.

    Parameter-free: the convolution of S1 is the network's own first convolution, applied before the split.

    Args:
        n_scales (int): Number of scales (branches). 1 returns the features unchanged. Default: 2.
        downsample (str): 'avg' (2×2 average pooling), 'max', or 'learned' (which pools by averaging here: the
            learned filters are the S2 layers'). Default: 'avg'.
    """

    def __init__(self, n_scales=2, downsample='avg'):
        super().__init__()
        check_ms3_args(n_scales, downsample=downsample)
        self.n_scales = n_scales
        self.downsample = downsample
        self.pool = 'max' if downsample == 'max' else 'avg'

    def forward(self, x):
        if self.n_scales == 1:
            return [x]
        multiple = 2**(self.n_scales - 1)
        h, w = x.shape[-2:]
        # Rounded up by division of non-negative sizes, not ``-h % multiple``: torch.compile with dynamic shapes
        # cannot translate a modulo of symbolic sizes into the tensor arithmetic that interpolation's scales need
        # (crash at the 2nd size), and ONNX divides by truncation, which differs from floor division below zero.
        pad_h = (h + multiple - 1) // multiple * multiple - h
        pad_w = (w + multiple - 1) // multiple * multiple - w
        # Eager skips a padding by zero (a copy, kept whole for backward); traced, exported and compiled graphs pad
        # always, since a branch on the size would be frozen into them.
        if pad_h or pad_w or torch.jit.is_tracing() or torch.compiler.is_compiling():
            x = F.pad(x, (0, pad_w, 0, pad_h), mode='replicate')
        width = x.size(1) // self.n_scales
        branches = [x[:, i * width:(i + 1) * width] for i in range(self.n_scales)]
        if self.pool == 'avg' and torch.is_grad_enabled() and not torch.compiler.is_compiling():
            # Let backward keep the branches only, not all of x (which may feed a long skip until the fuse): a copy
            # of the finest branch instead of a view into x, and pooling that keeps nothing of its input.
            return [branches[0].clone()] + [_AvgPoolKeepingNoInput.apply(b, 2**i) for i, b in enumerate(branches)
                                             if i > 0]
        return [downsample(b, i, self.pool) for i, b in enumerate(branches)]


class MS3Conv(nn.Module):
    """S2: multi-scale mapping with one shared same-scale kernel and cross-scale interaction.

    Args:
        in_channels (int): Input channels of EACH branch.
        out_channels (int): Output channels of EACH branch.
        n_scales (int): Number of scales. 1 is exactly an ordinary ``nn.Conv2d``. Default: 2.
        interaction (str): 'adjacent' (branch i receives from i−1 and i+1: 2n−2 cross-scale kernels) or
            'full' (from every other branch: n(n−1) kernels). Default: 'adjacent'.
        kernel_size (int): Kernel size of every kernel. Default: 3.
        bias (bool): Whether the (shared) same-scale kernel has a bias. Default: True.
        groups (int): Groups of every kernel, as in ``nn.Conv2d``. Default: 1.
        downsample (str): 'avg', 'max' or 'learned' (``LearnedDownsample``, one per halving of each kernel from a
            finer branch), applied to a finer source before its cross-scale kernel. Default: 'avg'.
        upsample (str): 'nearest', 'bilinear' or 'learned' (``LearnedUpsample``, one per doubling of each kernel
            from a coarser branch), applied after a coarser source's kernel. Default: 'nearest'.
    """

    def __init__(self, in_channels, out_channels, n_scales=2, interaction='adjacent', kernel_size=3, bias=True,
                 groups=1, downsample='avg', upsample='nearest'):
        super().__init__()
        check_ms3_args(n_scales, interaction, downsample, upsample)
        self.n_scales = n_scales
        self.interaction = interaction
        self.downsample = downsample
        self.upsample = upsample
        self.merged = True  # False: run ``forward_reference`` (same result, one convolution per kernel)
        self.recompute = True  # False: keep the pooled inputs and stacked kernels for backward (same gradients)
        padding = kernel_size // 2
        # One module, hence one weight tensor (and one bias), used at every scale.
        self.same_scale = nn.Conv2d(in_channels, out_channels, kernel_size, 1, padding, groups=groups, bias=bias)
        # Key 'jtoi' is the kernel carrying branch j to branch i, numbered 1…n as in the patent.
        self.cross_scale = nn.ModuleDict({
            f'{j + 1}to{i + 1}': nn.Conv2d(
                in_channels, out_channels, kernel_size, 1, padding, groups=groups, bias=False)
            for i in range(n_scales) for j in cross_scale_sources(i, n_scales, interaction)
        })
        # Learned resampling: key 'jtoi' resamples what the kernel 'jtoi' carries (its input from a finer branch,
        # its output to a finer branch).
        self.cross_scale_resample = nn.ModuleDict()
        for i in range(n_scales):
            for j in cross_scale_sources(i, n_scales, interaction):
                if j < i and downsample == 'learned':
                    self.cross_scale_resample[f'{j + 1}to{i + 1}'] = learned_resampling(i - j, in_channels, 'down')
                elif j > i and upsample == 'learned':
                    self.cross_scale_resample[f'{j + 1}to{i + 1}'] = learned_resampling(j - i, out_channels, 'up')
        # forward_merged's plan, per coarser scale i: the kernels that lift branch i to finer branches t, and the
        # kernels that bring finer branches j (each downsampled i−j times) to scale i.
        sources = partial(cross_scale_sources, n_scales=n_scales, interaction=interaction)
        self.plan = [([(t, f'{i + 1}to{t + 1}') for t in range(i) if i in sources(t)],
                      [(j, f'{j + 1}to{i + 1}') for j in sources(i) if j < i]) for i in range(1, n_scales)]

    def forward(self, xs):
        # Learned resampling filters sit between the kernels that forward_merged stacks: reference path.
        if self.merged and self.n_scales > 1 and self.same_scale.groups == 1 and not self.cross_scale_resample:
            return self.forward_merged(xs)
        return self.forward_reference(xs)

    def forward_reference(self, xs):
        """The layer written as the patent states it, one convolution per kernel."""
        outs = []
        for i, x in enumerate(xs):
            out = self.same_scale(x)
            for j in cross_scale_sources(i, self.n_scales, self.interaction):
                key = f'{j + 1}to{i + 1}'
                kernel = self.cross_scale[key]
                resample = self.cross_scale_resample[key] if key in self.cross_scale_resample else None
                if j < i:  # finer source: downsample first, so the kernel runs at the coarser size
                    out = out + kernel(resample(xs[j]) if resample else downsample(xs[j], i - j, self.downsample))
                else:  # coarser source: kernel at its own size, then upsample
                    out = out + (resample(kernel(xs[j])) if resample else upsample(kernel(xs[j]), j - i, self.upsample))
            outs.append(out)
        return outs

    def forward_merged(self, xs):
        """The same sums with fewer, wider convolutions (equal to ``forward_reference`` up to rounding).

        At each scale i, the kernels that read branch i — the same-scale kernel and every kernel carrying branch i
        to a finer branch — run as ONE convolution with their weights stacked along the output channels; the
        kernels that bring finer branches to scale i run as one convolution over the concatenation of the
        downsampled sources. Wider convolutions use the CPU/GPU far better than many narrow ones. Contributions
        are summed in place into fresh convolution outputs (``add_upsampled_``), and the pooled inputs and stacked
        weights are rebuilt in backward rather than kept (``conv2d_of``; ``self.recompute``). (Group convolutions
        take the reference path: stacking grouped weights would interleave the groups.)
        """
        c_out, padding = self.same_scale.out_channels, self.same_scale.padding[0]
        weight, bias = self.same_scale.weight, self.same_scale.bias
        outs, lifted = [F.conv2d(xs[0], weight, bias, padding=padding)], []
        # Every coarser scale lifts to a finer one and receives from a finer one, in both interactions. Its bias
        # goes with the kernels from finer branches, so that the stacked kernels need no stacked bias.
        for i, (lifts, receives) in enumerate(self.plan, 1):
            y = conv2d_of(_stacked, [xs[i], weight] + [self.cross_scale[key].weight for _, key in lifts], None,
                          padding, self.recompute)
            # One split rather than slices: its backward joins the parts' gradients in one concatenation, where
            # each slice's would fill a zero tensor of y's size.
            same, *to_finer = y.split(c_out, 1)
            lifted += [(t, i - t, part) for (t, _), part in zip(lifts, to_finer)]
            prepare = partial(_pooled_and_stacked, times=[i - j for j, _ in receives], mode=self.downsample)
            sources = [xs[j] for j, _ in receives] + [self.cross_scale[key].weight for _, key in receives]
            out = conv2d_of(prepare, sources, bias, padding, self.recompute)
            outs.append(out.add_(same))
        for t, times, contribution in lifted:
            add_upsampled_(outs[t], contribution, times, self.upsample)
        return outs

    def extra_repr(self):
        return f'n_scales={self.n_scales}, interaction={self.interaction!r}'


class MS3Fuse(nn.Module):
    """S3: map each branch back to ``out_channels``, upsample branch i i−1 times, sum, and crop to ``size``.

    Args:
        in_channels (int): Channels of EACH branch.
        out_channels (int): Output channels (the replaced convolution's output depth).
        n_scales (int): Number of scales. 1 is exactly an ordinary ``nn.Conv2d``. Default: 2.
        kernel_size (int): Kernel size. Default: 3.
        upsample (str): 'nearest', 'bilinear' or 'learned' (``LearnedUpsample``, one per scale above the finest:
            ``resample[i - 1]`` doubles the sum of branches i… before branch i−1 is added). Default: 'nearest'.
    """

    def __init__(self, in_channels, out_channels, n_scales=2, kernel_size=3, upsample='nearest'):
        super().__init__()
        check_ms3_args(n_scales, upsample=upsample)
        self.upsample = upsample
        self.convs = nn.ModuleList(
            nn.Conv2d(in_channels, out_channels, kernel_size, 1, kernel_size // 2, bias=i == 0)
            for i in range(n_scales))
        self.resample = nn.ModuleList(
            LearnedUpsample(out_channels) for _ in range(n_scales - 1) if upsample == 'learned')

    def forward(self, xs, size):
        # Coarse to fine: up(up(c3) + c2) + c1 = c1 + up(c2) + up²(c3), since upsampling is linear; each
        # upsampling then works on the smallest tensor possible.
        out = self.convs[-1](xs[-1])
        for i in reversed(range(len(xs) - 1)):
            if self.resample:
                out = self.convs[i](xs[i]).add_(self.resample[i](out))
            else:
                out = add_upsampled_(self.convs[i](xs[i]), out, 1, self.upsample)
        return out[..., :size[0], :size[1]]


class MS3ResidualBlockNoBN(nn.Module):
    """BasicSR's ``ResidualBlockNoBN`` (conv-ReLU-conv, scaled residual) with both convolutions as S2 layers.

    Args:
        num_feat (int): Channels of EACH branch. Default: 64.
        res_scale (float): Residual scale. Default: 1.
        pytorch_init (bool): If True, PyTorch's default init, otherwise BasicSR's ``default_init_weights`` scaled
            by 0.1, as in ``ResidualBlockNoBN``. Default: False.
        n_scales, interaction, downsample, upsample: see ``MS3Conv``.
    """

    def __init__(self, num_feat=64, res_scale=1, pytorch_init=False, n_scales=2, interaction='adjacent',
                 downsample='avg', upsample='nearest'):
        super().__init__()
        self.res_scale = res_scale
        ms3 = dict(n_scales=n_scales, interaction=interaction, downsample=downsample, upsample=upsample)
        self.conv1 = MS3Conv(num_feat, num_feat, **ms3)
        self.conv2 = MS3Conv(num_feat, num_feat, **ms3)
        self.relu = nn.ReLU(inplace=True)
        if not pytorch_init:
            default_init_weights([self.conv1, self.conv2], 0.1)

    def forward(self, xs):
        out = self.conv2(branchwise(self.relu, self.conv1(xs)))
        return add_scaled(xs, out, self.res_scale)


class MS3Upsample(nn.Sequential):
    """BasicSR's ``Upsample`` (conv + pixel shuffle, per factor 2 or 3) with S2 layers and branch-wise shuffles.

    Args:
        scale (int): Scale factor: 2^n or 3.
        num_feat (int): Channels of EACH branch.
        ms3 (dict): ``n_scales``, ``interaction``, ``downsample``, ``upsample`` of ``MS3Conv``.
    """

    def __init__(self, scale, num_feat, **ms3):
        if (scale & (scale - 1)) == 0:
            factors = [2] * int(math.log2(scale))
        elif scale == 3:
            factors = [3]
        else:
            raise ValueError(f'scale {scale} is not supported. Supported scales: 2^n and 3.')
        layers = []
        for factor in factors:
            layers += [MS3Conv(num_feat, factor**2 * num_feat, **ms3), Branchwise(nn.PixelShuffle(factor))]
        super().__init__(*layers)


def ms3conv_num_params(in_channels, out_channels, n_scales, interaction, kernel_size=3, bias=True, groups=1,
                       downsample='avg', upsample='nearest'):
    """Closed form of an S2 layer's parameter count: k²·(c_in/groups)·c_out·(1 + #cross-scale kernels) + c_out,
    plus 9·c_in per learned halving and 9·c_out per learned doubling (``num_resampling_steps`` of each)."""
    kernels = 1 + num_cross_scale_kernels(n_scales, interaction)
    steps = num_resampling_steps(n_scales, interaction)
    learned = 9 * steps * (in_channels * (downsample == 'learned') + out_channels * (upsample == 'learned'))
    return kernel_size**2 * in_channels // groups * out_channels * kernels + (out_channels if bias else 0) + learned


def convert_plain_state_dict(state_dict, renames):
    """Map a plain network's state dict to its ``n_scales=1`` MS³ counterpart.

    Args:
        state_dict (dict): The plain network's state dict.
        renames (list[tuple[str, str]]): Pairs ``(regex, replacement)`` applied in order to each key with
            ``re.sub``; keys that match none stay as they are.
    """
    converted = {}
    for key, value in state_dict.items():
        for pattern, replacement in renames:
            key = re.sub(pattern, replacement, key)
        converted[key] = value
    return converted


__all__ = [
    'Branchwise', 'MS3Split', 'MS3Conv', 'MS3Fuse', 'LearnedDownsample', 'LearnedUpsample', 'MS3ResidualBlockNoBN',
    'MS3Upsample', 'branchwise', 'add_scaled', 'add_upsampled_', 'conv2d_of', 'branchwise_cat', 'check_ms3_args',
    'check_cross_scale_init', 'check_scope', 'scale_cross_scale_init_', 'cross_scale_sources',
    'num_cross_scale_kernels', 'num_resampling_steps', 'ms3conv_num_params', 'convert_plain_state_dict',
    'resampling_drift', 'DEFAULT_CROSS_SCALE_INIT'
]
