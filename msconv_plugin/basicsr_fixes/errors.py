"""Clear errors instead of obscure tracebacks (or silent nan) while training and validating.

1. Metrics on tiny images. ``calculate_psnr`` returns nan and ``calculate_ssim`` fails inside OpenCV when the image
   has nothing left after ``crop_border`` (SSIM needs 11×11); ``calculate_niqe`` fails in NumPy (``LinAlgError``)
   with fewer than two of its 96×96 blocks. ``SRModel``'s validation raises a ``ValueError`` saying what size is
   needed.
2. A loss that is no longer finite. BasicSR keeps training (and checkpointing) on NaN. The model that
   ``basicsr.train`` builds stops with ``FloatingPointError`` naming the iteration and the losses, before anything
   of that iteration is saved.
3. A discriminator that does not fit the training crops. ``VGGStyleDiscriminator`` takes ``input_size`` ×
   ``input_size`` images only (128 or 256); with another ``gt_size`` BasicSR's GAN models fail at the first
   iteration with a bare ``AssertionError``. ``SRGANModel`` (and ``ESRGANModel``) refuse the combination when they
   are built, naming both options.
"""
import functools
import math

from basicsr.utils import get_root_logger

from .patching import replace, shipped

# 1. Metrics on tiny images

# The smallest image (short side, long side) each metric measures once crop_border pixels are cut from every edge:
# SSIM an 11x11 Gaussian window ('valid' part); NIQE fits a Gaussian to the features of its 96x96 blocks and one
# block has no covariance, so two blocks. ``msconv_plugin.validation`` checks option files against the same table.
METRIC_MIN_SIZE = {'calculate_psnr': (1, 1), 'calculate_ssim': (11, 11), 'calculate_niqe': (96, 192)}


def metric_min_size(metric_opt):
    """``(short, long)``: the smallest image side pair a metric of ``metric_opt`` (``type``, ``crop_border``)
    measures, or None for a metric without a known minimum."""
    needed = METRIC_MIN_SIZE.get((metric_opt or {}).get('type'))
    crop = (metric_opt or {}).get('crop_border', 0)
    if needed is None or not isinstance(crop, int):
        return None
    return needed[0] + 2 * crop, needed[1] + 2 * crop


def calculate_metric(data, opt):
    """``basicsr.metrics.calculate_metric`` that refuses an image too small for the metric (nan, an OpenCV error
    or NumPy's ``LinAlgError`` otherwise)."""
    import basicsr.models.sr_model

    needed = metric_min_size(opt)
    height, width = data['img'].shape[:2]
    if needed is not None and (min(height, width) < needed[0] or max(height, width) < needed[1]):
        short, long = needed
        size = f'{short}x{long}' + (f' (or {long}x{short})' if short != long else '')
        why = 'two 96x96 blocks: ' if opt['type'] == 'calculate_niqe' else ''
        raise ValueError(f'{opt["type"]} with crop_border={opt.get("crop_border", 0)} needs {why}images of at least '
                         f'{size} pixels; this output is {height}x{width}. Lower crop_border or leave the metric '
                         'out for such small images.')
    return shipped(basicsr.models.sr_model, 'calculate_metric')(data, opt)


# 2. A loss that is no longer finite


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


# 3. A discriminator that does not fit the training crops


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
    import basicsr.models.sr_model
    import basicsr.train
    from basicsr.models.srgan_model import SRGANModel

    replace(basicsr.models.sr_model, 'calculate_metric', calculate_metric)
    replace(basicsr.train, 'build_model', build_model)
    replace(SRGANModel, 'init_training_settings', init_training_settings)
