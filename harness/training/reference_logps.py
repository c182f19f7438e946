"""Reference log-probs of DPO responses: computed once per response, reused by every run that trains on it.

DPO's loss needs log π_ref(y | x) for every chosen and rejected response. With a LoRA adapter the
reference is the base model, so that number depends on the model, the tokenisation (chat template,
max_length, truncation) and the numerics (train precision) only: not on the strategy, the seed, the
learning rate or which pair the response sits in. TRL recomputes it with a forward pass at every
step (a third of a step's work); here each response's value is computed once, batched and without
gradients, and kept in an append-only store keyed by exactly those inputs, so that the
shuffled-label control, other seeds and other strategies on the same pool reuse it, and training
runs only the policy's forward and backward.

The values are computed as TRL's trainer computes them: its tokenisation (`features.tokenize_response`),
the fp32 weights it trains on, under the same bf16 autocast where `train.precision` resolves to bf16,
log-probs summed over the completion tokens. benchmarks/throughput.py measures how closely the loss
curve follows the path that computes them inside every step.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from harness.core.io import content_hash
from harness.models.resolve import contiguous_head_inputs, device, load_tokenizer, resolve_model, trust_remote_code
from harness.training.config import TrainConfig

BATCH = 16
"""Responses per forward pass (no gradient is kept, so a batch costs only activations)."""


def response_key(messages: list[dict[str, str]], text: str) -> str:
    """A response as the trainer sees it: the prompt's messages and the reply's text."""
    return content_hash({"messages": messages, "text": text})


class ReferenceStore:
    """log π_ref of responses, in `cache_dir/reference_logps/<key>.jsonl` (appended, fsynced; a torn last line
    of a killed run is ignored), where the key covers the model, the tokenisation and the numerics."""

    def __init__(self, cache_dir: Path, model_key: str, cfg: TrainConfig) -> None:
        from trl import __version__ as trl_version

        self.key = content_hash(
            {
                "model": model_key,
                "max_length": cfg.max_length,
                "truncation": "keep_start",
                "precision": cfg.precision,
                "attention": cfg.require_resolved("ReferenceStore").attention,
                "trl": trl_version,
            },
            16,
        )
        self.path = Path(cache_dir) / "reference_logps" / f"{self.key}.jsonl"
        self.known: dict[str, float] = {}
        if self.path.is_file():
            for line in self.path.read_text(encoding="utf-8").splitlines():
                with contextlib.suppress(json.JSONDecodeError, KeyError, TypeError):
                    row = json.loads(line)
                    self.known[row["key"]] = float(row["logp"])

    def add(self, values: dict[str, float]) -> None:
        self.known.update(values)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write("".join(json.dumps({"key": k, "logp": v}) + "\n" for k, v in values.items()))
            handle.flush()
            os.fsync(handle.fileno())


def with_reference_logps(
    rows: list[dict[str, Any]], model_name: str, model_key: str, cfg: TrainConfig, cache_dir: Path
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """`rows` (TRL's conversational preference rows) with `ref_chosen_logps` / `ref_rejected_logps` added,
    computing only the responses the store does not hold; and {"computed": n, "reused": n}."""
    store = ReferenceStore(cache_dir, model_key, cfg)
    wanted: dict[str, tuple[list[dict[str, str]], str]] = {}
    keys = []
    for row in rows:
        pair = []
        for side in ("chosen", "rejected"):
            text = row[side][-1]["content"]
            key = response_key(row["prompt"], text)
            pair.append(key)
            if key not in store.known:
                wanted.setdefault(key, (row["prompt"], text))
        keys.append(pair)
    if wanted:
        store.add(_compute(model_name, wanted, cfg))
    out = [
        {**row, "ref_chosen_logps": store.known[c], "ref_rejected_logps": store.known[r]}
        for row, (c, r) in zip(rows, keys)
    ]
    return out, {"computed": len(wanted), "reused": len({k for pair in keys for k in pair}) - len(wanted)}


@torch.no_grad()
def _compute(
    model_name: str, wanted: dict[str, tuple[list[dict[str, str]], str]], cfg: TrainConfig
) -> dict[str, float]:
    from transformers import AutoModelForCausalLM

    from harness.training.gradient_features import response_logps, tokenize_response

    tokenizer = load_tokenizer(model_name)
    model = AutoModelForCausalLM.from_pretrained(
        resolve_model(model_name),
        dtype=torch.float32,
        trust_remote_code=trust_remote_code(),
        attn_implementation=cfg.attention,
    )
    model.to(device()).eval()
    contiguous_head_inputs(model)
    items = [
        tokenize_response(tokenizer, key, messages, text, cfg.max_length) for key, (messages, text) in wanted.items()
    ]
    items.sort(key=lambda item: len(item.input_ids))  # similar lengths share a batch: little padding
    autocast = (
        torch.autocast(device(), dtype=torch.bfloat16) if cfg.precision == "bfloat16" else contextlib.nullcontext()
    )
    values: dict[str, float] = {}
    with autocast, tqdm(total=len(items), desc="train: reference log-probs", unit="resp") as bar:
        for start in range(0, len(items), BATCH):
            batch = items[start : start + BATCH]
            for item, logp in zip(batch, response_logps(model, batch).tolist()):
                values[item.response_id] = logp
            bar.update(len(batch))
    return values
