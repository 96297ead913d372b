"""SRGAN / ESRGAN recipes with a converted generator (``options/*/SRGAN``, ``options/*/ESRGAN``, docs/gan.md).

Stage 2 (``SRGANModel`` / ``ESRGANModel``) runs for real on the CPU through ``python -m msconv_plugin.train``, with
tiny networks, 128x128 crops (``VGGStyleDiscriminator`` takes 128 or 256 only) and a randomly initialised VGG19 saved
as the user's ``vgg19-dcbb9e9d.pth``; every run has its network access cut (a ``sitecustomize`` whose socket calls
raise, and unroutable proxies), so a download attempt would show in its output.
"""
import glob
import os
import os.path as osp
import re
import subprocess
import sys
import warnings

import cv2
import numpy as np
import pytest
import torch
import torchvision
import yaml
from skimage import data as skimage_data

import msconv_plugin  # noqa: F401  (before anything of BasicSR)
from basicsr.archs import build_network
from basicsr.data import build_dataloader, build_dataset
from basicsr.models import build_model
from basicsr.utils.matlab_functions import imresize
from basicsr.utils.options import parse_options

from msconv_plugin.basicsr_fixes import errors
from msconv_plugin.basicsr_fixes.vgg import find_vgg_weights

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
RECIPES = {  # stage 1, stage 2, the test file of stage 2
    'SRGAN': ('options/train/SRGAN/train_MS3SRResNet_SRGAN_stage1_psnr_x4.yml',
              'options/train/SRGAN/train_MS3SRResNet_SRGAN_stage2_gan_x4.yml',
              'options/test/SRGAN/test_MS3SRResNet_SRGAN_stage2_gan_x4.yml'),
    'ESRGAN': ('options/train/ESRGAN/train_MS3RRDBNet_ESRGAN_stage1_psnr_x4.yml',
               'options/train/ESRGAN/train_MS3RRDBNet_ESRGAN_stage2_gan_x4.yml',
               'options/test/ESRGAN/test_MS3RRDBNet_ESRGAN_stage2_gan_x4.yml'),
}
GAN_OPTION_FILES = sorted(glob.glob(osp.join(REPO, 'options', 'train', '*GAN', '*.yml')))
GAN_TEST_FILES = sorted(glob.glob(osp.join(REPO, 'options', 'test', '*GAN', '*.yml')))
TINY_G = {'num_feat': 8, 'num_block': 1, 'num_grow_ch': 4}
VGG19_FILE = 'vgg19-dcbb9e9d.pth'
NETWORK_MARK = 'NETWORK ACCESS ATTEMPTED'
SITECUSTOMIZE = f"""import socket


def _refuse(*args, **kwargs):
    raise OSError('{NETWORK_MARK} (cut by tests/test_gan_recipes.py)')


socket.socket.connect = socket.socket.connect_ex = _refuse
socket.getaddrinfo = socket.create_connection = _refuse
"""


def _load_yml(path):
    with open(osp.join(REPO, path)) as f:
        return yaml.safe_load(f)


def _dump_yml(opt, path):
    path.write_text(yaml.safe_dump(opt, sort_keys=False))
    return path


def _tiny(network_opt):
    return {**network_opt, **{k: v for k, v in TINY_G.items() if k in network_opt}}


def _write_pairs(folder, images, scale=4):
    hr_dir, lr_dir = folder / 'HR', folder / 'LR'
    for i, hr in enumerate(images):
        lr = np.clip(np.round(imresize(hr / 255., 1 / scale) * 255.), 0, 255).astype(np.uint8)
        for path, img in ((hr_dir / f'{i}.png', hr), (lr_dir / f'{i}.png', lr)):
            path.parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(path), np.ascontiguousarray(img[..., ::-1]))
    return str(hr_dir), str(lr_dir)


@pytest.fixture(scope='module')
def workspace(tmp_path_factory):
    """Training pairs (two 128x128 crops and their x4 LR), a random VGG19 ImageNet-layout file, the network cut."""
    root = tmp_path_factory.mktemp('gan')
    astronaut, coffee = skimage_data.astronaut(), skimage_data.coffee()
    crops = [astronaut[100:228, 150:278], coffee[80:208, 200:328]]
    train_hr, train_lr = _write_pairs(root / 'datasets' / 'train', crops)
    vgg19 = root / 'weights' / VGG19_FILE
    vgg19.parent.mkdir()
    torch.save(torchvision.models.vgg19(weights=None, init_weights=False).state_dict(), vgg19)
    (root / 'no_network').mkdir()
    (root / 'no_network' / 'sitecustomize.py').write_text(SITECUSTOMIZE)
    yield {'root': root, 'train_hr': train_hr, 'train_lr': train_lr, 'vgg19': str(vgg19),
           'no_network': str(root / 'no_network')}
    vgg19.unlink()  # 548 MB: pytest keeps its last temporary folders


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _stage2_tiny(recipe, workspace, **train_changes):
    """The shipped stage-2 options with tiny networks and data, two iterations, a checkpoint every iteration."""
    opt = _load_yml(RECIPES[recipe][1])
    opt['num_gpu'] = 0
    opt['network_g'] = _tiny(opt['network_g'])
    opt['network_d']['num_feat'] = 8
    train = dict(opt['datasets']['train'], dataroot_gt=workspace['train_hr'], dataroot_lq=workspace['train_lr'],
                 num_worker_per_gpu=0, batch_size_per_gpu=1, dataset_enlarge_ratio=1, **train_changes)
    opt['datasets'] = {'train': train}
    del opt['val']  # the test files' metrics are checked below
    opt['train']['total_iter'] = 2
    opt['logger'].update(print_freq=1, save_checkpoint_freq=1, use_tb_logger=False)
    return opt


def _stage1_checkpoint(recipe, root):
    """A stage-1 ``net_g_latest.pth`` where stage 2 looks for it (under ``root``), EMA weights unlike the others."""
    stage1 = _load_yml(RECIPES[recipe][0])
    torch.manual_seed(1)
    params, params_ema = (build_network(_tiny(stage1['network_g'])).state_dict() for _ in range(2))
    path = root / 'experiments' / stage1['name'] / 'models' / 'net_g_latest.pth'
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({'params': params, 'params_ema': params_ema}, path)
    return {'params': params, 'params_ema': params_ema}


def _train(workspace, yml, *args, cwd, env=None):
    """``python -m msconv_plugin.train -opt yml *args`` in ``cwd`` without network access: (exit status, output)."""
    env = {**os.environ, **(env or {}), 'PYTHONPATH': workspace['no_network'], 'OMP_NUM_THREADS': '1',
           'http_proxy': 'http://127.0.0.1:9', 'https_proxy': 'http://127.0.0.1:9', 'no_proxy': ''}
    proc = subprocess.run([sys.executable, '-m', 'msconv_plugin.train', '-opt', str(yml), *args], cwd=cwd, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300)
    assert NETWORK_MARK not in proc.stdout, proc.stdout
    return proc.returncode, proc.stdout


# The shipped files


@pytest.mark.parametrize('path', GAN_OPTION_FILES, ids=lambda p: osp.relpath(p, REPO))
def test_discriminator_judges_the_training_crops(path):
    opt = _load_yml(path)
    if 'network_d' not in opt:
        assert opt['model_type'] == 'SRModel' and 'stage1_psnr' in path
        return
    assert opt['network_d']['type'] == 'VGGStyleDiscriminator'
    assert opt['network_d']['input_size'] == opt['datasets']['train']['gt_size'] == 128
    errors.check_discriminator_input(opt)


@pytest.mark.parametrize('recipe', RECIPES)
def test_stages_fit_together(recipe):
    stage1, stage2, test = (_load_yml(p) for p in RECIPES[recipe])
    assert stage1['model_type'] == 'SRModel' and 'network_d' not in stage1 and 'gan_opt' not in stage1['train']
    assert stage2['model_type'] == {'SRGAN': 'SRGANModel', 'ESRGAN': 'ESRGANModel'}[recipe]
    assert stage1['network_g'] == stage2['network_g'] == test['network_g']
    assert stage2['path']['pretrain_network_g'] == f'experiments/{stage1["name"]}/models/net_g_latest.pth'
    assert test['path']['pretrain_network_g'] == f'experiments/{stage2["name"]}/models/net_g_latest.pth'
    # BasicSR's MSRGAN / ESRGAN weighting: perceptual (VGG19 conv5_4, before the ReLU) 1, GAN 5e-3, L1 1e-2.
    train = stage2['train']
    assert train['perceptual_opt']['layer_weights'] == {'conv5_4': 1} and train['perceptual_opt']['vgg_type'] == 'vgg19'
    assert train['perceptual_opt']['perceptual_weight'] == 1 and train['perceptual_opt']['style_weight'] == 0
    assert train['gan_opt']['gan_type'] == 'vanilla' and train['gan_opt']['loss_weight'] == 5e-3
    assert train['pixel_opt']['loss_weight'] == 1e-2
    assert {'psnr', 'niqe'} <= set(test['val']['metrics']) and {'psnr', 'niqe'} <= set(stage2['val']['metrics'])


# Real runs of stage 2


@pytest.mark.slow
@pytest.mark.parametrize('recipe', RECIPES)
def test_stage2_trains_from_stage1_and_resumes(recipe, workspace, tmp_path):
    """SRGAN takes the VGG19 file from MSCONV_VGG19_PATH, ESRGAN from perceptual_opt.vgg_weights."""
    _stage1_checkpoint(recipe, tmp_path)
    opt = _stage2_tiny(recipe, workspace)
    env = {'MSCONV_VGG19_PATH': ''}
    if recipe == 'SRGAN':
        env['MSCONV_VGG19_PATH'] = workspace['vgg19']
    else:
        opt['train']['perceptual_opt']['vgg_weights'] = workspace['vgg19']
    yml = _dump_yml(opt, tmp_path / 'stage2.yml')
    status, log = _train(workspace, yml, cwd=tmp_path, env=env)
    assert status == 0, log
    stage1_name = _load_yml(RECIPES[recipe][0])['name']
    assert f'Loading {opt["network_g"]["type"]} model from experiments/{stage1_name}/models/net_g_latest.pth' in log
    assert re.search(r'iter:\s+2, lr:.*l_g_pix: \S+ l_g_percep: \S+ l_g_gan: \S+ l_d_real: \S+', log), log
    models = tmp_path / 'experiments' / opt['name'] / 'models'
    states = tmp_path / 'experiments' / opt['name'] / 'training_states'
    assert sorted(p.name for p in models.iterdir()) == [f'net_{n}_{i}.pth' for n in 'dg' for i in (1, 2, 'latest')]
    assert sorted(p.name for p in states.iterdir()) == ['1.state', '2.state']
    assert set(torch.load(models / 'net_g_2.pth')) == {'params', 'params_ema'}

    status, log = _train(workspace, yml, '--auto_resume', '--force_yml', 'train:total_iter=3', cwd=tmp_path, env=env)
    assert status == 0, log
    assert re.search(r'Resuming training from epoch: \d+, iter: 2\.', log)
    assert re.search(rf'Set pretrain_network_d to \S+/experiments/{opt["name"]}/models/net_d_2\.pth', log)
    assert re.search(r'iter:\s+3, lr:', log) and not re.search(r'iter:\s+[12], lr:', log)
    assert (models / 'net_g_3.pth').is_file() and (models / 'net_d_3.pth').is_file()
    assert (states / '3.state').is_file()


@pytest.mark.slow
def test_without_the_vgg19_file_training_stops_before_the_first_iteration(workspace, tmp_path):
    opt = _stage2_tiny('SRGAN', workspace)
    checkpoint = workspace['root'] / 'stage1' / 'net_g_latest.pth'  # outside the working directory
    checkpoint.parent.mkdir(exist_ok=True)
    torch.save({'params': build_network(opt['network_g']).state_dict()}, checkpoint)
    opt['path']['pretrain_network_g'] = str(checkpoint)
    env = {'MSCONV_VGG19_PATH': ''}
    status, log = _train(workspace, _dump_yml(opt, tmp_path / 'stage2.yml'), cwd=tmp_path, env=env)
    assert status != 0
    assert 'error: ' in log and 'Traceback' not in log  # a user's mistake: one line, no traceback
    assert 'msconv_plugin never downloads them' in log
    assert f'there is no file {tmp_path}/experiments/pretrained_models/{VGG19_FILE}' in log
    assert f'https://download.pytorch.org/models/{VGG19_FILE}' in log and 'MSCONV_VGG19_PATH' in log
    assert 'Start training' not in log
    assert not list((tmp_path / 'experiments' / opt['name'] / 'training_states').iterdir())


# Building the model in this process


@pytest.fixture
def at_workspace(workspace, monkeypatch):
    """The working directory at the workspace root, with the VGG19 file at BasicSR's place under it."""
    default = workspace['root'] / 'experiments' / 'pretrained_models' / VGG19_FILE
    if not default.exists():
        default.parent.mkdir(parents=True, exist_ok=True)
        default.symlink_to(workspace['vgg19'])
    monkeypatch.chdir(workspace['root'])
    monkeypatch.delenv('MSCONV_VGG19_PATH', raising=False)
    return workspace


def _parse(opt, tmp_path, monkeypatch, is_train=True):
    monkeypatch.setattr(sys, 'argv', ['msconv_plugin', '-opt', str(_dump_yml(opt, tmp_path / 'opt.yml'))])
    parsed, _ = parse_options(str(tmp_path), is_train=is_train)
    return parsed


@pytest.mark.slow
@pytest.mark.parametrize('recipe', RECIPES)
def test_generator_starts_as_the_stage1_checkpoint(recipe, at_workspace, tmp_path, monkeypatch):
    checkpoint = _stage1_checkpoint(recipe, at_workspace['root'])
    opt = _parse(_stage2_tiny(recipe, at_workspace), tmp_path, monkeypatch)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        model = build_model(opt)
    assert not [w for w in caught if 'pretrained' in str(w.message)]  # torchvision's deprecated ``pretrained=``
    for net, key in ((model.net_g, 'params'), (model.net_g_ema, 'params_ema')):
        state = net.state_dict()
        assert state.keys() == checkpoint[key].keys()
        assert all(torch.equal(state[name], checkpoint[key][name]) for name in state)
    assert type(model.net_d).__name__ == 'VGGStyleDiscriminator' and model.net_d.input_size == 128
    # The VGG19 file's weights, not torchvision's initialisation.
    vgg = torch.load(at_workspace['vgg19'])
    assert torch.equal(model.cri_perceptual.vgg.vgg_net.conv5_4.weight, vgg['features.34.weight'])


@pytest.mark.parametrize('input_size, gt_size', [(128, 96), (256, 128), (64, 64)])
def test_discriminator_that_misses_the_crops_fails_at_model_build(input_size, gt_size, at_workspace, tmp_path,
                                                                   monkeypatch):
    opt = _stage2_tiny('SRGAN', at_workspace, gt_size=gt_size)
    opt['network_d']['input_size'] = input_size
    opt['path']['pretrain_network_g'] = None
    opt = _parse(opt, tmp_path, monkeypatch)
    with pytest.raises(ValueError, match=f'network_d.input_size = {input_size} and datasets.train.gt_size = '
                       f'{gt_size}. Set both to 128 or both to 256'):
        build_model(opt)


def test_vgg_weights_are_looked_for_in_order(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv('MSCONV_VGG19_PATH', raising=False)
    default = tmp_path / 'experiments' / 'pretrained_models' / VGG19_FILE
    option, variable = tmp_path / 'option.pth', tmp_path / 'variable.pth'
    for path in (default, option, variable):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
    assert find_vgg_weights() == osp.join('experiments', 'pretrained_models', VGG19_FILE)
    monkeypatch.setenv('MSCONV_VGG19_PATH', str(variable))
    assert find_vgg_weights() == str(variable)
    assert find_vgg_weights('vgg19', str(option)) == str(option)
    # A path that is given and missing is an error, even with a file at BasicSR's place.
    with pytest.raises(FileNotFoundError, match=r'no file .*missing\.pth \(given by perceptual_opt\.vgg_weights\)'):
        find_vgg_weights('vgg19', str(tmp_path / 'missing.pth'))
    monkeypatch.setenv('MSCONV_VGG19_PATH', str(tmp_path / 'missing.pth'))
    with pytest.raises(FileNotFoundError, match=r'no file .*missing\.pth \(given by MSCONV_VGG19_PATH\)'):
        find_vgg_weights()
    # Other VGG types: torchvision's file of that type, and their own variable.
    with pytest.raises(FileNotFoundError, match=r'vgg16_bn-6c64b313\.pth.*MSCONV_VGG16_BN_PATH'):
        find_vgg_weights('vgg16_bn')


# The test files: PSNR and NIQE


@pytest.mark.slow
@pytest.mark.parametrize('path', GAN_TEST_FILES, ids=lambda p: osp.relpath(p, REPO))
def test_test_file_reports_psnr_and_niqe(path, tmp_path, monkeypatch):
    opt = _load_yml(path)
    assert opt['val']['metrics']['niqe'] == {'type': 'calculate_niqe', 'crop_border': 4, 'input_order': 'HWC',
                                            'convert_to': 'y', 'better': 'lower'}
    hr = tmp_path / 'Set5' / 'GTmod12'  # NIQE needs two 96x96 blocks after crop_border
    hr.mkdir(parents=True)
    cv2.imwrite(str(hr / 'img.png'), skimage_data.astronaut()[100:308, 100:316])
    opt['datasets'] = {'test_1': dict(opt['datasets']['test_1'], dataroot_gt=str(hr))}
    opt['network_g'] = _tiny(opt['network_g'])
    checkpoint = tmp_path / 'net_g_latest.pth'
    state = build_network(opt['network_g']).state_dict()
    torch.save({'params': state, 'params_ema': state}, checkpoint)
    opt['path']['pretrain_network_g'] = str(checkpoint)
    opt['num_gpu'] = 0
    monkeypatch.chdir(tmp_path)
    opt = _parse(opt, tmp_path, monkeypatch, is_train=False)
    model = build_model(opt)
    dataset = build_dataset(opt['datasets']['test_1'])
    model.validation(build_dataloader(dataset, opt['datasets']['test_1']), opt['name'], None, save_img=False)
    assert set(model.metric_results) == {'psnr', 'ssim', 'niqe'}
    assert all(np.isfinite(value) for value in model.metric_results.values())


def test_niqe_on_too_small_an_image_says_what_it_needs():
    with pytest.raises(ValueError, match=r'calculate_niqe with crop_border=4 needs two 96x96 blocks: images of at '
                       r'least 104x200 \(or 200x104\) pixels; this output is 104x104'):
        errors.calculate_metric({'img': np.zeros((104, 104, 3), np.uint8)},
                                    {'type': 'calculate_niqe', 'crop_border': 4})
