"""Checkpoints that survive a kill, and clear errors instead of obscure tracebacks, around BasicSR 1.4.2's trainer.

``msconv_plugin.compat.apply`` applies these (so ``import msconv_plugin`` does); like the compat fixes, each one
replaces a module or class attribute of BasicSR and leaves site-packages alone. They live apart from
``compat`` because they are not about today's stack: BasicSR behaves this way on any stack.

1. Atomic checkpoints. ``BaseModel.save_network`` and ``save_training_state`` ``torch.save`` straight into
   ``net_g_<iter>.pth`` / ``<iter>.state``: a run killed while writing leaves a truncated file that
   ``--auto_resume`` then picks as the latest. Ours write ``<name>.<pid>.tmp`` in the same folder, flush it to disk
   and ``os.replace`` it onto the name (atomic on POSIX and Windows), so a checkpoint file is complete or absent.
   (``compat.load_resume_state`` skips unreadable states written before, and removes leftover ``.tmp`` files.)
2. A checkpoint that does not fit the network. ``BaseModel.load_network`` fails with torch's dump of every key
   (or with a bare ``KeyError: 'params'``, or a zip-reader error for a truncated file). When loading fails, ours
   raises ``ValueError`` naming the file and summarising missing and unexpected keys and shape mismatches, and
   for MS³ networks the ``n_scales`` / ``interaction`` read off both sides.
3. Unreadable images. BasicSR's ``PairedImageDataset`` and ``SingleImageDataset`` fail on a corrupt file with
   ``'NoneType' object has no attribute 'astype'``. They get ``msconv_plugin.data.image_io.imfrombytes`` (which
   also keeps 16-bit images at full precision), and an unreadable image is named with its dataset.
4. Empty datasets. A dataset without images fails later with ``ZeroDivisionError`` (training) or
   ``UnboundLocalError`` (validation). ``build_dataset`` refuses it, naming its folders.
5. Metrics on tiny images. ``calculate_psnr`` returns nan and ``calculate_ssim`` fails inside OpenCV when the image
   has nothing left after ``crop_border`` (SSIM needs 11×11); ``calculate_niqe`` fails in NumPy (``LinAlgError``)
   with fewer than two of its 96×96 blocks. ``SRModel``'s validation raises a ``ValueError`` saying what size is
   needed.
6. A loss that is no longer finite. BasicSR keeps training (and checkpointing) on NaN. The model that
   ``basicsr.train`` builds stops with ``FloatingPointError`` naming the iteration and the losses, before anything
   of that iteration is saved.
7. A discriminator that does not fit the training crops. ``VGGStyleDiscriminator`` takes ``input_size`` × ``input_size``
   images only (128 or 256); with another ``gt_size`` BasicSR's GAN models fail at the first iteration with a bare
   ``AssertionError``. ``SRGANModel`` (and ``ESRGANModel``) refuse the combination when they are built, naming both
   options.
"""
import functools
import math
import os
import re
from collections import OrderedDict
from os import path as osp

import torch
from basicsr.utils import get_root_logger
from basicsr.utils.dist_util import master_only

from msconv_plugin.compat import replace, shipped
from msconv_plugin.data.image_io import UnreadableImageError, imfrombytes


def _strip_module(key):
    """A parameter name without the ``module.`` that (Distributed)DataParallel adds."""
    return key[len('module.'):] if key.startswith('module.') else key


# 1. Atomic checkpoints


def save_checkpoint(obj, path, retries=3):
    """``torch.save(obj, path)`` that never leaves a partial ``path``: a temporary file, then ``os.replace``.

    Write errors are retried, then logged and ignored (BasicSR's choice: a failed checkpoint does not stop training).

    Args:
        obj: What to save.
        path (str): Checkpoint file.
        retries (int): Attempts before giving up. Default: 3.

    Returns:
        bool: Whether ``path`` was written.
    """
    temporary = f'{path}.{os.getpid()}.tmp'  # the same folder: os.replace is atomic within one file system
    for attempt in range(1, retries + 1):
        try:
            with open(temporary, 'wb') as f:
                torch.save(obj, f)
                f.flush()
                os.fsync(f.fileno())  # on disk before the rename, so a power cut cannot leave an empty checkpoint
            os.replace(temporary, path)
            return True
        except (OSError, RuntimeError) as error:  # torch's zip writer reports a failed write as RuntimeError
            if osp.exists(temporary):
                os.remove(temporary)
            get_root_logger().warning(f'Cannot save {path} ({error}); {retries - attempt} attempts left.')
    get_root_logger().warning(f'Still cannot save {path}. Just ignore it.')
    return False


@master_only
def save_network(self, net, net_label, current_iter, param_key='params'):
    """``BaseModel.save_network`` (same arguments and file names), written with ``save_checkpoint``."""
    current_iter = 'latest' if current_iter == -1 else current_iter
    nets = net if isinstance(net, list) else [net]
    param_keys = param_key if isinstance(param_key, list) else [param_key]
    assert len(nets) == len(param_keys), 'The lengths of net and param_key should be the same.'
    save_dict = {}
    for net_, param_key_ in zip(nets, param_keys):
        state_dict = self.get_bare_model(net_).state_dict()
        save_dict[param_key_] = OrderedDict((_strip_module(key), param.cpu()) for key, param in state_dict.items())
    save_checkpoint(save_dict, osp.join(self.opt['path']['models'], f'{net_label}_{current_iter}.pth'))


@master_only
def save_training_state(self, epoch, current_iter):
    """``BaseModel.save_training_state`` (same contents and file name), written with ``save_checkpoint``."""
    if current_iter != -1:
        state = {
            'epoch': epoch,
            'iter': current_iter,
            'optimizers': [o.state_dict() for o in self.optimizers],
            'schedulers': [s.state_dict() for s in self.schedulers],
        }
        save_checkpoint(state, osp.join(self.opt['path']['training_states'], f'{current_iter}.state'))


# 2. A checkpoint that does not fit the network

_CROSS_SCALE_KERNEL = re.compile(r'cross_scale\.(\d+)to(\d+)\.')


def _group(keys, details=None):
    """``body.0.x.weight, body.1.x.weight`` -> ``body.*.x.weight (×2)``: one entry per pattern of block numbers
    (and per detail, e.g. a shape, when ``details`` maps each key to one)."""
    groups = OrderedDict()
    for key in keys:
        pattern = re.sub(r'(?<=\.)\d+(?=\.)', '*', key)
        groups.setdefault((pattern, details[key] if details else ''), []).append(key)
    return [(found[0] if len(found) == 1 else f'{pattern} (×{len(found)})', detail)
            for (pattern, detail), found in groups.items()]


def _summarise(keys, limit=6):
    """Grouped keys (``_group``) on one line, at most ``limit`` entries."""
    parts = [name for name, _ in _group(keys)]
    more = f', … and {len(parts) - limit} more' if len(parts) > limit else ''
    return ', '.join(parts[:limit]) + more


def ms3_layout(state_dict):
    """What a state dict says about its MS³ layers: e.g. ``n_scales=3, interaction='full', branch width 21``.

    Returns None when it has no MS³ layer. ``n_scales`` is read off the cross-scale kernel names ('jtoi'),
    ``interaction`` from whether non-adjacent branches talk (at 2 scales both interactions are the same layer).
    """
    same_scale = [key for key in state_dict if key.endswith('same_scale.weight')]
    if not same_scale:
        return None
    pairs = {tuple(map(int, m.groups())) for m in map(_CROSS_SCALE_KERNEL.search, state_dict) if m}
    n_scales = max(max(pair) for pair in pairs) if pairs else 1
    if n_scales == 1:
        interaction = 'none'
    elif n_scales == 2:
        interaction = "'adjacent' or 'full' (the same at 2 scales)"
    else:
        interaction = repr('full' if any(abs(i - j) > 1 for i, j in pairs) else 'adjacent')
    return (f'n_scales={n_scales}, interaction={interaction}, '
            f'branch width {state_dict[same_scale[0]].shape[0]}')


def describe_mismatch(net, state_dict, load_path, param_key):
    """Why ``state_dict`` does not load into ``net`` (strictly), or None when it does."""
    net_state = net.state_dict()
    missing = sorted(set(net_state) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(net_state))
    shapes = {
        key: f'{tuple(state_dict[key].shape)} vs {tuple(net_state[key].shape)}'
        for key in net_state if key in state_dict and state_dict[key].shape != net_state[key].shape
    }
    if not (missing or unexpected or shapes):
        return None
    lines = [f'The checkpoint {load_path} (param key {param_key!r}) does not fit the network '
             f'{type(net).__name__}:']
    if missing:
        lines.append(f'  {len(missing)} parameters of the network are not in the checkpoint: {_summarise(missing)}')
    if unexpected:
        lines.append(f'  {len(unexpected)} parameters of the checkpoint are not in the network: '
                     f'{_summarise(unexpected)}')
    if shapes:
        lines.append(f'  {len(shapes)} parameters differ in shape (checkpoint vs network):')
        grouped = _group(shapes, shapes)
        lines += [f'    {name}: {shape}' for name, shape in grouped[:8]]
        if len(grouped) > 8:
            lines.append(f'    … and {len(grouped) - 8} more')
    net_layout, checkpoint_layout = ms3_layout(net_state), ms3_layout(state_dict)
    if net_layout or checkpoint_layout:
        lines.append(f'  MS³ layers: the network has {net_layout or "none"}; the checkpoint has '
                     f'{checkpoint_layout or "none (a plain network: convert it, e.g. with edsr_to_ms3edsr)"}.')
    if checkpoint_layout:
        lines.append('  Build the network with the options the checkpoint was trained with (n_scales, interaction, '
                     'scope, num_feat, num_block, ...).')
    lines.append('  (strict_load_* = false loads only the parameters that fit.)')
    return '\n'.join(lines)


def _explain_load_failure(net, load_path, param_key):
    """A message for a failed ``load_network``, or None to let BasicSR's error through."""
    if not osp.isfile(load_path):
        return None  # FileNotFoundError already names the file
    try:
        checkpoint = torch.load(load_path, map_location='cpu')
    except Exception as error:
        return (f'Cannot read the network checkpoint {load_path} ({type(error).__name__}: {error}): the file is '
                'truncated or not a PyTorch checkpoint.')
    if param_key is not None:
        if param_key not in checkpoint and 'params' in checkpoint:
            param_key = 'params'  # BasicSR's fallback for checkpoints without EMA weights
        if param_key not in checkpoint:
            return (f'The network checkpoint {load_path} has no {param_key!r} entry; it has '
                    f'{_summarise(sorted(map(str, checkpoint)))}. Set param_key_* to one of them (~ for a bare '
                    'state dict).')
        checkpoint = checkpoint[param_key]
    state_dict = {_strip_module(key): value for key, value in checkpoint.items()}
    return describe_mismatch(net, state_dict, load_path, param_key)


def load_network(self, net, load_path, strict=True, param_key='params'):
    """``BaseModel.load_network``; when it fails, a ``ValueError`` that says what does not fit instead."""
    from basicsr.models.base_model import BaseModel

    try:
        shipped(BaseModel, 'load_network')(self, net, load_path, strict, param_key)
    except Exception:
        message = _explain_load_failure(self.get_bare_model(net), load_path, param_key)
        if message is None:
            raise
        raise ValueError(message) from None


# 3. Unreadable images


def _decodes(content):
    try:
        imfrombytes(content)
    except UnreadableImageError:
        return False
    return True


def name_unreadable_image(getitem):
    """Wrap a BasicSR dataset's ``__getitem__``: an image that does not decode is named with its dataset."""

    @functools.wraps(getitem)
    def wrapper(self, index):
        try:
            return getitem(self, index)
        except UnreadableImageError:
            item = self.paths[index]
            keyed_paths = item.items() if isinstance(item, dict) else [('lq_path', item)]  # SingleImageDataset
            unreadable = [
                path for key, path in keyed_paths if not _decodes(self.file_client.get(path, key[:-len('_path')]))
            ]
            if not unreadable:
                raise
            raise UnreadableImageError(
                f'Cannot read image {" and ".join(unreadable)} of dataset {self.opt.get("name")!r}: it does not decode '
                'as an image (corrupt, truncated or not an image file).') from None

    return wrapper


# 4. Empty datasets


def build_dataset(dataset_opt):
    """``basicsr.data.build_dataset`` that refuses a dataset without images, naming where it looked."""
    import basicsr.data

    dataset = shipped(basicsr.data, 'build_dataset')(dataset_opt)
    if len(dataset) == 0:
        where = ', '.join(f'{key}: {dataset_opt[key]}' for key in ('dataroot_gt', 'dataroot_lq', 'meta_info_file')
                          if dataset_opt.get(key))
        raise ValueError(f'Dataset {dataset_opt.get("name")!r} ({dataset_opt["type"]}) has no images ({where}). '
                         'Check the folders (and filename_tmpl / meta_info_file).')
    return dataset


# 5. Metrics on tiny images

# The smallest side each metric can measure once crop_border pixels are cut from every edge.
_METRIC_MIN_SIZE = {'calculate_psnr': 1, 'calculate_ssim': 11}  # SSIM: an 11x11 Gaussian window, 'valid' part


def calculate_metric(data, opt):
    """``basicsr.metrics.calculate_metric`` that refuses an image too small for the metric (nan or an OpenCV
    error otherwise)."""
    import basicsr.models.sr_model

    needed = _METRIC_MIN_SIZE.get(opt['type'])
    crop_border = opt.get('crop_border', 0)
    height, width = data['img'].shape[:2]
    if needed is not None and min(height, width) < needed + 2 * crop_border:
        raise ValueError(f'{opt["type"]} with crop_border={crop_border} needs images of at least '
                         f'{needed + 2 * crop_border}x{needed + 2 * crop_border} pixels; this output is '
                         f'{height}x{width}. Lower crop_border or leave the metric out for such small images.')
    # NIQE fits a Gaussian to the features of its 96x96 blocks: one block has no covariance.
    if opt['type'] == 'calculate_niqe' and ((height - 2 * crop_border) // 96) * ((width - 2 * crop_border) // 96) < 2:
        raise ValueError(f'calculate_niqe with crop_border={crop_border} needs two 96x96 blocks: images of at least '
                         f'{96 + 2 * crop_border}x{192 + 2 * crop_border} (or {192 + 2 * crop_border}x'
                         f'{96 + 2 * crop_border}) pixels; this output is {height}x{width}. Leave NIQE out for such '
                         'small images.')
    return shipped(basicsr.models.sr_model, 'calculate_metric')(data, opt)


# 6. A loss that is no longer finite


def stop_on_non_finite_loss(model):
    """Make ``model.optimize_parameters`` raise ``FloatingPointError`` when a logged loss is nan or infinite.

    It checks ``model.log_dict`` (the losses averaged over the ranks, the same on every rank), right after the
    update and so before the training loop can save that iteration.
    """
    optimize_parameters = model.optimize_parameters

    @functools.wraps(optimize_parameters)
    def wrapper(current_iter):
        optimize_parameters(current_iter)
        bad = {name: value for name, value in getattr(model, 'log_dict', {}).items() if not math.isfinite(value)}
        if bad:
            message = (f'Training stopped at iteration {current_iter}: the loss is not finite ('
                       f'{", ".join(f"{name} = {value}" for name, value in bad.items())}). Nothing of this iteration '
                       'was saved. Lower the learning rate (train.optim_g.lr) in the option file, or add '
                       'train.warmup_iter, check the training images, then run python -m msconv_plugin.train with the '
                       'same option file and --auto_resume: it resumes from the last checkpoint with the option '
                       'file\'s learning rate and schedule.')
            get_root_logger().error(message)
            raise FloatingPointError(message)

    model.optimize_parameters = wrapper
    return model


def build_model(opt):
    """``basicsr.models.build_model`` for the training loop: the model stops on a non-finite loss."""
    import basicsr.train

    model = shipped(basicsr.train, 'build_model')(opt)
    return stop_on_non_finite_loss(model) if opt['is_train'] else model


# 7. A discriminator that does not fit the training crops


def check_discriminator_input(opt):
    """Raise ``ValueError`` when a ``VGGStyleDiscriminator``'s ``input_size`` is not the training crop ``gt_size``
    (what the generator outputs and the discriminator judges), or not one of the sizes it supports."""
    network_d = opt.get('network_d') or {}
    if network_d.get('type') != 'VGGStyleDiscriminator':
        return
    input_size = network_d.get('input_size', 128)  # VGGStyleDiscriminator's default
    gt_size = (opt.get('datasets') or {}).get('train', {}).get('gt_size')
    if input_size not in (128, 256) or (gt_size is not None and gt_size != input_size):
        raise ValueError(f'network_d (VGGStyleDiscriminator) judges input_size x input_size images, with '
                         f'input_size 128 or 256, and must be given the training crops: here network_d.input_size = '
                         f'{input_size} and datasets.train.gt_size = {gt_size}. Set both to 128 or both to 256.')


def init_training_settings(self):
    """``SRGANModel.init_training_settings`` (also ``ESRGANModel``'s), after ``check_discriminator_input``."""
    from basicsr.models.srgan_model import SRGANModel

    check_discriminator_input(self.opt)
    shipped(SRGANModel, 'init_training_settings')(self)


def apply():
    """Apply every safeguard; safe to call more than once."""
    import basicsr.data
    import basicsr.data.paired_image_dataset
    import basicsr.data.single_image_dataset
    import basicsr.models.sr_model
    import basicsr.test
    import basicsr.train
    from basicsr.models.base_model import BaseModel
    from basicsr.models.srgan_model import SRGANModel

    replace(BaseModel, 'save_network', save_network)
    replace(BaseModel, 'save_training_state', save_training_state)
    replace(BaseModel, 'load_network', load_network)
    for module in (basicsr.data.paired_image_dataset, basicsr.data.single_image_dataset):
        module.imfrombytes = imfrombytes
    for dataset in (basicsr.data.paired_image_dataset.PairedImageDataset,
                    basicsr.data.single_image_dataset.SingleImageDataset):
        replace(dataset, '__getitem__', name_unreadable_image(shipped(dataset, '__getitem__')))
    # The pipelines call the functions they imported by name.
    for module in (basicsr.data, basicsr.train, basicsr.test):
        replace(module, 'build_dataset', build_dataset)
    replace(basicsr.models.sr_model, 'calculate_metric', calculate_metric)
    replace(basicsr.train, 'build_model', build_model)
    replace(SRGANModel, 'init_training_settings', init_training_settings)
