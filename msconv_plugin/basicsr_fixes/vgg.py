"""VGG weights offline.

The perceptual loss (``PerceptualLoss`` -> ``VGGFeatureExtractor``) loads torchvision's VGG ImageNet weights from
``experiments/pretrained_models/vgg19-dcbb9e9d.pth`` (relative to the working directory) when that file exists, and
otherwise downloads them with torchvision's deprecated ``pretrained=True``: a ``URLError`` without network, and a
file no option can point at. Ours never downloads: the weights come from ``perceptual_opt.vgg_weights``, else
``$MSCONV_VGG19_PATH`` (``MSCONV_<VGG_TYPE>_PATH`` for other types), else BasicSR's place, and when none exists
building the model fails with ``FileNotFoundError`` naming the file, where to put it and where to get it
(``find_vgg_weights``). See docs/gan.md.
"""
import contextlib
import functools
import os
from os import path as osp

import torchvision

from .patching import replace, shipped

PRETRAINED_MODELS = osp.join('experiments', 'pretrained_models')  # BasicSR's folder for VGG_PRETRAIN_PATH


def find_vgg_weights(vgg_type='vgg19', vgg_weights=None):
    """The local file of torchvision's ImageNet weights for ``vgg_type``, for the perceptual loss.

    Looked for, in order: ``vgg_weights`` (``perceptual_opt.vgg_weights``), the environment variable
    ``MSCONV_<VGG_TYPE>_PATH`` (``MSCONV_VGG19_PATH``), and BasicSR's place
    ``experiments/pretrained_models/<torchvision's file name>`` (``vgg19-dcbb9e9d.pth``) under the working directory.
    A path that is given but missing is an error, not a reason to look further.

    Args:
        vgg_type (str): 'vgg19', 'vgg16_bn', ... as ``VGGFeatureExtractor``'s ``vgg_type``. Default: 'vgg19'.
        vgg_weights (str | None): Path of the file, or None. Default: None.

    Returns:
        str: The path of an existing file.

    Raises:
        FileNotFoundError: Names the file, where to put it and where to download it.
    """
    url = torchvision.models.get_model_weights(vgg_type).IMAGENET1K_V1.url
    file_name = osp.basename(url)
    variable = f'MSCONV_{vgg_type.upper()}_PATH'
    default = osp.join(PRETRAINED_MODELS, file_name)
    if vgg_weights:
        path, source = osp.expanduser(vgg_weights), 'given by perceptual_opt.vgg_weights'
    elif os.environ.get(variable):
        path, source = osp.expanduser(os.environ[variable]), f'given by {variable}'
    else:
        path, source = default, f'BasicSR\'s default; neither perceptual_opt.vgg_weights nor {variable} is set'
    if not osp.isfile(path):
        raise FileNotFoundError(
            f'The perceptual loss needs torchvision\'s {vgg_type} ImageNet weights, {file_name}, and there is no '
            f'file {osp.abspath(path)} ({source}). '
            f'msconv_plugin never downloads them. Download {url} (on a machine with network access), then put '
            f'{file_name} at {default} under the directory you run from ({os.getcwd()}), or point '
            f'perceptual_opt.vgg_weights in the option file or the environment variable {variable} at it. '
            'See docs/gan.md.')
    return path


class _TorchvisionVGGWithoutDownload:
    """Stands in for ``torchvision.models.vgg`` in ``basicsr.archs.vgg_arch``: ``vgg19(pretrained=False)`` builds
    with ``weights=None`` (no deprecation warning); ``pretrained=True``, a download, is refused."""

    def __getattr__(self, vgg_type):
        return functools.partial(self.build, vgg_type)

    @staticmethod
    def build(vgg_type, pretrained=False):
        if pretrained:
            raise RuntimeError(f'msconv_plugin does not download the {vgg_type} weights (see find_vgg_weights).')
        # The file's weights replace these at once: torchvision's own initialisation would only cost time.
        return getattr(torchvision.models, vgg_type)(weights=None, init_weights=False)


@contextlib.contextmanager
def _module_globals(module, **values):
    """Set globals of ``module`` for the duration of the block (model building is single-threaded)."""
    previous = {name: getattr(module, name) for name in values}
    for name, value in values.items():
        setattr(module, name, value)
    try:
        yield
    finally:
        for name, value in previous.items():
            setattr(module, name, value)


def vgg_feature_extractor_init(self, layer_name_list, vgg_type='vgg19', *args, vgg_weights=None, **kwargs):
    """``VGGFeatureExtractor.__init__`` (same arguments, plus ``vgg_weights``) that loads the weights from the file
    ``find_vgg_weights`` finds, and fails before anything else when there is none.

    BasicSR's ``__init__`` loads ``VGG_PRETRAIN_PATH`` when it exists and builds the network with the ``vgg`` module
    it imported; both are read from its module's globals, so they are set around it.
    """
    from basicsr.archs import vgg_arch

    path = find_vgg_weights(vgg_type, vgg_weights)
    with _module_globals(vgg_arch, VGG_PRETRAIN_PATH=path, vgg=_TorchvisionVGGWithoutDownload()):
        shipped(vgg_arch.VGGFeatureExtractor, '__init__')(self, layer_name_list, vgg_type, *args, **kwargs)


def perceptual_loss_init(self, layer_weights, *args, vgg_weights=None, **kwargs):
    """``PerceptualLoss.__init__`` that also takes ``vgg_weights`` (``perceptual_opt.vgg_weights``) and hands it to
    the ``VGGFeatureExtractor`` it builds (by the name ``basic_loss`` imported)."""
    from basicsr.losses import basic_loss

    extractor = functools.partial(basic_loss.VGGFeatureExtractor, vgg_weights=vgg_weights)
    with _module_globals(basic_loss, VGGFeatureExtractor=extractor):
        shipped(basic_loss.PerceptualLoss, '__init__')(self, layer_weights, *args, **kwargs)


def apply():
    from basicsr.archs.vgg_arch import VGGFeatureExtractor
    from basicsr.losses.basic_loss import PerceptualLoss

    replace(VGGFeatureExtractor, '__init__', vgg_feature_extractor_init)
    replace(PerceptualLoss, '__init__', perceptual_loss_init)
