"""Scale-out on CPU: 2-process DDP (torchrun, gloo), DeepSpeed ZeRO-2/ZeRO-3 (DS_ACCELERATOR=cpu), bf16, fp16 refusal.

Every launcher is the running interpreter's (`sys.executable -m ...`), every child has a time limit and a failure
shows its last lines of output. DeepSpeed compiles a small op with g++ the first time it starts (a minute or
two): here into this test run's own TORCH_EXTENSIONS_DIR, once per run, while the default folder of the
children's HOME holds a stale lock (what a build killed half-way leaves), which would otherwise make them wait
forever.
"""

import json
import os
import re
import socket
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from transformers import AutoTokenizer

from modeling import ScreeningForSequenceClassification
from screening.metrics import screening_metrics

from .cli_runner import last_lines, run_command
from .conftest import DEMO_TRAIN, REPO

pytest.importorskip("deepspeed")

VALIDATION_ROWS, TEST_ROWS = 23, 41  # odd sizes: 2 ranks x batch 4 need padding that must not be counted
DS_CONFIGS = ("zero2.json", "zero3.json", "zero3_offload.json")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(command, env=None):
    return run_command(command, cwd=REPO, env={**os.environ, "OMP_NUM_THREADS": "1", **CHILD_ENV, **(env or {})})


def output(result):
    return last_lines(result.stdout, result.stderr)


CHILD_ENV = {}
"""HOME and TORCH_EXTENSIONS_DIR of every child, set once per test run by `extensions_dir`."""
SHM_OP = "deepspeed_shm_comm"


def default_build_dir(env):
    """Where torch builds DeepSpeed's shared-memory op without TORCH_EXTENSIONS_DIR, for a child with `env`."""
    code = f"from torch.utils.cpp_extension import _get_build_directory as d; print(d({SHM_OP!r}, False))"
    env = {k: v for k, v in {**os.environ, **env}.items() if k != "TORCH_EXTENSIONS_DIR"}
    result = run_command([sys.executable, "-c", code], env=env, timeout=120)
    assert result.returncode == 0, output(result)
    return Path(result.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module", autouse=True)
def extensions_dir(tmp_path_factory):
    """This run's own extensions folder, and a HOME whose default extensions folder has a stale build lock."""
    root = tmp_path_factory.mktemp("extensions")
    home = root / "home"
    cache = {"HOME": str(home), "XDG_CACHE_HOME": str(home / ".cache")}
    stale = default_build_dir(cache) / "lock"  # also creates the folder, as torch does
    stale.touch()
    CHILD_ENV.update(cache, TORCH_EXTENSIONS_DIR=str(root / "torch_extensions"))
    yield root / "torch_extensions", stale
    CHILD_ENV.clear()


@pytest.fixture(scope="module")
def split_data(tmp_path_factory):
    """Train / validation / test files cut from the demo data, with positives in train and validation."""
    path = tmp_path_factory.mktemp("ddp-data")
    frame = pd.read_csv(DEMO_TRAIN, keep_default_na=False, dtype=str)
    positives, negatives = frame[frame.judgement == "1"], frame[frame.judgement == "0"]
    train = pd.concat([positives.iloc[:8], negatives.iloc[:56]]).sample(frac=1, random_state=0)
    validation = pd.concat([positives.iloc[8:12], negatives.iloc[56 : 56 + VALIDATION_ROWS - 4]])
    test = negatives.iloc[200 : 200 + TEST_ROWS].drop(columns="judgement")
    for name, part in (("train", train), ("validation", validation.sample(frac=1, random_state=1)), ("test", test)):
        part.to_csv(path / f"{name}.csv", index=False)
    return path


def script_args(model, data, out, *extra):
    return [
        REPO / "run_classification.py",
        "--model_name_or_path",
        model,
        "--train_file",
        data / "train.csv",
        "--validation_file",
        data / "validation.csv",
        "--test_file",
        data / "test.csv",
        "--do_eval",
        "--do_predict",
        "--output_dir",
        out,
        "--max_seq_length",
        48,
        "--per_device_eval_batch_size",
        4,
        "--report_to",
        "none",
        *extra,
    ]


TRAIN = ["--do_train", "--num_train_epochs", 1, "--per_device_train_batch_size", 8, "--learning_rate", 1e-3]


@pytest.fixture(scope="module")
def ddp_runs(tiny_encoder_dir, split_data, tmp_path_factory):
    """Train + evaluate + predict in 2 processes, then evaluate + predict the saved model in 1 process."""
    root = tmp_path_factory.mktemp("ddp")
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", 2]
    two = run([*launcher, *script_args(tiny_encoder_dir, split_data, root / "two", "--use_cpu", *TRAIN)])
    assert two.returncode == 0, output(two)
    one = run([sys.executable, *script_args(root / "two", split_data, root / "one", "--use_cpu")])
    assert one.returncode == 0, output(one)
    return root, two


def test_ddp_started_two_ranks(ddp_runs):
    _, two = ddp_runs
    log = two.stdout + two.stderr
    assert "Process rank: 0, device: cpu" in log and "Process rank: 1, device: cpu" in log
    assert log.count("distributed: True") == 2


def test_ddp_eval_and_predictions_cover_every_row_once(ddp_runs, split_data):
    root, _ = ddp_runs
    validation_ids = pd.read_csv(split_data / "validation.csv", dtype=str).id
    test_ids = pd.read_csv(split_data / "test.csv", dtype=str).id
    evaluated = pd.read_csv(root / "two" / "eval_predictions.csv", dtype={"id": str})
    predicted = pd.read_csv(root / "two" / "predictions.csv", dtype={"id": str})
    assert evaluated.id.tolist() == validation_ids.tolist()  # every row once, in order, no padded duplicates
    assert predicted.id.tolist() == test_ids.tolist()
    assert len((root / "two" / "submission.csv").read_text().splitlines()) == TEST_ROWS
    metrics = json.loads((root / "two" / "eval_results.json").read_text())
    assert metrics["eval_samples"] == VALIDATION_ROWS
    # the threshold search saw exactly these rows: recomputing from the file gives the logged metrics
    recomputed = screening_metrics(evaluated.label.to_numpy(), evaluated.probability.to_numpy(), beta=7.0)
    for key in ("fbeta", "threshold", "roc_auc", "recall", "precision"):
        assert recomputed[key] == pytest.approx(metrics[f"eval_{key}"], abs=1e-6), key


def test_ddp_matches_one_process_on_same_checkpoint(ddp_runs):
    root, _ = ddp_runs
    two, one = (json.loads((root / d / "eval_results.json").read_text()) for d in ("two", "one"))
    for key in ("eval_fbeta", "eval_threshold", "eval_roc_auc", "eval_average_precision", "eval_wss_95"):
        assert two[key] == pytest.approx(one[key], abs=1e-5), key
    for name in ("eval_predictions.csv", "predictions.csv"):
        a, b = (pd.read_csv(root / d / name) for d in ("two", "one"))
        assert a.id.tolist() == b.id.tolist()
        np.testing.assert_allclose(a.probability, b.probability, atol=1e-5)
        assert a.prediction.tolist() == b.prediction.tolist()


@pytest.fixture(scope="module")
def ds_env():
    """What the `deepspeed` launcher sets for one local rank, with DeepSpeed's CPU accelerator."""
    return {
        "DS_ACCELERATOR": "cpu",
        "RANK": "0",
        "LOCAL_RANK": "0",
        "WORLD_SIZE": "1",
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(free_port()),
    }


def test_every_ds_config_is_accepted(tiny_encoder_dir, ds_env, tmp_path):
    """Trainer fills every "auto" value and DeepSpeed parses the result (batch sizes, ZeRO stage, offload)."""
    script = f"""
import json, sys
sys.path.insert(0, {str(REPO)!r})
from deepspeed.runtime.config import DeepSpeedConfig
from transformers import TrainingArguments
from transformers.integrations.deepspeed import HfTrainerDeepSpeedConfig
from modeling import ScreeningForSequenceClassification
model = ScreeningForSequenceClassification.from_pretrained({str(tiny_encoder_dir)!r})
for name in {DS_CONFIGS!r}:
    args = TrainingArguments({str(tmp_path)!r}, deepspeed={str(REPO / "ds_configs")!r} + '/' + name,
                             per_device_train_batch_size=4, gradient_accumulation_steps=2, learning_rate=3e-4,
                             report_to="none")
    hf = HfTrainerDeepSpeedConfig(args.hf_deepspeed_config.config)
    hf.trainer_config_process(args)
    hf.trainer_config_finalize(args, model, num_training_steps=10)
    assert "auto" not in json.dumps(hf.config), name
    ds = DeepSpeedConfig(hf.config)
    assert ds.train_micro_batch_size_per_gpu == 4 and ds.gradient_accumulation_steps == 2, name
    print(name, ds.zero_optimization_stage, hf.config["zero_optimization"].get("reduce_bucket_size"),
          ds.zero_config.offload_optimizer is not None, ds.zero_config.offload_param is not None)
"""
    result = run([sys.executable, "-c", script], env=ds_env)
    assert result.returncode == 0, output(result)
    lines = [line.split() for line in result.stdout.splitlines() if line.startswith("zero")]
    assert [line[:2] for line in lines] == [["zero2.json", "2"], ["zero3.json", "3"], ["zero3_offload.json", "3"]]
    assert all(line[2] == str(32 * 32) for line in lines)  # hidden_size**2 from the encoder's config
    assert [line[3:] for line in lines] == [["False", "False"], ["False", "False"], ["True", "True"]]


@pytest.mark.parametrize("stage", ["zero2", "zero3"])
def test_deepspeed_trains_on_cpu_and_saves_a_model_that_predicts(stage, tiny_encoder_dir, split_data, tmp_path):
    out = tmp_path / "out"
    launcher = [sys.executable, "-m", "deepspeed.launcher.runner", "--num_gpus", 1, "--master_port", free_port()]
    config = REPO / "ds_configs" / f"{stage}.json"
    args = script_args(tiny_encoder_dir, split_data, out, "--deepspeed", config, "--save_strategy", "epoch", *TRAIN)
    args += ["--prediction_precision", "fp32"]  # compared below with an fp32 forward pass, on every CPU kind
    result = run([*launcher, *args], env={"DS_ACCELERATOR": "cpu"})
    assert result.returncode == 0, output(result)
    # the DeepSpeed engine wrote the checkpoint: ZeRO-3 shards model states per rank, ZeRO-2 does not
    states = {p.name for p in out.glob("checkpoint-*/global_step*/*model_states.pt")}
    assert states == {"zero_pp_rank_0_mp_rank_00_model_states.pt" if stage == "zero3" else "mp_rank_00_model_states.pt"}
    model = ScreeningForSequenceClassification.from_pretrained(out).eval()
    assert model.config.threshold == json.loads((out / "eval_results.json").read_text())["eval_threshold"]
    tokenizer = AutoTokenizer.from_pretrained(out)
    test = pd.read_csv(split_data / "test.csv", keep_default_na=False)
    texts = (test.title + " [SEP] " + test.abstract).tolist()[:8]
    with torch.no_grad():
        batch = tokenizer(texts, padding=True, truncation=True, max_length=48, return_tensors="pt")
        probabilities = model(**batch).logits.sigmoid().squeeze(-1).numpy()
    written = pd.read_csv(out / "predictions.csv").probability.to_numpy()[:8]
    np.testing.assert_allclose(probabilities, written, atol=1e-5)
    trained = model.encoder.embeddings.word_embeddings.weight
    initial = ScreeningForSequenceClassification.from_pretrained(tiny_encoder_dir).encoder
    assert not torch.equal(trained, initial.embeddings.word_embeddings.weight)  # the saved weights were trained
    torch.testing.assert_close(trained, initial.embeddings.word_embeddings.weight, atol=0.02, rtol=0)  # not random


def test_bf16_on_cpu(tiny_encoder_dir, split_data, tmp_path):
    out = tmp_path / "out"
    result = run([sys.executable, *script_args(tiny_encoder_dir, split_data, out, "--use_cpu", "--bf16", *TRAIN)])
    assert result.returncode == 0, output(result)
    assert json.loads((out / "train_results.json").read_text())["train_loss"] > 0
    assert len(pd.read_csv(out / "predictions.csv")) == TEST_ROWS
    assert 0 <= json.loads((out / "eval_results.json").read_text())["eval_fbeta"] <= 1


def test_fp16_without_gpu_is_refused_before_anything_is_written(tiny_encoder_dir, split_data, tmp_path):
    out = tmp_path / "out"
    result = run([sys.executable, *script_args(tiny_encoder_dir, split_data, out, "--use_cpu", "--fp16", *TRAIN)])
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("error: --fp16 needs a GPU")
    assert "Traceback" not in result.stderr and not out.exists()


@pytest.mark.parametrize("name", ["cpu_multi_process", "single_gpu", "multi_gpu", "deepspeed_zero2"])
def test_accelerate_configs_load(name):
    from accelerate.commands.config.config_args import load_config_from_file

    config = load_config_from_file(str(REPO / "accelerate_configs" / f"{name}.yaml"))
    expected = {"cpu_multi_process": "MULTI_GPU", "single_gpu": "NO", "multi_gpu": "MULTI_GPU"}
    assert str(config.distributed_type).split(".")[-1] == expected.get(name, "DEEPSPEED")
    if name == "deepspeed_zero2":
        assert (REPO / config.deepspeed_config["deepspeed_config_file"]).is_file()


def test_accelerate_cpu_config_starts_two_processes(tmp_path):
    """The README's accelerate command for CPU processes really starts 2 (`accelerate launch --cpu` starts 1)."""
    script = tmp_path / "ranks.py"
    script.write_text("import os\nprint(f\"rank {os.environ['RANK']} of {os.environ['WORLD_SIZE']}\")\n")
    config = REPO / "accelerate_configs" / "cpu_multi_process.yaml"
    launch = [sys.executable, "-m", "accelerate.commands.launch"]
    result = run([*launch, "--config_file", config, "--main_process_port", free_port(), script])
    assert result.returncode == 0, output(result)
    # the two processes share one stdout, so their lines may interleave: find each rank's words anywhere
    assert sorted(re.findall(r"rank \d+ of \d+", result.stdout)) == ["rank 0 of 2", "rank 1 of 2"]


def test_deepspeed_op_built_in_this_runs_folder_beside_a_stale_lock(extensions_dir, tiny_encoder_dir, ds_env):
    """The DeepSpeed children above built their op in this run's folder; the stale lock in the default folder
    (where a child without TORCH_EXTENSIONS_DIR would wait on it forever) was left as it was."""
    built, stale = extensions_dir
    code = "from deepspeed.comm.torch import build_shm_op as b; print('built' if b() is not None else 'none')"
    result = run([sys.executable, "-c", code], env=ds_env)
    assert result.returncode == 0 and result.stdout.strip().endswith("built"), output(result)
    assert list((built / SHM_OP).glob("*.so")), sorted(p.name for p in built.rglob("*"))
    assert stale.is_file() and not list(stale.parent.glob("*.so"))
