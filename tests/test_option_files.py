"""Every shipped option file, run for real with a tiny network on a tiny copy of the data layout it expects.

The workspace is made by ``scripts/prepare_dataset.py`` (``sr``, ``benchmark``, ``gopro``) from small crops of
scikit-image's photographs, next to a fake ``../shared`` (CBSD68 and a kernel file): the option files run unchanged
but for the network size, the batch and patch sizes and the checkpoints they load. A training file builds its model
(``basicsr.models.build_model``, ``num_gpu: 0``) and data loaders as ``basicsr.train`` does, runs two iterations and
validates; a test file builds its model and evaluates every test set, saving the images.
"""
import copy
import glob
import importlib.util
import math
import os.path as osp
import re
import sys

import cv2
import numpy as np
import pytest
import scipy.io
import torch
import yaml
from skimage import data as skimage_data

import msconv_plugin  # noqa: F401  (before anything of BasicSR)
from basicsr.archs import build_network
from basicsr.data import build_dataloader, build_dataset
from basicsr.models import build_model
from basicsr.utils.options import parse_options
from basicsr.utils.registry import ARCH_REGISTRY

from msconv_plugin.data.degradations import motion_kernel

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
OPTION_FILES = sorted(glob.glob(osp.join(REPO, 'options', '**', '*.yml'), recursive=True))
TRAIN_FILES = [p for p in OPTION_FILES if osp.basename(p).startswith('train_')]
# (RIDNet's channel attention squeezes by a fixed 16: 32 channels keep one per branch at n_scales 2)
TINY_NETWORK = {'num_feat': 8, 'num_block': 1, 'num_grow_ch': 4, 'num_group': 1, 'squeeze_factor': 4, 'num_conv': 2,
                'mid_channels': 32}
CHECKPOINT = re.compile(r'^experiments/(?P<name>[^/]+)/models/net_g_(?P<iter>\d+|latest)\.pth$')
COMMENTED_LMDB = re.compile(r'^\s*#\s*(dataroot_gt|dataroot_lq):\s*(\S+\.lmdb)\s*$', re.MULTILINE)


def _relative(path):
    return osp.relpath(path, REPO)


def _load_yml(path):
    with open(path) as f:
        return yaml.safe_load(f)


def _prepare_script():
    spec = importlib.util.spec_from_file_location('prepare_dataset', osp.join(REPO, 'scripts', 'prepare_dataset.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _write(folder, name, img_rgb):
    folder.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(folder / name), np.ascontiguousarray(img_rgb[..., ::-1]))


class Workspace:
    """``<root>/work`` (the working directory, with ``datasets/``) and ``<root>/shared`` (its ``../shared``)."""

    def __init__(self, root):
        self.work, self.shared = root / 'work', root / 'shared'
        prepare = _prepare_script()
        astronaut, coffee = skimage_data.astronaut(), skimage_data.coffee()
        photos = [astronaut[100:196, 150:246], coffee[100:196, 200:296], astronaut[250:310, 200:260],
                  coffee[50:110, 300:360], astronaut[300:341, 100:129], coffee[200:229, 100:141]]

        # DIV2K: two 96x96 HR images → 48x48 sub-images (step 48): 8 HR sub-images and their x2/x3/x4 LR ones.
        div2k = self.work / 'datasets' / 'DIV2K' / 'DIV2K_train_HR'
        for i, img in enumerate(photos[:2]):
            _write(div2k, f'{i + 1:04d}.png', img)
        prepare.main(['sr', str(div2k), '--crop-size', '48', '--step', '48', '--n-thread', '1', '--lmdb'])

        # Set5 / Set14: HR-only 60x60 images in ../shared → datasets/<name>/GTmod12 + LRbicx{2,3,4}.
        benchmark = self.shared / 'data' / 'benchmark'
        for name, imgs in (('Set5', photos[2:4]), ('Set14', photos[3:1:-1])):
            for i, img in enumerate(imgs):
                _write(benchmark / name, f'img{i}.png', img)
            prepare.main(['benchmark', str(benchmark / name), str(self.work / 'datasets' / name)])

        # GoPro: three training sequences (one held out as val) and one test sequence of two 64x48 frames.
        gopro = root / 'GOPRO_Large'
        for part, seq in (('train', 'GOPR0001_00_00'), ('train', 'GOPR0002_00_00'), ('train', 'GOPR0003_00_00'),
                          ('test', 'GOPR0004_00_00')):
            for frame, (top, left) in enumerate(((0, 0), (20, 30))):
                sharp = astronaut[top:top + 48, left:left + 64]
                _write(gopro / part / seq / 'sharp', f'{frame:06d}.png', sharp)
                _write(gopro / part / seq / 'blur', f'{frame:06d}.png', cv2.blur(sharp, (5, 1)))
        prepare.main(['gopro', str(gopro), str(self.work / 'datasets' / 'GoPro'), '--val-sequences', '1', '--lmdb'])

        # ../shared/data/train/SunHays80 (two photos) → datasets/SunHays80 as options/train/SunHays80 expects.
        sun_hays = self.shared / 'data' / 'train' / 'SunHays80'
        for i, img in enumerate(photos[:2]):
            _write(sun_hays, f'scene_{i}.png', img)
        prepare.main(['sr', str(sun_hays), '--scales', '2', '3', '4', '--crop-size', '48', '--step', '48',
                      '--n-thread', '1', '--out-root', str(self.work / 'datasets' / 'SunHays80')])

        # ../shared: CBSD68 (odd sizes, both orientations, as the real 481x321 / 321x481) and a 1x3 cell of kernels.
        for i, img in enumerate(photos[4:]):
            _write(benchmark / 'BSD68', f'{i}.png', img)
        kernels = np.empty((1, 3), dtype=object)
        rng = np.random.default_rng(0)
        kernels[0, 0], kernels[0, 1], kernels[0, 2] = (motion_kernel(25, 12, rng), motion_kernel(9, 5, rng),
                                                       np.pad([[1.]], 2))
        (self.shared / 'data' / 'kernels').mkdir(parents=True)
        scipy.io.savemat(str(self.shared / 'data' / 'kernels' / 'kernels_12.mat'), {'kernels': kernels})


@pytest.fixture(scope='module')
def workspace(tmp_path_factory):
    return Workspace(tmp_path_factory.mktemp('workspace'))


@pytest.fixture(autouse=True, scope='module')
def one_thread():
    """The networks are tiny: a second intra-op thread only adds synchronisation (ten times slower on 2 busy cores)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _parse(path, root, monkeypatch, *extra):
    monkeypatch.setattr(sys, 'argv', ['msconv_plugin', '-opt', path, *extra])
    opt, _ = parse_options(str(root), is_train=osp.basename(path).startswith('train_'))
    opt['num_gpu'] = 0
    return opt


def _tiny(network_opt):
    tiny = {**network_opt, **{k: v for k, v in TINY_NETWORK.items() if k in network_opt}}
    if isinstance(network_opt.get('base'), dict):  # MS3Auto: the plain network's options
        tiny['base'] = _tiny(network_opt['base'])
    return tiny


def _training_file(experiment_name):
    matches = [p for p in TRAIN_FILES if _load_yml(p)['name'] == experiment_name]
    assert len(matches) == 1, f'no (single) training option file writes experiments/{experiment_name}'
    return matches[0]


def _tiny_checkpoint(opt, folder):
    """A checkpoint of the tiny network that ``path.pretrain_network_g`` stands for, checked against the option file
    that writes it: the same network (test files, ``net_g_latest``) or its last iteration (fine-tuning)."""
    network_opt = opt['network_g']
    match = CHECKPOINT.match(opt['path']['pretrain_network_g'])
    if match is not None and match['name'] != 'pretrained_models':
        source = _load_yml(_training_file(match['name']))
        if match['iter'] == 'latest':
            assert source['network_g'] == network_opt
        else:
            assert int(match['iter']) == source['train']['total_iter']
        network_opt = source['network_g']
    state = build_network(_tiny(network_opt)).state_dict()
    path = folder / 'pretrained.pth'
    torch.save({'params': state, 'params_ema': state}, path)
    return str(path)


def _datasets(opt, phase):
    for key, dataset_opt in opt['datasets'].items():
        if key.split('_')[0] == phase:
            dataset = build_dataset(dataset_opt)
            yield dataset, build_dataloader(dataset, dataset_opt, num_gpu=0, dist=False, seed=opt['manual_seed'])


def _check_metrics(model):
    assert model.metric_results and all(math.isfinite(v) for v in model.metric_results.values())


def test_every_network_has_its_option_files():
    names = {_relative(p) for p in OPTION_FILES}
    super_resolution = {
        ('EDSR', 'MS3EDSR'): ('{}_Mx{}', (2, 3, 4)),
        ('MSRResNet', 'MS3SRResNet'): ('{}_x{}', (2, 3, 4)),
        ('RRDBNet', 'MS3RRDBNet'): ('{}_PSNR_x{}', (2, 4)),  # RRDBNet has no x3
        ('CARN', 'MS3CARN'): ('{}_x{}', (2, 3, 4)),
    }
    for networks, (stem, scales) in super_resolution.items():
        for net in networks:
            for scale in scales:
                for phase in ('train', 'test'):
                    assert f'options/{phase}/{net}/{phase}_{stem.format(net, scale)}.yml' in names
    for net in ('EDSR', 'MS3EDSR', 'RRDBNet', 'MS3RRDBNet'):
        for sigma in (15, 25, 50):
            for phase in ('train', 'test'):
                assert f'options/{phase}/{net}/{phase}_{net}_denoise_sigma{sigma}.yml' in names
    for stem in ('RCAN_x2', 'RCAN_x4', 'SRVGGNetCompact_x2', 'SRVGGNetCompact_x4', 'RIDNet_denoise_sigma25'):
        for phase in ('train', 'test'):
            assert f'options/{phase}/MS3Auto/{phase}_MS3Auto_{stem}.yml' in names
    for net in ('EDSR', 'MS3EDSR'):
        for variant in ('train/{0}/train_{0}_deblur_GoPro', 'train/{0}/train_{0}_deblur_synthetic',
                        'test/{0}/test_{0}_deblur_GoPro', 'test/{0}/test_{0}_deblur_CBSD68_kernels12'):
            assert f'options/{variant.format(net)}.yml' in names


@pytest.mark.parametrize('path', [p for p in OPTION_FILES if '/MS3' in p and '/MS3Auto/' not in p], ids=_relative)
def test_ms3_files_are_their_plain_files_with_ms3_convolutions(path):
    """Data, schedule and evaluation of an MS3 option file are those of the plain network's."""
    plain_path = re.sub(r'MS3(SRResNet)?', lambda m: 'MSRResNet' if m[1] else '', path)
    n_scales = 3 if plain_path.endswith('_n3.yml') else 2  # the n=3 networks of the equal-budget study
    ms3, plain = _load_yml(path), _load_yml(plain_path.replace('_n3.yml', '.yml'))
    assert ms3['network_g'].pop('n_scales') == n_scales and ms3['network_g'].pop('interaction') == 'adjacent'
    assert ms3['network_g'].pop('type') == 'MS3' + re.sub('^M(?=SRResNet)', '', plain['network_g'].pop('type'))
    # MS3 settings a file may choose over the network's defaults (the x1 MS3EDSR files: scope whole, bilinear)
    chosen = {key: ms3['network_g'].pop(key) for key in ('scope', 'upsample') if key in ms3['network_g']}
    assert chosen in ({}, {'scope': 'whole', 'upsample': 'bilinear'})
    assert not chosen or (ms3['network_g']['upscale'] == 1 and 'MS3EDSR' in path)
    for opt in (ms3, plain):
        del opt['name']
        del opt['path']['pretrain_network_g']
    assert ms3 == plain


@pytest.mark.parametrize('path', [p for p in OPTION_FILES if '/MS3Auto/' in p], ids=_relative)
def test_ms3auto_files_convert_a_registered_plain_network(path):
    """An MS3Auto file holds the plain network under ``base``, at the file's scale, converted at n_scales 2."""
    opt = _load_yml(path)
    network_g = opt['network_g']
    assert network_g['type'] == 'MS3Auto' and network_g['n_scales'] == 2 and network_g['interaction'] == 'adjacent'
    base = network_g['base']
    assert base['type'] in ARCH_REGISTRY
    assert base.get('upscale', 1) == opt['scale']


@pytest.mark.slow
@pytest.mark.parametrize('path', OPTION_FILES, ids=_relative)
def test_option_file_runs(path, workspace, monkeypatch, tmp_path):
    monkeypatch.chdir(workspace.work)
    opt = _parse(path, tmp_path, monkeypatch)
    if 'network_d' in opt:
        pytest.skip('GAN stage 2 needs 128x128 crops and a VGG19 file: tests/test_gan_recipes.py runs it for real')
    opt.get('val', {}).get('metrics', {}).pop('niqe', None)  # needs two 96x96 blocks; test_gan_recipes.py runs it
    if opt['path'].get('pretrain_network_g'):
        opt['path']['pretrain_network_g'] = _tiny_checkpoint(opt, tmp_path)
    opt['network_g'] = _tiny(opt['network_g'])

    if opt['is_train']:
        train_opt = opt['datasets']['train']
        train_opt.update(num_worker_per_gpu=0, batch_size_per_gpu=2, dataset_enlarge_ratio=1,
                         gt_size=16 if opt['scale'] == 1 else 12 * opt['scale'])
        (_, train_loader), = _datasets(opt, 'train')
        model = build_model(copy.deepcopy(opt))
        for current_iter, batch in zip((1, 2), train_loader):
            model.update_learning_rate(current_iter, warmup_iter=opt['train'].get('warmup_iter', -1))
            model.feed_data(batch)
            model.optimize_parameters(current_iter)
            assert math.isfinite(model.log_dict['l_pix'])
        assert current_iter == 2
        for _, val_loader in _datasets(opt, 'val'):
            model.validation(val_loader, current_iter, None, save_img=opt['val']['save_img'])
            _check_metrics(model)
    else:
        model = build_model(copy.deepcopy(opt))
        for dataset, test_loader in _datasets(opt, 'test'):
            model.validation(test_loader, opt['name'], None, save_img=opt['val']['save_img'])
            _check_metrics(model)
            if opt['val']['save_img']:
                saved = list((tmp_path / 'results' / opt['name'] / 'visualization' / dataset.opt['name']).iterdir())
                assert len(saved) == len(dataset)  # one result per sample, none overwritten


@pytest.mark.slow
@pytest.mark.parametrize('path', [p for p in TRAIN_FILES if COMMENTED_LMDB.search(open(p).read())], ids=_relative)
def test_lmdb_switch(path, workspace, monkeypatch, tmp_path):
    """The commented lmdb paths are what scripts/prepare_dataset.py writes, and docs/tasks.md's one-line switch
    (``--force_yml`` with the io backend and those paths) trains from them."""
    with open(path) as f:
        roots = dict(COMMENTED_LMDB.findall(f.read()))
    monkeypatch.chdir(workspace.work)
    for root in roots.values():
        assert osp.isfile(osp.join(root, 'meta_info.txt')), root
    switch = ['datasets:train:io_backend:type=lmdb', *(f'datasets:train:{k}={v}' for k, v in roots.items())]
    opt = _parse(path, tmp_path, monkeypatch, '--force_yml', *switch)
    train_opt = opt['datasets']['train']
    assert train_opt['io_backend']['type'] == 'lmdb' and all(train_opt[k] == v for k, v in roots.items())
    train_opt.update(num_worker_per_gpu=0, batch_size_per_gpu=2, dataset_enlarge_ratio=1,
                     gt_size=16 if opt['scale'] == 1 else 12 * opt['scale'])
    (dataset, train_loader), = _datasets(opt, 'train')
    batch = next(iter(train_loader))
    assert batch['gt'].shape == (2, 3, train_opt['gt_size'], train_opt['gt_size'])
    assert batch['lq'].shape == (2, 3, train_opt['gt_size'] // opt['scale'], train_opt['gt_size'] // opt['scale'])
