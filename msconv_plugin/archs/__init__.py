import importlib
from os import path as osp

from basicsr.utils import scandir

# Import every ``*_arch.py`` of this folder so that its networks register into BasicSR's ARCH_REGISTRY.
arch_folder = osp.dirname(osp.abspath(__file__))
arch_filenames = [osp.splitext(osp.basename(v))[0] for v in scandir(arch_folder) if v.endswith('_arch.py')]
_arch_modules = [importlib.import_module(f'msconv_plugin.archs.{file_name}') for file_name in arch_filenames]
