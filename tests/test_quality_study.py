"""scripts/compare_quality.py (equal-budget study) and scripts/publish_model.py (model zoo publication)."""
import copy
import glob
import hashlib
import json
import os
import os.path as osp
import re
import shutil

import cv2
import pytest
import torch
import yaml
from basicsr.archs import build_network

from msconv_plugin import study, zoo
from tests.scripts import load_script

compare_quality = load_script('compare_quality')
publish_model = load_script('publish_model')
REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))

SHARED = osp.join(REPO, '..', 'shared', 'data')
needs_shared = pytest.mark.skipif(not osp.isdir(SHARED), reason='../shared (Set5/Set14/BSD68, SunHays80) is absent')
STUDY_OPTIONS = osp.join(REPO, 'options', 'train', 'SunHays80')
PLAIN_FILES = sorted(p for p in glob.glob(osp.join(STUDY_OPTIONS, 'train_*.yml'))
                     if not osp.basename(p).startswith('train_MS3'))


def without(opt, *keys):
    opt = copy.deepcopy(opt)
    for key in keys:
        opt.pop(key)
    return opt


@pytest.mark.parametrize('path', PLAIN_FILES, ids=osp.basename)
def test_derived_options_change_network_and_name_only(path):
    plain = study.load_options(path)
    for n_scales in (2, 3):
        derived = study.derive_options(plain, n_scales)
        assert without(derived, 'network_g', 'name') == without(plain, 'network_g', 'name')
        net, plain_net = derived['network_g'], plain['network_g']
        assert net.pop('type') == study.MS3_TYPES[plain_net['type']]
        assert (net.pop('n_scales'), net.pop('interaction')) == (n_scales, 'adjacent')
        assert net == without(plain_net, 'type')
        assert derived['name'] != plain['name'] and derived['name'].endswith(f'_n{n_scales}')
    assert plain == study.load_options(path)  # the plain options are left as they were


def test_committed_converted_options_are_the_derived_ones():
    """The converted networks' option files under options/train/SunHays80 are exactly what the study derives."""
    converted = sorted(glob.glob(osp.join(STUDY_OPTIONS, 'train_MS3*.yml')))
    assert len(converted) == 7
    for path in converted:
        stem = osp.basename(path)[len('train_MS3'):-len('.yml')]
        n_scales = 3 if stem.endswith('_n3') else 2
        plain = study.load_options(osp.join(STUDY_OPTIONS, f"train_{stem.removesuffix('_n3')}.yml"))
        assert study.load_options(path) == study.derive_options(plain, n_scales), path


def test_derive_options_rejects_unknown_networks():
    opt = dict(name='SwinIR_x2', network_g=dict(type='SwinIR'))
    with pytest.raises(ValueError, match='No MS³ conversion'):
        study.derive_options(opt, 2)
    with pytest.raises(ValueError, match='must start with its network type'):
        study.derive_options(dict(name='my_edsr', network_g=dict(type='EDSR')), 2)


def test_test_options_follow_the_training_degradation():
    root = '/data/benchmark'
    sr = study.load_options(osp.join(STUDY_OPTIONS, 'train_EDSR_Mx4_SunHays80.yml'))
    opt = study.test_options(sr, 'model.pth', root)
    assert [d['name'] for d in opt['datasets'].values()] == ['Set5', 'Set14', 'BSD68']
    assert {d['type'] for d in opt['datasets'].values()} == {'BicubicSRDataset'}
    assert opt['val']['metrics']['psnr'] == dict(type='calculate_psnr', crop_border=4, test_y_channel=True)
    # 1,500 iterations of EMA 0.999 still hold 0.999**1500 = 22% of the random initialisation: the raw weights.
    assert opt['path'] == dict(pretrain_network_g='model.pth', param_key_g='params', strict_load_g=True)

    noise = study.load_options(osp.join(STUDY_OPTIONS, 'train_EDSR_denoise_sigma25_SunHays80.yml'))
    test_set = study.test_options(noise, 'm.pth', root)['datasets']['test_3']
    assert test_set == dict(type='GaussianNoiseDataset', sigma=25, name='BSD68', dataroot_gt=osp.join(root, 'BSD68'),
                            io_backend=dict(type='disk'), seed=0)

    blur = study.load_options(osp.join(STUDY_OPTIONS, 'train_EDSR_deblur_synthetic_SunHays80.yml'))
    test_set = study.test_options(blur, 'm.pth', root)['datasets']['test_1']
    assert test_set['type'] == 'SyntheticBlurDataset' and test_set['seed'] == 0 and test_set['noise_sigma'] == 2.55
    assert 'noise_range' not in test_set and 'gt_size' not in test_set
    assert test_set['kernel_list'] == blur['datasets']['train']['kernel_list']


def test_tested_weights_are_the_ema_only_once_it_has_forgotten_the_initialisation():
    def opt(decay, iters):
        return dict(train=dict(ema_decay=decay, total_iter=iters))

    assert study.tested_param_key(opt(0.999, 3000)) == 'params'  # 5% of the initialisation left
    assert study.tested_param_key(opt(0.999, 300000)) == 'params_ema'  # BasicSR's recipes
    assert study.tested_param_key(opt(0, 300000)) == 'params'  # no EMA kept
    assert study.tested_param_key(dict(train=dict(total_iter=10))) == 'params'


def test_parse_metrics_reads_basicsr_test_logs():
    log = ('2026-11-21 10:00:00,000 INFO: Validation Set5\n\t # psnr: 33.1234\tBest: 33.1234 @ x iter\n'
           '\t # ssim: 0.9101\tBest: 0.9101 @ x iter\n\n'
           '2026-11-21 10:00:09,000 INFO: Validation BSD68\n\t # psnr: 29.5\tBest: 29.5 @ x iter\n'
           '\t # ssim: 0.85\tBest: 0.85 @ x iter\n')
    assert study.parse_metrics(log) == {'Set5': {'psnr': 33.1234, 'ssim': 0.9101},
                                                  'BSD68': {'psnr': 29.5, 'ssim': 0.85}}


def tiny_plain_options(tmp_path, name):
    """Training options of a tiny EDSR on SunHays80 (bicubic LR made on the fly), as a plain study file."""
    opt = dict(
        name=name, model_type='SRModel', scale=2, num_gpu=0, manual_seed=0,
        datasets=dict(train=dict(
            name='SunHays80', type='BicubicSRDataset', dataroot_gt=osp.join(SHARED, 'train', 'SunHays80'),
            io_backend=dict(type='disk'), gt_size=32, use_hflip=True, use_rot=True, num_worker_per_gpu=0,
            batch_size_per_gpu=2, dataset_enlarge_ratio=1, prefetch_mode=None)),
        network_g=dict(type='EDSR', num_in_ch=3, num_out_ch=3, num_feat=16, num_block=1, upscale=2),
        path=dict(pretrain_network_g=None, strict_load_g=True, resume_state=None),
        train=dict(ema_decay=0.999, optim_g=dict(type='Adam', lr=2e-4, weight_decay=0, betas=[0.9, 0.99]),
                   scheduler=dict(type='CosineAnnealingRestartLR', periods=[4], restart_weights=[1], eta_min=1e-6),
                   total_iter=4, warmup_iter=-1, pixel_opt=dict(type='L1Loss', loss_weight=1.0, reduction='mean')),
        logger=dict(print_freq=2, save_checkpoint_freq=4, use_tb_logger=False, wandb=dict(project=None)))
    path = tmp_path / f'train_{name}.yml'
    path.write_text(yaml.safe_dump(opt, sort_keys=False))
    return str(path)


@pytest.fixture
def study_names(tmp_path):
    """Experiment names unique to this test; what BasicSR wrote for them in the repository is removed after."""
    name = f'EDSR_tinystudy_{tmp_path.name}'
    yield name
    tag = f'tinystudy_{tmp_path.name}'
    for pattern in (f'experiments/*{tag}*', f'results/*{tag}*', f'experiments/quality_study/*{tag}*',
                    'experiments/publish/*MS3EDSR_tiny*', 'results/MS3EDSR_tiny_zoo_test*'):
        for path in glob.glob(osp.join(REPO, pattern)):
            if osp.isdir(path):
                shutil.rmtree(path)
            else:
                os.remove(path)


@pytest.mark.slow
@needs_shared
def test_study_trains_and_tests_every_network_the_same_way(tmp_path, study_names):
    """A real (4-iteration) study through the training and test entry points: table, JSON and plot."""
    opt_path = tiny_plain_options(tmp_path, study_names)
    out = tmp_path / 'out'
    result = compare_quality.main(['--opt', opt_path, '--n-scales', '2', '3', '--sets', 'Set5', '--out', str(out)])
    names = [row['name'] for row in result['rows']]
    assert names == [study_names, 'MS3' + study_names + '_n2', 'MS3' + study_names + '_n3']
    for row in result['rows']:
        exp = osp.join(REPO, 'experiments', row['name'])
        assert osp.isfile(osp.join(exp, 'models', 'net_g_latest.pth'))
        log = open(glob.glob(osp.join(exp, 'train_*.log'))[0]).read()
        assert 'iter:       4,' in log  # every network ran the whole (same) budget
        assert 10 < row['metrics']['Set5']['psnr'] < 50 and 0 < row['metrics']['Set5']['ssim'] <= 1
        assert row['train_wall_time_s'] >= 0
    plain, n2, n3 = result['rows']
    assert plain['params_ratio'] == 1 and n3['macs'] < n2['macs'] < plain['macs']
    assert n2['delta_psnr']['Set5'] == pytest.approx(n2['metrics']['Set5']['psnr'] - plain['metrics']['Set5']['psnr'])
    assert result['budget'] == dict(dataset='SunHays80', dataroot=osp.join(SHARED, 'train', 'SunHays80'),
                                    iterations=4, batch=2, gt_size=32, seed=0, lr=2e-4,
                                    scheduler='CosineAnnealingRestartLR', ema_decay=0.999, tested_weights='params')
    saved = json.loads((out / f'{study_names}.json').read_text())
    assert saved['rows'][1]['metrics'] == n2['metrics']
    table = (out / f'{study_names}.md').read_text()
    assert '| MS3EDSR n=3 |' in table and 'python scripts/compare_quality.py --opt' in table
    png = cv2.imread(str(out / f'{study_names}.png'))
    assert png is not None and png.shape[0] > 100 and png.shape[1] > 100

    # A second run trains and tests nothing again: finished networks and their metrics are reused...
    test_log = osp.join(REPO, 'experiments', 'quality_study', study_names, 'logs', f'test_{names[1]}.log')
    stamp = osp.getmtime(test_log)
    again = compare_quality.main(['--opt', opt_path, '--n-scales', '2', '--sets', 'Set5', '--out', str(out)])
    assert again['rows'][1]['metrics'] == n2['metrics'] and osp.getmtime(test_log) == stamp
    assert len(glob.glob(osp.join(REPO, 'experiments', names[1], 'train_*.log'))) == 1
    # ... unless asked to test again, which gives the same figures.
    again = compare_quality.main(['--opt', opt_path, '--n-scales', '2', '--sets', 'Set5', '--out', str(out),
                                  '--retest'])
    assert again['rows'][1]['metrics'] == n2['metrics'] and osp.getmtime(test_log) > stamp

    # An ablation adds one network, derived from n=2 with one option changed, and reuses the others untouched.
    stamp = osp.getmtime(test_log)
    ablation = compare_quality.main(['--opt', opt_path, '--n-scales', '2', '--sets', 'Set5', '--out', str(out),
                                     '--ablation', 'lr1e-3:n2:train.optim_g.lr=1e-3'])
    assert [row['name'] for row in ablation['rows']] == names[:2] + [names[1] + '_lr1e-3']
    assert ablation['study'] == study_names + '_ablations' and osp.getmtime(test_log) == stamp
    changed = ablation['rows'][2]
    assert changed['change'] == 'train.optim_g.lr=0.001' and changed['budget']['lr'] == 1e-3
    assert [row['budget']['lr'] for row in ablation['rows'][:2]] == [2e-4, 2e-4]
    work = osp.join(REPO, 'experiments', 'quality_study', study_names, 'options')
    n2_opt, changed_opt = (yaml.safe_load(open(osp.join(work, f'train_{name}.yml')))
                           for name in (names[1], changed['name']))
    assert changed_opt['train']['optim_g'].pop('lr') == 1e-3 and n2_opt['train']['optim_g'].pop('lr') == 2e-4
    assert without(changed_opt, 'name') == without(n2_opt, 'name')
    table = (out / f'{study_names}_ablations.md').read_text()
    assert '| MS3EDSR n=2, train.optim_g.lr=0.001 |' in table and 'but for the change in its row' in table
    assert (out / f'{study_names}_ablations.png').is_file() and (out / f'{study_names}.md').is_file()


@pytest.mark.parametrize('text,expected', [
    ('bilinear:n2:network_g.upsample=bilinear', ('bilinear', 'n2', {'network_g.upsample': 'bilinear'})),
    ('f46:plain:network_g.num_feat=46', ('f46', 'plain', {'network_g.num_feat': 46})),
    ('x:n3:train.optim_g.lr=4e-4,network_g.cross_scale_init=0',
     ('x', 'n3', {'train.optim_g.lr': 4e-4, 'network_g.cross_scale_init': 0})),
])
def test_parse_ablation(text, expected):
    assert study.parse_ablation(text) == expected


@pytest.mark.parametrize('text', ['bilinear:network_g.upsample=bilinear', 'a b:n2:x=1', 'x:n:x=1', 'x:plain:',
                                  'x:plain:network_g.num_feat'])
def test_bad_ablations_are_refused(text):
    with pytest.raises(ValueError, match='ablation'):
        study.parse_ablation(text)


def test_ablations_change_only_what_they_name():
    plain = study.load_options(osp.join(STUDY_OPTIONS, 'train_EDSR_Mx2_SunHays80.yml'))
    n2 = study.derive_options(plain, 2)
    derived = study.derive_ablation(n2, 'cross0', {'network_g.cross_scale_init': 0})
    assert derived['name'] == n2['name'] + '_cross0' and derived['network_g'].pop('cross_scale_init') == 0
    assert without(derived, 'name') == without(n2, 'name')
    with pytest.raises(KeyError, match='no option'):  # a typo outside network_g is not silently added
        study.derive_ablation(plain, 'typo', {'train.optim_g.learning_rate': 1e-3})
    with pytest.raises(KeyError, match='no section'):
        study.derive_ablation(plain, 'typo', {'trian.optim_g.lr': 1e-3})


def test_study_names_missing_training_data(tmp_path):
    opt = yaml.safe_load(open(osp.join(STUDY_OPTIONS, 'train_EDSR_Mx2_SunHays80.yml')))
    opt['datasets']['train']['dataroot_gt'] = str(tmp_path / 'nowhere')
    path = tmp_path / 'train.yml'
    path.write_text(yaml.safe_dump(opt))
    with pytest.raises(FileNotFoundError, match='prepare_dataset.py sr'):
        compare_quality.main(['--opt', str(path), '--out', str(tmp_path)])


@pytest.mark.slow
@needs_shared
def test_publish_model_writes_named_file_card_and_test_options(tmp_path, study_names):
    opt_path = tiny_plain_options(tmp_path, 'MS3' + study_names)
    opt = yaml.safe_load(open(opt_path))
    opt['network_g'].update(type='MS3EDSR', n_scales=2)
    open(opt_path, 'w').write(yaml.safe_dump(opt))
    net = build_network(dict(opt['network_g']))
    ema = {k: v + 0.01 * torch.randn_like(v) for k, v in net.state_dict().items()}
    checkpoint = tmp_path / 'net_g_4.pth'
    torch.save({'params': net.state_dict(), 'params_ema': ema}, checkpoint)
    dirs = dict(weights=tmp_path / 'weights', tests=tmp_path / 'test_opts')
    args = ['--opt', opt_path, '--name', 'MS3EDSR_tiny', '--counterpart', 'EDSR_tiny', '--weights-dir',
            str(dirs['weights']), '--zoo', str(tmp_path / 'zoo.json'), '--zoo-md', str(tmp_path / 'zoo.md'),
            '--test-options-dir', str(dirs['tests'])]
    entry = publish_model.main([str(checkpoint), *args])

    path = osp.join(tmp_path, entry['file'])  # the card names the file relative to the zoo index, as zoo_entry reads it
    digest = hashlib.sha256(open(path, 'rb').read()).hexdigest()
    assert re.fullmatch(r'MS3EDSR_tiny-[0-9a-f]{8}\.pth', osp.basename(path))
    assert osp.basename(path) == f'MS3EDSR_tiny-{digest[:8]}.pth' and entry['sha256'] == digest
    params = torch.load(path, weights_only=True)['params']
    assert set(params) == set(ema) and all(v.dtype == torch.float16 for v in params.values())
    raw = net.state_dict()
    for key, value in params.items():  # 4 iterations: the raw weights (the EMA is mostly initialisation)
        torch.testing.assert_close(value.float(), raw[key], atol=2e-3, rtol=1e-3)
    build_network(dict(opt['network_g'])).load_state_dict(params, strict=True)

    zoo = json.loads((tmp_path / 'zoo.json').read_text())
    assert [m['name'] for m in zoo['models']] == ['MS3EDSR_tiny']
    card = zoo['models'][0]
    # the network as trained, with the settings whose defaults changed written out (today's defaults here)
    assert card['network_g'] == dict(opt['network_g'], cross_scale_init=0, scope='trunk') and card['task'] == 'sr'
    assert card['scale'] == 2
    assert card['params'] == sum(p.numel() for p in net.parameters()) and card['macs'] > 0
    assert card['training']['iterations'] == 4 and card['training']['batch'] == 2
    assert card['training']['weights_key'] == 'params' and card['counterpart'] == 'EDSR_tiny'
    assert set(card['metrics']) == {'Set5', 'Set14', 'BSD68'}
    assert all(10 < m['psnr'] < 50 and 0 < m['ssim'] <= 1 for m in card['metrics'].values())
    test_opt = yaml.safe_load(open(osp.join(REPO, card['test_options'])))
    assert osp.samefile(osp.join(REPO, test_opt['path']['pretrain_network_g']), path)  # run from the repository
    assert test_opt['path']['param_key_g'] == 'params' and test_opt['network_g'] == card['network_g']
    md = (tmp_path / 'zoo.md').read_text()
    assert '## MS3EDSR_tiny' in md and digest in md

    # Publishing again under the same name (here the EMA weights, by request) replaces the file and the card.
    again = publish_model.main([str(checkpoint), *args, '--param-key', 'params_ema'])
    assert again['sha256'] != digest and again['training']['weights_key'] == 'params_ema'
    params = torch.load(osp.join(tmp_path, again['file']), weights_only=True)['params']
    for key, value in params.items():
        torch.testing.assert_close(value.float(), ema[key], atol=2e-3, rtol=1e-3)
    assert [p.name for p in dirs['weights'].iterdir()] == [osp.basename(again['file'])]
    assert len(json.loads((tmp_path / 'zoo.json').read_text())['models']) == 1


def test_publish_model_refuses_training_states(tmp_path):
    with pytest.raises(ValueError, match='training state'):
        zoo.checkpoint_state_dict({'epoch': 0, 'iter': 4, 'optimizers': [], 'schedulers': []})
