"""Run a trained network on an image or a folder of images, whole or tile by tile.

``python -m msconv_plugin.inference -i <file or folder> -o <folder> --model <zoo name or .pth> [--opt <options.yml>]
[--tile N] [--tile-pad P] [--zoo PATH] [--suffix S] [--device cpu|cuda|auto] [--overwrite] [--compile] [--debug]``

- ``--model``: a name of the model zoo (``msconv_plugin/model_zoo.json``, shipped with the package, or ``--zoo``,
  or the environment variable ``MSCONV_ZOO``; its entries carry the network's options), or the path of any BasicSR
  checkpoint (``experiments/<name>/models/net_g_*.pth``; ``params_ema`` is preferred to ``params``), which needs the
  BasicSR option file it was trained with (``--opt``: its ``network_g`` and ``scale``).
- Images are read as they are (8- or 16-bit, grey, BGR or BGRA) and written as PNG of the same depth and channels:
  grey images go through the network as three equal channels and come back grey; the alpha channel is enlarged
  bilinearly. Outputs are named ``<stem>_<suffix>.png``.
- Nothing of the user's is lost: an output never replaces an input, an existing file is replaced only with
  ``--overwrite``, files named ``*_<suffix>.png`` in the output folder (earlier outputs) are not taken as inputs, an
  unwritable output folder is reported before anything is computed, and an unreadable image is skipped with a line
  (the others are processed; the exit status is 1). Zoo weight files are checked against their sha256. Photos are
  turned upright as their EXIF orientation says; grey+alpha stays grey+alpha.
- ``--tile N`` cuts the input into N×N tiles, each run with ``--tile-pad`` pixels of context on every side, so
  that large images fit in memory; with a context at least the network's receptive-field radius the result equals
  the untiled one.
- ``--compile`` runs the network through ``torch.compile`` (``compile_for_inference``); the reported times include
  the compilation of the first image (and of the first image of a second size).

The functions that find and build a model (``load_zoo``, ``zoo_entry``, ``build_model``) are in
``msconv_plugin.zoo``; ``tile_forward`` and ``enhance`` here are reusable from other code.
"""
import argparse
import math
import os
import os.path as osp
import shutil
import statistics
import sys
import time

import cv2
import numpy as np
import torch
from torch.nn import functional as F
from tqdm import tqdm

from .archs.ms3conv import MS3Split
from .archs.ms3rrdbnet_arch import unshuffle_factor
from .cli import UserError, run
from .data.data_util import IMG_EXTENSIONS
from .file_safety import check_writable, is_grey_alpha, plan_outputs, upright, write_image
from .zoo import ZOO_ENV, build_model


def compile_for_inference(net):
    """``net`` through ``torch.compile`` for inference: inductor with ``freezing`` (weights treated as constants:
    convolutions fused with their element-wise neighbours, weights pre-packed). The first call at a size compiles
    (seconds to a minute); a second size recompiles once with dynamic sizes. On the CPU it needs a C++ compiler.
    docs/benchmarks.md measures what it gains, for the plain networks and the conversions alike."""
    return torch.compile(net, options={'freezing': True})


def compile_refusal(device):
    """Why ``compile_for_inference`` cannot run on ``device`` ('cpu', 'cuda' or 'auto'), as a one-line message for
    ``--compile``, or None. Inductor generates C++ for the CPU: a run on the CPU needs a C++ compiler (on CUDA it
    generates Triton kernels and does not)."""
    on_cuda = device == 'cuda' or (device == 'auto' and torch.cuda.is_available())
    if on_cuda or shutil.which('g++') or shutil.which('c++'):
        return None
    return '--compile needs a C++ compiler (g++) for torch.compile on the CPU: install one or leave out --compile.'


def _network(net):
    """The network itself, also when ``net`` is its ``torch.compile`` wrapper."""
    return getattr(net, '_orig_mod', net)


def input_multiple(net):
    """What the input's height and width must be a multiple of: RRDBNet-like networks at scale 1 and 2
    pixel-unshuffle their input by 4 and 2; others take any size (MS³ networks pad at their split)."""
    net = _network(net)
    return unshuffle_factor(net, getattr(net, 'scale', None))  # a user's subclass of RRDBNet / MS3RRDBNet too


def tile_alignment(net):
    """Where a tile may start so that the network sees the same pixel grid as on the whole image: multiples of
    ``input_multiple`` times the coarsest MS³ pooling factor (2**(n_scales − 1)), so that pixel-unshuffle and 2×2
    pooling group the same pixels in a tile as in the whole image."""
    pooling = max([2**(m.n_scales - 1) for m in _network(net).modules() if isinstance(m, MS3Split)], default=1)
    return input_multiple(net) * pooling


def forward_image(net, img_tensor, scale):
    """``net(img_tensor)`` for any size: replicate-pad bottom/right to ``input_multiple`` and crop the output."""
    h, w = img_tensor.shape[-2:]
    multiple = input_multiple(net)
    if multiple > 1 and (h % multiple or w % multiple):
        img_tensor = F.pad(img_tensor, (0, -w % multiple, 0, -h % multiple), mode='replicate')
    return net(img_tensor)[..., :h * scale, :w * scale]


def tile_forward(net, img_tensor, scale, tile, tile_pad, progress=False):
    """Run ``net`` on ``img_tensor`` (1×C×H×W) tile by tile; return the 1×C'×(H·scale)×(W·scale) output.

    The input is cut into ``tile``×``tile`` tiles (smaller at the right and bottom edges, and a single one when the
    image is smaller than a tile). Each runs with ``tile_pad`` pixels of context on every side (fewer at the
    image's border, where the whole-image run has none either; the left/top context is extended to the nearest
    multiple of ``tile_alignment(net)``), and only its own region, × scale, is kept. With ``tile_pad`` at least
    the receptive-field radius the output equals the untiled one, up to floating-point rounding.
    ``tile <= 0`` runs the whole image at once.
    """
    if tile <= 0:
        return forward_image(net, img_tensor, scale)
    h, w = img_tensor.shape[-2:]
    align = tile_alignment(net)
    boxes = [(y0, min(y0 + tile, h), x0, min(x0 + tile, w)) for y0 in range(0, h, tile) for x0 in range(0, w, tile)]
    output = None
    for y0, y1, x0, x1 in tqdm(boxes, desc='Tiles', unit='tile', leave=False, disable=not progress or len(boxes) < 2):
        py0 = max(y0 - tile_pad, 0) // align * align
        px0 = max(x0 - tile_pad, 0) // align * align
        py1, px1 = min(y1 + tile_pad, h), min(x1 + tile_pad, w)
        out_tile = forward_image(net, img_tensor[..., py0:py1, px0:px1], scale)
        if output is None:
            output = out_tile.new_zeros(img_tensor.size(0), out_tile.size(1), h * scale, w * scale)
        output[..., y0 * scale:y1 * scale, x0 * scale:x1 * scale] = \
            out_tile[..., (y0 - py0) * scale:(y1 - py0) * scale, (x0 - px0) * scale:(x1 - px0) * scale]
    return output


def list_images(path):
    """``[path]`` for a file; the images of a folder (by extension, sorted) for a folder."""
    if osp.isfile(path):
        return [path]
    if not osp.isdir(path):
        raise FileNotFoundError(f'Input not found: {path}')
    images = sorted(osp.join(path, name) for name in os.listdir(path)
                    if name.lower().endswith(IMG_EXTENSIONS) and osp.isfile(osp.join(path, name)))
    if not images:
        raise FileNotFoundError(f'No images ({", ".join(IMG_EXTENSIONS)}) in {path}')
    return images


def read_image(path):
    """``cv2.imread`` unchanged (8- or 16-bit; grey, grey+alpha, BGR or BGRA), turned upright as its EXIF
    orientation says, with a clear error for what it cannot read. Grey+alpha comes as two channels."""
    img = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if img is None:
        raise ValueError(f'Cannot read image {path}: missing, unreadable or not an image OpenCV can decode.')
    if img.dtype not in (np.uint8, np.uint16):
        raise ValueError(f'Cannot process image {path}: only 8- and 16-bit images are supported, got {img.dtype}.')
    if img.ndim == 3 and img.shape[2] not in (1, 3, 4):
        raise ValueError(f'Cannot process image {path}: {img.shape[2]} channels (1, 3 or 4 supported).')
    if img.ndim == 3 and img.shape[2] == 4 and is_grey_alpha(path):
        img = img[..., [0, 3]]
    return upright(img, path)


def enhance(net, img, scale, device='cpu', tile=0, tile_pad=10, progress=False):
    """Run ``net`` on one image as ``read_image`` gives it; return ``(output image, seconds)``.

    The output has the input's depth and channels (grey stays grey, grey+alpha stays grey+alpha, the alpha channel
    is enlarged bilinearly).
    The time is that of the network (and tiling) alone, CUDA synchronised.
    """
    dtype = img.dtype
    max_value = float(np.iinfo(dtype).max)
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[..., 0]
    alpha = img[..., -1] if img.ndim == 3 and img.shape[2] in (2, 4) else None
    if img.ndim == 3 and img.shape[2] == 2:
        img = img[..., 0]
    gray = img.ndim == 2
    bgr = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR) if gray else img[..., :3]
    rgb = bgr[..., ::-1].astype(np.float32) / max_value
    img_tensor = torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1))).unsqueeze(0).to(device)

    cuda = torch.device(device).type == 'cuda'
    with torch.inference_mode():
        if cuda:
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        output = tile_forward(net, img_tensor, scale, tile, tile_pad, progress=progress)
        if cuda:
            torch.cuda.synchronize(device)
        seconds = time.perf_counter() - start
        output = output[0].float().clamp_(0, 1).cpu().numpy().transpose(1, 2, 0)

    output = np.ascontiguousarray(output[..., ::-1])  # RGB → BGR
    if gray:
        output = cv2.cvtColor(output, cv2.COLOR_BGR2GRAY)
    output = (output * max_value).round().astype(dtype)
    if alpha is not None:
        output = output[..., None] if gray else output
        h, w = output.shape[:2]
        alpha = cv2.resize(alpha, (w, h), interpolation=cv2.INTER_LINEAR) if alpha.shape != (h, w) else alpha
        output = np.concatenate([output, alpha[..., None]], axis=2)
    return output, seconds


def pick_device(device):
    if device == 'auto':
        return torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    if device == 'cuda' and not torch.cuda.is_available():
        raise ValueError('--device cuda: no CUDA device is available (use --device cpu or auto).')
    return torch.device(device)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog='python -m msconv_plugin.inference', description=__doc__.split('\n')[0])
    parser.add_argument('-i', '--input', required=True, help='An image or a folder of images.')
    parser.add_argument('-o', '--output', required=True, help='Output folder (created).')
    parser.add_argument('--model', required=True, help='A name of the model zoo, or the path of a .pth checkpoint.')
    parser.add_argument('--opt', default=None, help='BasicSR option file of the checkpoint (network_g, scale).')
    parser.add_argument('--param-key', choices=('params', 'params_ema'),
                        help='Weights of a checkpoint to use. Default: params_ema when it has them, else params.')
    parser.add_argument('--tile', type=int, default=0, help='Tile size in input pixels; 0: whole image. Default: 0.')
    parser.add_argument('--tile-pad', type=int, default=10, help='Context around each tile, pixels. Default: 10.')
    parser.add_argument('--zoo', default=None,
                        help=f'Model zoo file. Default: ${ZOO_ENV}, else the model_zoo.json shipped in the package.')
    parser.add_argument('--suffix', default=None,
                        help="Output names are <stem>_<suffix>.png. Default: the model's name (file stem), or 'out'.")
    parser.add_argument('--device', default='auto', choices=('cpu', 'cuda', 'auto'), help='Default: %(default)s.')
    parser.add_argument('--overwrite', action='store_true', help='Replace existing output files (never an input).')
    parser.add_argument('--compile', action='store_true',
                        help='Run the network through torch.compile (inductor, freezing): faster on many images of '
                        'one size or with --tile; the first image (and the first of a second size) pays the '
                        'compilation. On the CPU it needs a C++ compiler.')
    args = parser.parse_args(argv)
    if args.tile < 0 or args.tile_pad < 0:
        parser.error('--tile and --tile-pad must be >= 0.')
    refusal = args.compile and compile_refusal(args.device)
    if refusal:
        parser.error(refusal)
    return args


def main(argv=None):
    args = parse_args(argv)
    device = pick_device(args.device)
    net, scale, info = build_model(args.model, opt=args.opt, zoo_path=args.zoo, device=device,
                                   param_key=args.param_key)
    num_in_ch = info['network_g'].get('num_in_ch', 3)
    if num_in_ch != 3:
        raise ValueError(f'{info["name"]} takes {num_in_ch}-channel input; only RGB networks are supported.')
    if args.compile:
        net = compile_for_inference(net)
    suffix = args.suffix or osp.splitext(osp.basename(args.model))[0] or 'out'
    images = list_images(args.input)
    outputs = [osp.join(args.output, f'{osp.splitext(osp.basename(path))[0]}_{suffix}.png') for path in images]
    clashes = sorted({out for out in outputs if outputs.count(out) > 1})
    if clashes:
        raise ValueError(f'Several inputs would be written to the same file: {", ".join(clashes)}')
    images, outputs = plan_outputs(images, outputs, args.output, suffix, args.overwrite)
    check_writable(args.output)
    print(f'Model {info["name"]} ({info["network_g"]["type"]}, ×{scale}, {info["param_key"] or "state dict"} of '
          f'{info["weights_path"]}) on {device}; {len(images)} image(s); '
          f'{f"tiles {args.tile}, context {args.tile_pad}" if args.tile else "whole images"}'
          f'{"; through torch.compile (the first call at a size compiles)" if args.compile else ""}.', flush=True)

    times, unreadable = [], []
    for path, out_path in zip(tqdm(images, desc='Images', unit='img'), outputs):
        try:
            img = read_image(path)
        except ValueError as error:  # one bad file does not stop the others
            print(f'Skipping {path}: {error}', flush=True)
            unreadable.append(path)
            continue
        output, seconds = enhance(net, img, scale, device, args.tile, args.tile_pad, progress=True)
        write_image(out_path, output)
        times.append(seconds)
    if times:
        print(f'Time per image (network and tiling): median {1000 * statistics.median(times):.1f} ms, '
              f'total {1000 * math.fsum(times):.1f} ms over {len(times)} image(s). Outputs in {args.output}',
              flush=True)
    if unreadable:
        raise UserError(f'Cannot read image{"s" if len(unreadable) > 1 else ""} {", ".join(unreadable)} '
                        f'({len(unreadable)} of {len(images)} skipped, named above; the others were written).')
    return outputs


if __name__ == '__main__':
    sys.exit(run(main))
