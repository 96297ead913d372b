import importlib
from os import path as osp

from basicsr.utils import scandir

# Import every ``*_dataset.py`` of this folder so that its datasets register into BasicSR's DATASET_REGISTRY.
data_folder = osp.dirname(osp.abspath(__file__))
dataset_filenames = [osp.splitext(osp.basename(v))[0] for v in scandir(data_folder) if v.endswith('_dataset.py')]
_dataset_modules = [importlib.import_module(f'msconv_plugin.data.{file_name}') for file_name in dataset_filenames]
