"""The published model zoo: every weight file is there, checksummed, loadable, and reproduces its card."""
import hashlib
import json
import os.path as osp

import pytest
import torch
import yaml
from basicsr.archs import build_network

from msconv_plugin import study, zoo

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))

ZOO_PATH = zoo.DEFAULT_ZOO  # shipped in the package
ZOO = json.load(open(ZOO_PATH))
ENTRIES = {entry['name']: entry for entry in ZOO['models']}
SHARED_SET5 = osp.join(REPO, '..', 'shared', 'data', 'benchmark', 'Set5')
SET5_TOLERANCE_DB = 0.05

# (converted network, its plain counterpart): the pairs issue 8 asks for, each trained on the same budget.
PAIRS = {
    'MS3EDSR_Mx2_SunHays80': 'EDSR_Mx2_SunHays80',
    'MS3EDSR_Mx4_SunHays80': 'EDSR_Mx4_SunHays80',
    'MS3CARN_x2_SunHays80': 'CARN_x2_SunHays80',
    'MS3EDSR_M_denoise_sigma25_SunHays80': 'EDSR_M_denoise_sigma25_SunHays80',
    'MS3EDSR_M_deblur_synthetic_SunHays80': 'EDSR_M_deblur_synthetic_SunHays80',
}


def test_zoo_holds_every_pair_with_the_same_budget():
    assert set(ENTRIES) == set(PAIRS) | set(PAIRS.values())
    for converted, plain in PAIRS.items():
        a, b = ENTRIES[converted], ENTRIES[plain]
        assert a['counterpart'] == plain and a['network_g']['type'].startswith('MS3')
        assert a['network_g']['n_scales'] == 2 and 'n_scales' not in b['network_g']
        # trained before the defaults changed: the card says how its cross-scale kernels started and, for
        # MS3EDSR, that only the trunk was converted
        assert a['network_g']['cross_scale_init'] == 1
        if a['network_g']['type'] == 'MS3EDSR':
            assert a['network_g']['scope'] == 'trunk'
        assert (a['task'], a['scale']) == (b['task'], b['scale'])
        budget = ('dataset', 'dataroot', 'iterations', 'batch', 'gt_size', 'seed', 'lr', 'scheduler', 'ema_decay')
        assert {k: a['training'][k] for k in budget} == {k: b['training'][k] for k in budget}
        assert a['training']['dataset'] == 'SunHays80'  # never a test set
        assert a['params'] < b['params'] and a['macs'] < b['macs']


def test_weights_fit_in_the_repository():
    assert sum(osp.getsize(osp.join(osp.dirname(ZOO_PATH), e['file'])) for e in ENTRIES.values()) < 30e6


@pytest.mark.parametrize('name', sorted(ENTRIES))
def test_entry_file_checksum_and_strict_load(name):
    entry = ENTRIES[name]
    path = osp.join(osp.dirname(ZOO_PATH), entry['file'])
    assert osp.isfile(path), path
    digest = hashlib.sha256(open(path, 'rb').read()).hexdigest()
    assert digest == entry['sha256']
    assert osp.basename(path) == f'{name}-{digest[:8]}.pth'
    assert entry['size_bytes'] == osp.getsize(path)
    params = torch.load(path, map_location='cpu', weights_only=True)['params']
    net = build_network(dict(entry['network_g']))
    net.load_state_dict(params, strict=True)
    assert entry['params'] == sum(p.numel() for p in net.parameters())
    # The card's multiply-adds are the network's at the stated input.
    assert entry['macs'] == study.complexity_of(dict(network_g=entry['network_g']))['macs']
    # Its test option file points at this very file and network.
    test_opt = yaml.safe_load(open(osp.join(REPO, entry['test_options'])))
    assert osp.samefile(osp.join(REPO, test_opt['path']['pretrain_network_g']), path)  # run from the repository
    assert test_opt['network_g'] == entry['network_g']
    assert test_opt['path']['strict_load_g'] is True and test_opt['path']['param_key_g'] == 'params'


def test_model_zoo_markdown_is_generated_from_the_json():
    with open(osp.join(REPO, 'docs', 'model_zoo.md')) as f:
        assert f.read() == zoo.zoo_markdown(ZOO)


@pytest.mark.slow
@pytest.mark.skipif(not osp.isdir(SHARED_SET5), reason='../shared/data/benchmark/Set5 is absent')
@pytest.mark.parametrize('name', sorted(ENTRIES))
def test_entry_reproduces_its_set5_psnr(name):
    """Through the project's test entry point, on the test option file of the card (Set5 only)."""
    entry = ENTRIES[name]
    test_opt = yaml.safe_load(open(osp.join(REPO, entry['test_options'])))
    test_opt['name'] = f'{name}_zoo_check'
    set5 = zoo.run_test(test_opt, f'{name}_check', ['Set5'])['Set5']
    assert abs(set5['psnr'] - entry['metrics']['Set5']['psnr']) <= SET5_TOLERANCE_DB
    assert abs(set5['ssim'] - entry['metrics']['Set5']['ssim']) <= 1e-3
