"""The built-in demo (``python -m msconv_plugin.demo``) end to end, in quick mode, as a user would start it."""
import json
import math
import os
import os.path as osp
import re
import subprocess
import sys

import cv2
import pytest

from msconv_plugin.demo import HELDOUT, LABEL_HEIGHT, PANEL_GAP, PANEL_SIZE, PANELS

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
TABLE_ROW = re.compile(r'^\| (EDSR|MS3EDSR) \|(.*)\|$', re.MULTILINE)


@pytest.mark.slow
def test_quick_demo_trains_tests_and_reports(tmp_path):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [REPO, os.environ.get('PYTHONPATH')])))
    proc = subprocess.run([sys.executable, '-m', 'msconv_plugin.demo', '--quick'],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    work_dir = tmp_path / 'demo_output'

    # The printed table: | network | params | mult-adds | PSNR-Y | SSIM-Y | train s | inference ms |
    table = {name: [cell.strip() for cell in cells.split('|')] for name, cells in TABLE_ROW.findall(proc.stdout)}
    assert set(table) == {'EDSR', 'MS3EDSR'}, proc.stdout
    params = {name: int(cells[0].replace(',', '')) for name, cells in table.items()}
    psnr = {name: float(cells[2]) for name, cells in table.items()}
    ssim = {name: float(cells[3]) for name, cells in table.items()}
    for name in table:
        assert math.isfinite(psnr[name]) and psnr[name] > 20, proc.stdout
        assert 0 < ssim[name] <= 1
    assert params['MS3EDSR'] < params['EDSR']

    summary = json.loads((work_dir / 'results.json').read_text())
    assert list(summary['rows']) == ['Bicubic', 'EDSR', 'MS3EDSR']
    for name in table:
        row = summary['rows'][name]
        assert row['params'] == params[name]
        assert round(row['psnr_y'], 2) == psnr[name]
        assert set(row['per_image']) == set(HELDOUT)
        assert row['macs'] > 0 and row['inference_ms'] > 0 and row['train_time_s'] > 0
        # The table re-scores the images BasicSR's test pipeline saved: its logged mean must agree.
        logged = re.search(r'# psnr: (\d+\.\d+)', (work_dir / 'logs' / f'test_{name}.log').read_text())
        assert abs(float(logged.group(1)) - row['psnr_y']) < 1e-4
    assert (work_dir / 'results.md').read_text().strip() in proc.stdout

    figure = work_dir / 'comparison.png'
    assert f'Comparison of crops: {figure}' in proc.stdout
    height, width = cv2.imread(str(figure)).shape[:2]
    assert width == len(PANELS) * PANEL_SIZE + (len(PANELS) - 1) * PANEL_GAP
    assert height == len(HELDOUT) * (LABEL_HEIGHT + PANEL_SIZE)
