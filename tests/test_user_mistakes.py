"""Issue 16, nothing lost, nothing silent: each user mistake reproduced with tiny data, and the clear message (or the
correct result) it now gets; data-loss tests compare the user's files byte for byte afterwards.

Kinds: (a) option files checked before any work (``msconv_plugin.validation``), (b) no data loss (inference outputs,
the experiment lock, truncated network checkpoints), (c) honest resume and the NaN advice followed literally,
(d) inference on real photos and folders, (e) ``error:`` lines instead of tracebacks (``msconv_plugin.cli``).
"""
import json
import logging
import os
import os.path as osp
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch
import yaml
from basicsr.archs import build_network

import msconv_plugin  # noqa: F401  (before anything of BasicSR)
import msconv_plugin.train
from msconv_plugin import experiment_lock
from msconv_plugin.cli import UserError, run
from msconv_plugin.validation import OptionError
from tests.test_inference import SCALE, random_image, zoo  # noqa: F401  (zoo: a fixture)
from tests.test_inference import run as infer
from tests.test_train_pipeline import REPO, TINY_YML, _load_yml

RNG = np.random.default_rng(0)
EDSR = dict(type='EDSR', num_in_ch=3, num_out_ch=3, num_feat=8, num_block=1, upscale=2)


def _pairs(root, sizes, scale=2):
    """``root/gt`` and ``root/lq`` with one image pair per (h, w) GT size; returns the two folders."""
    gt, lq = root / 'gt', root / 'lq'
    gt.mkdir(parents=True, exist_ok=True)
    lq.mkdir(exist_ok=True)
    for i, (h, w) in enumerate(sizes):
        img = RNG.integers(0, 256, (h, w, 3), dtype=np.uint8)
        cv2.imwrite(str(gt / f'{i}.png'), img)
        cv2.imwrite(str(lq / f'{i}.png'), cv2.resize(img, (w // scale, h // scale), interpolation=cv2.INTER_AREA))
    return gt, lq


def _options(tmp_path, name='mistake', n_images=4, **train):
    """A tiny EDSR ×2 option file over ``n_images`` 32×32 pairs (validation on the same images)."""
    gt, lq = _pairs(tmp_path / 'data', [(32, 32)] * n_images)
    opt = _load_yml(TINY_YML)
    opt['name'] = name
    opt['network_g'] = dict(EDSR)
    for dataset in opt['datasets'].values():
        dataset.update(dataroot_gt=str(gt), dataroot_lq=str(lq))
    opt['train'].update({'total_iter': 4, **train})
    opt['val']['val_freq'] = 100
    opt['logger'].update(print_freq=2, save_checkpoint_freq=2)
    return opt


def _write(opt, path):
    path.write_text(yaml.safe_dump(opt, sort_keys=False))
    return path


def _train(tmp_path, monkeypatch, opt, *args):
    """``python -m msconv_plugin.train -opt <opt> <args>`` in this process, from ``tmp_path``."""
    yml = _write(opt, tmp_path / f'{opt["name"]}.yml') if isinstance(opt, dict) else opt
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, 'argv', ['train.py', '-opt', str(yml), *args])
    msconv_plugin.train.main()


def _snapshot(folder):
    """{relative path: bytes} of every file under ``folder``."""
    return {osp.relpath(osp.join(d, f), folder): open(osp.join(d, f), 'rb').read()
            for d, _, files in os.walk(folder) for f in files}


# (c) The NaN advice, followed literally


def test_nan_advice_followed_literally_finishes(tmp_path, monkeypatch):
    # Healthy for 4 iterations (checkpoints at 2 and 4), then the schedule multiplies the rate by 1e9: Adam moves
    # every weight by about 1e6 and the loss overflows.
    opt = _options(tmp_path, name='nan_advice', total_iter=8)
    opt['train']['optim_g']['lr'] = 1e-3
    opt['train']['scheduler'] = dict(type='MultiStepLR', milestones=[4], gamma=1e9)
    del opt['datasets']['val'], opt['val']
    with pytest.raises(FloatingPointError) as stopped:
        _train(tmp_path, monkeypatch, opt)
    message = str(stopped.value)
    assert 'Lower the learning rate (train.optim_g.lr) in the option file' in message
    assert 'run python -m msconv_plugin.train with the same option file and --auto_resume' in message

    opt['train']['optim_g']['lr'] = 1e-3 * 1e-9  # lowered, so that the rate after the milestone is 1e-3 again
    _train(tmp_path, monkeypatch, opt, '--auto_resume')
    models = tmp_path / 'experiments' / 'nan_advice' / 'models'
    assert {'net_g_8.pth', 'net_g_latest.pth'} <= {p.name for p in models.iterdir()}
    state = torch.load(models.parent / 'training_states' / '8.state')  # resumed at 4 with the new rate
    assert state['optimizers'][0]['param_groups'][0]['initial_lr'] == pytest.approx(1e-12)
    assert state['optimizers'][0]['param_groups'][0]['lr'] == pytest.approx(1e-3)
    latest = torch.load(models / 'net_g_latest.pth')
    assert all(torch.isfinite(t).all() for params in latest.values() for t in params.values())


def test_a_changed_schedule_is_applied_on_resume(tmp_path, monkeypatch):
    opt = _options(tmp_path, name='new_schedule', total_iter=4)
    opt['train']['scheduler'] = dict(type='MultiStepLR', milestones=[100], gamma=0.5)
    _train(tmp_path, monkeypatch, opt)
    opt['train'].update(total_iter=6)
    opt['train']['scheduler'] = dict(type='MultiStepLR', milestones=[3], gamma=0.1)  # already passed at iteration 4
    _train(tmp_path, monkeypatch, opt, '--auto_resume')
    state = torch.load(tmp_path / 'experiments' / 'new_schedule' / 'training_states' / '6.state')
    assert dict(state['schedulers'][0]['milestones']) == {3: 1}
    assert state['optimizers'][0]['param_groups'][0]['lr'] == pytest.approx(2e-5)  # 2e-4 × 0.1, as if from the start


# (a) Option files checked before any work


@pytest.mark.parametrize('change,expected', [
    (lambda o: o['train']['optim_g'].update(lr='1e-4'),
     r"train\.optim_g\.lr is the text '1e-4', not a number .*write 0\.0001 or !!float 1e-4"),
    (lambda o: o.update(scale=4), r'scale = 4 but network_g \(EDSR\) upscales by 2 \(network_g\.upscale\)'),
    (lambda o: o['datasets']['train'].update(gt_size=31),
     r'datasets\.train\.gt_size = 31 is not a multiple of scale 2: use 30 or 32'),
    (lambda o: (o['network_g'].update(type='MS3EDSR', n_scales=3), o['datasets']['train'].update(gt_size=28)),
     r'datasets\.train\.gt_size = 28 is not a multiple of scale 2 × 4, so that the LQ patch \(gt_size / scale\) is a '
     r"multiple of the network's grid 4 \(MS³ pooling 2\*\*\(n_scales - 1\), pixel-unshuffle\): use 24 or 32"),
    (lambda o: o['datasets']['train'].update(batch_size_per_gpu=2.5), r'batch_size_per_gpu = 2\.5: must be a whole'),
    (lambda o: o['datasets']['val'].update(dataroot_lq='no/such/folder'),
     r'datasets\.val\.dataroot_lq is not a folder: no/such/folder'),
    (lambda o: o['datasets']['train'].update(batch_size_per_gpu=8),
     r"datasets\.train \('tiny'\) has 4 images .*fewer than one batch of 8, so no iteration would run\. Lower "
     r'batch_size_per_gpu to 4 or less, or raise dataset_enlarge_ratio to 2'),
    (lambda o: o['val']['metrics']['psnr'].update(crop_border=16, type='calculate_ssim'),
     r'4 images of datasets\.val .*too small for val\.metrics\.psnr \(calculate_ssim needs 43x43 after '
     r'crop_border = 16\)'),
    (lambda o: o['path'].update(pretrain_network_g='gone.pth'), r'path\.pretrain_network_g is not a file: gone\.pth'),
])
def test_option_mistakes_are_named_before_any_work(tmp_path, monkeypatch, change, expected):
    opt = _options(tmp_path)
    change(opt)
    if isinstance(opt['train']['optim_g']['lr'], str):  # as YAML reads it: written unquoted
        yml = tmp_path / 'mistake.yml'
        yml.write_text(yaml.safe_dump(opt, sort_keys=False).replace("'1e-4'", '1e-4'))
        assert _load_yml(yml)['train']['optim_g']['lr'] == '1e-4'
        opt = yml
    with pytest.raises(OptionError, match=expected):
        _train(tmp_path, monkeypatch, opt)
    assert not (tmp_path / 'experiments').exists()  # nothing created, nothing trained


def test_every_bad_pair_is_listed(tmp_path, monkeypatch):
    opt = _options(tmp_path)
    data = tmp_path / 'data'
    os.remove(data / 'lq' / '1.png')  # no LQ
    cv2.imwrite(str(data / 'lq' / 'extra.png'), random_image((16, 16, 3)))  # no GT
    cv2.imwrite(str(data / 'lq' / '2.png'), random_image((15, 16, 3)))  # 15 × 2 != 32
    with pytest.raises(OptionError) as error:
        _train(tmp_path, monkeypatch, opt)
    message = str(error.value)
    for bad in (f'{data}/gt/1.png has no LQ image {data}/lq/1.png', f'{data}/lq/extra.png has no GT image',
                f'{data}/gt/2.png is 32x32 but {data}/lq/2.png is 15x16 (×2 gives 30x32)'):
        assert message.count(bad) == 2  # in the training and the validation set
    assert message.startswith(f'2 problems in {tmp_path}/mistake.yml:\n  3 bad LQ/GT pairs in datasets.train')


def test_a_resume_state_of_another_experiment_is_named(tmp_path, monkeypatch):
    opt = _options(tmp_path, name='first')
    _train(tmp_path, monkeypatch, opt)
    opt['name'] = 'second'
    opt['path']['resume_state'] = 'experiments/first/training_states/4.state'
    with pytest.raises(OptionError, match=r"resume_state = experiments/first/training_states/4\.state is a training "
                       r"state of experiment 'first', but this run is 'second': set name: first .* "
                       r'path\.pretrain_network_g: experiments/first/models/net_g_4\.pth'):
        _train(tmp_path, monkeypatch, opt)


def test_a_one_pixel_image_in_bicubic_sr_dataset_is_named(tmp_path, monkeypatch):
    opt = _options(tmp_path)
    gt = tmp_path / 'data' / 'gt'
    cv2.imwrite(str(gt / 'tiny.png'), np.zeros((1, 1, 3), np.uint8))
    opt['datasets']['train'] = dict(name='bicubic', type='BicubicSRDataset', dataroot_gt=str(gt), gt_size=32,
                                    io_backend=dict(type='disk'), use_hflip=False, use_rot=False,
                                    batch_size_per_gpu=2, num_worker_per_gpu=0, dataset_enlarge_ratio=1)
    with pytest.raises(OptionError, match=rf"1 images of datasets\.train \('bicubic'\) are smaller than gt_size = 32: "
                       rf'{gt}/tiny\.png \(1x1\)\. Lower gt_size or remove them'):
        _train(tmp_path, monkeypatch, opt)


def test_shipped_option_files_pass_the_checks_that_need_no_data(monkeypatch):
    from basicsr.utils.options import parse_options

    from msconv_plugin.validation import check_numbers, check_scale_and_patch

    paths = sorted(osp.join(d, f) for d, _, files in os.walk(osp.join(REPO, 'options')) for f in files
                   if f.endswith('.yml'))
    assert len(paths) > 50
    for path in paths:
        monkeypatch.setattr(sys, 'argv', ['x', '-opt', path])
        opt, _ = parse_options(REPO, is_train=f'{os.sep}train{os.sep}' in path)
        assert check_numbers(opt) + check_scale_and_patch(opt) == [], path


# (b) No data loss: the experiment lock, a truncated network checkpoint


def test_a_second_run_with_the_same_name_refuses(tmp_path, monkeypatch):
    opt = _options(tmp_path, name='busy')
    _train(tmp_path, monkeypatch, opt)
    experiment = tmp_path / 'experiments' / 'busy'
    before = _snapshot(experiment)
    assert not (tmp_path / 'experiments' / 'busy.lock').exists()  # released when the run ended
    holder = experiment_lock.ExperimentLock(str(experiment), 'busy').acquire()  # a run in progress (this process)
    try:
        with pytest.raises(UserError, match=rf'Another run \(pid {os.getpid()} on this machine\) is writing to '
                           rf"{tmp_path}/experiments/busy of experiment 'busy'\. Wait for it .* delete "
                           rf'{tmp_path}/experiments/busy\.lock'):
            _train(tmp_path, monkeypatch, opt)
        with pytest.raises(UserError, match='Another run'):
            _train(tmp_path, monkeypatch, opt, '--auto_resume')
    finally:
        holder.release()
    assert _snapshot(experiment) == before and os.listdir(tmp_path / 'experiments') == ['busy']


def test_a_stale_lock_is_taken_over(tmp_path, monkeypatch, capsys):
    ended = subprocess.run([sys.executable, '-c', 'import os; print(os.getpid())'], capture_output=True, text=True)
    lock = tmp_path / 'experiments' / 'stale.lock'
    lock.parent.mkdir()
    for owner in (dict(experiment_lock.this_process(), pid=int(ended.stdout)),  # the process has ended
                  dict(experiment_lock.this_process(), start_time=1),  # our pid, but another process (reused)
                  dict(experiment_lock.this_process(), boot_id='before-a-reboot')):
        assert experiment_lock.is_stale(owner)
    assert not experiment_lock.is_stale(experiment_lock.this_process())
    assert not experiment_lock.is_stale(dict(experiment_lock.this_process(), host='elsewhere', pid=int(ended.stdout)))
    lock.write_text(json.dumps(dict(experiment_lock.this_process(), pid=int(ended.stdout))))
    _train(tmp_path, monkeypatch, _options(tmp_path, name='stale'))
    assert f'Taking over {tmp_path}/experiments/stale.lock, left by a run that has ended' in capsys.readouterr().out
    assert (tmp_path / 'experiments' / 'stale' / 'models' / 'net_g_latest.pth').is_file() and not lock.exists()


def test_auto_resume_skips_a_state_whose_network_is_truncated(tmp_path, monkeypatch, capsys):
    opt = _options(tmp_path, name='truncated')
    _train(tmp_path, monkeypatch, opt)
    models = tmp_path / 'experiments' / 'truncated' / 'models'
    content = (models / 'net_g_4.pth').read_bytes()
    (models / 'net_g_4.pth').write_bytes(content[:len(content) // 2])
    opt['train']['total_iter'] = 6
    _train(tmp_path, monkeypatch, opt, '--auto_resume')
    out = capsys.readouterr().out
    assert 'Skipping unreadable training state experiments/truncated/training_states/4.state (ValueError: its ' \
           f'network checkpoint {models}/net_g_4.pth does not load' in out
    assert f'pretrain_network_g to {models}/net_g_2.pth' in out  # resumed from 2, with a complete network
    assert torch.load(models / 'net_g_6.pth')['params']


def _experiment_models(tmp_path, iterations=(2, 4)):
    """``experiments/x/models`` holding ``net_g_<iter>.pth`` for ``iterations`` (distinct weights each) and a
    truncated ``net_g_latest.pth``, as a run cut while writing it (or a copy cut short) leaves them."""
    models = tmp_path / 'experiments' / 'x' / 'models'
    models.mkdir(parents=True)
    weights = {}
    for iteration in iterations:
        torch.manual_seed(iteration)
        weights[iteration] = build_network(dict(EDSR)).state_dict()
        torch.save({'params': weights[iteration]}, models / f'net_g_{iteration}.pth')
    content = (models / f'net_g_{iterations[-1]}.pth').read_bytes()
    (models / 'net_g_latest.pth').write_bytes(content[:len(content) // 2])
    options = tmp_path / 'edsr.yml'
    options.write_text(yaml.safe_dump(dict(scale=2, network_g=dict(EDSR))))
    return models, weights, str(options)


def _same(net, state_dict):
    return all(torch.equal(value, state_dict[key]) for key, value in net.state_dict().items())


def test_a_truncated_latest_checkpoint_falls_back_to_the_previous_complete_one(tmp_path, caplog, monkeypatch):
    from msconv_plugin.zoo import build_model

    # The warning goes to BasicSR's logger, which stops propagation once BasicSR has set it up (get_root_logger):
    # let it reach caplog whichever test ran before this one.
    monkeypatch.setattr(logging.getLogger('basicsr'), 'propagate', True)

    models, weights, options = _experiment_models(tmp_path)
    net, _, info = build_model(str(models / 'net_g_latest.pth'), opt=options)  # inference and the demo
    assert _same(net, weights[4]) and info['param_key'] == 'params'
    assert (f'The network checkpoint {models}/net_g_latest.pth does not load (' in caplog.text
            and f'using {models}/net_g_4.pth, the newest complete checkpoint of this network before it' in caplog.text)

    (models / 'net_g_4.pth').write_bytes((models / 'net_g_4.pth').read_bytes()[:100])  # that one too: the one before
    from tests.test_bad_input import build_model as build_sr_model  # BasicSR's model: test, pretrain_network_g
    model = build_sr_model(dict(model_type='SRModel', scale=2, num_gpu=0, dist=False, is_train=False,
                                network_g=dict(EDSR), path={'pretrain_network_g': str(models / 'net_g_latest.pth'),
                                                            'strict_load_g': True, 'param_key_g': 'params'}))
    assert _same(model.net_g, weights[2])
    assert f'using {models}/net_g_2.pth, the newest complete checkpoint' in caplog.text


@pytest.mark.parametrize('case', ['all truncated', 'not an experiment file'])
def test_a_truncated_checkpoint_without_a_complete_one_before_it_is_named(tmp_path, case):
    from msconv_plugin.zoo import build_model

    models, weights, options = _experiment_models(tmp_path, iterations=(2,))
    path = models / 'net_g_latest.pth'
    if case == 'all truncated':
        (models / 'net_g_2.pth').write_bytes(b'')
        expected = (rf'not a PyTorch checkpoint; no earlier net_\*_<iter>\.pth of it in {models} loads either\. '
                    r'Point to a complete checkpoint\.')
    else:
        path = path.rename(tmp_path / 'my_weights.pth')  # a name BasicSR did not write: no fallback, no guess
        expected = r'not a PyTorch checkpoint\. Point to a complete checkpoint\.'
    with pytest.raises(ValueError, match=rf'^Cannot read the network checkpoint {path} \(.*\): the file is truncated '
                                         rf'or {expected}$'):
        build_model(str(path), opt=options)


# (b, d) Inference: the user's files, real photos, real folders


def _model(zoo):  # noqa: F811
    return ['--zoo', zoo, '--model', 'TinyEDSR_x2']


def test_inference_into_its_input_folder_loses_nothing(tmp_path, zoo, capsys):  # noqa: F811
    folder = tmp_path / 'photos'
    folder.mkdir()
    for i, name in enumerate(('a.png', 'b.png')):
        cv2.imwrite(str(folder / name), random_image((12, 10, 3), seed=i))
    users = _snapshot(folder)
    infer('-i', folder, '-o', folder, *_model(zoo))
    first = _snapshot(folder)
    assert set(first) == {'a.png', 'b.png', 'a_TinyEDSR_x2.png', 'b_TinyEDSR_x2.png'}
    assert {k: first[k] for k in users} == users

    with pytest.raises(UserError, match=r'2 output file\(s\) exist already: .*a_TinyEDSR_x2\.png, .*b_TinyEDSR_x2\.png'
                       r'\. Give --overwrite to replace them'):
        infer('-i', folder, '-o', folder, *_model(zoo))
    assert _snapshot(folder) == first

    infer('-i', folder, '-o', folder, *_model(zoo), '--overwrite')  # the earlier outputs are not inputs
    assert _snapshot(folder) == first
    assert f'Skipping {folder}/a_TinyEDSR_x2.png: an output of an earlier run' in capsys.readouterr().out


def test_inference_never_writes_onto_an_input(tmp_path, zoo):  # noqa: F811
    inputs, outputs = tmp_path / 'in', tmp_path / 'out'
    inputs.mkdir()
    outputs.mkdir()
    cv2.imwrite(str(inputs / 'a.png'), random_image((12, 10, 3)))
    cv2.imwrite(str(outputs / 'a_TinyEDSR_x2.png'), random_image((9, 9, 3), seed=1))  # the user's file ...
    os.symlink(outputs / 'a_TinyEDSR_x2.png', inputs / 'b.png')  # ... is also an input, through a link
    users = _snapshot(outputs)
    with pytest.raises(UserError, match=r'The output .*/out/a_TinyEDSR_x2\.png would replace an input image'):
        infer('-i', inputs, '-o', outputs, *_model(zoo), '--overwrite')
    assert _snapshot(outputs) == users


def test_an_unwritable_output_folder_is_reported_before_computing(tmp_path, zoo, capsys):  # noqa: F811
    cv2.imwrite(str(tmp_path / 'a.png'), random_image((12, 10, 3)))
    (tmp_path / 'taken').write_text('a file, not a folder')
    with pytest.raises(UserError, match=rf'Cannot write to the output folder {tmp_path}/taken/out \(.*\): choose'):
        infer('-i', tmp_path / 'a.png', '-o', tmp_path / 'taken' / 'out', *_model(zoo))
    assert 'Time per image' not in capsys.readouterr().out


def test_unreadable_files_are_skipped_and_the_others_processed(tmp_path, zoo, capsys):  # noqa: F811
    folder = tmp_path / 'in'
    folder.mkdir()
    for name in ('a.png', 'c.png'):
        cv2.imwrite(str(folder / name), random_image((12, 10, 3)))
    for name in ('b.png', 'd.jpg'):
        (folder / name).write_bytes(b'not an image')
    with pytest.raises(UserError, match=rf'Cannot read images {folder}/b\.png, {folder}/d\.jpg \(2 of 4 skipped'):
        infer('-i', folder, '-o', tmp_path / 'out', *_model(zoo))
    assert sorted(os.listdir(tmp_path / 'out')) == ['a_TinyEDSR_x2.png', 'c_TinyEDSR_x2.png']
    out = capsys.readouterr().out
    assert out.count('Skipping') == 2 and f'Skipping {folder}/b.png: Cannot read image' in out


def test_exif_orientation_is_applied(tmp_path, zoo):  # noqa: F811
    from PIL import Image

    stored = random_image((10, 16, 3))
    exif = Image.Exif()
    exif[0x0112] = 6  # the camera was turned: show the stored pixels rotated 90° clockwise
    Image.fromarray(stored[..., ::-1]).save(tmp_path / 'photo.jpg', exif=exif, quality=100)
    decoded = cv2.imread(str(tmp_path / 'photo.jpg'), cv2.IMREAD_UNCHANGED)  # OpenCV ignores the tag here
    cv2.imwrite(str(tmp_path / 'upright.png'), np.rot90(decoded, -1))
    infer('-i', tmp_path / 'photo.jpg', '-o', tmp_path / 'out', *_model(zoo))
    infer('-i', tmp_path / 'upright.png', '-o', tmp_path / 'out', *_model(zoo))
    turned = cv2.imread(str(tmp_path / 'out' / 'photo_TinyEDSR_x2.png'), cv2.IMREAD_UNCHANGED)
    assert turned.shape == (16 * SCALE, 10 * SCALE, 3)
    assert np.array_equal(turned, cv2.imread(str(tmp_path / 'out' / 'upright_TinyEDSR_x2.png'), cv2.IMREAD_UNCHANGED))


def test_grey_alpha_stays_grey_alpha(tmp_path, zoo):  # noqa: F811
    from PIL import Image

    grey, alpha = random_image((10, 12)), random_image((10, 12), seed=1)
    Image.fromarray(np.stack([grey, alpha], axis=2), 'LA').save(tmp_path / 'la.png')
    infer('-i', tmp_path / 'la.png', '-o', tmp_path / 'out', *_model(zoo))
    with Image.open(tmp_path / 'out' / 'la_TinyEDSR_x2.png') as out:
        assert out.mode == 'LA' and out.size == (12 * SCALE, 10 * SCALE)
        enlarged = cv2.resize(alpha, (12 * SCALE, 10 * SCALE), interpolation=cv2.INTER_LINEAR)
        assert np.array_equal(np.asarray(out)[..., 1], enlarged)


def test_a_damaged_zoo_file_is_refused(tmp_path, zoo):  # noqa: F811
    from msconv_plugin.zoo import build_model

    weights = tmp_path / 'zoo' / 'weights' / 'TinyEDSR_x2.pth'
    state = torch.load(weights)
    next(iter(state['params'].values())).fill_(1e6)  # loads fine, computes nonsense
    torch.save(state, weights)
    with pytest.raises(UserError, match=rf"{weights} does not match the sha256 recorded by zoo entry 'TinyEDSR_x2'"):
        build_model('TinyEDSR_x2', zoo_path=zoo)
    # scripts/export_onnx.py builds through build_model too: an error line, no traceback.
    export = subprocess.run([sys.executable, osp.join(REPO, 'scripts', 'export_onnx.py'), '--model', 'TinyEDSR_x2',
                             '--zoo', zoo, '-o', str(tmp_path / 'x.onnx')], capture_output=True, text=True)
    assert export.returncode == 1 and export.stderr.startswith(f'error: {weights} does not match the sha256')
    assert 'Traceback' not in export.stderr and not (tmp_path / 'x.onnx').exists()


def test_a_checkpoint_of_another_network_is_summarised(tmp_path):
    from msconv_plugin.zoo import build_model

    torch.save({'params': build_network(dict(EDSR)).state_dict()}, tmp_path / 'edsr.pth')
    options = tmp_path / 'ms3.yml'
    options.write_text(yaml.safe_dump(dict(scale=2, network_g=dict(EDSR, type='MS3EDSR', n_scales=3))))
    with pytest.raises(UserError) as error:
        build_model(str(tmp_path / 'edsr.pth'), opt=str(options))
    message = str(error.value)
    assert message.startswith(f'The weights of {tmp_path}/edsr.pth (params) do not fit the network MS3EDSR:\n')
    assert 'MS³ layers: the network has n_scales=3' in message and len(message.splitlines()) < 15


OTHER_SCOPE = {  # network -> (tiny options, its default scope, the other scope)
    'MS3EDSR': (dict(EDSR, type='MS3EDSR', num_feat=8, n_scales=2), 'trunk', 'whole'),
    'MS3SRResNet': (dict(type='MS3SRResNet', num_feat=8, num_block=1, upscale=2, n_scales=2), 'whole', 'trunk'),
    'MS3RRDBNet': (dict(type='MS3RRDBNet', num_in_ch=3, num_out_ch=3, num_feat=8, num_block=1, num_grow_ch=4,
                        scale=2, n_scales=2), 'trunk', 'whole'),
}


@pytest.mark.parametrize('network', sorted(OTHER_SCOPE))
def test_a_checkpoint_of_the_other_scope_says_which_scope_to_set(tmp_path, network):
    """A default scope can change (MS3EDSR's was whole from 2026-12-01, trunk again since 2026-12-04): a checkpoint
    trained with the other scope names the scope to set."""
    from msconv_plugin.zoo import build_model

    ms3, default, other = OTHER_SCOPE[network]
    assert build_network(dict(ms3)).scope == default
    torch.save({'params': build_network(dict(ms3, scope=other)).state_dict()}, tmp_path / 'other.pth')
    options = tmp_path / 'ms3.yml'
    options.write_text(yaml.safe_dump(dict(scale=2, network_g=ms3)))  # today's default
    with pytest.raises(UserError) as error:
        build_model(str(tmp_path / 'other.pth'), opt=str(options))
    assert (f"The checkpoint is an {network} of scope '{other}', the network has scope '{default}': set "
            f"network_g.scope: {other} ({network}'s default scope is '{default}'") in str(error.value)
    options.write_text(yaml.safe_dump(dict(scale=2, network_g=dict(ms3, scope=other))))
    assert build_model(str(tmp_path / 'other.pth'), opt=str(options)) is not None


# (e) error: lines instead of tracebacks


def _cli(*args, env=None):
    return subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True, cwd=REPO,
                          env={**os.environ, 'PYTHONPATH': REPO, **(env or {})})


@pytest.mark.slow
def test_cli_user_errors_are_one_line_and_debug_shows_the_traceback(tmp_path):
    args = ['-m', 'msconv_plugin.inference', '-i', tmp_path / 'missing.png', '-o', tmp_path / 'out', '--model', 'X']
    plain = _cli(*args)
    assert plain.returncode == 1 and plain.stderr == f'error: Input not found: {tmp_path}/missing.png\n' or \
        plain.stderr.startswith('error: Unknown model')
    for debug in (_cli(*args, '--debug'), _cli(*args, env={'MSCONV_DEBUG': '1'})):
        assert debug.returncode == 1 and 'Traceback' in debug.stderr

    opt = _options(tmp_path)
    opt['scale'] = 3
    train = _cli('-m', 'msconv_plugin.train', '-opt', _write(opt, tmp_path / 'bad.yml'))
    assert train.returncode == 1 and 'Traceback' not in train.stderr and train.stderr.count('error: ') == 1
    assert train.stderr.startswith(f'error: 4 problems in {tmp_path}/bad.yml:\n  scale = 3 but network_g (EDSR) '
                                   'upscales by 2 (network_g.upscale): set both to the same value.\n')
    assert not (tmp_path / 'experiments').exists() and not osp.isdir(osp.join(REPO, 'experiments', 'mistake'))


def test_unexpected_errors_keep_their_traceback(monkeypatch, capsys):
    monkeypatch.setattr(sys, 'argv', ['prog'])

    def user_mistake():
        raise UserError('say what to change')

    assert run(user_mistake) == 1 and capsys.readouterr().err == 'error: say what to change\n'
    with pytest.raises(ValueError, match='negative dimensions'):
        run(lambda: np.zeros(-1))  # raised inside NumPy: a bug, not a user's mistake
    assert run(lambda: 3) == 3 and run(lambda: ['outputs']) == 0
    monkeypatch.setattr(sys, 'argv', ['prog', '--debug'])
    with pytest.raises(UserError):
        run(user_mistake)
    assert sys.argv == ['prog']
