from os import path as osp

from basicsr.data.transforms import augment, mod_crop, paired_random_crop
from basicsr.utils import FileClient, img2tensor
from basicsr.utils.registry import DATASET_REGISTRY
from torch.utils import data as data

from .data_util import add_gaussian_noise, check_color, level_range, read_image, sample_rng, scan_images
from .degradations import BORDERS, KERNEL_TYPES, blur, load_kernels, random_kernel

PAIRINGS = ('cycle', 'all')
GENERATOR_DEFAULTS = {
    'kernel_list': ['iso', 'aniso', 'motion'],
    'kernel_prob': [0.25, 0.25, 0.5],
    'blur_kernel_size': 25,
    'blur_sigma': [0.5, 4.],
    'betag_range': [0.5, 4.],
    'betap_range': [1., 2.],
    'motion_length': [5., 25.],
}


def _check_range(name, key, value, minimum=0.):
    if (not isinstance(value, (list, tuple)) or len(value) != 2
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
            or not minimum <= value[0] <= value[1]):
        raise ValueError(f'{key} of dataset {name!r} must be [lo, hi] with {minimum} <= lo <= hi, got {value!r}.')


@DATASET_REGISTRY.register()
class SyntheticBlurDataset(data.Dataset):
    """Sharp images only; the blurred (LQ) image is the sharp one convolved with a blur kernel, plus optional noise.

    For deblurring (``scale: 1``). The kernels either come from ``kernel_file`` (``.mat`` or ``.npy``, see
    ``degradations.load_kernels``) or are drawn at random: BasicSR's Gaussian families ('iso', 'aniso',
    'generalized_iso', 'generalized_aniso', 'plateau_iso', 'plateau_aniso') and camera-shake 'motion' kernels
    (``degradations.motion_kernel``). The blur is a true convolution of the whole image (borders extended by
    ``blur_border``), then white Gaussian noise (``noise_sigma`` or ``noise_range``, 0-255 scale) is added.

    Which kernel an image gets:

    - training: a random kernel of the file, or a freshly drawn one, for every sample; then a random ``gt_size``
      crop, flips and rotations as in ``PairedImageDataset``;
    - validation/test with ``kernel_file``: ``kernel_pairing: cycle`` (default) blurs image i with kernel
      i mod K; ``all`` blurs every image with every kernel (N·K samples, image-major). Result files are named
      ``<image>_k<kernel number, from 1>``;
    - validation/test without ``kernel_file``: a kernel drawn for each image.

    Validation and test draw everything random (generated kernel, noise) from a generator seeded by ``seed``, the
    image's name and the kernel number (``sample_rng``): the same blurred image on every run.

    Image lists work as in ``BicubicSRDataset`` (lmdb, meta_info_file, folder); they and the kernel file are
    checked when the dataset is built, with errors naming the path (and the variable) and what was expected.

    Args:
        opt (dict): Config for train datasets. It contains the following keys:
            dataroot_gt (str): Data root path for the sharp images (folder, or ``.lmdb`` with the lmdb backend).
            meta_info_file (str): Path for meta information file (image names relative to dataroot_gt).
            io_backend (dict): IO backend type and other kwarg.
            kernel_file (str): ``.mat`` or ``.npy`` file of kernels. Default: none (kernels are drawn).
            kernel_key (str): Variable of a ``.mat`` kernel file. Default: 'kernels'.
            kernel_pairing (str): 'cycle' or 'all' (validation/test with a kernel file). Default: 'cycle'.
            kernel_list (list[str]): Types of drawn kernels. Default: [iso, aniso, motion].
            kernel_prob (list[float]): Their probabilities. Default: [0.25, 0.25, 0.5].
            blur_kernel_size (int): Odd size of drawn kernels. Default: 25.
            blur_sigma (list[float]): Gaussian standard deviation range. Default: [0.5, 4].
            betag_range (list[float]): Generalized Gaussian shape range. Default: [0.5, 4].
            betap_range (list[float]): Plateau shape range. Default: [1, 2].
            motion_length (list[float]): Motion path length range in pixels. Default: [5, 25].
            blur_border (str): 'reflect', 'symmetric', 'edge' or 'wrap' (see ``degradations.blur``). Default:
                'reflect'.
            noise_sigma (float): Noise standard deviation (0-255 scale). Default: no noise.
            noise_range (list[float]): [lo, hi] instead of ``noise_sigma``, drawn per sample.
            clip (bool): Clip the blurred, noisy image to [0, 1]. Default: false.
            seed (int): Seed of validation/test draws. Default: 0.
            color (str): 'gray' for one gray channel; RGB otherwise. Default: RGB.
            mod_crop (int): Crop height and width (bottom/right) to multiples of this first. Default: 1.
            check_images (bool): Check every image when the dataset is built. Default: true.
            gt_size (int): Cropped patch size (train phase).
            use_hflip (bool): Use horizontal flips (train phase).
            use_rot (bool): Use rotation (train phase).

            scale (int): Scale, which will be added automatically; must be 1.
            phase (str): 'train', 'val' or 'test'.
    """

    def __init__(self, opt):
        super(SyntheticBlurDataset, self).__init__()
        self.opt = opt
        self.file_client = None
        self.io_backend_opt = opt['io_backend']
        self.gt_folder = opt['dataroot_gt']
        name = opt.get('name')
        if opt.get('scale', 1) != 1:
            raise ValueError(f'SyntheticBlurDataset {name!r} keeps the image size: scale must be 1, got '
                             f'{opt["scale"]}.')
        self.color = check_color(opt)
        self.border = opt.get('blur_border', 'reflect')
        if self.border not in BORDERS:
            raise ValueError(f'blur_border of dataset {name!r} must be one of {BORDERS}, got {self.border!r}.')
        self.noise_range = level_range(opt, 'noise_sigma', 'noise_range', required=False)

        self.pairing = opt.get('kernel_pairing', 'cycle')
        if self.pairing not in PAIRINGS:
            raise ValueError(f'kernel_pairing of dataset {name!r} must be one of {PAIRINGS}, got {self.pairing!r}.')
        if opt.get('kernel_file') is not None:
            self.kernels = load_kernels(opt['kernel_file'], opt.get('kernel_key', 'kernels'))
        else:
            self.kernels = None
            self.generator = self._generator_options(opt)
            if self.pairing == 'all':
                raise ValueError(f'kernel_pairing: all of dataset {name!r} needs a kernel_file.')
        self.paths, self.names = scan_images(opt)

    @staticmethod
    def _generator_options(opt):
        name = opt.get('name')
        gen = {key: opt.get(key, default) for key, default in GENERATOR_DEFAULTS.items()}
        unknown = [t for t in gen['kernel_list'] if t not in KERNEL_TYPES]
        if unknown or not gen['kernel_list']:
            raise ValueError(f'kernel_list of dataset {name!r} must name kernel types from {KERNEL_TYPES}, got '
                             f'{gen["kernel_list"]!r}.')
        if (len(gen['kernel_prob']) != len(gen['kernel_list']) or min(gen['kernel_prob']) < 0
                or sum(gen['kernel_prob']) <= 0):
            raise ValueError(f'kernel_prob of dataset {name!r} must give one non-negative probability per kernel_list '
                             f'entry, got {gen["kernel_prob"]!r} for {gen["kernel_list"]!r}.')
        size = gen['blur_kernel_size']
        if not isinstance(size, int) or size < 3 or size % 2 == 0:
            raise ValueError(f'blur_kernel_size of dataset {name!r} must be an odd integer >= 3, got {size!r}.')
        _check_range(name, 'blur_sigma', gen['blur_sigma'], minimum=1e-3)
        _check_range(name, 'betag_range', gen['betag_range'], minimum=1e-3)
        _check_range(name, 'betap_range', gen['betap_range'], minimum=1e-3)
        _check_range(name, 'motion_length', gen['motion_length'])
        return {'kernel_size' if key == 'blur_kernel_size' else key: value for key, value in gen.items()}

    def _pick(self, index):
        """(image index, kernel number from 1, or 0 for a drawn kernel)."""
        if self.kernels is None or self.opt['phase'] == 'train':
            return index, 0
        if self.pairing == 'all':
            image_index, kernel_index = divmod(index, len(self.kernels))
            return image_index, kernel_index + 1
        return index, index % len(self.kernels) + 1

    def __getitem__(self, index):
        if self.file_client is None:
            self.file_client = FileClient(self.io_backend_opt.pop('type'), **self.io_backend_opt)

        image_index, kernel_number = self._pick(index)
        gt_path = self.paths[image_index]
        img_gt = read_image(self.file_client, gt_path, 'gt', self.color)
        img_gt = mod_crop(img_gt, self.opt.get('mod_crop', 1))

        rng = sample_rng(self.opt, self.names[image_index], kernel_number)
        if self.kernels is None:
            kernel = random_kernel(rng, **self.generator)
        elif kernel_number == 0:
            kernel = self.kernels[rng.integers(len(self.kernels))]
        else:
            kernel = self.kernels[kernel_number - 1]
        img_lq = blur(img_gt, kernel, self.border)
        sigma = rng.uniform(*self.noise_range)
        if sigma > 0:
            img_lq = add_gaussian_noise(img_lq, sigma, rng, self.opt.get('clip', False))

        if self.opt['phase'] == 'train':
            img_gt, img_lq = paired_random_crop(img_gt, img_lq, self.opt['gt_size'], 1, gt_path)
            img_gt, img_lq = augment([img_gt.copy(), img_lq.copy()], self.opt['use_hflip'], self.opt['use_rot'])

        lq_path = gt_path
        if kernel_number:
            root, ext = osp.splitext(gt_path)
            lq_path = f'{root}_k{kernel_number:02d}{ext}'
        img_gt, img_lq = img2tensor([img_gt, img_lq], bgr2rgb=True, float32=True)
        return {'lq': img_lq, 'gt': img_gt, 'lq_path': lq_path, 'gt_path': gt_path}

    def __len__(self):
        return len(self.paths) * (len(self.kernels) if self.kernels is not None and self.pairing == 'all'
                                  and self.opt['phase'] != 'train' else 1)
