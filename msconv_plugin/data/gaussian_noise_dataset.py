from basicsr.data.transforms import augment, mod_crop
from basicsr.utils import FileClient, img2tensor
from basicsr.utils.registry import DATASET_REGISTRY
from torch.utils import data as data

from .data_util import add_gaussian_noise, check_color, level_range, random_crop, read_image, sample_rng, scan_images


@DATASET_REGISTRY.register()
class GaussianNoiseDataset(data.Dataset):
    """Clean images only; the noisy (LQ) image is the clean one plus white Gaussian noise, made on the fly.

    For denoising (``scale: 1``): noisy = clean + N(0, (sigma/255)²), independent per pixel and channel, not clipped
    unless ``clip: true`` (the protocol of the CBSD68/BSD68 benchmarks). Training crops a random ``gt_size`` patch,
    flips and rotates it, and draws fresh noise (and, with ``sigma_range``, a fresh sigma) for every sample.
    Validation and test draw the noise of each image from a generator seeded by ``seed`` and the image's name
    (``sample_rng``): the same noisy image on every run, whatever the order, the workers or the machine.

    Image lists work as in ``BicubicSRDataset`` (lmdb, meta_info_file, folder) and are checked when the dataset is
    built: a missing or empty data root, an unreadable or truncated image is an error naming the path.

    Args:
        opt (dict): Config for train datasets. It contains the following keys:
            dataroot_gt (str): Data root path for the clean images (folder, or ``.lmdb`` with the lmdb backend).
            meta_info_file (str): Path for meta information file (image names relative to dataroot_gt).
            io_backend (dict): IO backend type and other kwarg.
            sigma (float): Noise standard deviation on the 0-255 scale (e.g. 15, 25, 50).
            sigma_range (list[float]): [lo, hi] instead of ``sigma``: each sample draws sigma uniformly (blind
                denoising); validation/test draw it per image from the seeded generator.
            seed (int): Seed of the validation/test noise. Default: 0.
            clip (bool): Clip the noisy image to [0, 1]. Default: false.
            color (str): 'gray' reads images as one gray channel, for networks with ``num_in_ch: 1, num_out_ch: 1``
                (RRDBNet, MS3RRDBNet; not EDSR, whose mean shift has three values); RGB otherwise. Default: RGB.
            mod_crop (int): Crop height and width (bottom/right) to multiples of this first; RRDBNet at scale 1
                pixel-unshuffles by 4 and needs 4. Default: 1.
            check_images (bool): Check every image when the dataset is built. Default: true.
            gt_size (int): Cropped patch size (train phase).
            use_hflip (bool): Use horizontal flips (train phase).
            use_rot (bool): Use rotation (use vertical flip and transposing h and w for implementation) (train
                phase).

            scale (int): Scale, which will be added automatically; must be 1.
            phase (str): 'train', 'val' or 'test'.
    """

    def __init__(self, opt):
        super(GaussianNoiseDataset, self).__init__()
        self.opt = opt
        self.file_client = None
        self.io_backend_opt = opt['io_backend']
        self.gt_folder = opt['dataroot_gt']
        if opt.get('scale', 1) != 1:
            raise ValueError(f'GaussianNoiseDataset {opt.get("name")!r} keeps the image size: scale must be 1, got '
                             f'{opt["scale"]}.')
        self.color = check_color(opt)
        self.sigma_range = level_range(opt, 'sigma', 'sigma_range', required=True)
        self.paths, self.names = scan_images(opt)

    def __getitem__(self, index):
        if self.file_client is None:
            self.file_client = FileClient(self.io_backend_opt.pop('type'), **self.io_backend_opt)

        # Load the clean image. Dimension order: HWC; channel order: BGR (or gray); image range: [0, 1], float32.
        gt_path = self.paths[index]
        img_gt = read_image(self.file_client, gt_path, 'gt', self.color)
        img_gt = mod_crop(img_gt, self.opt.get('mod_crop', 1))

        if self.opt['phase'] == 'train':
            img_gt = random_crop(img_gt, self.opt['gt_size'], gt_path)
            img_gt = augment(img_gt, self.opt['use_hflip'], self.opt['use_rot'])

        rng = sample_rng(self.opt, self.names[index])
        sigma = rng.uniform(*self.sigma_range)
        img_lq = add_gaussian_noise(img_gt, sigma, rng, self.opt.get('clip', False))

        # BGR to RGB, HWC to CHW, numpy to tensor
        img_gt, img_lq = img2tensor([img_gt, img_lq], bgr2rgb=True, float32=True)
        return {'lq': img_lq, 'gt': img_gt, 'lq_path': gt_path, 'gt_path': gt_path, 'sigma': sigma}

    def __len__(self):
        return len(self.paths)
