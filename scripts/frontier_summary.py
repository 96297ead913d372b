"""Every MS³ network of the frontier studies in one table and plot: its distance to its own study's plain line.

    python scripts/frontier_summary.py            # every docs/quality/*_frontier*.json
    python scripts/frontier_summary.py docs/quality/EDSR_Mx2_b16_SunHays80_1k_lr4e-4_B8G1_frontier_whole.json \
        docs/quality/CARN_x2_SunHays80_1k_lr4e-4_B8G1_frontier.json --name my_summary

Each input is a result of ``python -m msconv_plugin.frontier`` (docs/when_to_use_ms3.md); writes ``<name>.json``,
``.md`` and ``.png`` to ``--out`` (default docs/quality): one row per MS³ network, with its ΔPSNR at equal
multiply-adds and at equal latency (mean [min, max] over seeds), and how many reach the +0.10 dB target.
"""
import sys

from msconv_plugin.cli import run
from msconv_plugin.frontier import summary_main

if __name__ == '__main__':
    sys.exit(run(summary_main))
