from basicsr.utils.registry import ARCH_REGISTRY
from torch import fx

from ..convert import convert_graph, finish, plain_to_ms3_state_dict
from .ms3conv import DEFAULT_CROSS_SCALE_INIT


@ARCH_REGISTRY.register()
class MS3Auto(fx.GraphModule):
    """Any registered convolutional network, converted to MS³-Conv by ``msconv_plugin.convert.ms3_convert``.

    An option file converts a network without code: ``type: MS3Auto`` and the plain ``network_g`` under ``base``::

        network_g:
          type: MS3Auto
          base: {type: RCAN, num_in_ch: 3, num_out_ch: 3, num_feat: 64, num_group: 10, num_block: 20, upscale: 2}
          n_scales: 2
          interaction: adjacent

    The result is a ``torch.fx.GraphModule`` with the plain network's module names (S2 layers where their
    convolutions were), so it trains, tests, tiles and exports like the hand-written MS³ networks. Rules,
    refusals and a worked example: ``docs/convert_any_network.md``. Plain checkpoints load into ``n_scales: 1``
    through ``plain_to_ms3auto``.

    MS³-Conv: patent CN111353939B; Feng et al., Exploring Multi-Scale Feature Propagation and Communication for
    Image Super Resolution, arXiv 2008.00239.

    Args:
        base (dict): The plain network's options: ``type`` (a registered network) and its arguments.
        n_scales (int): Number of scales; 1 computes exactly the plain network. Default: 2.
        interaction (str): Cross-scale interaction, 'adjacent' or 'full'. Default: 'adjacent'.
        split (str | None): Module name of the convolution that becomes the split (S1). Default: None, the first
            convolution with a kernel larger than 1×1.
        fuse (str | None): Module name of the convolution that becomes the fuse (S3). Default: None, the last
            convolution (kernel larger than 1×1) feeding the first upsampling, else the last such convolution.
        downsample (str): 'avg', 'max' or 'learned' (see ``MS3Conv``). Default: 'avg'.
        upsample (str): 'nearest', 'bilinear' or 'learned', between scales. Default: 'nearest'.
        cross_scale_init (float): Scale of the cross-scale kernels' initial weights: 1 initialises them like the
            same-scale kernel, 0 starts the branches without interaction (``scale_cross_scale_init_``). Default: 0
            (``DEFAULT_CROSS_SCALE_INIT``).
    """

    def __init__(self,
                 base,
                 n_scales=2,
                 interaction='adjacent',
                 split=None,
                 fuse=None,
                 downsample='avg',
                 upsample='nearest',
                 cross_scale_init=DEFAULT_CROSS_SCALE_INIT):
        if not isinstance(base, dict) or not isinstance(base.get('type'), str):
            raise ValueError(f'MS3Auto: base must be the plain network\'s options with its type, e.g. '
                             f'{{type: RCAN, num_in_ch: 3, ...}}; got {base!r}.')
        base = dict(base)
        plain = ARCH_REGISTRY.get(base.pop('type'))(**base)
        root, graph, record = convert_graph(plain, n_scales, interaction, split, fuse, downsample, upsample,
                                            cross_scale_init)
        super().__init__(root, graph, class_name='MS3Auto')
        finish(self, record)


def plain_to_ms3auto(state_dict, net):
    """Map the plain network's state dict onto ``MS3Auto(base=<that network>, n_scales=1)`` (``net``): S2 layers'
    keys gain ``.same_scale``, the fuse's become ``<fuse>.convs.0.*``, every other key stays."""
    return plain_to_ms3_state_dict(state_dict, net)
