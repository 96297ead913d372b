# The plugin must be imported before BasicSR (it makes BasicSR 1.4.2 importable on today's torchvision).
import msconv_plugin
import pytest

# The tests run against BasicSR as the plugin's entry points run it. Patched here, before the test modules are
# collected, because some import BasicSR's functions by name (``from basicsr.data import build_dataset``).
msconv_plugin.patch_basicsr()


@pytest.fixture(autouse=True, scope='session')
def basicsr_patched():
    """Undo ``msconv_plugin.patch_basicsr()`` when the session ends."""
    yield
    msconv_plugin.unpatch_basicsr()
