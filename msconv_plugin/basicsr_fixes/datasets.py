"""Clear errors for bad data.

1. Unreadable images. BasicSR's ``PairedImageDataset`` and ``SingleImageDataset`` fail on a corrupt file with
   ``'NoneType' object has no attribute 'astype'``. They get ``msconv_plugin.data.image_io.imfrombytes`` (which
   also keeps 16-bit images at full precision), and an unreadable image is named with its dataset.
2. Empty datasets. A dataset without images fails later with ``ZeroDivisionError`` (training) or
   ``UnboundLocalError`` (validation). ``build_dataset`` refuses it, naming its folders.
"""
import functools

from ..data.image_io import UnreadableImageError, imfrombytes
from .patching import replace, shipped

# 1. Unreadable images


def _decodes(content):
    try:
        imfrombytes(content)
    except UnreadableImageError:
        return False
    return True


def name_unreadable_image(getitem):
    """Wrap a BasicSR dataset's ``__getitem__``: an image that does not decode is named with its dataset."""

    @functools.wraps(getitem)
    def wrapper(self, index):
        try:
            return getitem(self, index)
        except UnreadableImageError:
            item = self.paths[index]
            keyed_paths = item.items() if isinstance(item, dict) else [('lq_path', item)]  # SingleImageDataset
            unreadable = [
                path for key, path in keyed_paths if not _decodes(self.file_client.get(path, key[:-len('_path')]))
            ]
            if not unreadable:
                raise
            raise UnreadableImageError(
                f'Cannot read image {" and ".join(unreadable)} of dataset {self.opt.get("name")!r}: it does not decode '
                'as an image (corrupt, truncated or not an image file).') from None

    return wrapper


# 2. Empty datasets


def build_dataset(dataset_opt):
    """``basicsr.data.build_dataset`` that refuses a dataset without images, naming where it looked."""
    import basicsr.data

    dataset = shipped(basicsr.data, 'build_dataset')(dataset_opt)
    if len(dataset) == 0:
        where = ', '.join(f'{key}: {dataset_opt[key]}' for key in ('dataroot_gt', 'dataroot_lq', 'meta_info_file')
                          if dataset_opt.get(key))
        raise ValueError(f'Dataset {dataset_opt.get("name")!r} ({dataset_opt["type"]}) has no images ({where}). '
                         'Check the folders (and filename_tmpl / meta_info_file).')
    return dataset


def apply():
    import basicsr.data
    import basicsr.data.paired_image_dataset
    import basicsr.data.single_image_dataset
    import basicsr.test
    import basicsr.train

    for module in (basicsr.data.paired_image_dataset, basicsr.data.single_image_dataset):
        replace(module, 'imfrombytes', imfrombytes)
    for dataset in (basicsr.data.paired_image_dataset.PairedImageDataset,
                    basicsr.data.single_image_dataset.SingleImageDataset):
        replace(dataset, '__getitem__', name_unreadable_image(shipped(dataset, '__getitem__')))
    # The pipelines call the functions they imported by name.
    for module in (basicsr.data, basicsr.train, basicsr.test):
        replace(module, 'build_dataset', build_dataset)
