"""Prepare training and benchmark data in the layouts the option files under ``options/`` expect.

Three commands (run from the repository root):

``sr`` — a DIV2K-style HR folder → overlapping sub-images (BasicSR's ``scripts/data_preparation/
extract_subimages.py``: crop 480, step 240, thresh 0), bicubic LR sub-images for each scale (MATLAB-compatible
``basicsr.utils.matlab_functions.imresize``, rounded to 8 bits) and, with ``--lmdb``, LMDB copies
(``basicsr.utils.lmdb_util.make_lmdb_from_imgs``, with ``meta_info.txt``)::

    python scripts/prepare_dataset.py sr datasets/DIV2K/DIV2K_train_HR --scales 2 3 4 --lmdb

    datasets/DIV2K/DIV2K_train_HR_sub/0001_s001.png ...          (.lmdb: DIV2K_train_HR_sub.lmdb)
    datasets/DIV2K/DIV2K_train_LR_bicubic/X2_sub/0001_s001.png ...   (DIV2K_train_LR_bicubic_X2_sub.lmdb)

  Each HR image is first cropped (bottom/right) to a multiple of every scale (12 for 2, 3, 4; DIV2K's sizes already
  are), so that sub-image ``_sNNN`` shows the same region at every scale. ``--scales`` with no value writes the HR
  sub-images only (denoising and synthetic deblurring train on them).

``benchmark`` — an HR-only test set → BasicSR's ``GTmod12`` + ``LRbicx{2,3,4}`` layout::

    python scripts/prepare_dataset.py benchmark ../shared/data/benchmark/Set5 datasets/Set5

``gopro`` — the GoPro release (``GOPRO_Large/{train,test}/<sequence>/{blur,sharp}/<frame>.png``) → flat
``input``/``target`` folders for ``PairedImageDataset`` (``<sequence>_<frame>.png``); whole sequences of the
training part are held out for validation (``--val-sequences``, default 2: the last two by name)::

    python scripts/prepare_dataset.py gopro GOPRO_Large datasets/GoPro --lmdb

    datasets/GoPro/{train,val,test}/{input,target}/GOPR0372_07_00_000047.png ...   (.lmdb: {input,target}.lmdb)

Nothing existing is overwritten: an output that exists already is an error.
"""
import argparse
import math
import os
import shutil
import sys
from functools import partial
from multiprocessing import Pool
from os import path as osp

import cv2
import numpy as np
import torch

import msconv_plugin  # noqa: F401  (before BasicSR: makes BasicSR 1.4.2 importable)
from msconv_plugin.cli import run
from basicsr.utils import scandir
from basicsr.utils.lmdb_util import make_lmdb_from_imgs
from basicsr.utils.matlab_functions import imresize

from msconv_plugin.data.data_util import IMG_EXTENSIONS


def sub_image_positions(length, crop_size, step, thresh_size):
    """Start positions along one axis, as BasicSR's ``extract_subimages.py``: every ``step``, plus a last one flush
    with the border when more than ``thresh_size`` pixels would be left out. An axis shorter than ``crop_size``
    gives one (shorter) sub-image."""
    if length <= crop_size:
        return [0]
    positions = list(range(0, length - crop_size + 1, step))
    if length - (positions[-1] + crop_size) > thresh_size:
        positions.append(length - crop_size)
    return positions


def bicubic_lr(img, scale):
    """MATLAB's ``imresize(img, 1/scale)`` of a uint8 HWC image (sizes multiples of ``scale``), as uint8."""
    lr = imresize(img.astype(np.float64) / 255., 1 / scale)
    return np.clip(np.floor(lr * 255. + 0.5), 0, 255).astype(np.uint8)


def sr_output_paths(hr_folder, scales, out_root=None):
    """Where ``sr`` writes for ``hr_folder``: {'hr': (folder, lmdb), scale: (folder, lmdb), ...}.

    ``<root>/<name>_HR`` → ``<root>/<name>_HR_sub`` and ``<root>/<name>_LR_bicubic/X<s>_sub`` (lmdb:
    ``<root>/<name>_LR_bicubic_X<s>_sub.lmdb``), the names BasicSR's DIV2K option files use. ``<root>`` is the HR
    folder's parent, or ``out_root`` when given (for a read-only HR folder).
    """
    hr_folder = osp.normpath(hr_folder)
    root, name = osp.split(hr_folder)
    root = root if out_root is None else osp.normpath(out_root)
    lr_name = name[:-len('_HR')] + '_LR_bicubic' if name.endswith('_HR') else name + '_LR_bicubic'
    paths = {'hr': (osp.join(root, name + '_sub'), osp.join(root, name + '_sub.lmdb'))}
    for scale in scales:
        paths[scale] = (osp.join(root, lr_name, f'X{scale}_sub'), osp.join(root, f'{lr_name}_X{scale}_sub.lmdb'))
    return paths


def _sr_worker(path, hr_folder, outputs, scales, modulus, crop_size, step, thresh_size, compression_level):
    img = cv2.imread(path, cv2.IMREAD_COLOR)
    if img is None:
        raise ValueError(f'Cannot read image {path}.')
    h, w = img.shape[0] - img.shape[0] % modulus, img.shape[1] - img.shape[1] % modulus
    img = img[:h, :w]
    stem = osp.splitext(osp.relpath(path, hr_folder))[0].replace(os.sep, '_')
    versions = [(outputs['hr'][0], img, 1)] + [(outputs[s][0], bicubic_lr(img, s), s) for s in scales]
    tops = sub_image_positions(h, crop_size, step, thresh_size)
    lefts = sub_image_positions(w, crop_size, step, thresh_size)
    index = 0
    for top in tops:
        for left in lefts:
            index += 1
            for folder, version, scale in versions:
                crop = version[top // scale:(top + crop_size) // scale, left // scale:(left + crop_size) // scale]
                cv2.imwrite(
                    osp.join(folder, f'{stem}_s{index:03d}.png'), np.ascontiguousarray(crop),
                    [cv2.IMWRITE_PNG_COMPRESSION, compression_level])
    return index


def _single_threaded():
    """Pool initializer. BasicSR's imresize runs on torch: a worker forked from a process that has used torch's
    OpenMP threads hangs in its first parallel region, unless it stays on one thread (the pool is the parallelism)."""
    torch.set_num_threads(1)
    cv2.setNumThreads(0)


def _check_new(paths):
    existing = [p for p in paths if osp.exists(p)]
    if existing:
        raise FileExistsError(f'Output exists already (remove it first): {", ".join(existing)}')


def _list_images(folder):
    if not osp.isdir(folder):
        raise FileNotFoundError(f'Not a folder: {folder}')
    paths = sorted(osp.join(folder, p) for p in scandir(folder, recursive=True) if p.lower().endswith(IMG_EXTENSIONS))
    if not paths:
        raise ValueError(f'No images in {folder} (looked for {", ".join(IMG_EXTENSIONS)}).')
    return paths


def make_lmdb(folder, lmdb_path):
    """``make_lmdb_from_imgs`` of every PNG in ``folder``; keys are the file names without extension.

    The map size is reserved from the files' total size (``make_lmdb_from_imgs`` guesses it from the first image
    only, too little when sizes vary) plus lmdb's per-entry pages.
    """
    names = sorted(scandir(folder, suffix='png', recursive=False))
    total = sum(osp.getsize(osp.join(folder, n)) for n in names)
    map_size = 10 * total + 2 * 4096 * len(names) + (1 << 24)
    make_lmdb_from_imgs(folder, lmdb_path, names, [osp.splitext(n)[0] for n in names], map_size=map_size)


def prepare_sr(args):
    scales = sorted(set(args.scales))
    if any(s < 2 for s in scales):
        raise ValueError(f'--scales must be integers >= 2, got {args.scales}.')
    modulus = math.lcm(*scales) if scales else 1
    if args.crop_size % modulus or args.step % modulus or args.thresh_size % modulus:
        raise ValueError(f'--crop-size, --step and --thresh-size must be multiples of {modulus} for scales {scales}.')
    paths = _list_images(args.hr_folder)
    outputs = sr_output_paths(args.hr_folder, scales, args.out_root)
    _check_new([p for pair in outputs.values() for p in pair[:1 if not args.lmdb else 2]])
    for folder, _ in outputs.values():
        os.makedirs(folder)

    worker = partial(_sr_worker, hr_folder=args.hr_folder, outputs=outputs, scales=scales, modulus=modulus,
                     crop_size=args.crop_size, step=args.step, thresh_size=args.thresh_size,
                     compression_level=args.compression_level)
    if args.n_thread > 1:
        with Pool(args.n_thread, initializer=_single_threaded) as pool:
            counts = pool.map(worker, paths)
    else:
        counts = [worker(p) for p in paths]
    print(f'{sum(counts)} sub-images of {len(paths)} images in {", ".join(f for f, _ in outputs.values())}')
    if args.lmdb:
        for folder, lmdb_path in outputs.values():
            make_lmdb(folder, lmdb_path)
    return outputs


def prepare_benchmark(args):
    scales = sorted(set(args.scales))
    modulus = math.lcm(*scales)
    gt_folder = osp.join(args.output, f'GTmod{modulus}')
    lr_folders = {s: osp.join(args.output, f'LRbicx{s}') for s in scales}
    paths = _list_images(args.hr_folder)
    _check_new([gt_folder, *lr_folders.values()])
    for folder in (gt_folder, *lr_folders.values()):
        os.makedirs(folder)
    for path in paths:
        img = cv2.imread(path, cv2.IMREAD_COLOR)
        if img is None:
            raise ValueError(f'Cannot read image {path}.')
        img = np.ascontiguousarray(img[:img.shape[0] - img.shape[0] % modulus, :img.shape[1] - img.shape[1] % modulus])
        name = osp.splitext(osp.basename(path))[0] + '.png'
        cv2.imwrite(osp.join(gt_folder, name), img)
        for scale, folder in lr_folders.items():
            cv2.imwrite(osp.join(folder, name), bicubic_lr(img, scale))
    print(f'{len(paths)} images in {gt_folder} and {", ".join(lr_folders.values())}')
    return gt_folder, lr_folders


def prepare_gopro(args):
    sources = {}
    for part in ('train', 'test'):
        folder = osp.join(args.gopro_root, part)
        if not osp.isdir(folder):
            raise FileNotFoundError(f'Not a folder: {folder} (expected GOPRO_Large/{{train,test}}/<sequence>/'
                                    '{blur,sharp}/).')
        sequences = sorted(d for d in os.listdir(folder) if osp.isdir(osp.join(folder, d, 'sharp')))
        if not sequences:
            raise ValueError(f'No sequence folders with blur/ and sharp/ in {folder}.')
        sources[part] = [(folder, seq) for seq in sequences]
    if not 0 <= args.val_sequences < len(sources['train']):
        raise ValueError(f'--val-sequences must be in [0, {len(sources["train"]) - 1}], got {args.val_sequences}.')
    split = len(sources['train']) - args.val_sequences
    sources['train'], sources['val'] = sources['train'][:split], sources['train'][split:]

    outputs = {part: {kind: osp.join(args.output, part, kind) for kind in ('input', 'target')} for part in sources}
    _check_new([p for part in outputs.values() for p in part.values()])
    for part, sequences in sources.items():
        if not sequences:
            continue
        for folder in outputs[part].values():
            os.makedirs(folder)
        for folder, seq in sequences:
            for kind, subfolder in (('input', 'blur'), ('target', 'sharp')):
                for frame in sorted(os.listdir(osp.join(folder, seq, subfolder))):
                    if frame.lower().endswith(IMG_EXTENSIONS):
                        shutil.copyfile(osp.join(folder, seq, subfolder, frame),
                                        osp.join(outputs[part][kind], f'{seq}_{frame}'))
        if args.lmdb:
            for folder in outputs[part].values():
                make_lmdb(folder, folder + '.lmdb')
    print('\n'.join(f'{part}: {len(seqs)} sequences → {outputs[part]["input"]}, {outputs[part]["target"]}'
                    for part, seqs in sources.items()))
    return outputs


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest='command', required=True)

    sr = commands.add_parser('sr', help='HR folder → sub-images, bicubic LR sub-images, lmdb')
    sr.add_argument('hr_folder', help='e.g. datasets/DIV2K/DIV2K_train_HR')
    sr.add_argument('--scales', type=int, nargs='*', default=[2, 3, 4], help='LR scales (none: HR only)')
    sr.add_argument('--crop-size', type=int, default=480, help='HR sub-image size')
    sr.add_argument('--step', type=int, default=240, help='HR sub-image stride')
    sr.add_argument('--thresh-size', type=int, default=0, help='keep a last, border-flush sub-image when more than '
                    'this many pixels would be left out')
    sr.add_argument('--compression-level', type=int, default=3, help='PNG compression, 0-9')
    sr.add_argument('--n-thread', type=int, default=min(8, os.cpu_count() or 1))
    sr.add_argument('--lmdb', action='store_true', help='also write lmdb databases')
    sr.add_argument('--out-root', help="output folder (default: the HR folder's parent), e.g. datasets/SunHays80")

    benchmark = commands.add_parser('benchmark', help='HR test set → GTmod12 and LRbicx{2,3,4}')
    benchmark.add_argument('hr_folder', help='e.g. ../shared/data/benchmark/Set5')
    benchmark.add_argument('output', help='e.g. datasets/Set5')
    benchmark.add_argument('--scales', type=int, nargs='+', default=[2, 3, 4])

    gopro = commands.add_parser('gopro', help='GOPRO_Large → flat {train,val,test}/{input,target}')
    gopro.add_argument('gopro_root', help='folder holding train/ and test/ of the GoPro release')
    gopro.add_argument('output', help='e.g. datasets/GoPro')
    gopro.add_argument('--val-sequences', type=int, default=2, help='training sequences held out for validation')
    gopro.add_argument('--lmdb', action='store_true', help='also write lmdb databases')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    return {'sr': prepare_sr, 'benchmark': prepare_benchmark, 'gopro': prepare_gopro}[args.command](args)


if __name__ == '__main__':
    sys.exit(run(main))
