"""The GPU paths, timed: generation, gradient features, DPO in-process and under `accelerate launch`.

No weights are needed: the policy is a randomly initialised model with Qwen2.5-0.5B's
architecture (402M parameters with the SmolLM2 tokenizer), which is what timings need.
Sections: generation (auto back end: vLLM when installed, else transformers in bf16), DPO
in this process, DPO under the shipped DDP / FSDP2 / ZeRO-3 accelerate configs (with
--num-processes workers; the adapters are compared with the in-process one), per-pair
gradient features, and one whole `bench run` of the smoke experiment on that model.
A failing section is recorded with its traceback and the others still run.

    python benchmarks/gpu_paths.py --out runs/benchmarks/gpu [--num-processes 1] [--only dpo_ddp ...]
"""

import argparse
import json
import subprocess
import sys
import time
import traceback
from pathlib import Path

import torch
from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

from harness.models.config import EMBEDDED_MODEL
from harness.models.resolve import resolve_model

parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
parser.add_argument("--out", type=Path, default=Path("runs/benchmarks/gpu"))
parser.add_argument("--tokenizer", default=None, help="tokenizer folder [default: the embedded model's]")
parser.add_argument("--num-processes", type=int, default=torch.cuda.device_count() or 1)
parser.add_argument("--only", nargs="*", default=[], help="section names to run")
args = parser.parse_args()
if not torch.cuda.is_available():
    sys.exit("benchmarks/gpu_paths.py times the CUDA paths; this machine has no CUDA GPU.")
out = args.out
out.mkdir(parents=True, exist_ok=True)
only = set(args.only)
tok = AutoTokenizer.from_pretrained(args.tokenizer or resolve_model(EMBEDDED_MODEL), trust_remote_code=False)
cfg = Qwen2Config(
    vocab_size=len(tok),
    hidden_size=896,
    intermediate_size=4864,
    num_hidden_layers=24,
    num_attention_heads=14,
    num_key_value_heads=2,
    max_position_embeddings=4096,
    tie_word_embeddings=True,
    bos_token_id=tok.bos_token_id,
    eos_token_id=tok.eos_token_id,
    pad_token_id=tok.pad_token_id,
)
torch.manual_seed(0)
pol = out / "qwen2.5-0.5b-arch-random"
if not (pol / "config.json").exists():
    m = Qwen2ForCausalLM(cfg)
    m.save_pretrained(pol)
    tok.save_pretrained(pol)
    del m
name = str(pol)
res = {
    "gpu": torch.cuda.get_device_name(0),
    "n_gpus": torch.cuda.device_count(),
    "torch": torch.__version__,
    "bf16": torch.cuda.is_bf16_supported(),
    "num_processes": args.num_processes,
}


def section(key, fn):
    if only and key not in only:
        return
    torch.cuda.synchronize()
    t = time.time()
    try:
        res[key] = fn()
        res[key + "_s"] = round(time.time() - t, 2)
    except Exception as e:
        res[key] = "FAILED: " + "".join(traceback.format_exception(e))[-2500:]
    print(key, res.get(key + "_s"), json.dumps(res[key])[:400], flush=True)
    (out / "gpu_paths.json").write_text(json.dumps(res, indent=1))


from safetensors.torch import load_file

from harness.core.records import Pair, Response, pair_id, response_id
from harness.data.builtin import build_builtin_prompts
from harness.generation.generate import generate_with
from harness.models.choices import resolve_train
from harness.models.resolve import engine_key
from harness.training.config import FeaturesConfig, TrainConfig
from harness.training.dpo import train_dpo
from harness.training.gradient_features import compute_gradient_features

prompts, _ = build_builtin_prompts(seed=0, n_train=256)
texts: list[str] = []
engine = engine_key("auto", "auto")


def gen():
    t = time.time()
    g = generate_with(
        engine["backend"],
        name,
        None,
        [p.messages for p in prompts],
        dtype=engine["dtype"],
        max_new_tokens=128,
        batch_size=64,
        do_sample=True,
        temperature=0.9,
        top_p=0.95,
        seed=0,
    )
    dt = time.time() - t
    texts.extend(x.text for x in g)
    return {
        "backend": engine["backend"],
        "dtype": engine["dtype"],
        "n": len(g),
        "tokens": sum(x.n_tokens for x in g),
        "tok_per_s": round(sum(x.n_tokens for x in g) / dt, 1),
    }


section("generate_256x128_bs64", gen)
if not texts:
    texts = [f"Answer number {i}: " + "word " * (i % 50) for i in range(256)]
P, R, pairs, rows = {}, {}, [], []
for i, p in enumerate(prompts[:64]):
    P[p.id] = p
    a, b = texts[i], texts[(i + 7) % len(texts)]
    ra = Response(response_id(p.id, a, "g", 0), p.id, a, "g")
    rb = Response(response_id(p.id, b, "g", 1), p.id, b, "g")
    R[ra.id] = ra
    R[rb.id] = rb
    pairs.append(Pair(pair_id(ra.id, rb.id), p.id, ra.id, rb.id, 1.0))
    rows.append(
        {
            "prompt": p.messages,
            "chosen": [{"role": "assistant", "content": a}],
            "rejected": [{"role": "assistant", "content": b}],
        }
    )
tcfg = resolve_train(TrainConfig(batch_size=8, max_length=512, learning_rate=1e-4), name)


def train(key, **kw):
    def fn():
        s = train_dpo(name, rows, tcfg.model_copy(update=kw), 0, out / key)
        s["peak_mem_GiB"] = round(torch.cuda.max_memory_allocated() / 2**30, 2) if not kw else None
        w = load_file(out / key / "adapter" / "adapter_model.safetensors")
        s["adapter_tensors"] = len(w)
        s["lora_B_nonzero"] = all(bool(torch.count_nonzero(v)) for k, v in w.items() if "lora_B" in k)
        if key != "dpo_inprocess" and (out / "dpo_inprocess" / "adapter" / "adapter_model.safetensors").exists():
            ref = load_file(out / "dpo_inprocess" / "adapter" / "adapter_model.safetensors")
            s["max_abs_diff_vs_inprocess"] = max(float((ref[k].float() - w[k].float()).abs().max()) for k in ref)
        return s

    section(key, fn)


train("dpo_inprocess")
# per-device batch scaled down with the process count, so every launch sees the same effective batch
per_device = max(tcfg.batch_size // args.num_processes, 1)
for kind in ("ddp", "fsdp", "zero3"):
    train(
        f"dpo_{kind}",
        accelerate_config=f"experiments/accelerate/{kind}.yaml",
        num_processes=args.num_processes,
        batch_size=per_device,
    )


def feats():
    s = compute_gradient_features(name, P, R, pairs, tcfg, FeaturesConfig(dim=8192, batch_size=16), 0, out / "feat")
    s = {k: v for k, v in s.items() if not isinstance(v, (list, dict))}
    s["seconds_per_pair"] = s["seconds_total"] / len(pairs)
    return s


section("features_64pairs", feats)


def bench_run():
    cmd = [
        sys.executable,
        "-m",
        "harness.cli",
        "run",
        "--config",
        "experiments/smoke.yaml",
        "--strategy",
        "uniform",
        "--set",
        f"model={name}",
        "--set",
        f"cache_dir={out / 'cache'}",
        "--out",
        str(out / "run"),
    ]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode:
        raise RuntimeError(p.stdout[-1500:] + p.stderr[-1500:])
    man = json.loads((out / "run" / "manifest.json").read_text())
    return {k: v.get("seconds") for k, v in man["stages"].items()}


section("bench_run_smoke_uniform", bench_run)
print(json.dumps(res, indent=1))
