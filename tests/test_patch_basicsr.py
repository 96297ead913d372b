"""``import msconv_plugin`` leaves BasicSR's trainer alone; ``patch_basicsr`` applies the fixes, ``unpatch_basicsr``
takes them back. Run in a fresh interpreter: the test session itself runs patched (tests/conftest.py)."""
import subprocess
import sys

CHECK = '''
import msconv_plugin
import basicsr.train
from basicsr.models.base_model import BaseModel
from msconv_plugin.basicsr_fixes import checkpoints, mismatch, patching

def current():
    return BaseModel.save_network, BaseModel.load_network, basicsr.train.load_resume_state

own = current()
assert [f.__module__ for f in own] == ['basicsr.models.base_model'] * 2 + ['basicsr.train'], own
assert patching.replaced() == []
replaced = msconv_plugin.patch_basicsr()
assert current() == (checkpoints.save_network, mismatch.load_network, checkpoints.load_resume_state), current()
assert {'basicsr.models.base_model.BaseModel.save_network', 'basicsr.models.base_model.BaseModel.load_network',
        'basicsr.train.load_resume_state'} <= set(replaced), replaced
assert msconv_plugin.patch_basicsr() == replaced and current()[0] is checkpoints.save_network  # idempotent
msconv_plugin.unpatch_basicsr()
assert current() == own and patching.replaced() == []
print(len(replaced))
'''


def test_import_patches_nothing_and_patch_basicsr_is_undone():
    proc = subprocess.run([sys.executable, '-c', CHECK], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert int(proc.stdout) >= 20  # every fix of the README's list

