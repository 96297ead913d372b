"""Learning curve of one frontier family: the same networks and recipe at several numbers of iterations.

    python scripts/learning_curve.py docs/quality/EDSR_Mx2_b16_SunHays80_1k_lr4e-4_B8G1_frontier.json \
        docs/quality/EDSR_Mx2_b16_SunHays80_3k_lr4e-4_B8G1_frontier.json --name EDSR_Mx2_SunHays80_learning_curve

Each input is a result of ``python -m msconv_plugin.frontier`` (docs/when_to_use_ms3.md); writes
``<name>.json``, ``.md`` and ``.png`` to ``--out`` (default docs/quality): mean PSNR per network and budget, and each
MS³ network's distance to the plain line at equal multiply-adds per budget.
"""
import sys

from msconv_plugin.cli import run
from msconv_plugin.frontier import learning_curve_main

if __name__ == '__main__':
    sys.exit(run(learning_curve_main))
