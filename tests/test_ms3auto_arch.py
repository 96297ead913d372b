"""MS3Auto: RCAN, SRVGGNetCompact and RIDNet converted from their options (tiny widths where the test is about
structure), the plain-checkpoint mapping, ONNX export and torch.compile."""
import copy
import itertools
from os import path as osp

import pytest
import torch
from basicsr.utils.registry import ARCH_REGISTRY
from torch import nn as nn

from msconv_plugin.archs.ms3auto_arch import MS3Auto, plain_to_ms3auto
from msconv_plugin.archs.ms3conv import MS3Conv
from tests.arch_checks import assert_equivalent, assert_shared_weights_and_gradients, complexity_counter
from tests.scripts import load_script

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))

# RIDNet's channel attention squeezes by 16 (fixed): 64 channels keep 2 (n=2) and 1 (n=3) per branch.
BASES = {
    'RCAN': dict(type='RCAN', num_in_ch=3, num_out_ch=3, num_feat=16, num_group=2, num_block=2, squeeze_factor=4,
                 upscale=2),
    'SRVGGNetCompact': dict(type='SRVGGNetCompact_basicsr', num_in_ch=3, num_out_ch=3, num_feat=16, num_conv=3,
                            upscale=4),
    'RIDNet': dict(type='RIDNet', in_channels=3, mid_channels=64, out_channels=3, num_block=1),
}
SCALES = {'RCAN': 2, 'SRVGGNetCompact': 4, 'RIDNet': 1}
# what the defaults pick: the first 3×3 convolution (RIDNet's 1×1 mean shift is skipped); the last 3×3 convolution
# before the first upsampling, else the last 3×3 convolution
SPLIT_FUSE = {'RCAN': ('conv_first', 'upsample.0'), 'SRVGGNetCompact': ('body.0', 'body.8'), 'RIDNet': ('head', 'tail')}


def plain(name):
    base = dict(BASES[name])
    return ARCH_REGISTRY.get(base.pop('type'))(**base)


@pytest.mark.parametrize('name,n_scales', list(itertools.product(BASES, [1, 2, 3])))
def test_shapes_at_odd_sizes(name, n_scales):
    net = MS3Auto(BASES[name], n_scales=n_scales)
    assert type(net).__name__ == 'MS3Auto' and (net.meta['ms3']['split'], net.meta['ms3']['fuse']) == SPLIT_FUSE[name]
    for h, w in [(17, 23), (5, 3)]:
        assert net(torch.rand(2, 3, h, w)).shape == (2, 3, h * SCALES[name], w * SCALES[name])


@pytest.mark.parametrize('name', BASES)
def test_n_scales_1_is_the_plain_network(name):
    torch.manual_seed(0)
    original = plain(name)
    net = MS3Auto(BASES[name], n_scales=1)
    net.load_state_dict(plain_to_ms3auto(original.state_dict(), net), strict=True)
    assert_equivalent(original, net, torch.rand(2, 3, 11, 9))


@pytest.mark.parametrize('name,n_scales,interaction', [(n, 2, 'adjacent') for n in BASES] + [('RCAN', 3, 'full')])
def test_shared_weights_and_every_parameter_gets_a_gradient(name, n_scales, interaction):
    torch.manual_seed(0)
    net = MS3Auto(BASES[name], n_scales=n_scales, interaction=interaction)
    # A tiny channel attention squeezes a branch to 2 channels, whose ReLU a random initialisation may leave dead
    # for every input (zero gradient before it, with or without MS³): positive biases keep the squeeze alive, so
    # that the check is about which parameters the graph reaches.
    with torch.no_grad():
        for module_name, module in net.named_modules():
            if module_name.endswith('attention.1') and isinstance(module, torch.nn.Conv2d):
                module.bias.fill_(1.)
    assert_shared_weights_and_gradients(net, torch.rand(2, 3, 12, 10), n_scales)


@pytest.mark.parametrize('name,shared', [('RCAN', 8), ('SRVGGNetCompact', 4), ('RIDNet', 2)])
def test_per_channel_modules_are_one_module_at_branch_width(name, shared):
    """RCAN / RIDNet: the two convolutions of each channel attention; SRVGGNetCompact: its PReLUs after the split
    and the S2 layers. Each is one module at branch width, called once per branch."""
    net = MS3Auto(BASES[name], n_scales=2)
    width = net.meta['ms3']['branch_width']
    targets = net.meta['ms3']['shared']
    assert len(targets) == shared
    calls = []
    for target in targets:
        module = net.get_submodule(target)
        if isinstance(module, nn.PReLU):
            assert module.weight.shape == (width, )
        else:
            assert isinstance(module, nn.Conv2d) and width in (module.in_channels, module.out_channels)
        module.register_forward_hook(lambda *args: calls.append(1))
    net(torch.rand(1, 3, 8, 8))
    assert len(calls) == 2 * shared


@pytest.mark.parametrize('name', BASES)
def test_fewer_parameters_and_multiply_adds_than_the_plain_network(name):
    measure = complexity_counter()
    base = dict(BASES[name])
    plain_counts = measure(base.pop('type'), base, 16)
    for n_scales in (2, 3):
        counts = measure('MS3Auto', dict(base=BASES[name], n_scales=n_scales), 16)
        assert counts['params'] < plain_counts['params'] and counts['macs'] < plain_counts['macs']
        assert counts['s2_params'] == counts['s2_params_closed_form']


def test_built_from_options_and_deep_copied():
    from basicsr.archs import build_network
    net = build_network(dict(type='MS3Auto', base=BASES['RCAN'], n_scales=3, split='conv_first',
                             fuse='conv_after_body', cross_scale_init=0))
    assert net.meta['ms3']['fuse'] == 'conv_after_body'
    assert all(k.weight.abs().sum() == 0 for m in net.modules() if isinstance(m, MS3Conv)
               for k in m.cross_scale.values())
    twin = copy.deepcopy(net)
    assert isinstance(twin, MS3Auto) and twin.meta['ms3'] == net.meta['ms3']
    x = torch.rand(1, 3, 9, 7)
    torch.testing.assert_close(twin(x), net(x))


@pytest.mark.parametrize('base,match', [
    ('RCAN', 'base must be'),
    (dict(num_feat=4), 'base must be'),
    (dict(type='RIDNet', in_channels=3, mid_channels=32, out_channels=3, num_block=1), r'attention\.1'),
])
def test_bad_base(base, match):
    with pytest.raises(ValueError, match=match):
        MS3Auto(base, n_scales=3)


def test_torch_compile_matches_eager():
    net = MS3Auto(BASES['SRVGGNetCompact'], n_scales=2).eval()
    x = torch.rand(1, 3, 13, 11)
    compiled = torch.compile(net, backend='aot_eager')  # graph capture by dynamo, no C++ toolchain needed
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), net(x))


def test_onnx_export_matches_onnxruntime(tmp_path):
    pytest.importorskip('onnx', reason='ONNX export needs onnx (pip install .[onnx])')
    pytest.importorskip('onnxruntime', reason='ONNX export needs onnxruntime (pip install .[onnx])')
    export_onnx = load_script('export_onnx')
    torch.manual_seed(0)
    net = MS3Auto(BASES['RCAN'], n_scales=3).eval()
    path = export_onnx.export(net, str(tmp_path / 'ms3auto.onnx'), example_size=(32, 32))
    assert export_onnx.check(net, path, (23, 17)) < 1e-4


@pytest.mark.slow
def test_two_iterations_through_the_training_command(tmp_path):
    """options/train/MS3Auto/train_MS3Auto_RCAN_x2.yml as shipped but for a tiny RCAN, the data and the length:
    ``python -m msconv_plugin.train`` trains 2 iterations, validates and saves a checkpoint that loads."""
    from skimage import data as skimage_data

    from tests.test_train_pipeline import _dump_yml, _load_yml, _run, _write_pairs
    photo = skimage_data.astronaut()
    hr, lr = _write_pairs(tmp_path / 'datasets', [photo[y:y + 48, x:x + 48] for y, x in ((100, 100), (200, 300))])
    opt = _load_yml(osp.join(REPO_ROOT, 'options', 'train', 'MS3Auto', 'train_MS3Auto_RCAN_x2.yml'))
    opt['num_gpu'] = 0
    opt['network_g']['base'].update(num_feat=8, num_group=1, num_block=1, squeeze_factor=4)
    opt['datasets']['train'].update(dataroot_gt=str(hr), dataroot_lq=str(lr), gt_size=32, num_worker_per_gpu=0,
                                    batch_size_per_gpu=2, dataset_enlarge_ratio=1)
    opt['datasets']['val'].update(dataroot_gt=str(hr), dataroot_lq=str(lr))
    opt['train']['total_iter'] = 2
    opt['val']['val_freq'] = 2
    opt['logger'].update(print_freq=1, save_checkpoint_freq=2, use_tb_logger=False)
    log = _run('msconv_plugin.train', '-opt', str(_dump_yml(opt, tmp_path / 'train.yml')), cwd=tmp_path)
    assert 'Network [MS3Auto] is created' in log and 'Validation Set5' in log
    checkpoint = torch.load(tmp_path / 'experiments' / opt['name'] / 'models' / 'net_g_latest.pth')
    MS3Auto(opt['network_g']['base'], n_scales=2).load_state_dict(checkpoint['params_ema'], strict=True)
