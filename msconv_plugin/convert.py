"""Convert a plain convolutional network to MS³-Conv automatically, by rewriting its ``torch.fx`` graph.

``ms3_convert(model)`` traces ``model`` (``torch.fx`` symbolic tracing; every ``nn.Conv2d`` is a leaf), then
rebuilds the graph with the method's three steps (``../shared/docs/MS3CONV_SPEC.md``):

- S1: the convolution named by ``split`` runs as it is, followed by the parameter-free activations that are its
  only user (they belong to the feature-extraction layer), then ``MS3Split``. Default: the first convolution with
  a kernel larger than 1×1 (1×1 convolutions on the image, like CARN's and RIDNet's mean shifts, are colour
  transforms, not feature extraction).
- S3: the convolution named by ``fuse`` becomes ``MS3Fuse``. Default: the last convolution (kernel larger than 1×1)
  that feeds the first upsampling after the split (pixel shuffle, interpolation), or the last such convolution
  when nothing upsamples.
- S2: every node between the two (descendant of the split, ancestor of the fuse: the *converted region*) acts
  branch by branch on multi-scale features (a list of tensors, finest first), with the rules of ``docs/
  convert_any_network.md``: convolutions become ``MS3Conv`` (grouped and dilated ones too); activations, residual
  additions and scalings act per branch; channel concatenations concatenate branch by branch; pixel shuffles and
  integer interpolations enlarge every branch; modules with per-channel parameters (PReLU, BatchNorm2d) and
  per-channel tensors are rebuilt at branch width and shared by all branches; convolutions acting on globally
  pooled features (channel attention) become one convolution at branch width shared by all branches.

In the rewritten graph every branch is its own node, so the result is an ordinary ``GraphModule``: it keeps the
plain network's module names (an S2 layer sits where its convolution was: ``body.0.conv1.same_scale.weight``),
trains, exports to ONNX and compiles like a hand-written network. Anything else in the region (reshapes,
windows, channel indexing, size reads, ``nn.Linear``…) is refused at conversion time with a ``ConversionError``
naming the operation, the module path and what to do; so is control flow that depends on the input (at tracing).

Branch widths. w = the split convolution's width C divided by ``n_scales`` (rounded down to a multiple of every
group count of the region's grouped convolutions, as ``MS3CARN`` does). A convolution with c output channels gets
(c / C)·w per branch when c is a multiple of C (so an upsampler's r²·C stays divisible by r²), else
⌊c / n⌋ (rounded down to the group multiple); concatenations add their inputs' branch widths.
"""
import copy
import inspect
import math
import operator
import re
from collections import namedtuple

import torch
from basicsr.archs.arch_util import pixel_unshuffle
from torch import fx, nn
from torch.nn import functional as F

from .archs.ms3conv import DEFAULT_CROSS_SCALE_INIT
from .archs.ms3conv import (MS3Conv, MS3Fuse, MS3Split, check_ms3_args, convert_plain_state_dict,
                            scale_cross_scale_init_)

# Parameter-free modules and functions that act on each element (or each channel) alone: branch by branch.
POINTWISE_MODULES = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.SELU, nn.CELU, nn.GELU, nn.SiLU, nn.Mish, nn.Sigmoid,
                     nn.Tanh, nn.Hardtanh, nn.Hardswish, nn.Hardsigmoid, nn.Softplus, nn.Identity, nn.Dropout,
                     nn.Dropout2d)
POINTWISE_FUNCTIONS = {
    operator.add, operator.sub, operator.mul, operator.truediv, operator.neg, torch.add, torch.sub, torch.mul,
    torch.div, torch.neg, torch.sigmoid, torch.tanh, torch.relu, torch.clamp, F.relu, F.relu6, F.leaky_relu, F.elu,
    F.selu, F.gelu, F.silu, F.mish, F.hardtanh, F.hardswish, F.hardsigmoid, F.softplus, F.dropout
}
# In the region an in-place operator becomes its out-of-place form (same values; branch tensors may be views).
IN_PLACE_FUNCTIONS = {
    operator.iadd: operator.add,
    operator.isub: operator.sub,
    operator.imul: operator.mul,
    operator.itruediv: operator.truediv
}
POINTWISE_METHODS = {
    'add', 'sub', 'mul', 'div', 'neg', 'relu', 'sigmoid', 'tanh', 'clamp', 'clamp_min', 'clamp_max', 'abs', 'exp',
    'contiguous', 'float', 'type_as'
}
ACTIVATION_FUNCTIONS = {torch.relu, F.relu, F.relu6, F.leaky_relu, F.elu, F.selu, F.gelu, F.silu, F.mish, F.hardtanh}
PER_CHANNEL_MODULES = (nn.PReLU, nn.BatchNorm2d)
GLOBAL_POOL_MODULES = (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)
GLOBAL_POOL_FUNCTIONS = {F.adaptive_avg_pool2d, F.adaptive_max_pool2d}
PIXEL_SHUFFLE_FUNCTIONS = {F.pixel_shuffle, torch.pixel_shuffle}
# Functions run as they are (not traced into): their bodies hold checks tracing cannot record.
LEAF_FUNCTIONS = (pixel_unshuffle, )

# A multi-scale feature: its width in the plain network, its width per branch, its enlargement since the split
# (pixel shuffles, interpolations), and whether it is globally pooled (1×1 spatially).
Feature = namedtuple('Feature', 'plain branch factor pooled')


class ConversionError(ValueError):
    """A network (or a part of it between split and fuse) that ``ms3_convert`` cannot convert."""


class MS3Tracer(fx.Tracer):
    """``torch.fx`` tracer that keeps every ``nn.Conv2d`` (subclasses too, e.g. mean shifts) as one node."""

    def __init__(self):
        super().__init__(autowrap_functions=LEAF_FUNCTIONS)

    def is_leaf_module(self, m, module_qualified_name):
        return isinstance(m, nn.Conv2d) or super().is_leaf_module(m, module_qualified_name)


class MS3DilatedConv(MS3Conv):
    """S2 layer with dilated kernels: ``MS3Conv`` with every kernel dilated by ``dilation`` (padded to keep the
    size), computed by ``forward_reference`` (``forward_merged`` pads for dilation 1).

    Args:
        in_channels (int): Input channels of EACH branch.
        out_channels (int): Output channels of EACH branch.
        dilation (int): Dilation of every kernel.
        kwargs: ``n_scales``, ``interaction``, ``kernel_size``, ``bias``, ``groups``, ``downsample``, ``upsample`` of
            ``MS3Conv``.
    """

    def __init__(self, in_channels, out_channels, dilation, **kwargs):
        super().__init__(in_channels, out_channels, **kwargs)
        for kernel in self.modules():
            if isinstance(kernel, nn.Conv2d):
                kernel.dilation = (dilation, dilation)
                kernel.padding = (dilation * (kernel.kernel_size[0] // 2), ) * 2

    def forward(self, xs):
        return self.forward_reference(xs)


def _module_path(node):
    if node.op == 'call_module':
        return node.target
    stack = node.meta.get('nn_module_stack')
    return list(stack.values())[-1][0] if stack else '(top level)'


def _get_attr(root, qualified_name):
    parent, _, name = qualified_name.rpartition('.')
    return getattr(root.get_submodule(parent) if parent else root, name)


def _has_attr(root, qualified_name):
    try:
        _get_attr(root, qualified_name)
    except AttributeError:
        return False
    return True


def _set_attr(root, qualified_name, value):
    parent, _, name = qualified_name.rpartition('.')
    setattr(root.get_submodule(parent) if parent else root, name, value)


def _is_global(output_size):
    return output_size in (1, (1, 1), [1, 1])


def _integer_factor(scale_factor):
    """The integer enlargement of an interpolation's ``scale_factor`` (equal for height and width), else None."""
    if isinstance(scale_factor, (tuple, list)):
        if len(set(scale_factor)) != 1:
            return None
        scale_factor = scale_factor[0]
    if isinstance(scale_factor, (int, float)) and not isinstance(scale_factor, bool) and scale_factor >= 1 and \
            float(scale_factor).is_integer():
        return int(scale_factor)
    return None


def initialise_like(new, plain):
    """Initialise every convolution of ``new`` (an S2 layer, a fuse, a shared convolution) from ``plain``.

    A convolution of ``plain``'s shape (``n_scales=1``) gets a copy of its weights and bias. Any other keeps
    PyTorch's default initialisation scaled by plain's weight standard deviation relative to that default for
    plain's fan-in (1 for a PyTorch-initialised network, ~0.24 for BasicSR's ``default_init_weights(..., 0.1)``), so
    a network initialised with a smaller scale keeps it; its bias is zeroed when plain's bias is all zeros.
    """
    gain = 1.
    if plain.weight.numel() > 1:
        gain = float(plain.weight.detach().std()) * math.sqrt(3 * plain.weight[0].numel())
    with torch.no_grad():
        for conv in new.modules():
            if not isinstance(conv, nn.Conv2d):
                continue
            if conv.weight.shape == plain.weight.shape:
                conv.weight.copy_(plain.weight)
                if conv.bias is not None:
                    conv.bias.copy_(plain.bias)
            else:
                conv.weight.mul_(gain)
                if conv.bias is not None and plain.bias is not None and not plain.bias.any():
                    conv.bias.zero_()


class _Converter:
    """One conversion: trace, find split / fuse / region, rebuild the graph. See ``ms3_convert``."""

    def __init__(self, model, n_scales, interaction, split, fuse, downsample, upsample):
        check_ms3_args(n_scales, interaction, downsample, upsample)
        self.n, self.interaction, self.downsample, self.upsample = n_scales, interaction, downsample, upsample
        self.ms3 = dict(n_scales=n_scales, interaction=interaction, downsample=downsample, upsample=upsample)
        self.model_name = type(model).__name__
        traced = copy.deepcopy(model)  # tracing may assign attributes (EDSR's ``self.mean = ...``) to proxies
        tracer = MS3Tracer()
        try:
            self.graph = tracer.trace(traced)
        except Exception as error:  # noqa: BLE001  (any failure of tracing is reported with where it happened)
            path = list(tracer.module_stack.values())[-1][0] if tracer.module_stack else '(top level)'
            raise ConversionError(
                f'ms3_convert: cannot trace {self.model_name} in module {path!r}: {error} torch.fx records no '
                'control flow that depends on the input (its values or, here, sizes that decide a branch), so such '
                'a network cannot be converted automatically; remove the check or write the MS3 network by hand.'
            ) from error
        self.root = copy.deepcopy(model)
        for node in self.graph.nodes:  # tensor constants the tracer added
            if node.op == 'get_attr' and not _has_attr(self.root, node.target):
                _set_attr(self.root, node.target, _get_attr(traced, node.target))
        self.modules = dict(self.root.named_modules())
        self.convs = [n for n in self.graph.nodes if n.op == 'call_module' and isinstance(self.module(n), nn.Conv2d)]
        self.split_node = self.find_conv(split, 'split', self.default_split)
        self.fuse_node = self.find_conv(fuse, 'fuse', self.default_fuse)
        self.split_name, self.fuse_name = self.split_node.target, self.fuse_node.target
        if self.fuse_node not in self.descendants(self.split_node):
            raise ConversionError(f'ms3_convert: fuse {self.fuse_name!r} does not follow split {self.split_name!r} '
                                  f'in {self.model_name}: choose a fuse convolution after the split.')
        self.split_point = self.absorb_activations(self.split_node)
        self.region = self.descendants(self.split_point) & self.ancestors(self.fuse_node)
        self.groups = self.group_multiple()
        self.num_feat = self.module(self.split_node).out_channels
        self.width = self.num_feat // self.n // self.groups * self.groups
        if self.width == 0:
            raise ConversionError(
                f'ms3_convert: split {self.split_name!r} has {self.num_feat} channels, fewer than n_scales '
                f'({self.n}) × {self.groups} (the group count of the grouped convolutions): lower n_scales.')
        state = self.root.state_dict(keep_vars=True)
        self.constants = [n.target for n in self.graph.nodes if n.op == 'get_attr' and n.target not in state]
        self.replaced = {}  # target → (widths it was rebuilt for), for modules called more than once
        self.s2, self.shared = [], []

    # --- finding things -----------------------------------------------------------------------------------------
    def module(self, node):
        return self.modules[node.target]

    @staticmethod
    def _reachable(node, next_nodes):
        """Every node reached from ``node`` by following ``next_nodes`` (``node`` itself only through a cycle)."""
        seen, todo = set(), list(next_nodes(node))
        while todo:
            n = todo.pop()
            if n not in seen:
                seen.add(n)
                todo.extend(next_nodes(n))
        return seen

    def descendants(self, node):
        return self._reachable(node, lambda n: n.users)

    def ancestors(self, node):
        return self._reachable(node, lambda n: n.all_input_nodes)

    def find_conv(self, name, role, default):
        if name is None:
            return default()
        nodes = [n for n in self.convs if n.target == name]
        if len(nodes) != 1:
            names = ', '.join(dict.fromkeys(n.target for n in self.convs))
            problem = 'is called more than once' if nodes else 'is not a convolution called in the forward pass'
            raise ConversionError(f'ms3_convert: {role} {name!r} {problem} in {self.model_name}; name one of its '
                                  f'convolutions: {names}.')
        return nodes[0]

    def spatial_convs(self, nodes):
        return [n for n in self.convs if n in nodes and self.module(n).kernel_size != (1, 1)]

    def default_split(self):
        convs = self.spatial_convs(set(self.graph.nodes))
        if not convs:
            raise ConversionError(f'ms3_convert: {self.model_name} has no convolution with a kernel larger than 1×1 '
                                  'to split at: give split.')
        return convs[0]

    def default_fuse(self):
        after = self.descendants(self.split_node)
        enlargements = [n for n in self.graph.nodes if n in after and self.is_enlargement(n)]
        if enlargements:
            after &= self.ancestors(enlargements[0])
        convs = self.spatial_convs(after)
        if not convs:
            raise ConversionError(f'ms3_convert: no convolution with a kernel larger than 1×1 follows split '
                                  f'{self.split_name!r} in {self.model_name}: give fuse.')
        return convs[-1]

    def is_enlargement(self, node):
        if node.op == 'call_module':
            return isinstance(self.module(node), (nn.PixelShuffle, nn.Upsample))
        return node.op == 'call_function' and node.target in PIXEL_SHUFFLE_FUNCTIONS | {F.interpolate}

    def is_activation(self, node):
        if node.op == 'call_module':
            return isinstance(self.module(node), POINTWISE_MODULES)
        return node.op == 'call_function' and node.target in ACTIVATION_FUNCTIONS

    def absorb_activations(self, node):
        """The split's convolution followed by the parameter-free activations that are its only users."""
        while len(node.users) == 1:
            user = next(iter(node.users))
            if user is self.fuse_node or not self.is_activation(user) or len(user.all_input_nodes) != 1:
                break
            node = user
        return node

    def group_multiple(self):
        """Least common multiple of the group counts of the region's grouped (not depthwise) convolutions."""
        multiple = 1
        for node in self.convs:
            conv = self.module(node)
            if node in self.region and conv.groups > 1 and not self.depthwise(conv):
                multiple = math.lcm(multiple, conv.groups)
        return multiple

    @staticmethod
    def depthwise(conv):
        return conv.groups == conv.in_channels == conv.out_channels

    def branch_width(self, channels, node):
        if channels % self.num_feat == 0:
            width = channels // self.num_feat * self.width
        else:
            width = channels // self.n // self.groups * self.groups
        if width == 0:
            self.refuse(node, f'its {channels} output channels leave no channel per branch at n_scales={self.n}'
                        f'{f" with {self.groups} groups" if self.groups > 1 else ""}')
        return width

    # --- errors -------------------------------------------------------------------------------------------------
    def describe(self, node):
        if node.op == 'call_module':
            return f'{type(self.module(node)).__name__} module'
        if node.op == 'call_function':
            return f'function {getattr(node.target, "__name__", node.target)}'
        return f'method .{node.target}()'

    def refuse(self, node, reason):
        raise ConversionError(
            f'ms3_convert: cannot convert the {self.describe(node)} at {_module_path(node)!r} (node {node.name!r}) '
            f'of {self.model_name}: {reason}. Converted region: split {self.split_name!r} … fuse {self.fuse_name!r}; '
            'move split or fuse so that this operation is outside, or leave that part of the network plain.')

    # --- rewriting ----------------------------------------------------------------------------------------------
    def convert(self):
        """The rebuilt ``(root, graph, record)``."""
        self.new = fx.Graph()
        self.env, self.info = {}, {}
        for node in self.graph.nodes:
            if node in self.region:
                self.env[node] = self.convert_node(node)
            elif node is self.fuse_node:
                self.env[node] = self.convert_fuse(node)
            else:
                for source in node.all_input_nodes:
                    if source in self.region:
                        self.refuse(node, f'it reads the multi-scale features of {source.name!r} but does not lead '
                                    'to the fuse, so they have no full-resolution form there')
                self.env[node] = self.new.node_copy(node, lambda n: self.env[n])
                if node is self.split_point:
                    self.make_split(node)
        self.new.lint()
        record = dict(n_scales=self.n, interaction=self.interaction, split=self.split_name, fuse=self.fuse_name,
                      s2=self.s2, shared=self.shared, branch_width=self.width, constants=self.constants)
        return self.root, self.new, record

    def make_split(self, node):
        x = self.env[node]
        split_conv = self.module(self.split_node)
        plain_users = [u for u in node.users if u not in self.region and u is not self.fuse_node]
        if not plain_users and split_conv.groups == 1 and self.n * self.width < self.num_feat:
            # Nothing but the branches reads the split: its convolution produces exactly the branched channels.
            narrow = nn.Conv2d(split_conv.in_channels, self.n * self.width, split_conv.kernel_size,
                               split_conv.stride, split_conv.padding, split_conv.dilation, bias=split_conv.bias
                               is not None, padding_mode=split_conv.padding_mode)
            initialise_like(narrow, split_conv)
            _set_attr(self.root, self.split_name, narrow)
        elif self.num_feat // self.n != self.width:  # MS3Split takes C // n per branch; give it n * w channels
            x = self.new.call_function(torch.narrow, (x, 1, 0, self.n * self.width))
        name = 'ms3_split'
        while name in self.modules:
            name = '_' + name
        self.root.add_module(name, MS3Split(self.n, self.downsample))
        branches = self.new.call_module(name, (x, ))
        self.split_branches = [self.new.call_function(operator.getitem, (branches, i)) for i in range(self.n)]
        self.split_size = [self.new.call_method('size', (x, d)) for d in (-2, -1)]
        self.info[node] = Feature(self.num_feat, self.width, 1, False)

    def branches(self, node):
        return self.split_branches if node is self.split_point else self.env[node]

    def is_multi_scale(self, node):
        return node is self.split_point or node in self.region

    def inputs(self, node):
        return [n for n in node.all_input_nodes if self.is_multi_scale(n)]

    def per_branch(self, node, target=None, args=None, kwargs=None, op=None, outside=None):
        """``node`` once per branch, its multi-scale arguments replaced by their branch i; ``outside`` maps every
        other node argument (default: refuse)."""
        args = node.args if args is None else args
        kwargs = node.kwargs if kwargs is None else kwargs
        outside = outside or (lambda n: self.refuse(node, f'it mixes multi-scale features with {n.name!r}, which '
                                                    'is computed outside the converted region'))
        outs = []
        for i in range(self.n):
            def arg(n, i=i):
                return self.branches(n)[i] if self.is_multi_scale(n) else outside(n)

            outs.append(self.new.create_node(op or node.op, node.target if target is None else target,
                                             fx.node.map_arg(args, arg), fx.node.map_arg(kwargs, arg)))
        return outs

    def single_input(self, node):
        sources = self.inputs(node)
        if len(sources) != 1:
            self.refuse(node, 'it takes more than one multi-scale input')
        return self.info[sources[0]]

    def convert_node(self, node):
        if node.op == 'call_module':
            return self.convert_module(node)
        if node.op == 'call_function':
            return self.convert_function(node)
        if node.op == 'call_method':
            return self.convert_method(node)
        self.refuse(node, 'unexpected graph node')

    def set_info(self, node, feature):
        self.info[node] = feature

    def convert_module(self, node):
        module = self.module(node)
        feature = self.single_input(node)
        if isinstance(module, nn.Conv2d):
            return self.convert_conv(node, module, feature)
        if isinstance(module, POINTWISE_MODULES) or (isinstance(module, nn.PReLU) and module.num_parameters == 1):
            self.set_info(node, feature)
            return self.per_branch(node)
        if isinstance(module, PER_CHANNEL_MODULES):
            self.rebuild_per_channel(node, module, feature)
            self.set_info(node, feature)
            return self.per_branch(node)
        if isinstance(module, GLOBAL_POOL_MODULES) and _is_global(module.output_size):
            self.set_info(node, feature._replace(pooled=True))
            return self.per_branch(node)
        if isinstance(module, nn.PixelShuffle):
            return self.shuffle(node, module.upscale_factor, feature, self.per_branch(node))
        if isinstance(module, nn.Upsample):
            factor = _integer_factor(module.scale_factor) if module.size is None else None
            return self.enlarge(node, factor, feature, self.per_branch(node))
        self.refuse(node, 'no branch-wise rule for this module (it may mix channels or positions)')

    def convert_conv(self, node, conv, feature):
        if conv.in_channels != feature.plain:
            self.refuse(node, f'it expects {conv.in_channels} input channels, the traced input has {feature.plain}')
        width = self.branch_width(conv.out_channels, node)
        groups = feature.branch if self.depthwise(conv) else conv.groups
        if self.depthwise(conv) and width != feature.branch:
            self.refuse(node, 'a depthwise convolution whose branch input and output widths differ')
        if feature.branch % groups or width % groups:
            self.refuse(node, f'{groups} groups do not divide its branch widths {feature.branch} → {width}')
        if feature.pooled:
            # Channel attention: one convolution at branch width, shared by all branches (see the module docs).
            new = nn.Conv2d(feature.branch, width, conv.kernel_size, conv.stride, conv.padding, conv.dilation, groups,
                            conv.bias is not None, conv.padding_mode)
            self.replace(node, new, conv, (feature.branch, width), self.shared)
            self.set_info(node, Feature(conv.out_channels, width, feature.factor, True))
            return self.per_branch(node)
        k, d = conv.kernel_size[0], conv.dilation[0]
        if conv.kernel_size != (k, k) or k % 2 == 0 or conv.stride != (1, 1) or conv.dilation != (d, d) or \
                conv.padding != (d * (k // 2), ) * 2 or conv.padding_mode != 'zeros':
            self.refuse(node, 'an S2 layer needs a square odd kernel, stride 1 and zero padding that keeps the size '
                        f'(got kernel {conv.kernel_size}, stride {conv.stride}, padding {conv.padding}, dilation '
                        f'{conv.dilation}, padding_mode {conv.padding_mode!r})')
        kwargs = dict(kernel_size=k, bias=conv.bias is not None, groups=groups, **self.ms3)
        new = MS3DilatedConv(feature.branch, width, d, **kwargs) if d > 1 else MS3Conv(feature.branch, width, **kwargs)
        self.replace(node, new, conv, (feature.branch, width), self.s2)
        self.set_info(node, Feature(conv.out_channels, width, feature.factor, False))
        out = self.new.call_module(node.target, (list(self.branches(self.inputs(node)[0])), ))
        return [self.new.call_function(operator.getitem, (out, i)) for i in range(self.n)]

    def replace(self, node, new, plain, widths, record):
        """Put ``new`` where ``plain`` was (once, for a module called several times with the same widths)."""
        if node.target in self.replaced:
            if self.replaced[node.target] != widths:
                self.refuse(node, 'the module is called several times with different branch widths')
            return
        initialise_like(new, plain)
        _set_attr(self.root, node.target, new)
        self.replaced[node.target] = widths
        record.append(node.target)

    def rebuild_per_channel(self, node, module, feature):
        channels = module.num_parameters if isinstance(module, nn.PReLU) else module.num_features
        if channels != feature.plain:
            self.refuse(node, f'it has {channels} channels, its input {feature.plain}')
        if node.target in self.replaced:
            if self.replaced[node.target] != (feature.branch, ):
                self.refuse(node, 'the module is called several times with different branch widths')
            return
        new = copy.deepcopy(module)
        with torch.no_grad():
            for name, tensor in list(new.named_parameters(recurse=False)) + list(new.named_buffers(recurse=False)):
                if tensor.dim() and tensor.size(0) == channels:
                    sliced = tensor[:feature.branch].clone()
                    setattr(new, name, nn.Parameter(sliced) if isinstance(tensor, nn.Parameter) else sliced)
        if isinstance(new, nn.PReLU):
            new.num_parameters = feature.branch
        else:
            new.num_features = feature.branch
        _set_attr(self.root, node.target, new)
        self.replaced[node.target] = (feature.branch, )
        self.shared.append(node.target)

    def shuffle(self, node, factor, feature, outs):
        if feature.pooled or feature.branch % factor**2:
            self.refuse(node, f'a pixel shuffle by {factor} needs a spatial input whose branch width '
                        f'({feature.branch}) is a multiple of {factor**2}')
        self.set_info(node, Feature(feature.plain // factor**2, feature.branch // factor**2, feature.factor * factor,
                                    False))
        return outs

    def enlarge(self, node, factor, feature, outs):
        if factor is None or feature.pooled:
            self.refuse(node, 'only enlargements by an integer scale_factor (no size) act branch by branch')
        self.set_info(node, feature._replace(factor=feature.factor * factor))
        return outs

    def pointwise(self, node, target=None, op=None):
        features = [self.info[s] for s in self.inputs(node)]
        spatial = [f for f in features if not f.pooled]
        widths = {(f.plain, f.branch) for f in features}
        if len(widths) != 1 or len({f.factor for f in spatial}) > 1:
            self.refuse(node, f'its multi-scale inputs differ in width or size ({features})')
        feature = spatial[0] if spatial else features[0]
        self.set_info(node, feature)
        return self.per_branch(node, target, op=op, outside=lambda n: self.per_channel_constant(node, n, feature))

    def per_channel_constant(self, node, source, feature):
        """A parameter or buffer combined with multi-scale features: a scalar stays; one value per channel
        (shape (…, C, 1, 1)) is cut to the branch width and shared by all branches."""
        if source.op != 'get_attr':
            self.refuse(node, f'it mixes multi-scale features with {source.name!r}, which is computed outside the '
                        'converted region')
        tensor = _get_attr(self.root, source.target)
        if tensor.numel() == 1:
            return self.env[source]
        if tensor.dim() < 3 or tensor.size(-3) not in (feature.plain, feature.branch) or \
                tensor[..., :1, :, :].numel() * tensor.size(-3) != tensor.numel():
            self.refuse(node, f'{source.target!r} of shape {tuple(tensor.shape)} is neither a scalar nor one value '
                        'per channel')
        if source.target in self.replaced:
            if self.replaced[source.target] != (feature.branch, ):
                self.refuse(node, f'{source.target!r} is used at different branch widths')
            return self.env[source]
        sliced = tensor.detach().narrow(-3, 0, feature.branch).clone()
        _set_attr(self.root, source.target, nn.Parameter(sliced, tensor.requires_grad)
                  if isinstance(tensor, nn.Parameter) else sliced)
        self.replaced[source.target] = (feature.branch, )
        self.shared.append(source.target)
        return self.env[source]

    def convert_function(self, node):
        target = IN_PLACE_FUNCTIONS.get(node.target, node.target)
        if target in POINTWISE_FUNCTIONS:
            return self.pointwise(node, target)
        if target is torch.cat:
            return self.cat(node)
        feature = self.single_input(node)
        if target in PIXEL_SHUFFLE_FUNCTIONS:
            return self.shuffle(node, node.args[1] if len(node.args) > 1 else node.kwargs['upscale_factor'], feature,
                                self.per_branch(node))
        if target is F.interpolate:
            bound = inspect.signature(F.interpolate).bind(*node.args, **node.kwargs).arguments
            factor = _integer_factor(bound.get('scale_factor')) if bound.get('size') is None else None
            return self.enlarge(node, factor, feature, self.per_branch(node))
        if target in GLOBAL_POOL_FUNCTIONS:
            size = node.args[1] if len(node.args) > 1 else node.kwargs.get('output_size')
            if _is_global(size):
                self.set_info(node, feature._replace(pooled=True))
                return self.per_branch(node)
        if target is torch.mean:
            return self.mean(node, feature)
        self.refuse(node, 'no branch-wise rule for this function (it may reshape, index or mix channels)')

    def convert_method(self, node):
        method = node.target[:-1] if node.target.endswith('_') and node.target[:-1] in POINTWISE_METHODS \
            else node.target
        if method in POINTWISE_METHODS:
            return self.pointwise(node, method)
        if method == 'mean':
            return self.mean(node, self.single_input(node))
        self.refuse(node, 'no branch-wise rule for this method (it may reshape, index, read sizes or mix channels)')

    def mean(self, node, feature):
        dims = node.args[1] if len(node.args) > 1 else node.kwargs.get('dim')
        keepdim = node.args[2] if len(node.args) > 2 else node.kwargs.get('keepdim', False)
        if not keepdim or not isinstance(dims, (tuple, list)) or sorted(d % 4 for d in dims) != [2, 3]:
            self.refuse(node, 'only a spatial mean (dim (2, 3), keepdim=True) acts branch by branch')
        self.set_info(node, feature._replace(pooled=True))
        return self.per_branch(node)

    def cat(self, node):
        tensors = node.args[0]
        dim = node.args[1] if len(node.args) > 1 else node.kwargs.get('dim', 0)
        if dim not in (1, -3) or not all(isinstance(t, fx.Node) and self.is_multi_scale(t) for t in tensors):
            self.refuse(node, 'only a channel concatenation (dim 1) of multi-scale features acts branch by branch')
        features = [self.info[t] for t in tensors]
        if len({(f.factor, f.pooled) for f in features}) != 1:
            self.refuse(node, f'it concatenates features of different sizes ({features})')
        self.set_info(node, Feature(sum(f.plain for f in features), sum(f.branch for f in features),
                                    features[0].factor, features[0].pooled))
        return self.per_branch(node)

    def convert_fuse(self, node):
        conv = self.module(node)
        feature = self.single_input(node)
        k = conv.kernel_size[0]
        if conv.kernel_size != (k, k) or k % 2 == 0 or conv.stride != (1, 1) or conv.dilation != (1, 1) or \
                conv.groups != 1 or conv.padding != (k // 2, ) * 2 or conv.padding_mode != 'zeros':
            self.refuse(node, 'the fuse needs a square odd kernel, stride 1, no dilation or groups, and zero padding '
                        'that keeps the size')
        if feature.pooled or conv.in_channels != feature.plain:
            self.refuse(node, 'the fuse needs the spatial multi-scale features of the region')
        fuse = MS3Fuse(feature.branch, conv.out_channels, self.n, kernel_size=k, upsample=self.upsample)
        if conv.bias is None:
            fuse.convs[0].bias = None
        initialise_like(fuse, conv)
        _set_attr(self.root, node.target, fuse)
        size = [s if feature.factor == 1 else self.new.call_function(operator.mul, (s, feature.factor))
                for s in self.split_size]
        return self.new.call_module(node.target, (list(self.branches(self.inputs(node)[0])), tuple(size)))


def convert_graph(model, n_scales=2, interaction='adjacent', split=None, fuse=None, downsample='avg',
                  upsample='nearest', cross_scale_init=DEFAULT_CROSS_SCALE_INIT):
    """The parts of ``ms3_convert``'s result: ``(root, graph, record)``, for ``GraphModule(root, graph)``.

    ``record`` (a dict) names the split and fuse convolutions, the S2 layers (``s2``) and the modules and tensors
    rebuilt at branch width and shared by all branches (``shared``), with ``n_scales``, ``interaction`` and the
    branch width.
    """
    root, graph, record = _Converter(model, n_scales, interaction, split, fuse, downsample, upsample).convert()
    scale_cross_scale_init_(root, cross_scale_init)
    return root, graph, record


def ms3_convert(model, n_scales=2, interaction='adjacent', split=None, fuse=None, downsample='avg',
                upsample='nearest', cross_scale_init=DEFAULT_CROSS_SCALE_INIT):
    """Convert a plain convolutional network to MS³-Conv (see the module docstring and docs/convert_any_network.md).

    Args:
        model (nn.Module): The plain network; not modified. With ``n_scales=1`` the result computes the same outputs
            with its weights; otherwise the new kernels are initialised like the convolutions they replace
            (``initialise_like``).
        n_scales (int): Number of scales (branches). Default: 2.
        interaction (str): 'adjacent' or 'full' cross-scale interaction. Default: 'adjacent'.
        split (str | None): Module name of the convolution that becomes S1. Default: None, the first convolution
            with a kernel larger than 1×1.
        fuse (str | None): Module name of the convolution that becomes S3. Default: None, the last convolution (kernel
            larger than 1×1) feeding the first upsampling after the split, else the last such convolution.
        downsample (str): 'avg', 'max' or 'learned', between scales. Default: 'avg'.
        upsample (str): 'nearest', 'bilinear' or 'learned', between scales. Default: 'nearest'.
        cross_scale_init (float): Scale of the cross-scale kernels' initial weights (``scale_cross_scale_init_``).
            Default: 0 (``DEFAULT_CROSS_SCALE_INIT``).

    Returns:
        torch.fx.GraphModule: The converted network; ``.meta['ms3']`` holds the conversion record (``convert_graph``).

    Raises:
        ConversionError: naming the operation, module path and what to do, for anything it cannot convert.
    """
    root, graph, record = convert_graph(model, n_scales, interaction, split, fuse, downsample, upsample,
                                        cross_scale_init)
    return finish(fx.GraphModule(root, graph, class_name=f'MS3{type(model).__name__}'), record)


def finish(converted, record):
    """Store ``record`` in ``converted.meta['ms3']``. Tensors the plain network holds outside its state dict (EDSR's
    ``mean``, constants of the trace) stay out of it: ``GraphModule`` makes them buffers, here non-persistent ones.
    """
    for name in record['constants']:
        parent, _, attr = name.rpartition('.')
        owner = converted.get_submodule(parent) if parent else converted
        tensor = getattr(owner, attr)
        delattr(owner, attr)
        owner.register_buffer(attr, tensor, persistent=False)
    converted.meta['ms3'] = record
    return converted


def plain_to_ms3_state_dict(state_dict, converted):
    """Map the plain network's state dict onto its ``n_scales=1`` conversion ``converted``.

    S2 layers' keys gain ``.same_scale`` (``body.0.conv1.weight`` → ``body.0.conv1.same_scale.weight``), the fuse's
    become ``<fuse>.convs.0.*``; everything else keeps its name.
    """
    record = converted.meta['ms3']
    if record['n_scales'] != 1:
        raise ValueError(f'plain weights fit the n_scales=1 conversion only; this one has n_scales='
                         f'{record["n_scales"]}.')
    renames = [(rf'^{re.escape(name)}\.', f'{name}.same_scale.') for name in record['s2']]
    renames.append((rf'^{re.escape(record["fuse"])}\.', f'{record["fuse"]}.convs.0.'))
    return convert_plain_state_dict(state_dict, renames)
