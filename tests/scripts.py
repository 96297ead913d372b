"""Load a command-line script of ``scripts/`` as a module, to call its ``main(argv)`` in the test process."""
import importlib.util
from os import path as osp

SCRIPTS = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'scripts')


def load_script(name):
    """The module of ``scripts/<name>.py``."""
    spec = importlib.util.spec_from_file_location(name, osp.join(SCRIPTS, f'{name}.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
