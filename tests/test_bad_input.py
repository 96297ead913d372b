"""Bad input gives a clear message or a correct result (``msconv_plugin.basicsr_fixes``, ``data.image_io``).

One test (or one parametrised test) per case: (a) tiny and odd image sizes, (b) grayscale, RGBA and 16-bit images,
(c) an empty dataset folder, (d) a corrupt image file, (e) a checkpoint of other MS³ options, (f) a loss that stops
being finite.
"""
import math
import sys

import cv2
import numpy as np
import pytest
import torch
import yaml

import msconv_plugin  # noqa: F401  (before anything of BasicSR)
import basicsr.losses.basic_loss
import basicsr.models.sr_model
import basicsr.test
from basicsr.data import build_dataset
from basicsr.models import build_model
from basicsr.train import train_pipeline

from msconv_plugin.archs.ms3edsr_arch import MS3EDSR
from msconv_plugin.data.image_io import UnreadableImageError
from tests.test_train_pipeline import TINY_YML, _load_yml

NETWORK = dict(type='MS3EDSR', num_in_ch=3, num_out_ch=3, num_feat=12, num_block=1, upscale=2, n_scales=3)
RNG = np.random.default_rng(0)


def _image(h, w, channels=3, dtype=np.uint8):
    """Smooth random image (bilinear enlargement of a coarse one)."""
    top = np.iinfo(dtype).max
    coarse = RNG.integers(0, top + 1, (h // 2 + 2, w // 2 + 2, channels)).astype(dtype)
    img = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_LINEAR)
    return img.reshape(h, w, channels) if channels > 1 else img.reshape(h, w)


def _paired(tmp_path, images, **opt):
    """A PairedImageDataset (test phase, x2) of ``{name: (lq, gt)}`` written as PNG."""
    for folder in ('lq', 'gt'):
        (tmp_path / folder).mkdir(exist_ok=True)
    for name, (lq, gt) in images.items():
        cv2.imwrite(str(tmp_path / 'lq' / name), lq)
        cv2.imwrite(str(tmp_path / 'gt' / name), gt)
    return build_dataset(dict(name='bad', type='PairedImageDataset', dataroot_gt=str(tmp_path / 'gt'),
                              dataroot_lq=str(tmp_path / 'lq'), io_backend={'type': 'disk'}, scale=2, phase='val',
                              **opt))


def _sr_model(**path_opt):
    opt = dict(model_type='SRModel', scale=2, num_gpu=0, dist=False, is_train=False, network_g=dict(NETWORK),
               path={'pretrain_network_g': None, 'strict_load_g': True, **path_opt})
    return build_model(opt)


def _as_chw(img):
    """HWC BGR (or HW gray) ndarray -> CHW RGB float tensor in [0, 1], as BasicSR's datasets deliver."""
    img = img[..., None].repeat(3, 2) if img.ndim == 2 else img[..., 2::-1]
    return torch.from_numpy(img.transpose(2, 0, 1) / float(np.iinfo(img.dtype).max)).float()


# (a) Images smaller than 2^(n_scales-1) = 4 pixels, and sizes that are not multiples of it


@pytest.mark.parametrize('size', [(1, 1), (1, 6), (2, 3), (3, 3), (5, 7), (6, 10)])
def test_any_size_gives_the_upscaled_size(size):
    model = _sr_model()
    model.feed_data({'lq': torch.rand(1, 3, *size)})
    model.test()
    assert model.output.shape == (1, 3, 2 * size[0], 2 * size[1])


def test_metric_refuses_an_image_too_small_for_it():
    img = np.zeros((12, 12, 3), np.uint8)
    psnr = {'type': 'calculate_psnr', 'crop_border': 2, 'test_y_channel': True}
    assert basicsr.models.sr_model.calculate_metric({'img': img, 'img2': img}, psnr) == math.inf
    with pytest.raises(ValueError, match=r'calculate_ssim with crop_border=2 needs images of at least 15x15 pixels; '
                       r'this output is 12x12'):
        basicsr.models.sr_model.calculate_metric({'img': img, 'img2': img}, dict(psnr, type='calculate_ssim'))
    with pytest.raises(ValueError, match='calculate_psnr .* at least 5x5'):
        basicsr.models.sr_model.calculate_metric({'img': img[:4, :4], 'img2': img[:4, :4]}, psnr)


# (b) Grayscale, RGBA and 16-bit images


def test_grayscale_rgba_and_16_bit_images_are_read_as_rgb_in_0_1(tmp_path):
    images = {
        'gray.png': (_image(5, 7, 1), _image(10, 14, 1)),  # three equal channels, as BasicSR
        'rgba.png': (_image(3, 6, 4), _image(6, 12, 4)),  # the colour channels; alpha is not restored
        'deep.png': (_image(9, 10, dtype=np.uint16), _image(18, 20, dtype=np.uint16)),  # all 16 bits, / 65535
    }
    dataset = _paired(tmp_path, images)
    for item in dataset:
        lq, gt = images[item['lq_path'].rsplit('/', 1)[1]]
        torch.testing.assert_close(item['lq'], _as_chw(lq[..., :3] if lq.ndim == 3 else lq), rtol=0, atol=1e-6)
        torch.testing.assert_close(item['gt'], _as_chw(gt[..., :3] if gt.ndim == 3 else gt), rtol=0, atol=1e-6)


def test_16_bit_images_keep_their_precision_in_bicubic_sr_dataset(tmp_path):
    gt = _image(12, 16, dtype=np.uint16)
    (tmp_path / 'hr').mkdir()
    cv2.imwrite(str(tmp_path / 'hr' / 'deep.png'), gt)
    item = build_dataset(dict(name='deep', type='BicubicSRDataset', dataroot_gt=str(tmp_path / 'hr'),
                              io_backend={'type': 'disk'}, scale=2, phase='val'))[0]
    torch.testing.assert_close(item['gt'], _as_chw(gt), rtol=0, atol=1e-6)
    assert item['lq'].shape == (3, 6, 8)


def test_test_pipeline_on_tiny_gray_rgba_and_16_bit_images(tmp_path, monkeypatch):
    images = {
        'tiny.png': (_image(1, 1), _image(2, 2)),
        'gray.png': (_image(5, 7, 1), _image(10, 14, 1)),
        'rgba.png': (_image(3, 6, 4), _image(6, 12, 4)),
        'deep.png': (_image(9, 10, dtype=np.uint16), _image(18, 20, dtype=np.uint16)),
    }
    _paired(tmp_path, images)
    opt = dict(name='bad_input', model_type='SRModel', scale=2, num_gpu=0, manual_seed=0, network_g=NETWORK,
               datasets={'test_1': dict(name='bad', type='PairedImageDataset', dataroot_gt=str(tmp_path / 'gt'),
                                        dataroot_lq=str(tmp_path / 'lq'), io_backend={'type': 'disk'})},
               path=dict(pretrain_network_g=None),
               val=dict(save_img=True, suffix=None, metrics={'psnr': dict(type='calculate_psnr', crop_border=0)}))
    (tmp_path / 'test.yml').write_text(yaml.safe_dump(opt))
    monkeypatch.setattr(sys, 'argv', ['test.py', '-opt', str(tmp_path / 'test.yml')])
    basicsr.test.test_pipeline(str(tmp_path))
    for name, (lq, _) in images.items():
        result = cv2.imread(str(tmp_path / 'results' / 'bad_input' / 'visualization' / 'bad' /
                                name.replace('.png', '_bad_input.png')))
        assert result.shape == (2 * lq.shape[0], 2 * lq.shape[1], 3), name


# (c) An empty dataset folder


@pytest.mark.parametrize('dataset_type', ['PairedImageDataset', 'SingleImageDataset'])
def test_an_empty_dataset_is_named(tmp_path, dataset_type):
    for folder in ('lq', 'gt'):
        (tmp_path / folder).mkdir()
    with pytest.raises(ValueError, match=rf"Dataset 'empty' \({dataset_type}\) has no images \(.*lq"):
        build_dataset(dict(name='empty', type=dataset_type, dataroot_gt=str(tmp_path / 'gt'),
                           dataroot_lq=str(tmp_path / 'lq'), io_backend={'type': 'disk'}, scale=2, phase='val'))


# (d) A corrupt image file


def test_a_corrupt_image_is_named(tmp_path):
    dataset = _paired(tmp_path, {'a.png': (_image(4, 4), _image(8, 8)), 'b.png': (_image(4, 4), _image(8, 8))})
    data = (tmp_path / 'lq' / 'b.png').read_bytes()
    (tmp_path / 'lq' / 'b.png').write_bytes(data[:len(data) // 3])  # truncated
    assert dataset[0]['lq'].shape == (3, 4, 4)
    with pytest.raises(UnreadableImageError, match=r"Cannot read image \S*/lq/b\.png of dataset 'bad'") as error:
        dataset[1]
    assert '/gt/b.png' not in str(error.value)  # the gt image is fine, and not named


def test_a_corrupt_image_is_named_in_single_image_dataset(tmp_path):
    (tmp_path / 'lq').mkdir()
    (tmp_path / 'lq' / 'x.png').write_bytes(b'not a png')
    dataset = build_dataset(dict(name='single', type='SingleImageDataset', dataroot_lq=str(tmp_path / 'lq'),
                                 io_backend={'type': 'disk'}, phase='test'))
    with pytest.raises(ValueError, match=r"Cannot read image \S*/lq/x\.png of dataset 'single'"):
        dataset[0]


# (e) A checkpoint made with other n_scales / interaction


def _checkpoint(tmp_path, net, key='params'):
    path = tmp_path / 'net_g.pth'
    torch.save({key: net.state_dict()}, path)
    return str(path)


def test_a_checkpoint_of_other_ms3_options_is_explained(tmp_path):
    other = MS3EDSR(**{**{k: v for k, v in NETWORK.items() if k != 'type'}, 'n_scales': 2})  # the model has 3
    with pytest.raises(ValueError) as error:
        _sr_model(pretrain_network_g=_checkpoint(tmp_path, other))
    message = str(error.value)
    assert message.startswith(f'The checkpoint {tmp_path}/net_g.pth (param key \'params\') does not fit the network '
                              'MS3EDSR:')
    assert "the network has n_scales=3, interaction='adjacent', branch width 4" in message
    assert "the checkpoint has n_scales=2, interaction='adjacent' or 'full' (the same at 2 scales), branch width 6" \
        in message
    assert 'parameters of the network are not in the checkpoint: body.0.conv1.cross_scale.2to3.weight' in message
    assert 'body.0.conv1.same_scale.weight: (6, 6, 3, 3) vs (4, 4, 3, 3)' in message
    assert 'n_scales, interaction, scope' in message and len(message.splitlines()) < 20


def test_a_checkpoint_of_full_interaction_is_recognised(tmp_path):
    other = MS3EDSR(**{**{k: v for k, v in NETWORK.items() if k != 'type'}, 'interaction': 'full'})
    with pytest.raises(ValueError, match=r"the checkpoint has n_scales=3, interaction='full'") as error:
        _sr_model(pretrain_network_g=_checkpoint(tmp_path, other))
    assert ('not in the network: body.0.conv1.cross_scale.1to3.weight, body.0.conv1.cross_scale.3to1.weight, '
            'body.0.conv2.cross_scale.1to3.weight') in str(error.value)


@pytest.mark.parametrize('damage,expected', [
    ('truncate', r'Cannot read the network checkpoint \S*net_g\.pth .*truncated or not a PyTorch checkpoint'),
    ('param_key', r"net_g\.pth has no 'params' entry; it has weights\. Set param_key_\*"),
])
def test_an_unreadable_checkpoint_is_named(tmp_path, damage, expected):
    path = _checkpoint(tmp_path, MS3EDSR(**{k: v for k, v in NETWORK.items() if k != 'type'}),
                       key='weights' if damage == 'param_key' else 'params')
    if damage == 'truncate':
        data = open(path, 'rb').read()
        open(path, 'wb').write(data[:len(data) // 2])
    with pytest.raises(ValueError, match=expected):
        _sr_model(pretrain_network_g=path)


# (f) A loss that stops being finite


def test_training_stops_at_a_non_finite_loss_before_saving_it(tmp_path, monkeypatch):
    rng = np.random.default_rng(1)
    for folder, size in (('gt', 16), ('lq', 8)):
        (tmp_path / folder).mkdir()
        for i in range(2):
            cv2.imwrite(str(tmp_path / folder / f'{i}.png'), rng.integers(0, 256, (size, size, 3), dtype=np.uint8))
    opt = _load_yml(TINY_YML)
    opt['name'] = 'nan_tiny'
    opt['network_g'].update(num_feat=8, num_block=1)
    opt['datasets']['train'].update(dataroot_gt=str(tmp_path / 'gt'), dataroot_lq=str(tmp_path / 'lq'), gt_size=16,
                                    batch_size_per_gpu=1)
    del opt['datasets']['val'], opt['val']
    opt['logger'].update(save_checkpoint_freq=5)
    (tmp_path / 'train.yml').write_text(yaml.safe_dump(opt))

    forward, calls = basicsr.losses.basic_loss.L1Loss.forward, []

    def nan_from_call_7(self, pred, target, weight=None, **kwargs):
        calls.append(1)
        loss = forward(self, pred, target, weight, **kwargs)
        return loss * math.nan if len(calls) >= 7 else loss

    monkeypatch.setattr(basicsr.losses.basic_loss.L1Loss, 'forward', nan_from_call_7)
    monkeypatch.setattr(sys, 'argv', ['train.py', '-opt', str(tmp_path / 'train.yml')])
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FloatingPointError, match=r'Training stopped at iteration 7: the loss is not finite '
                       r'\(l_pix = nan\)\. Nothing of this iteration was saved'):
        train_pipeline(str(tmp_path))
    exp = tmp_path / 'experiments' / 'nan_tiny'
    assert sorted(p.name for p in (exp / 'models').iterdir()) == ['net_g_5.pth']
    assert sorted(p.name for p in (exp / 'training_states').iterdir()) == ['5.state']
    saved = torch.load(exp / 'models' / 'net_g_5.pth')
    assert all(torch.isfinite(t).all() for params in saved.values() for t in params.values())
    assert len(calls) == 7
