#!/usr/bin/env bash
# The device checks of the fused trainer, for a session with a GPU (writes under ${OUT:-gpu_out}):
#   1. paper_cost.py on the paper models in fp32 (TF32) and bf16: throughput per group size and the
#      paper-scale GPU-hours, one run per job against group jobs;
#   2. the fused-equivalence tests on CUDA (fp32), to see the tolerance there.
# Table 3.3 at paper scale additionally needs the inputs on the device machine (results/data/ and the
# GloVe rows) and `snakemake --cores 16 results/tables/table3_3.md`; see benchmarks/README.md.
set -euo pipefail
out=${OUT:-gpu_out}
mkdir -p "$out"
python benchmarks/paper_cost.py --device cuda --steps 30 --precision fp32 | tee "$out/paper_cost_fp32.txt"
python benchmarks/paper_cost.py --device cuda --steps 30 --precision bf16 \
    --models resnet34a:32,preact_resnet18:128 | tee "$out/paper_cost_bf16.txt"
nvidia-smi > "$out/nvidia_smi.txt" || true
