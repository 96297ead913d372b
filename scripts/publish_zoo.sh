#!/usr/bin/env bash
# Publishes the model zoo (weights/, model_zoo.json, docs/model_zoo.md, options/test/zoo/) from the runs of the
# equal-budget studies, which train every network and test it on Set5, Set14 and BSD68:
#
#   python scripts/prepare_dataset.py sr ../shared/data/train/SunHays80 --scales 2 3 4 --crop-size 240 --step 180 \
#       --out-root datasets/SunHays80
#   python scripts/compare_quality.py --opt options/train/SunHays80/train_EDSR_Mx2_SunHays80.yml --n-scales 2 3 --threads 1
#   python scripts/compare_quality.py --opt options/train/SunHays80/train_CARN_x2_SunHays80.yml --n-scales 2 3 --threads 1
#   python scripts/compare_quality.py --opt options/train/SunHays80/train_EDSR_Mx4_SunHays80.yml --n-scales 2 --threads 1
#   python scripts/compare_quality.py --opt options/train/SunHays80/train_EDSR_denoise_sigma25_SunHays80.yml \
#       --n-scales 2 --threads 1
#   python scripts/compare_quality.py --opt options/train/SunHays80/train_EDSR_deblur_synthetic_SunHays80.yml \
#       --n-scales 2 --threads 1
#
# then: bash scripts/publish_zoo.sh (each model's published file is checked against its study's Set5 PSNR).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
O=options/train/SunHays80

publish() {  # zoo name, experiment, training options, study, counterpart
    "$PY" scripts/publish_model.py "experiments/$2/models/net_g_latest.pth" --opt "$3" --name "$1" \
        --metrics-json "docs/quality/$4.json" --counterpart "$5" --threads 1 > /dev/null
    echo "published $1"
}

S=EDSR_Mx2_f64b16_SunHays80_3k_B8G1
publish EDSR_Mx2_SunHays80 $S $O/train_EDSR_Mx2_SunHays80.yml $S MS3EDSR_Mx2_SunHays80
publish MS3EDSR_Mx2_SunHays80 MS3${S}_n2 $O/train_MS3EDSR_Mx2_SunHays80.yml $S EDSR_Mx2_SunHays80
S=EDSR_Mx4_f64b16_SunHays80_1500_B8G1
publish EDSR_Mx4_SunHays80 $S $O/train_EDSR_Mx4_SunHays80.yml $S MS3EDSR_Mx4_SunHays80
publish MS3EDSR_Mx4_SunHays80 MS3${S}_n2 $O/train_MS3EDSR_Mx4_SunHays80.yml $S EDSR_Mx4_SunHays80
S=CARN_x2_f64_SunHays80_3k_B8G1
publish CARN_x2_SunHays80 $S $O/train_CARN_x2_SunHays80.yml $S MS3CARN_x2_SunHays80
publish MS3CARN_x2_SunHays80 MS3${S}_n2 $O/train_MS3CARN_x2_SunHays80.yml $S CARN_x2_SunHays80
S=EDSR_M_denoise_sigma25_f64b16_SunHays80_600_B8G1
publish EDSR_M_denoise_sigma25_SunHays80 $S $O/train_EDSR_denoise_sigma25_SunHays80.yml $S \
    MS3EDSR_M_denoise_sigma25_SunHays80
publish MS3EDSR_M_denoise_sigma25_SunHays80 MS3${S}_n2 $O/train_MS3EDSR_denoise_sigma25_SunHays80.yml $S \
    EDSR_M_denoise_sigma25_SunHays80
S=EDSR_M_deblur_synthetic_f64b16_SunHays80_600_B8G1
publish EDSR_M_deblur_synthetic_SunHays80 $S $O/train_EDSR_deblur_synthetic_SunHays80.yml $S \
    MS3EDSR_M_deblur_synthetic_SunHays80
publish MS3EDSR_M_deblur_synthetic_SunHays80 MS3${S}_n2 $O/train_MS3EDSR_deblur_synthetic_SunHays80.yml $S \
    EDSR_M_deblur_synthetic_SunHays80
