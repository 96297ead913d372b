"""Run a trained network on an image or a folder of images, whole or tile by tile.

``python -m msconv_plugin.inference -i <file or folder> -o <folder> --model <zoo name or .pth> [--opt <options.yml>]
[--tile N] [--tile-pad P] [--zoo PATH] [--suffix S] [--device cpu|cuda|auto] [--overwrite] [--debug]``

- ``--model``: a name of the model zoo (``model_zoo.json`` at the repository root, or ``--zoo``, or the environment
  variable ``MSCONV_ZOO``; its entries carry the network's options), or the path of any BasicSR checkpoint
  (``experiments/<name>/models/net_g_*.pth``; ``params_ema`` is preferred to ``params``), which needs the
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

The functions that find and build a model (``load_zoo``, ``zoo_entry``, ``build_model``) and ``tile_forward`` are
reusable from other scripts.
"""
import argparse
import json
import math
import os
import os.path as osp
import statistics
import sys
import time
import warnings

import cv2
import numpy as np
import torch
import yaml
from basicsr.archs import build_network
from torch.nn import functional as F
from tqdm import tqdm

from .archs.ms3conv import MS3Split
from .cli import UserError, run
from .file_safety import check_writable, is_grey_alpha, plan_outputs, upright, verify_sha256, write_image
from .safeguards import describe_mismatch

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
DEFAULT_ZOO = osp.join(REPO_ROOT, 'model_zoo.json')
ZOO_ENV = 'MSCONV_ZOO'
IMG_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.webp', '.ppm', '.pgm', '.pnm')
# Networks' constructor arguments that give their upscaling factor.
SCALE_ARGS = ('upscale', 'scale')


def resolve_zoo_path(path=None):
    """The model zoo file: ``path`` if given, else ``$MSCONV_ZOO``, else ``model_zoo.json`` at the repository root."""
    return osp.abspath(osp.expanduser(path or os.environ.get(ZOO_ENV) or DEFAULT_ZOO))


def load_zoo(path=None):
    """Read the model zoo JSON (see ``resolve_zoo_path``) and return it: a dict with a list ``models``."""
    path = resolve_zoo_path(path)
    if not osp.isfile(path):
        raise FileNotFoundError(f'Model zoo file not found: {path} (give another one with --zoo or ${ZOO_ENV}).')
    with open(path) as f:
        zoo = json.load(f)
    if not isinstance(zoo, dict) or not isinstance(zoo.get('models'), list):
        raise ValueError(f'{path} is not a model zoo: expected {{"models": [...]}}.')
    return zoo


def zoo_entry(name, zoo_path=None):
    """The zoo entry (a copy) called ``name``, with ``weights_path``: the absolute path of its weight file.

    Raises ``ValueError`` listing the known names when there is none of that name.
    """
    path = resolve_zoo_path(zoo_path)
    models = load_zoo(path)['models']
    for entry in models:
        if entry.get('name') == name:
            entry = dict(entry)
            for key in ('file', 'network_g'):
                if key not in entry:
                    raise ValueError(f'Zoo entry {name!r} of {path} has no {key!r}.')
            entry['weights_path'] = osp.normpath(osp.join(osp.dirname(path), entry['file']))
            return entry
    known = ', '.join(sorted(str(entry.get('name')) for entry in models)) or 'none'
    raise ValueError(f'Unknown model {name!r}: not a file, nor a name of the model zoo {path}. Known names: {known}.')


def network_scale(network_g, scale=None, source='network_g'):
    """The upscaling factor: ``scale`` if given (checked against ``network_g``), else the network's own, else 1."""
    own = next((network_g[arg] for arg in SCALE_ARGS if arg in network_g), None)
    if scale is None:
        return int(own) if own is not None else 1
    if own is not None and int(own) != int(scale):
        raise ValueError(f'{source}: scale {scale} but network_g {network_g.get("type")} upscales by {own}.')
    return int(scale)


def checkpoint_state_dict(checkpoint, param_key=None, source='The checkpoint'):
    """The network weights held by a loaded BasicSR checkpoint, and the key they came from.

    ``param_key`` if given; else ``params_ema`` is preferred to ``params`` (short runs: the EMA may still hold much
    of the random initialisation, see ``scripts/compare_quality.py``; then ask for ``params``); a bare state dict is
    taken as it is (key ``None``). A leading ``module.`` (DataParallel / DistributedDataParallel) is stripped from
    the keys. ``source`` names the checkpoint in error messages.
    """
    keys = ', '.join(map(str, checkpoint)) if isinstance(checkpoint, dict) else type(checkpoint).__name__
    if param_key is not None and (not isinstance(checkpoint, dict) or param_key not in checkpoint):
        raise KeyError(f'{source} has no {param_key!r} (keys: {keys}).')
    if isinstance(checkpoint, dict):
        param_key = param_key or next((key for key in ('params_ema', 'params') if key in checkpoint), None)
    if param_key is not None:
        state_dict = checkpoint[param_key]
    elif isinstance(checkpoint, dict) and checkpoint and all(isinstance(v, torch.Tensor) for v in checkpoint.values()):
        state_dict = checkpoint
    else:
        raise ValueError(f'{source} has neither "params_ema" nor "params" (keys: {keys}); a training state file '
                         '(experiments/<name>/training_states) holds no network: use experiments/<name>/models/.')
    return {key.removeprefix('module.'): value for key, value in state_dict.items()}, param_key


class WeightsMismatchError(UserError, RuntimeError):
    """A checkpoint that does not fit the network (a user's mistake: the wrong file or options)."""


def load_weights(net, path, param_key=None):
    """Load a BasicSR checkpoint into ``net`` strictly; return the key used ('params_ema', 'params' or None).

    Which weights: see ``checkpoint_state_dict``.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'Weight file not found: {path}')
    checkpoint = torch.load(path, map_location='cpu', weights_only=True)
    state_dict, param_key = checkpoint_state_dict(checkpoint, param_key, source=path)
    try:
        net.load_state_dict(state_dict, strict=True)
    except RuntimeError as error:
        summary = describe_mismatch(net, state_dict, path, param_key)  # torch lists every parameter name
        details = '\n'.join(summary.split('\n')[1:]) if summary else str(error)
        raise WeightsMismatchError(f'The weights of {path} ({param_key or "state dict"}) do not fit the network '
                                   f'{type(net).__name__}:\n{details}') from None
    return param_key


def read_options(path):
    """A BasicSR option file's ``network_g`` and ``scale``."""
    if not osp.isfile(path):
        raise FileNotFoundError(f'Option file not found: {path}')
    with open(path) as f:
        opt = yaml.safe_load(f)
    if not isinstance(opt, dict) or not isinstance(opt.get('network_g'), dict):
        raise ValueError(f'{path} has no network_g section: is it a BasicSR option file?')
    return opt['network_g'], opt.get('scale')


def is_model_path(model):
    """Whether ``--model`` names a file rather than a zoo entry."""
    return osp.exists(model) or model.endswith(('.pth', '.pt')) or os.sep in model or '/' in model


def build_model(model, opt=None, zoo_path=None, device='cpu', param_key=None):
    """Build a network and load its weights; return ``(net, scale, info)``.

    Args:
        model (str): A name of the model zoo or the path of a BasicSR checkpoint.
        opt (str | None): BasicSR option file (``network_g``, ``scale``); required with a checkpoint path, ignored
            with a zoo name.
        zoo_path (str | None): Model zoo file; see ``resolve_zoo_path``.
        device (str | torch.device): Where the network goes.
        param_key (str | None): Weights of a checkpoint to load ('params' or 'params_ema'); see ``load_weights``.

    Returns:
        tuple: the network (eval mode, on ``device``), its upscaling factor (1 for denoising and deblurring), and
        ``info``: dict with ``name``, ``source`` ('zoo' or 'checkpoint'), ``weights_path``, ``param_key``,
        ``network_g``, ``task`` and ``entry`` (the zoo entry, or None).
    """
    if is_model_path(model):
        if not osp.isfile(model):
            raise FileNotFoundError(f'Model file not found: {model}')
        if opt is None:
            raise ValueError(f'{model} is a checkpoint: give the BasicSR option file it was trained with (--opt), '
                             'which says which network it holds (network_g) and its scale.')
        network_g, scale = read_options(opt)
        scale = network_scale(network_g, scale, source=opt)
        info = dict(name=osp.splitext(osp.basename(model))[0], source='checkpoint', weights_path=osp.abspath(model),
                    network_g=network_g, task='sr' if scale > 1 else None, entry=None)
    else:
        entry = zoo_entry(model, zoo_path)
        if opt is not None:
            warnings.warn(f'--opt {opt} is ignored: the zoo entry {model!r} gives the network.')
        network_g = entry['network_g']
        scale = network_scale(network_g, entry.get('scale'), source=f'zoo entry {model!r}')
        if not osp.isfile(entry['weights_path']):
            raise FileNotFoundError(f'Weight file of zoo entry {model!r} not found: {entry["weights_path"]}')
        verify_sha256(entry['weights_path'], entry.get('sha256'),
                      f'zoo entry {model!r} of {resolve_zoo_path(zoo_path)}')
        info = dict(name=model, source='zoo', weights_path=entry['weights_path'], network_g=network_g,
                    task=entry.get('task'), entry=entry)
    net = build_network(dict(network_g))  # build_network pops 'type' from a deep copy
    info['param_key'] = load_weights(net, info['weights_path'], param_key)
    return net.eval().to(device), scale, info


def input_multiple(net):
    """What the input's height and width must be a multiple of: RRDBNet-like networks at scale 1 and 2
    pixel-unshuffle their input by 4 and 2; others take any size (MS³ networks pad at their split)."""
    scale = getattr(net, 'scale', None)
    if 'RRDBNet' in type(net).__name__ and scale in (1, 2):
        return 4 // scale
    return 1


def tile_alignment(net):
    """Where a tile may start so that the network sees the same pixel grid as on the whole image: multiples of
    ``input_multiple`` times the coarsest MS³ pooling factor (2**(n_scales − 1)), so that pixel-unshuffle and 2×2
    pooling group the same pixels in a tile as in the whole image."""
    pooling = max([2**(m.n_scales - 1) for m in net.modules() if isinstance(m, MS3Split)], default=1)
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
                        help=f'Model zoo file. Default: ${ZOO_ENV}, else model_zoo.json at the repository root.')
    parser.add_argument('--suffix', default=None,
                        help="Output names are <stem>_<suffix>.png. Default: the model's name (file stem), or 'out'.")
    parser.add_argument('--device', default='auto', choices=('cpu', 'cuda', 'auto'), help='Default: %(default)s.')
    parser.add_argument('--overwrite', action='store_true', help='Replace existing output files (never an input).')
    args = parser.parse_args(argv)
    if args.tile < 0 or args.tile_pad < 0:
        parser.error('--tile and --tile-pad must be >= 0.')
    return args


def main(argv=None):
    args = parse_args(argv)
    device = pick_device(args.device)
    net, scale, info = build_model(args.model, opt=args.opt, zoo_path=args.zoo, device=device,
                                   param_key=args.param_key)
    num_in_ch = info['network_g'].get('num_in_ch', 3)
    if num_in_ch != 3:
        raise ValueError(f'{info["name"]} takes {num_in_ch}-channel input; only RGB networks are supported.')
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
          f'{f"tiles {args.tile}, context {args.tile_pad}" if args.tile else "whole images"}.', flush=True)

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
