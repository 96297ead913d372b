import importlib.util
import itertools
import subprocess
import sys
from os import path as osp

import pytest
import torch
import yaml
from basicsr.data import build_dataloader, build_dataset
from basicsr.models import build_model
from basicsr.utils.registry import ARCH_REGISTRY

from msconv_plugin.archs.carn_arch import CARN, MeanShift, official_carn_to_carn

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
SHARED = osp.join(REPO_ROOT, '..', 'shared')
CARN_M_WEIGHTS = osp.join(SHARED, 'data', 'pretrained', 'carn_m.pth')
needs_weights = pytest.mark.skipif(not osp.isfile(CARN_M_WEIGHTS),
                                   reason=f'official CARN-M weights not found at {CARN_M_WEIGHTS} (../shared)')
needs_set5 = pytest.mark.skipif(not osp.isdir(osp.join(SHARED, 'data', 'benchmark', 'Set5')),
                                reason='Set5 not found under ../shared/data/benchmark')

# Per-image PSNR/SSIM (Y, crop_border 4) that `python -m msconv_plugin.test -opt
# options/test/CARN/test_CARN_M_x4.yml` gave for the official CARN-M weights (Set5 mean: 31.8813 / 0.8910).
CARN_M_X4_SET5 = {'baby': (33.668729, 0.892147), 'bird': (34.416713, 0.938474)}


def load_convert_script():
    spec = importlib.util.spec_from_file_location('convert_carn', osp.join(REPO_ROOT, 'scripts', 'convert_carn.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def num_params(module):
    return sum(p.numel() for p in module.parameters())


def test_import_registers_and_basicsr_still_imports():
    code = ('import msconv_plugin, basicsr\n'
            'from basicsr.utils.registry import ARCH_REGISTRY\n'
            'assert ARCH_REGISTRY.get("CARN").__name__ == "CARN"\n')
    subprocess.run([sys.executable, '-c', code], check=True)
    assert ARCH_REGISTRY.get('CARN') is CARN


@pytest.mark.parametrize('group,upscale', list(itertools.product([1, 4], [2, 3, 4])))
def test_shapes(group, upscale):
    net = CARN(num_feat=16, upscale=upscale, group=group)
    for h, w in [(17, 23), (3, 5)]:
        assert net(torch.rand(2, 3, h, w)).shape == (2, 3, h * upscale, w * upscale)


def test_carn_m_shares_one_residual_e_block_per_cascading_block():
    carn, carn_m = CARN(), CARN(group=4)
    assert not hasattr(carn_m.b1, 'b2') and carn_m.b1.b1.conv1.groups == 4
    assert carn.b1.b3.conv1.groups == 1
    assert carn_m.upsample[0].groups == 4 and carn.upsample[0].groups == 1
    calls = []
    carn_m.b1.b1.register_forward_hook(lambda mod, inp, out: calls.append(mod))
    carn_m(torch.rand(1, 3, 4, 4))
    assert len(calls) == 3


def test_carn_parameter_count_matches_the_official_multi_scale_carn():
    # The official multi-scale CARN has 1,591,963 parameters (the paper's 1,592K): one trunk, three upsamplers.
    x2, x3, x4 = (CARN(upscale=s) for s in (2, 3, 4))
    assert num_params(x2) + num_params(x3.upsample) + num_params(x4.upsample) == 1591963


def test_mean_shift_is_frozen_and_exact():
    x = torch.rand(1, 3, 5, 5)
    mean = torch.tensor([0.4488, 0.4371, 0.4040]).view(1, 3, 1, 1)
    torch.testing.assert_close(MeanShift(-1)(x), x - mean, rtol=0, atol=0)
    torch.testing.assert_close(MeanShift(1)(x), x + mean, rtol=0, atol=0)
    frozen = [name for name, p in CARN().named_parameters() if not p.requires_grad]
    assert frozen == ['sub_mean.weight', 'sub_mean.bias', 'add_mean.weight', 'add_mean.bias']


@needs_weights
@pytest.mark.parametrize('upscale', [2, 3, 4])
def test_carn_m_parameter_count_is_the_official_count_minus_other_upsamplers(upscale):
    official = torch.load(CARN_M_WEIGHTS, map_location='cpu', weights_only=True)
    other_upsamplers = sum(v.numel() for k, v in official.items()
                           if k.startswith('upsample.') and not k.startswith(f'upsample.up{upscale}.'))
    total = sum(v.numel() for v in official.values())
    assert total == 414811
    assert num_params(CARN(group=4, upscale=upscale)) == total - other_upsamplers


@needs_weights
def test_convert_carn_output_loads_strictly(tmp_path):
    load_convert_script().main(['--input', CARN_M_WEIGHTS, '--output-dir', str(tmp_path), '--scales', '2', '3', '4'])
    official = torch.load(CARN_M_WEIGHTS, map_location='cpu', weights_only=True)
    for upscale in (2, 3, 4):
        checkpoint = torch.load(tmp_path / f'CARN_M_x{upscale}.pth', map_location='cpu', weights_only=True)
        assert list(checkpoint) == ['params']
        net = CARN(group=4, upscale=upscale)
        net.load_state_dict(checkpoint['params'], strict=True)
        for key, value in official_carn_to_carn(official, upscale).items():
            assert torch.equal(net.state_dict()[key], value), key


def test_convert_carn_names_a_missing_input(tmp_path, capsys):
    missing = tmp_path / 'nowhere' / 'carn_m.pth'
    with pytest.raises(SystemExit) as exit_info:
        load_convert_script().main(['--input', str(missing), '--output-dir', str(tmp_path)])
    assert exit_info.value.code == 1
    assert str(missing) in capsys.readouterr().err
    assert not list(tmp_path.glob('*.pth'))


def test_official_state_dict_mapping_covers_every_key():
    # The official module names, rebuilt from its layout: b<i>.b<j>.body.<0|2>, c<k>.body.0, upsample.up<s>.body.
    carn = CARN(num_feat=8, upscale=2)
    official = {}
    for key, value in carn.state_dict().items():
        key = key.replace('sub_mean.', 'sub_mean.shifter.').replace('add_mean.', 'add_mean.shifter.')
        key = key.replace('conv1.', 'body.0.').replace('conv2.', 'body.2.').replace('upsample.', 'upsample.up2.body.')
        for k in '123':
            key = key.replace(f'c{k}.', f'c{k}.body.0.')
        official[key] = value
    official['upsample.up3.body.0.weight'] = torch.zeros(72, 8, 3, 3)
    assert official_carn_to_carn(official, 2).keys() == carn.state_dict().keys()


@needs_weights
@needs_set5
def test_carn_m_x4_psnr_on_set5_images_matches_the_test_pipeline(tmp_path):
    load_convert_script().convert(CARN_M_WEIGHTS, str(tmp_path), [4])
    with open(osp.join(REPO_ROOT, 'options', 'test', 'CARN', 'test_CARN_M_x4.yml')) as f:
        opt = yaml.safe_load(f)
    opt.update(is_train=False, dist=False, rank=0, world_size=1, num_gpu=0)
    opt['path']['pretrain_network_g'] = str(tmp_path / 'CARN_M_x4.pth')
    model = build_model(opt)
    set5_opt = opt['datasets']['test_1']
    for name, (psnr, ssim) in CARN_M_X4_SET5.items():
        meta_info = tmp_path / f'{name}.txt'
        meta_info.write_text(f'{name}.png\n')
        dataset_opt = dict(set5_opt, phase='test', scale=4, meta_info_file=str(meta_info),
                           dataroot_gt=osp.join(REPO_ROOT, set5_opt['dataroot_gt']), io_backend=dict(type='disk'))
        loader = build_dataloader(build_dataset(dataset_opt), dataset_opt, num_gpu=0, dist=False, sampler=None)
        model.validation(loader, current_iter='test', tb_logger=None, save_img=False)
        assert model.metric_results['psnr'] == pytest.approx(psnr, abs=1e-3), name
        assert model.metric_results['ssim'] == pytest.approx(ssim, abs=1e-5), name
