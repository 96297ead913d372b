"""Image lists, checks and per-sample randomness shared by GaussianNoiseDataset and SyntheticBlurDataset: a bad
data root or image stops the run when the dataset is built, naming the path and what was expected."""
import random

import cv2
import numpy as np
import pytest

import msconv_plugin  # noqa: F401  (before anything of BasicSR)
from basicsr.data import build_dataset
from basicsr.utils.lmdb_util import make_lmdb_from_imgs

from msconv_plugin.data.data_util import image_problem, sample_rng

DATASETS = {
    'GaussianNoiseDataset': {'sigma': 25},
    'SyntheticBlurDataset': {},
}


def _png(img):
    return cv2.imencode('.png', img)[1].tobytes()


@pytest.fixture
def folder(tmp_path):
    rng = np.random.default_rng(0)
    root = tmp_path / 'images'
    (root / 'sub').mkdir(parents=True)
    for name in ('a.png', 'b.jpg', 'sub/c.bmp'):
        cv2.imwrite(str(root / name), rng.integers(0, 256, (20, 24, 3), dtype=np.uint8))
    (root / 'notes.txt').write_text('not an image, and not listed')
    return root


def build(dataset_type, root, phase='val', **opt):
    return build_dataset({'name': 'tiny', 'type': dataset_type, 'dataroot_gt': str(root), 'phase': phase, 'scale': 1,
                          'io_backend': {'type': 'disk'}, **DATASETS[dataset_type], **opt})


@pytest.mark.parametrize('fmt', ['.png', '.jpg', '.bmp', '.tif', '.webp', '.ppm'])
def test_image_problem_accepts_complete_images(fmt):
    data = cv2.imencode(fmt, np.zeros((8, 8, 3), np.uint8))[1].tobytes()
    assert image_problem(data[:16], data[-1024:]) is None


def test_image_problem_names_what_is_wrong():
    png = _png(np.zeros((32, 32, 3), np.uint8))
    jpg = cv2.imencode('.jpg', np.full((32, 32, 3), 128, np.uint8))[1].tobytes()
    assert image_problem(b'', b'') == 'the file is empty'
    assert image_problem(b'<html>', b'</html>').startswith('not a PNG, JPEG, BMP, TIFF, WebP or PPM/PGM image')
    assert 'truncated PNG' in image_problem(png[:16], png[:-20][-1024:])
    assert 'truncated JPEG' in image_problem(jpg[:16], jpg[:-10][-1024:])


@pytest.mark.parametrize('dataset_type', DATASETS)
def test_lists_images_of_the_folder_and_its_subfolders(dataset_type, folder):
    dataset = build(dataset_type, folder)
    assert dataset.paths == [str(folder / n) for n in ('a.png', 'b.jpg', 'sub/c.bmp')]
    assert dataset.names == ['a', 'b', 'sub/c']


@pytest.mark.parametrize('dataset_type', DATASETS)
def test_missing_folder_is_named(dataset_type, tmp_path):
    with pytest.raises(FileNotFoundError, match="dataroot_gt of dataset 'tiny' is not a folder: .*nowhere"):
        build(dataset_type, tmp_path / 'nowhere')


@pytest.mark.parametrize('dataset_type', DATASETS)
def test_empty_folder_is_named(dataset_type, tmp_path):
    (tmp_path / 'empty').mkdir()
    (tmp_path / 'empty' / 'readme.txt').write_text('no images here')
    with pytest.raises(ValueError, match=r"No images in dataroot_gt of dataset 'tiny': .*empty \(looked for .png"):
        build(dataset_type, tmp_path / 'empty')


@pytest.mark.parametrize('dataset_type', DATASETS)
def test_broken_images_are_listed_when_the_dataset_is_built(dataset_type, folder):
    png = (folder / 'a.png').read_bytes()
    (folder / 'cut.png').write_bytes(png[:len(png) // 2])
    (folder / 'empty.png').write_bytes(b'')
    (folder / 'page.jpg').write_text('<html>404</html>')
    with pytest.raises(ValueError) as error:
        build(dataset_type, folder, phase='train', gt_size=8, use_hflip=True, use_rot=True)
    message = str(error.value)
    assert message.startswith(f"3 of 6 images in dataroot_gt of dataset 'tiny' ({folder}) cannot be read")
    assert f'{folder / "cut.png"}: a truncated PNG file' in message
    assert f'{folder / "empty.png"}: the file is empty' in message
    assert f'{folder / "page.jpg"}: not a PNG, JPEG' in message


@pytest.mark.parametrize('dataset_type', DATASETS)
def test_unchecked_broken_image_is_named_when_read(dataset_type, folder):
    (folder / 'z.png').write_bytes(b'\x89PNG\r\n\x1a\n' + b'garbage' * 10 + b'IEND')  # passes the quick check
    dataset = build(dataset_type, folder, check_images=False)
    with pytest.raises(ValueError, match=f'Cannot read image {folder / "z.png"}'):
        dataset[dataset.paths.index(str(folder / 'z.png'))]


@pytest.mark.parametrize('dataset_type', DATASETS)
def test_meta_info_file(dataset_type, folder, tmp_path):
    meta_info = tmp_path / 'meta_info.txt'
    meta_info.write_text('sub/c.bmp (20,24,3) 1\nmissing.png (20,24,3) 1\n')
    with pytest.raises(ValueError, match=f'{folder / "missing.png"}: cannot be opened'):
        build(dataset_type, folder, meta_info_file=str(meta_info))
    meta_info.write_text('sub/c.bmp (20,24,3) 1\n')
    dataset = build(dataset_type, folder, meta_info_file=str(meta_info))
    assert dataset.paths == [str(folder / 'sub/c.bmp')] and dataset.names == ['sub/c']
    with pytest.raises(FileNotFoundError, match='meta_info_file .* is not a file: .*nothing.txt'):
        build(dataset_type, folder, meta_info_file=str(tmp_path / 'nothing.txt'))


@pytest.mark.parametrize('dataset_type', DATASETS)
def test_lmdb_keys_and_values_are_checked(dataset_type, folder, tmp_path):
    lmdb_path = str(tmp_path / 'images.lmdb')
    make_lmdb_from_imgs(str(folder), lmdb_path, ['a.png', 'sub/c.bmp'], ['a', 'c'], map_size=1 << 22)
    dataset = build(dataset_type, lmdb_path, io_backend={'type': 'lmdb'})
    assert dataset.paths == dataset.names == ['a', 'c']
    assert dataset[1]['gt'].shape == (3, 20, 24)
    del dataset  # closes its lmdb environment: LMDB opens a database once per process

    with open(f'{lmdb_path}/meta_info.txt', 'a') as f:
        f.write('ghost.png (20,24,3) 1\n')
    with pytest.raises(ValueError, match=r'1 of 3 images in dataroot_gt .*\n  ghost: no such key in the database'):
        build(dataset_type, lmdb_path, io_backend={'type': 'lmdb'})
    with pytest.raises(FileNotFoundError, match='is not an lmdb folder .*: .*images$'):
        build(dataset_type, folder, io_backend={'type': 'lmdb'})


@pytest.mark.parametrize('dataset_type', DATASETS)
def test_unknown_color_is_refused(dataset_type, folder):
    with pytest.raises(ValueError, match="color of dataset 'tiny' must be one of .*'gray'.*, got 'y'"):
        build(dataset_type, folder, color='y')


@pytest.mark.parametrize('dataset_type', DATASETS)
def test_scale_must_be_one(dataset_type, folder):
    with pytest.raises(ValueError, match='keeps the image size: scale must be 1, got 2'):
        build(dataset_type, folder, scale=2)


def test_sample_rng():
    val = {'phase': 'val', 'seed': 3}
    assert sample_rng(val, 'a').random() == sample_rng(dict(val), 'a').random()
    assert sample_rng(val, 'a').random() != sample_rng(val, 'b').random()
    assert sample_rng(val, 'a', 1).random() != sample_rng(val, 'a', 2).random()
    assert sample_rng(val, 'a').random() != sample_rng({'phase': 'val'}, 'a').random()  # default seed 0
    # training draws from Python's random, which PyTorch reseeds per worker and epoch
    random.seed(5)
    first = sample_rng({'phase': 'train'}, 'a').random()
    assert sample_rng({'phase': 'train'}, 'a').random() != first
    random.seed(5)
    assert sample_rng({'phase': 'train'}, 'a').random() == first
