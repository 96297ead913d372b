import numpy as np
from basicsr.data.data_util import paths_from_lmdb
from basicsr.data.transforms import augment, mod_crop, paired_random_crop
from basicsr.utils import FileClient, bgr2ycbcr, img2tensor, scandir
from basicsr.utils.matlab_functions import imresize
from basicsr.utils.registry import DATASET_REGISTRY
from os import path as osp
from torch.utils import data as data
from torchvision.transforms.functional import normalize

from msconv_plugin.data.data_util import IMG_EXTENSIONS
from msconv_plugin.data.image_io import imfrombytes


def bicubic_downsample(img_gt, scale):
    """The LR image of the bicubic degradation: MATLAB's ``imresize(img, 1/scale)`` stored as 8 bits.

    Args:
        img_gt (ndarray): HR image, HWC, [0, 1], float32; height and width multiples of ``scale``.
        scale (int): Downsampling factor.

    Returns:
        ndarray: LR image, HWC, [0, 1], float32, values on the 8-bit grid k/255 (rounded half up, as MATLAB's
        conversion to uint8 does), like the LR PNG files of the SR benchmarks.
    """
    img_lq = imresize(img_gt, 1 / scale)
    # imresize returns a CHW array seen as HWC; BasicSR's augment flips in place with OpenCV, which needs C order.
    return np.ascontiguousarray(np.floor(np.clip(img_lq, 0, 1) * 255. + 0.5) / 255., dtype=np.float32)


@DATASET_REGISTRY.register()
class BicubicSRDataset(data.Dataset):
    """HR images only; the LR (LQ) image is made on the fly by MATLAB-compatible bicubic downsampling.

    For test sets that ship HR images only (Set5, Set14, BSD68, ...) and for training on plain image folders. The
    HR image is cropped to a multiple of ``scale`` (bottom/right; of ``mod_crop`` when given), the LR image is
    ``basicsr.utils.matlab_functions.imresize(gt, 1 / scale)`` rounded to 8 bits (``bicubic_downsample``). Output
    is the same as ``PairedImageDataset``'s. Images are read by ``msconv_plugin.data.image_io.imfrombytes``:
    grayscale ones become three equal channels, an alpha channel is ignored, 16-bit ones keep their precision
    (the GT; the LR is rounded to 8 bits all the same), and a file that does not decode is named in the error.

    There are three modes, as in ``PairedImageDataset``:
    1. 'lmdb': ``io_backend: {type: lmdb}``; ``dataroot_gt`` is an lmdb folder with its ``meta_info.txt``.
    2. 'meta_info_file': other backends with ``meta_info_file`` set: image names relative to ``dataroot_gt``.
    3. 'folder': the image files (by extension) found in ``dataroot_gt`` and its sub-folders.

    Args:
        opt (dict): Config for train datasets. It contains the following keys:
            dataroot_gt (str): Data root path for gt.
            meta_info_file (str): Path for meta information file.
            io_backend (dict): IO backend type and other kwarg.
            gt_size (int): Cropped patched size for gt patches (train phase).
            use_hflip (bool): Use horizontal flips (train phase).
            use_rot (bool): Use rotation (use vertical flip and transposing h and w for implementation) (train
                phase).
            color (str): 'y' returns the Y channel (of YCbCr) only. Default: RGB.
            mean (list[float]), std (list[float]): Normalize lq and gt with them. Default: none.
            mod_crop (int): Crop the HR image to a multiple of this, a multiple of ``scale`` (for networks whose
                input must be a multiple of something, as RRDBNet's at x2: the GTmod12 of BasicSR's benchmarks).
                Default: ``scale``.

            scale (int): Scale, which will be added automatically.
            phase (str): 'train' or 'val'.
    """

    def __init__(self, opt):
        super(BicubicSRDataset, self).__init__()
        self.opt = opt
        self.file_client = None
        self.io_backend_opt = opt['io_backend']
        self.mean = opt['mean'] if 'mean' in opt else None
        self.std = opt['std'] if 'std' in opt else None
        self.gt_folder = opt['dataroot_gt']
        self.mod_crop = opt['scale'] if opt.get('mod_crop') is None else opt['mod_crop']
        if (not isinstance(self.mod_crop, int) or isinstance(self.mod_crop, bool) or self.mod_crop < 1
                or self.mod_crop % opt['scale']):
            raise ValueError(f"mod_crop of dataset {opt.get('name')!r} must be a positive multiple of scale "
                             f"{opt['scale']}, got {self.mod_crop!r}.")

        if not osp.isdir(self.gt_folder):
            raise FileNotFoundError(f"dataroot_gt of dataset {opt.get('name')!r} is not a folder: {self.gt_folder}")
        if self.io_backend_opt['type'] == 'lmdb':
            self.io_backend_opt['db_paths'] = [self.gt_folder]
            self.io_backend_opt['client_keys'] = ['gt']
            self.paths = paths_from_lmdb(self.gt_folder)
        elif 'meta_info_file' in self.opt and self.opt['meta_info_file'] is not None:
            with open(self.opt['meta_info_file'], 'r') as fin:
                self.paths = [osp.join(self.gt_folder, line.strip().split(' ')[0]) for line in fin if line.strip()]
        else:
            self.paths = sorted(
                osp.join(self.gt_folder, v) for v in scandir(self.gt_folder, recursive=True)
                if v.lower().endswith(IMG_EXTENSIONS))
        if not self.paths:
            raise ValueError(f"No images in dataroot_gt of dataset {opt.get('name')!r}: {self.gt_folder} "
                             f'(looked for {", ".join(IMG_EXTENSIONS)}).')

    def __getitem__(self, index):
        if self.file_client is None:
            self.file_client = FileClient(self.io_backend_opt.pop('type'), **self.io_backend_opt)

        scale = self.opt['scale']

        # Load the gt image. Dimension order: HWC; channel order: BGR; image range: [0, 1], float32.
        gt_path = self.paths[index]
        img_gt = mod_crop(imfrombytes(self.file_client.get(gt_path, 'gt'), float32=True, path=gt_path), self.mod_crop)
        img_lq = bicubic_downsample(img_gt, scale)

        # augmentation for training
        if self.opt['phase'] == 'train':
            img_gt, img_lq = paired_random_crop(img_gt, img_lq, self.opt['gt_size'], scale, gt_path)
            img_gt, img_lq = augment([img_gt, img_lq], self.opt['use_hflip'], self.opt['use_rot'])

        # color space transform
        if 'color' in self.opt and self.opt['color'] == 'y':
            img_gt = bgr2ycbcr(img_gt, y_only=True)[..., None]
            img_lq = bgr2ycbcr(img_lq, y_only=True)[..., None]

        # BGR to RGB, HWC to CHW, numpy to tensor
        img_gt, img_lq = img2tensor([img_gt, img_lq], bgr2rgb=True, float32=True)
        if self.mean is not None or self.std is not None:
            normalize(img_lq, self.mean, self.std, inplace=True)
            normalize(img_gt, self.mean, self.std, inplace=True)

        # The LR image has no file of its own; lq_path (which names SRModel's result images) is the gt path.
        return {'lq': img_lq, 'gt': img_gt, 'lq_path': gt_path, 'gt_path': gt_path}

    def __len__(self):
        return len(self.paths)
