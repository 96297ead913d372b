"""Check a parsed option file before any work is done, and lock the experiment folder while a run writes to it.

``checked_run(basicsr.train)`` (``python -m msconv_plugin.train``) and ``checked_run(basicsr.test)`` (``.test``)
wrap the ``parse_options`` their pipeline calls, for the duration of the run: right after BasicSR has parsed the
file, ``check_options`` looks at what can be checked without running (below), then the run takes the lock of its
folder (``msconv_plugin.experiment_lock``) before BasicSR creates or renames anything; the lock is released when
the pipeline returns or fails. Every problem found is reported at once, one line each, naming the option or the
file and what to change (``OptionError``).

Checks:
1. Numbers written as text: YAML reads ``1e-4`` (no decimal point) as the string '1e-4', so ``lr: 1e-4`` reaches
   the optimizer as text; counts and sizes (``scale``, ``gt_size``, ``batch_size_per_gpu``, ``total_iter``, ...)
   must be whole numbers.
2. ``scale`` against the network's own ``upscale`` (or RRDBNet's ``scale``).
3. The training patch: ``gt_size`` a multiple of ``scale``, and the LQ patch ``gt_size / scale`` a multiple of
   the network's grid: the MS³ pooling grid 2**(n_scales - 1), times 4 / 2 for RRDBNet-like networks at ×1 / ×2
   (pixel-unshuffle).
4. Every ``dataroot_*`` folder and ``meta_info_file`` exists; a folder of LQ/GT pairs (``dataroot_lq`` and
   ``dataroot_gt`` on disk, no ``meta_info_file``) has an LQ image for every GT image by name (``filename_tmpl``)
   and the other way round, each GT ``scale`` times its LQ in both sides; training images are at least
   ``gt_size``. Every bad pair or image is listed (the first ``MAX_LISTED``).
5. A training set holds at least one full batch per process (BasicSR drops incomplete batches: a smaller set would
   train 0 iterations and save the random initialisation).
6. Validation/test images are large enough for every metric after its ``crop_border``.
7. ``path.resume_state`` is a file of this experiment, whose network checkpoint exists; every
   ``path.pretrain_network_*`` exists.
"""
import contextlib
import functools
import inspect
import math
import os
import os.path as osp
import re

from basicsr.utils import scandir

from msconv_plugin.archs.ms3rrdbnet_arch import unshuffle_factor
from msconv_plugin.basicsr_fixes.errors import metric_min_size
from msconv_plugin.cli import UserError
from msconv_plugin.data.data_util import IMG_EXTENSIONS
from msconv_plugin.experiment_lock import ExperimentLock
from msconv_plugin.resume import resume_with_options

MAX_LISTED = 10
# A number YAML 1.1 leaves as text: an exponent without a decimal point (1e-4), or a number with a unit-free typo.
_NUMBER_AS_TEXT = re.compile(r'^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$')
# Options whose value is text even when it looks like a number.
_TEXT_OPTIONS = ('name', 'type', 'filename_tmpl', 'project', 'resume_id')
# Options that must be whole numbers, and their smallest value; the counts of iterations may be written as floats
# (BasicSR's own files write !!float 5e3).
_WHOLE_NUMBERS = {
    'scale': 1, 'gt_size': 1, 'batch_size_per_gpu': 1, 'num_worker_per_gpu': 0, 'dataset_enlarge_ratio': 1,
    'num_feat': 1, 'num_block': 1, 'upscale': 1, 'n_scales': 1
}
_ITERATION_COUNTS = {'total_iter': 1, 'val_freq': 1, 'print_freq': 1, 'save_checkpoint_freq': 1}


class OptionError(UserError):
    """An option file that cannot run: every problem, one line each."""


def _listed(items):
    more = f' … and {len(items) - MAX_LISTED} more' if len(items) > MAX_LISTED else ''
    return '; '.join(items[:MAX_LISTED]) + more


def _walk(node, prefix=''):
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _walk(value, f'{prefix}.{key}' if prefix else str(key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _walk(value, f'{prefix}[{i}]')
    else:
        yield prefix, node


def _whole_number(option, value):
    """Whether ``value`` is valid for ``option`` (True for options that need not be whole numbers)."""
    if option in _WHOLE_NUMBERS:
        return isinstance(value, int) and not isinstance(value, bool) and value >= _WHOLE_NUMBERS[option]
    if option in _ITERATION_COUNTS:
        return (isinstance(value, (int, float)) and not isinstance(value, bool) and float(value).is_integer()
                and value >= _ITERATION_COUNTS[option])
    return True


def check_numbers(opt):
    """Check 1: numbers written as text, and whole numbers. Returns the problems (str)."""
    problems = []
    for key, value in _walk(opt):
        last = re.sub(r'\[\d+\]$', '', key).rsplit('.', 1)[-1]
        if last.startswith(('dataroot', 'pretrain_network', 'resume_state')) or last in _TEXT_OPTIONS:
            continue
        if isinstance(value, str) and _NUMBER_AS_TEXT.match(value.strip()):
            problems.append(f'{key} is the text {value!r}, not a number (YAML reads a number with an exponent but '
                            f'no decimal point as text): write {float(value)!r} or !!float {value}')
        elif key.count('.') <= 2 and value is not None and not _whole_number(last, value):
            least = {**_WHOLE_NUMBERS, **_ITERATION_COUNTS}[last]
            problems.append(f'{key} = {value!r}: must be a whole number of at least {least}')
    return problems


def network_grid(network_g, scale):
    """What the LQ input of ``network_g`` should be a multiple of: the MS³ pooling grid 2**(n_scales - 1) (the
    network's default ``n_scales`` when the option is absent), times 4 / 2 for RRDBNet-like networks at ×1 / ×2."""
    from basicsr.utils.registry import ARCH_REGISTRY

    n_scales = network_g.get('n_scales')
    if n_scales is None and network_g.get('type') in ARCH_REGISTRY:
        default = inspect.signature(ARCH_REGISTRY.get(network_g['type'])).parameters.get('n_scales')
        n_scales = default.default if default is not None else 1
    grid = 2**(int(n_scales) - 1) if isinstance(n_scales, int) else 1
    return grid * unshuffle_factor(network_g.get('type'), scale)


def check_scale_and_patch(opt):
    """Checks 2 and 3. Returns the problems (str)."""
    problems, scale = [], opt.get('scale', 1)
    network_g = opt.get('network_g') or {}
    own = next((network_g[key] for key in ('upscale', 'scale') if key in network_g), None)
    if isinstance(own, int) and isinstance(scale, int) and own != scale:
        problems.append(f'scale = {scale} but network_g ({network_g.get("type")}) upscales by {own} '
                        f'(network_g.{"upscale" if "upscale" in network_g else "scale"}): set both to the same value')
    train = (opt.get('datasets') or {}).get('train') or {}
    gt_size = train.get('gt_size')
    if opt.get('is_train') and isinstance(gt_size, int) and isinstance(scale, int) and scale >= 1:
        grid = network_grid(network_g, scale)
        multiple = scale * grid
        if gt_size % multiple:
            lower, upper = gt_size // multiple * multiple, (gt_size // multiple + 1) * multiple
            why = f'of scale {scale}' if grid == 1 else (f'of scale {scale} × {grid}, so that the LQ patch '
                                                          f'(gt_size / scale) is a multiple of the network\'s grid '
                                                          f'{grid} (MS³ pooling 2**(n_scales - 1), pixel-unshuffle)')
            problems.append(f'datasets.train.gt_size = {gt_size} is not a multiple {why}: use '
                            f'{" or ".join(str(s) for s in (lower, upper) if s > 0)}')
    return problems


def _image_size(path):
    """(height, width) of an image file from its header, or None when it cannot be read."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            return img.size[1], img.size[0]
    except Exception:  # unreadable images are named when the dataset is built
        return None


def _folder_images(folder, recursive):
    return sorted(v for v in scandir(folder, recursive=recursive) if v.lower().endswith(IMG_EXTENSIONS))


def check_dataset(key, dataset_opt, opt):
    """Checks 4 to 6 for ``datasets.<key>``. Returns the problems (str)."""
    problems, where, scale = [], f'datasets.{key}', opt.get('scale', 1)
    name = dataset_opt.get('name', key)
    lmdb = (dataset_opt.get('io_backend') or {}).get('type') == 'lmdb'
    roots = {k: v for k, v in dataset_opt.items() if k.startswith('dataroot_') and v}
    for option, folder in roots.items():
        if not osp.isdir(folder):
            problems.append(f'{where}.{option} is not a folder: {folder} (dataset {name!r}): fix the path')
    meta_info = dataset_opt.get('meta_info_file')
    if meta_info and not osp.isfile(meta_info):
        problems.append(f'{where}.meta_info_file is not a file: {meta_info}: fix the path')
    if problems or lmdb or meta_info or 'dataroot_gt' not in roots:
        return problems
    gt_folder, lq_folder = roots['dataroot_gt'], roots.get('dataroot_lq')
    train = key.startswith('train')
    if lq_folder:  # pairs, found as BasicSR's paired_paths_from_folder finds them
        tmpl = dataset_opt.get('filename_tmpl', '{}')
        gts, lqs = list(scandir(gt_folder)), set(scandir(lq_folder))
        pairs, bad = [], []
        for gt in gts:
            stem, ext = osp.splitext(gt)
            lq = f'{tmpl.format(stem)}{ext}'
            if lq in lqs:
                pairs.append((osp.join(gt_folder, gt), osp.join(lq_folder, lq)))
                lqs.discard(lq)
            else:
                bad.append(f'{osp.join(gt_folder, gt)} has no LQ image {osp.join(lq_folder, lq)}')
        bad += [f'{osp.join(lq_folder, lq)} has no GT image in {gt_folder}' for lq in sorted(lqs)]
        sizes = []
        for gt, lq in pairs:
            gt_size, lq_size = _image_size(gt), _image_size(lq)
            if gt_size and lq_size and gt_size != (lq_size[0] * scale, lq_size[1] * scale):
                bad.append(f'{gt} is {gt_size[0]}x{gt_size[1]} but {lq} is {lq_size[0]}x{lq_size[1]} '
                           f'(×{scale} gives {lq_size[0] * scale}x{lq_size[1] * scale})')
            sizes.append((gt, gt_size))
        if bad:
            problems.append(f'{len(bad)} bad LQ/GT pairs in {where} ({name!r}; LQ named by filename_tmpl '
                            f'{tmpl!r}, GT = {scale} × LQ): {_listed(bad)}. Fix or remove them')
        count = len(pairs)
    else:
        paths = [osp.join(gt_folder, v) for v in _folder_images(gt_folder, recursive=True)]
        sizes, count = [(path, _image_size(path)) for path in paths], len(paths)
    if train:
        problems += _check_training_set(where, name, dataset_opt, opt, sizes, count)
    else:
        problems += _check_validation_set(where, name, opt, sizes)
    return problems


def _check_training_set(where, name, dataset_opt, opt, sizes, count):
    problems = []
    gt_size = dataset_opt.get('gt_size')
    if isinstance(gt_size, int):
        small = [f'{path} ({size[0]}x{size[1]})' for path, size in sizes if size and min(size) < gt_size]
        if small:
            problems.append(f'{len(small)} images of {where} ({name!r}) are smaller than gt_size = {gt_size}: '
                            f'{_listed(small)}. Lower gt_size or remove them')
    batch, ratio = dataset_opt.get('batch_size_per_gpu'), dataset_opt.get('dataset_enlarge_ratio', 1)
    world_size = opt.get('world_size', 1)
    if not (isinstance(batch, int) and isinstance(ratio, int)) or count == 0:
        return problems  # reported by check_numbers, or when the dataset is built
    if not opt.get('dist') and opt.get('num_gpu', 0) > 1:
        batch *= opt['num_gpu']  # DataParallel: one loader feeds all GPUs
    per_process = math.ceil(count * ratio / world_size)
    if per_process < batch:
        fits = max(count * ratio // world_size, 1)
        problems.append(f'{where} ({name!r}) has {count} images (× dataset_enlarge_ratio {ratio}'
                        f'{f", over {world_size} processes" if world_size > 1 else ""}): {per_process} per process, '
                        f'fewer than one batch of {batch}, so no iteration would run. Lower batch_size_per_gpu to '
                        f'{fits} or less, or raise dataset_enlarge_ratio to {math.ceil(batch * world_size / count)}')
    return problems


def _check_validation_set(where, name, opt, sizes):
    problems = []
    for metric, metric_opt in ((opt.get('val') or {}).get('metrics') or {}).items():
        needed = metric_min_size(metric_opt)
        if needed is None:
            continue
        short, long = needed
        crop = metric_opt.get('crop_border', 0)
        small = [f'{path} ({size[0]}x{size[1]})' for path, size in sizes
                 if size and (min(size) < short or max(size) < long)]
        if small:
            problems.append(f'{len(small)} images of {where} ({name!r}) are too small for val.metrics.{metric} '
                            f'({metric_opt["type"]} needs {short}x{long} after crop_border = {crop}): '
                            f'{_listed(small)}. Lower crop_border, leave the metric out, or remove the images')
    return problems


def check_paths(opt):
    """Check 7. Returns the problems (str)."""
    problems, path_opt = [], opt.get('path') or {}
    resume = path_opt.get('resume_state')
    if resume and opt.get('is_train') and not opt.get('auto_resume'):
        parts = osp.normpath(resume).split(os.sep)
        iteration = osp.splitext(parts[-1])[0]
        if not osp.isfile(resume):
            problems.append(f'path.resume_state is not a file: {resume}: fix the path, or use --auto_resume')
        elif len(parts) >= 3 and parts[-2] == 'training_states' and parts[-3] != opt['name']:
            problems.append(f'path.resume_state = {resume} is a training state of experiment {parts[-3]!r}, but this '
                            f'run is {opt["name"]!r}: set name: {parts[-3]} to continue that run, or train from its '
                            f'network with path.pretrain_network_g: '
                            f'{osp.join(*parts[:-2], "models", f"net_g_{iteration}.pth")} and no resume_state')
        elif not osp.isfile(osp.join(path_opt['models'], f'net_g_{iteration}.pth')):
            problems.append(f'path.resume_state = {resume} has no network checkpoint '
                            f'{osp.join(path_opt["models"], f"net_g_{iteration}.pth")}: point it at a state whose '
                            'net_g_<iter>.pth exists')
    resuming = bool(resume) or opt.get('auto_resume')
    for key, value in path_opt.items():
        if key.startswith('pretrain_network') and value and not resuming and not osp.isfile(value):
            problems.append(f'path.{key} is not a file: {value}: fix the path (or ~ for no weights)')
    return problems


def check_options(opt, source=None):
    """Run every check on a parsed option file (``basicsr.utils.options.parse_options``'s ``opt``).

    Args:
        opt (dict): The parsed options.
        source (str | None): The option file, for messages. Default: None (the experiment's name).

    Raises:
        OptionError: every problem found, one line each, naming the option or the file and what to change.
    """
    problems = check_numbers(opt)
    if not problems:  # the other checks compare numbers
        problems += check_scale_and_patch(opt) + check_paths(opt)
        for key, dataset_opt in (opt.get('datasets') or {}).items():
            problems += check_dataset(key, dataset_opt, opt)
    if problems:
        source = source or opt.get('name')
        if len(problems) == 1:
            raise OptionError(f'{source}: {problems[0]}.')
        raise OptionError(f'{len(problems)} problems in {source}:\n' + '\n'.join(f'  {p}.' for p in problems))


@contextlib.contextmanager
def checked_run(pipeline_module):
    """Check the options and lock the run's folder when ``pipeline_module`` (``basicsr.train`` or
    ``basicsr.test``) parses its option file; in training, resume with the option file's learning rate and schedule
    (``msconv_plugin.resume``). Undone (and the lock released) when the block ends."""
    parse_options = pipeline_module.parse_options
    locks = []

    def parse_and_check(root_path, is_train=True):
        opt, args = parse_options(root_path, is_train=is_train)
        check_options(opt, source=args.opt)
        if opt['rank'] == 0:
            folder = opt['path']['experiments_root' if is_train else 'results_root']
            locks.append(ExperimentLock(folder, opt['name']).acquire())
        return opt, args

    def build_model_resuming_with_options(opt):
        model = build_model(opt)
        model.resume_training = functools.partial(resume_with_options, model)
        return model

    pipeline_module.parse_options = parse_and_check
    build_model = getattr(pipeline_module, 'build_model', None)
    if training := hasattr(pipeline_module, 'train_pipeline'):
        pipeline_module.build_model = build_model_resuming_with_options
    try:
        yield
    finally:
        pipeline_module.parse_options = parse_options
        if training:
            pipeline_module.build_model = build_model
        for lock in locks:
            lock.release()
