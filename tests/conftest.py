# The plugin must be imported before BasicSR (it makes BasicSR 1.4.2 importable on today's torchvision).
import msconv_plugin
import pytest


@pytest.fixture(autouse=True, scope='session')
def basicsr_patched():
    """Run the tests against BasicSR as the plugin's entry points run it: with ``msconv_plugin.patch_basicsr()``."""
    msconv_plugin.patch_basicsr()
    yield
    msconv_plugin.unpatch_basicsr()
