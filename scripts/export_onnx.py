"""Export a network to ONNX with dynamic batch, height and width; optionally check it with ONNX Runtime.

    python scripts/export_onnx.py --model <zoo name> -o ms3edsr_x2.onnx --check
    python scripts/export_onnx.py --model experiments/<name>/models/net_g_latest.pth \\
        --opt options/train/<options>.yml -o net.onnx --check
    python scripts/export_onnx.py --opt options/train/<options>.yml [--weights net_g.pth] -o net.onnx
    python scripts/export_onnx.py --network '{"type": "MS3EDSR", "num_in_ch": 3, "num_out_ch": 3, "num_feat": 16, \\
        "num_block": 1, "upscale": 2, "n_scales": 2}' -o tiny.onnx --check

The network comes from ``--model`` (a name of the model zoo or a BasicSR checkpoint with its ``--opt``, built by
``msconv_plugin.zoo.build_model``), or from the ``network_g`` of an option file (``--opt`` alone) or of a JSON
string (``--network``); the last two are randomly initialised unless ``--weights`` gives a checkpoint
(``params_ema``, else ``params``, loaded strictly).

The ONNX model has one input ``input`` (N×C×H×W float32, RGB in [0, 1]) and one output ``output``; N, H and W are
symbolic (``batch``, ``height``, ``width``). Requires ``pip install .[onnx]`` (onnx, onnxruntime, onnxscript).

Exporter: the TorchScript-based one (``--exporter torchscript``, the default) records the MS³ size arithmetic
(padding to a multiple of 2**(n_scales - 1), pooling, upsampling, cropping back) as graph operations, so one graph
runs at every size; it is fast (seconds for a full-size network). ``--exporter dynamo`` (torch.export, PyTorch's
default since 2.9) gives the same results but takes minutes for the larger networks (e.g. about 6 min for
MS3RRDBNet with 23 blocks against 18 s).

``--size H W`` is the example input the exporter runs once (default 64 64). Any size works for the MS³ networks,
the size computations are recorded, not their values; 64 is also a multiple of what RRDBNet at ×1/×2 needs
(pixel-unshuffle by 4/2). ``--check`` then runs the ONNX model on a random batch of 2 at another, odd size
(``--check-size``, default 37×29) and compares it with PyTorch: it prints the largest absolute difference and
exits with status 1 when it exceeds ``--tolerance`` (1e-4).

RRDBNet and MS3RRDBNet at ×1/×2 give TracerWarnings at export: their check that the input size is a multiple of
4/2 is not recorded, so ONNX Runtime fails at a Reshape for other sizes (pad the input as ``inference.py`` does).
"""
import argparse
import importlib
import inspect
import json
import os
import os.path as osp
import sys
import warnings

import msconv_plugin  # noqa: F401  (before anything of BasicSR)
from msconv_plugin.cli import run

import torch
from basicsr.archs import build_network

from msconv_plugin.inference import input_multiple
from msconv_plugin.zoo import build_model, load_weights, read_options

INPUT_NAME = 'input'
OUTPUT_NAME = 'output'
EXPORTERS = ('torchscript', 'dynamo')
# Opset per exporter: 17 is the newest every supported PyTorch's TorchScript exporter writes; 18 is the oldest the
# dynamo exporter writes natively.
DEFAULT_OPSET = {'torchscript': 17, 'dynamo': 18}
DEFAULT_SIZE = (64, 64)
DEFAULT_CHECK_SIZE = (37, 29)
TOLERANCE = 1e-4


def require(module):
    """Import ``module`` (onnx, onnxruntime), or say how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise ImportError(f'{module} is needed: pip install onnx onnxruntime onnxscript (or .[onnx]).') from error


def check_input_size(net, size):
    """``size`` (H, W) rounded up to a multiple of ``input_multiple(net)``."""
    multiple = input_multiple(net)
    return tuple(-(-s // multiple) * multiple for s in size)


def export(net, path, opset=None, example_size=DEFAULT_SIZE, exporter='torchscript', num_in_ch=3):
    """Export ``net`` to the ONNX file ``path`` (weights inside it) with dynamic batch, height and width.

    Args:
        net (nn.Module): The network; exported in eval mode, float32, on the CPU.
        path (str): The ONNX file to write (its folder is created).
        opset (int | None): ONNX opset. Default: ``DEFAULT_OPSET[exporter]``.
        example_size (tuple[int, int]): Height and width of the example input the exporter runs once.
        exporter (str): 'torchscript' (``torch.onnx.export(..., dynamo=False)``) or 'dynamo'.
        num_in_ch (int): Channels of the input. Default: 3 (RGB).

    Returns:
        str: ``path``.
    """
    if exporter not in EXPORTERS:
        raise ValueError(f'exporter must be one of {EXPORTERS}, got {exporter!r}.')
    opset = DEFAULT_OPSET[exporter] if opset is None else opset
    net = net.eval().float().cpu()
    # A batch of 2: torch.export specialises a dimension whose example size is 0 or 1, which would give the dynamo
    # graph's output a fixed batch of 1.
    example = torch.rand(2 if exporter == 'dynamo' else 1, num_in_ch, *example_size)
    kwargs = dict(input_names=[INPUT_NAME], output_names=[OUTPUT_NAME], opset_version=opset)
    if exporter == 'dynamo':
        if 'dynamo' not in inspect.signature(torch.onnx.export).parameters:
            raise RuntimeError(f'PyTorch {torch.__version__} has no dynamo-based torch.onnx.export (2.5 or newer '
                               'needed); use the torchscript exporter.')
        dim = torch.export.Dim
        # The output's sizes are named after the input's by the exporter ('2*height'...). One file: MS³ networks
        # are far below protobuf's 2 GB.
        kwargs.update(dynamo=True, external_data=False,
                      dynamic_shapes=({0: dim('batch'), 2: dim('height'), 3: dim('width')}, ))
    else:
        kwargs['dynamic_axes'] = {
            INPUT_NAME: {0: 'batch', 2: 'height', 3: 'width'},
            OUTPUT_NAME: {0: 'batch', 2: 'out_height', 3: 'out_width'}
        }
        if 'dynamo' in inspect.signature(torch.onnx.export).parameters:  # PyTorch >= 2.5; before: TorchScript only
            kwargs['dynamo'] = False
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    with warnings.catch_warnings(), torch.no_grad():
        # The TorchScript exporter is deprecated, but chosen on purpose (see the module docstring).
        warnings.simplefilter('ignore', DeprecationWarning)
        warnings.simplefilter('ignore', FutureWarning)
        torch.onnx.export(net, (example, ), path, **kwargs)
    require('onnx').checker.check_model(path)
    return path


def check(net, path, size=DEFAULT_CHECK_SIZE, batch=2, seed=0):
    """Run the ONNX model ``path`` with ONNX Runtime (CPU) and ``net`` with PyTorch on the same random input of
    ``batch``×C×``size``; return the largest absolute difference of their outputs.

    ``size`` is rounded up by ``check_input_size``. Raises ``AssertionError`` if the output shapes differ.
    """
    h, w = check_input_size(net, size)
    session = require('onnxruntime').InferenceSession(path, providers=['CPUExecutionProvider'])
    num_in_ch = session.get_inputs()[0].shape[1]
    x = torch.rand(batch, num_in_ch, h, w, generator=torch.Generator().manual_seed(seed))
    net = net.eval().float().cpu()
    with torch.no_grad():
        expected = net(x).numpy()
    (actual, ) = session.run([OUTPUT_NAME], {INPUT_NAME: x.numpy()})
    assert actual.shape == expected.shape, f'ONNX output {actual.shape} but PyTorch output {expected.shape}'
    return float(abs(actual - expected).max())


def build_from_args(args):
    """The network and a description of where it came from, as the command line says."""
    if args.model:
        net, _, info = build_model(args.model, opt=args.opt, zoo_path=args.zoo, device='cpu')
        return net, f'{info["name"]} ({info["network_g"]["type"]}, weights {info["weights_path"]})'
    if args.network:
        network_g, source = json.loads(args.network), '--network'
    else:
        network_g, source = read_options(args.opt)[0], args.opt
    if not isinstance(network_g, dict) or 'type' not in network_g:
        raise ValueError(f'{source}: network_g must be a mapping with a "type", got {network_g!r}.')
    net = build_network(dict(network_g))
    if args.weights:
        key = load_weights(net, args.weights)
        weights = f'{key or "state dict"} of {args.weights}'
    else:
        weights = 'random initialisation'
    return net.eval(), f'{network_g["type"]} from {source} ({weights})'


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group()
    source.add_argument('--model', help='A name of the model zoo, or a .pth checkpoint (then give --opt).')
    source.add_argument('--network', help='network_g as JSON, e.g. \'{"type": "MS3EDSR", ...}\'.')
    parser.add_argument('--opt', help='BasicSR option file (network_g); alone, or the options of --model.')
    parser.add_argument('--weights', help='Checkpoint for --opt alone or --network. Default: random weights.')
    parser.add_argument('--zoo', help='Model zoo file for --model (see msconv_plugin/inference.py).')
    parser.add_argument('-o', '--output', required=True, help='The ONNX file to write.')
    parser.add_argument('--exporter', choices=EXPORTERS, default='torchscript', help='Default: %(default)s.')
    parser.add_argument('--opset', type=int, help='ONNX opset. Default: 17 (torchscript), 18 (dynamo).')
    parser.add_argument('--size', type=int, nargs=2, default=DEFAULT_SIZE, metavar=('H', 'W'),
                        help='Example input size of the export. Default: %(default)s.')
    parser.add_argument('--check', action='store_true', help='Compare ONNX Runtime with PyTorch after the export.')
    parser.add_argument('--check-size', type=int, nargs=2, default=DEFAULT_CHECK_SIZE, metavar=('H', 'W'),
                        help='Input size of --check. Default: %(default)s.')
    parser.add_argument('--tolerance', type=float, default=TOLERANCE, help='Of --check. Default: %(default)s.')
    args = parser.parse_args(argv)
    if not (args.model or args.network or args.opt):
        parser.error('give the network: --model, --opt or --network.')
    if args.network and args.opt:
        parser.error('--network and --opt both give network_g: give one.')
    if args.model and args.weights:
        parser.error('--weights goes with --opt alone or --network; --model brings its own weights.')
    if min(*args.size, *args.check_size) < 1:
        parser.error('--size and --check-size must be positive.')
    return args


def main(argv=None):
    """Export (and check); return the exit status: 0, or 1 when --check finds a difference above the tolerance."""
    args = parse_args(argv)
    net, description = build_from_args(args)
    export(net, args.output, opset=args.opset, example_size=tuple(args.size), exporter=args.exporter)
    print(f'Exported {description} to {args.output} ({args.exporter} exporter, opset '
          f'{args.opset or DEFAULT_OPSET[args.exporter]}, example input {args.size[0]}x{args.size[1]}).')
    if not args.check:
        return 0
    diff = check(net, args.output, tuple(args.check_size))
    ok = diff <= args.tolerance
    h, w = check_input_size(net, args.check_size)
    print(f'Check at {h}x{w}, batch 2: max abs diff ONNX Runtime vs PyTorch '
          f'{diff:.3g} ({"OK" if ok else "FAILED"}, tolerance {args.tolerance:g}).')
    return 0 if ok else 1


if __name__ == '__main__':
    sys.exit(run(main))
