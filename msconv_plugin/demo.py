"""Train EDSR and MS3EDSR on a tiny ×2 set made from scikit-image's photographs, then compare them.

Run ``python -m msconv_plugin.demo`` (about 10 minutes on 2 CPU cores) or ``python -m msconv_plugin.demo --quick``
(about a minute). It needs nothing but this repository and its dependencies: the photographs ship inside
scikit-image. Everything is written under ``--work-dir`` (default ``./demo_output``):

- ``datasets/``: HR/LR_x2 pairs in the layout of BasicSR's ``PairedImageDataset``;
- ``options/``: one BasicSR option file per network for ``msconv_plugin.train`` and ``msconv_plugin.test``;
- ``experiments/`` and ``results/``: what BasicSR writes for those runs; ``logs/``: their full console output;
- ``results.md``, ``results.json``: the comparison table; ``comparison.png``: crops of the held-out images.

Both networks get the same budget (iterations, batch, patch, seed, learning-rate schedule) and are trained and
tested through BasicSR's own pipelines, each in a subprocess, exactly as a user would run them.
"""
import argparse
import json
import os.path as osp
import sys
import time

import cv2
import numpy as np
import torch
from basicsr.archs import build_network
from basicsr.metrics import calculate_metric
from basicsr.utils import img2tensor, imwrite
from basicsr.utils.matlab_functions import imresize

from .benchmark import interleaved_medians
from .cli import run
from .complexity import MS3_TYPES, count
from .extras import require
from .study import run_entry, write_options
from .zoo import load_weights

skdata = require('skimage.data', 'demo')
SCALE = 2

# Natural colour photographs that scikit-image ships inside its package (no download). ``cat`` is ``chelsea`` again
# and ``stereo_motorcycle`` is two views of one scene, so each scene appears once and only on one side of the split.
PHOTOS = {
    'astronaut': skdata.astronaut,
    'chelsea': skdata.chelsea,
    'coffee': skdata.coffee,
    'rocket': skdata.rocket,
    'hubble_deep_field': skdata.hubble_deep_field,
    'immunohistochemistry': skdata.immunohistochemistry,
    'retina': skdata.retina,
    'motorcycle': lambda: skdata.stereo_motorcycle()[0],
}
HELDOUT = ('astronaut', 'chelsea')
TRAIN = tuple(name for name in PHOTOS if name not in HELDOUT)

# Training photographs are cut into sub-images once (as BasicSR's extract_subimages.py does for DIV2K), so that the
# data loader reads small files instead of decoding a 1411×1411 PNG for every patch.
TILE_SIZE, TILE_STEP = 192, 96

NETWORKS = ('EDSR', MS3_TYPES['EDSR'])
NUM_FEAT, NUM_BLOCK = 32, 4
DEFAULT_ITERS, QUICK_ITERS = 2000, 20
TRAIN_SETTINGS = dict(batch_size=16, gt_size=64, seed=0, lr=5e-4, eta_min=1e-6)

COMPLEXITY_INPUT = (3, 128, 128)  # LR input for parameter / multiply-add counts
TIMING_REPEATS = 5

# comparison.png: square crops of CROP_SIZE HR pixels, enlarged ZOOM times, under a label strip.
CROP_SIZE, ZOOM, LABEL_HEIGHT, PANEL_GAP = 96, 3, 28, 4
PANEL_SIZE = CROP_SIZE * ZOOM
PANELS = ('Bicubic', *NETWORKS, 'GT')

# Lines of BasicSR's log worth echoing as progress; the full log goes to <work_dir>/logs/.
PROGRESS_LINE = r'\[epoch:|# psnr|# ssim|End of training|Testing |Path already exists'


def network_options(name):
    """BasicSR ``network_g`` options; MS3EDSR takes EDSR's arguments plus the MS³ ones."""
    opt = dict(type=name, num_in_ch=3, num_out_ch=3, num_feat=NUM_FEAT, num_block=NUM_BLOCK, upscale=SCALE)
    if name == 'MS3EDSR':
        opt.update(n_scales=2, interaction='adjacent', downsample='avg', upsample='nearest')
    return opt


def matlab_resize(img, scale):
    """MATLAB-compatible bicubic resize of a uint8 image, rounded back to uint8."""
    return (imresize(img.astype(np.float32) / 255., scale) * 255.).round().clip(0, 255).astype(np.uint8)


def make_pair(img_rgb):
    """Return the HR image cropped to a multiple of the scale and its MATLAB-bicubic LR, both BGR uint8."""
    h, w = img_rgb.shape[:2]
    hr = np.ascontiguousarray(img_rgb[:h - h % SCALE, :w - w % SCALE, ::-1])  # BasicSR reads and writes BGR
    return hr, matlab_resize(hr, 1 / SCALE)


def build_dataset(data_root):
    """Write the train tiles and the held-out images as HR/LR_x2 folders; return the folder paths."""
    folders = {split: (osp.join(data_root, split, 'HR'), osp.join(data_root, split, f'LR_x{SCALE}'))
               for split in ('train', 'heldout')}
    num_tiles = 0
    for name in TRAIN:
        hr, lr = make_pair(PHOTOS[name]())
        for y in range(0, hr.shape[0] - TILE_SIZE + 1, TILE_STEP):
            for x in range(0, hr.shape[1] - TILE_SIZE + 1, TILE_STEP):
                tile_name = f'{name}_s{num_tiles:04d}.png'
                imwrite(hr[y:y + TILE_SIZE, x:x + TILE_SIZE], osp.join(folders['train'][0], tile_name))
                lr_tile = lr[y // SCALE:(y + TILE_SIZE) // SCALE, x // SCALE:(x + TILE_SIZE) // SCALE]
                imwrite(lr_tile, osp.join(folders['train'][1], tile_name))
                num_tiles += 1
    for name in HELDOUT:
        hr, lr = make_pair(PHOTOS[name]())
        imwrite(hr, osp.join(folders['heldout'][0], f'{name}.png'))
        imwrite(lr, osp.join(folders['heldout'][1], f'{name}.png'))
    print(f'    {num_tiles} training tiles of {TILE_SIZE}×{TILE_SIZE} from {", ".join(TRAIN)}; '
          f'held out: {", ".join(HELDOUT)}', flush=True)
    return folders


def paired_dataset_options(name, folders):
    gt_folder, lq_folder = folders
    return dict(name=name, type='PairedImageDataset', dataroot_gt=gt_folder, dataroot_lq=lq_folder, filename_tmpl='{}',
                io_backend=dict(type='disk'))


def metric_options():
    return dict(psnr=dict(type='calculate_psnr', crop_border=SCALE, test_y_channel=True),
                ssim=dict(type='calculate_ssim', crop_border=SCALE, test_y_channel=True))


def train_options(name, folders, iters):
    train_set = paired_dataset_options('skimage_train', folders['train'])
    train_set.update(gt_size=TRAIN_SETTINGS['gt_size'], use_hflip=True, use_rot=True, prefetch_mode=None,
                     num_worker_per_gpu=0,  # workers would only compete with training for the same cores
                     batch_size_per_gpu=TRAIN_SETTINGS['batch_size'],
                     # BasicSR plans ceil(len * ratio / batch) iterations per epoch but its loader drops the last
                     # partial batch: it stops short of total_iter unless len * ratio is a multiple of the batch.
                     dataset_enlarge_ratio=TRAIN_SETTINGS['batch_size'])
    return dict(
        name=f'{name}_demo_x{SCALE}',
        model_type='SRModel',
        scale=SCALE,
        num_gpu=0,
        manual_seed=TRAIN_SETTINGS['seed'],
        datasets=dict(train=train_set, val=paired_dataset_options('skimage_heldout', folders['heldout'])),
        network_g=network_options(name),
        path=dict(pretrain_network_g=None, strict_load_g=True, resume_state=None),
        train=dict(
            ema_decay=0,  # an EMA lags far behind over so few iterations
            optim_g=dict(type='Adam', lr=TRAIN_SETTINGS['lr'], weight_decay=0, betas=[0.9, 0.99]),
            scheduler=dict(type='CosineAnnealingRestartLR', periods=[iters], restart_weights=[1],
                           eta_min=TRAIN_SETTINGS['eta_min']),
            total_iter=iters,
            warmup_iter=-1,
            pixel_opt=dict(type='L1Loss', loss_weight=1.0, reduction='mean')),
        # BasicSR validates and saves once more after the last iteration; larger periods keep it to that once.
        val=dict(val_freq=iters + 1, save_img=False, metrics=metric_options()),
        logger=dict(print_freq=max(1, iters // 15), save_checkpoint_freq=iters + 1, use_tb_logger=False),
    )


def test_options(name, folders, model_path):
    return dict(
        name=f'{name}_demo_x{SCALE}_test',
        model_type='SRModel',
        scale=SCALE,
        num_gpu=0,
        manual_seed=TRAIN_SETTINGS['seed'],
        datasets=dict(test_1=paired_dataset_options('skimage_heldout', folders['heldout'])),
        network_g=network_options(name),
        path=dict(pretrain_network_g=model_path, param_key_g='params', strict_load_g=True),
        val=dict(save_img=True, suffix=None, metrics=metric_options()),
    )


def run_pipeline(entry, opt_path, work_dir, log_path, verbose=False):
    """Run ``python -m msconv_plugin.<entry> -opt <opt_path>`` in work_dir and return its wall time in seconds.

    BasicSR's whole console output goes to log_path; its progress lines (or everything, if verbose) are echoed.
    """
    start = time.perf_counter()
    run_entry(entry, opt_path, log_path, cwd=work_dir, echo='.' if verbose else PROGRESS_LINE)
    return time.perf_counter() - start


def complexity(net):
    """Parameters and multiply-adds at COMPLEXITY_INPUT (``msconv_plugin.complexity.count``, as docs/complexity.md)."""
    return sum(p.numel() for p in net.parameters()), count(net, COMPLEXITY_INPUT)[0]


@torch.inference_mode()
def inference_ms_per_image(nets, lq_images):
    """{name: wall time of a pass over the LR images, per image}: the median of TIMING_REPEATS passes.

    The networks take turns pass by pass (``benchmark.interleaved_medians``), so that a change in the machine's load
    hits all of them alike.
    """
    tensors = [img2tensor(img.astype(np.float32) / 255.).unsqueeze(0) for img in lq_images]
    passes = {name: (lambda net=net: [net(tensor) for tensor in tensors]) for name, net in nets.items()}
    medians = interleaved_medians(passes, warmup=1, repeats=TIMING_REPEATS)
    return {name: 1000 * seconds / len(tensors) for name, seconds in medians.items()}


def evaluate(images, gts):
    """Per-image and mean PSNR/SSIM on Y of {name: image} against {name: ground truth}, both BGR uint8.

    The metrics are computed by BasicSR from the very options its validation uses.
    """
    per_image = {
        name: {f'{metric}_y': float(calculate_metric(dict(img=images[name], img2=gt), opt))
               for metric, opt in metric_options().items()}
        for name, gt in gts.items()
    }
    means = {key: float(np.mean([values[key] for values in per_image.values()])) for key in ('psnr_y', 'ssim_y')}
    return dict(**means, per_image=per_image)


def detailed_crop(gt):
    """Top-left corner of the CROP_SIZE window with the most fine detail (Laplacian energy) in the ground truth."""
    gray = cv2.cvtColor(gt, cv2.COLOR_BGR2GRAY).astype(np.float32)
    energy = cv2.boxFilter(cv2.Laplacian(gray, cv2.CV_32F)**2, -1, (CROP_SIZE, CROP_SIZE), anchor=(0, 0))
    energy = energy[:gt.shape[0] - CROP_SIZE + 1, :gt.shape[1] - CROP_SIZE + 1]
    return np.unravel_index(np.argmax(energy), energy.shape)


def labelled_panel(img, label):
    panel = cv2.resize(img, (PANEL_SIZE, PANEL_SIZE), interpolation=cv2.INTER_NEAREST)  # show pixels as they are
    strip = np.full((LABEL_HEIGHT, PANEL_SIZE, 3), 255, np.uint8)
    cv2.putText(strip, label, (6, LABEL_HEIGHT - 9), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    return np.concatenate([strip, panel])


def comparison_figure(outputs, rows, path):
    """One row per held-out image: crops of each entry of PANELS, labelled with the whole image's PSNR on Y."""
    gap = np.full((LABEL_HEIGHT + PANEL_SIZE, PANEL_GAP, 3), 255, np.uint8)
    figure_rows = []
    for name in HELDOUT:
        y, x = detailed_crop(outputs['GT'][name])
        panels = []
        for panel in PANELS:
            label = f'GT ({name})' if panel == 'GT' else f'{panel}  {rows[panel]["per_image"][name]["psnr_y"]:.2f} dB'
            panels += [labelled_panel(outputs[panel][name][y:y + CROP_SIZE, x:x + CROP_SIZE], label), gap]
        figure_rows.append(np.concatenate(panels[:-1], axis=1))
    imwrite(np.concatenate(figure_rows), path)


def markdown_table(rows, iters, lr_sizes):
    c, h, w = COMPLEXITY_INPUT
    lines = [
        f'| Network | Params | Mult-adds ({c}×{h}×{w} LR input) | PSNR-Y (dB) | SSIM-Y | Train wall time (s) '
        '| Inference (ms/image, median) |',
        '|---|---:|---:|---:|---:|---:|---:|',
    ]
    for name, row in rows.items():
        trained = name != 'Bicubic'
        lines.append(' | '.join([
            f'| {"Bicubic (MATLAB imresize)" if not trained else name}',
            f'{row["params"]:,}' if trained else '0',
            f'{row["macs"] / 1e9:.3f} G' if trained else '–',
            f'{row["psnr_y"]:.2f}',
            f'{row["ssim_y"]:.4f}',
            f'{row["train_time_s"]:.0f}' if trained else '–',
            f'{row["inference_ms"]:.1f}' if trained else '–',
        ]) + ' |')
    s = TRAIN_SETTINGS
    heldout = ', '.join(f'{img}: LR {h}×{w}' for img, (h, w) in lr_sizes.items())
    lines += [
        '',
        f'×{SCALE} super-resolution; PSNR/SSIM on Y with crop_border {SCALE}, mean over the held-out images '
        f'({heldout}). Both networks: num_feat {NUM_FEAT}, num_block {NUM_BLOCK}, trained from scratch on '
        f'{", ".join(TRAIN)} for {iters} iterations (batch {s["batch_size"]}, HR patch {s["gt_size"]}, '
        f'seed {s["seed"]}, Adam lr {s["lr"]:g} with cosine decay) on the CPU with {torch.get_num_threads()} threads.',
        'Mult-adds: msconv_plugin.complexity (mmengine FlopAnalyzer, as docs/complexity.md), convolutions and linear '
        'layers only (element-wise operations, pooling, interpolation and pixel shuffle are not counted). Train wall '
        'time: the whole `python -m msconv_plugin.train` run, start-up and final validation included. Inference: '
        f'median of {TIMING_REPEATS} passes over the held-out LR images, per image.',
    ]
    return '\n'.join(lines)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog='python -m msconv_plugin.demo', description=__doc__.split('\n')[0])
    parser.add_argument('--work-dir', default='demo_output', help='Where everything is written. Default: %(default)s')
    parser.add_argument('--iters', type=int, default=None,
                        help=f'Training iterations per network. Default: {DEFAULT_ITERS} (about 10 minutes in all on 2 '
                        f'CPU cores), or {QUICK_ITERS} with --quick.')
    parser.add_argument('--quick', action='store_true', help='A short run (about a minute) to check that it all works.')
    parser.add_argument('--verbose', action='store_true', help="Echo BasicSR's whole log, not only progress lines.")
    return parser.parse_args(argv)


def run_training(name, folders, iters, work_dir, verbose):
    """Train one network through ``msconv_plugin.train``; return its wall time and the path of its weights."""
    opt = train_options(name, folders, iters)
    opt_path = write_options(opt, osp.join(work_dir, 'options', f'train_{opt["name"]}.yml'))
    wall_time = run_pipeline('train', opt_path, work_dir, osp.join(work_dir, 'logs', f'train_{name}.log'), verbose)
    return wall_time, osp.join(work_dir, 'experiments', opt['name'], 'models', 'net_g_latest.pth')


def run_testing(name, folders, model_path, work_dir, verbose):
    """Test one network through ``msconv_plugin.test``; return its network and {image name: SR image (BGR)}."""
    opt = test_options(name, folders, model_path)
    opt_path = write_options(opt, osp.join(work_dir, 'options', f'test_{opt["name"]}.yml'))
    run_pipeline('test', opt_path, work_dir, osp.join(work_dir, 'logs', f'test_{name}.log'), verbose)
    # Score the images BasicSR saved, so that the per-image values are computed exactly as its logged means.
    visualization = osp.join(work_dir, 'results', opt['name'], 'visualization', 'skimage_heldout')
    sr_images = {img: cv2.imread(osp.join(visualization, f'{img}_{opt["name"]}.png')) for img in HELDOUT}
    net = build_network(opt['network_g'])
    load_weights(net, model_path, param_key='params')
    return net.eval(), sr_images


def main(argv=None):
    args = parse_args(argv)
    iters = args.iters or (QUICK_ITERS if args.quick else DEFAULT_ITERS)
    work_dir = osp.abspath(args.work_dir)
    start = time.perf_counter()
    num_steps = 2 + 2 * len(NETWORKS)

    print(f'[1/{num_steps}] Building the ×{SCALE} dataset in {work_dir}/datasets', flush=True)
    folders = build_dataset(osp.join(work_dir, 'datasets'))
    outputs = {kind: {img: cv2.imread(osp.join(folder, f'{img}.png')) for img in HELDOUT}
               for kind, folder in zip(('GT', 'LR'), folders['heldout'])}
    outputs['Bicubic'] = {img: matlab_resize(lr, SCALE) for img, lr in outputs['LR'].items()}
    rows = {'Bicubic': evaluate(outputs['Bicubic'], outputs['GT'])}

    trained, nets = {}, {}
    for step, name in enumerate(NETWORKS, 2):
        print(f'[{step}/{num_steps}] Training {name} for {iters} iterations (msconv_plugin.train)', flush=True)
        trained[name] = run_training(name, folders, iters, work_dir, args.verbose)
    for step, (name, (train_time, model_path)) in enumerate(trained.items(), 2 + len(NETWORKS)):
        print(f'[{step}/{num_steps}] Testing {name} on the held-out images (msconv_plugin.test)', flush=True)
        nets[name], outputs[name] = run_testing(name, folders, model_path, work_dir, args.verbose)
        params, macs = complexity(nets[name])
        rows[name] = dict(params=params, macs=macs, **evaluate(outputs[name], outputs['GT']), train_time_s=train_time)

    print(f'[{num_steps}/{num_steps}] Timing inference; writing the table and the comparison figure', flush=True)
    for name, inference_ms in inference_ms_per_image(nets, outputs['LR'].values()).items():
        rows[name]['inference_ms'] = inference_ms
    figure_path = osp.join(work_dir, 'comparison.png')
    comparison_figure(outputs, rows, figure_path)
    lr_sizes = {img: list(lr.shape[:2]) for img, lr in outputs['LR'].items()}
    table = markdown_table(rows, iters, lr_sizes)
    with open(osp.join(work_dir, 'results.md'), 'w') as f:
        f.write(table + '\n')
    total_time = time.perf_counter() - start
    summary = dict(scale=SCALE, iters=iters, num_feat=NUM_FEAT, num_block=NUM_BLOCK, train_settings=TRAIN_SETTINGS,
                   train_images=list(TRAIN), heldout_lr_sizes=lr_sizes, complexity_input=list(COMPLEXITY_INPUT),
                   torch_threads=torch.get_num_threads(), rows=rows, figure=figure_path, total_time_s=total_time)
    with open(osp.join(work_dir, 'results.json'), 'w') as f:
        json.dump(summary, f, indent=2)

    print('\n' + table + '\n')
    print(f'Comparison of crops: {figure_path}')
    print(f'Table: {osp.join(work_dir, "results.md")} and {osp.join(work_dir, "results.json")}')
    print(f'Total wall time: {total_time:.0f} s')


if __name__ == '__main__':
    sys.exit(run(main))
