"""Gradient features of candidate pairs: LESS-style, adapted to DPO (docs/design.md §3).

A pair's feature is the direction in which one DPO step on that pair would move the LoRA
parameters, randomly projected to `dim` dimensions and L2-normalised. The algebra that makes
this cheap (docs/design.md, "Cost notes"):

- DPO's loss is L = -log σ(β·m), m = (logπ(c) - logπ_ref(c)) - (logπ(r) - logπ_ref(r)), with
  logπ(y|x) the SUM of the response tokens' log-probs. The reference terms carry no gradient,
  so ∇L = -β·σ(-β·m)·(∇logπ(c) - ∇logπ(r)). The scale β·σ(-β·m) is positive, so the
  normalised direction is that of g_c - g_r with g_y = ∇logπ(y|x), whatever the margin. At
  the start policy (adapter with B = 0, reference = adapter disabled) m = 0 and the equality is
  exact: ∇L = -β/2·(g_c - g_r). No reference pass is ever needed.
- One gradient per RESPONSE serves every pair it appears in; the projection P is linear, so a
  pair's feature is normalise(P g_c - P g_r): cost O(responses), not O(pairs), and only
  D-dimensional vectors are kept per response.
- With standard LoRA init (B = 0) the gradient w.r.t. A is B^T(...) = 0. B's gradient is
  ∂L/∂B = (∂L/∂h)(A x)^T = (∂L/∂W)·A^T: the full weight gradient right-multiplied by the random
  matrix A^T, itself a random sketch of the full-weight gradient. So `lora_init="zero_b"` uses B
  only; `lora_init="warmup"` first trains the adapter briefly (as LESS does) and then uses A and
  B, still through g_c - g_r (exact in direction, as above).

Features point along g_c - g_r = -(2/β)·∇L, i.e. the descent direction. Cosines between
features (and with a validation feature built the same way) are what strategies use.

Per-sample gradients are batched: forward hooks on every LoRA Linear keep its input x (b, T, in)
and its output; `torch.autograd.grad` of the summed per-sample log-probs w.r.t. those outputs
gives each sample's ∂/∂out (samples are independent, so the sum's gradient is per-sample), and
the weight gradient per sample is einsum('bto,bti->boi'). Padding positions are masked out of
the loss, so they contribute zero. Logits are computed only from the first response position on.

The model runs in `train.precision` with eager attention on a CPU (`train.attention`; its matmul
backward beats SDPA's flash-attention backward there) and hands the LM head contiguous rows
(`models.contiguous_head_inputs`); benchmarks/throughput.py measures the rate against SDPA attention at batch 8
and the features' cosine to fp32 ones.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from harness.core.errors import BenchError
from harness.core.io import atomic_path
from harness.core.records import Pair, Prompt, Response
from harness.models.resolve import load_model
from harness.training.config import FeaturesConfig, TrainConfig
from harness.training.dpo import lora_config, preference_rows, train_dpo

# Raw per-response gradients are buffered up to this size before projecting: the Gaussian
# projection regenerates its matrix on every call, so it needs many rows per call to amortise
# that; CountSketch does not care. 256 MiB is small next to the trainer's ~6 GB peak.
_PROJECTION_BUFFER_BYTES = 256 * 2**20


# ---------------------------------------------------------------------------------------------
# Projections


class Projection:
    """A seeded random linear map R^in_dim -> R^out_dim, applied to rows of a (n, in_dim) tensor.

    Deterministic for a seed, and never materialises a dense out_dim x in_dim matrix (for LoRA on
    SmolLM2-135M that would be 3.5 GiB at D = 1024). Inputs are CPU tensors, so results do not
    depend on the device the gradients came from.
    """

    def __init__(self, in_dim: int, out_dim: int, seed: int) -> None:
        self.in_dim, self.out_dim, self.seed = in_dim, out_dim, seed

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class CountSketch(Projection):
    """Sparse JL: every input coordinate is added, with a random sign, to one random bucket.

    E<Px, Py> = <x, y>; storage is two in_dim vectors; applying it is one `index_add_` over the
    concatenated per-response gradient (P floats: 1.5 MB for SmolLM2-135M's B matrices).
    """

    def __init__(self, in_dim: int, out_dim: int, seed: int) -> None:
        super().__init__(in_dim, out_dim, seed)
        generator = torch.Generator().manual_seed(seed)
        self.buckets = torch.randint(out_dim, (in_dim,), generator=generator)
        self.signs = torch.randint(2, (in_dim,), generator=generator, dtype=torch.float32) * 2 - 1

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.zeros(x.shape[0], self.out_dim, dtype=x.dtype)
        return out.index_add_(1, self.buckets, x * self.signs.to(x.dtype))


class GaussianProjection(Projection):
    """Dense Gaussian JL with entries N(0, 1/D), generated block by block from a seeded generator.

    Each call regenerates the blocks in the same order from the seed, so memory stays at one block
    while results are identical from call to call; callers should pass many rows per call.
    """

    block_rows = 8192

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        generator = torch.Generator().manual_seed(self.seed)
        out = torch.zeros(x.shape[0], self.out_dim, dtype=x.dtype)
        scale = 1.0 / math.sqrt(self.out_dim)
        for start in range(0, self.in_dim, self.block_rows):
            stop = min(start + self.block_rows, self.in_dim)
            block = torch.randn(stop - start, self.out_dim, generator=generator, dtype=x.dtype)
            out.addmm_(x[:, start:stop], block, alpha=scale)
        return out


def make_projection(kind: str, in_dim: int, out_dim: int, seed: int) -> Projection:
    return {"countsketch": CountSketch, "gaussian": GaussianProjection}[kind](in_dim, out_dim, seed)


def normalise(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm; all-zero rows (no completion tokens, identical texts) stay zero."""
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


# ---------------------------------------------------------------------------------------------
# Tokenisation and log-probs, as TRL's DPOTrainer computes them


@dataclass(frozen=True)
class TokenizedResponse:
    """Prompt + response token ids (truncated like the trainer) and where the response starts."""

    response_id: str
    input_ids: list[int]
    start: int

    @property
    def n_response_tokens(self) -> int:
        return max(len(self.input_ids) - self.start, 0)


def _chat_ids(tokenizer: Any, messages: list[dict[str, str]], **kwargs: Any) -> list[int]:
    return list(tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True, **kwargs)["input_ids"])


def tokenize_response(
    tokenizer: Any, response_id: str, messages: list[dict[str, str]], text: str, max_length: int
) -> TokenizedResponse:
    """TRL's conversational preprocessing for one response.

    The prompt is the chat template with the generation prompt; the response is what the full
    conversation (prompt + assistant turn, end-of-turn token included) adds after their common
    prefix; the sequence is cut at `max_length` keeping the start (the trainer's
    `truncation_mode="keep_start"`). TRL takes the common prefix over chosen AND rejected; they
    differ only when tokens merge across the prompt boundary, which chat templates ending in a
    newline rule out.
    """
    prompt_ids = _chat_ids(tokenizer, messages, add_generation_prompt=True)
    full_ids = _chat_ids(tokenizer, messages + [{"role": "assistant", "content": text}])
    start = 0
    for a, b in zip(prompt_ids, full_ids):
        if a != b:
            break
        start += 1
    return TokenizedResponse(response_id, full_ids[:max_length], start)


def response_logps(model: Any, batch: Sequence[TokenizedResponse]) -> torch.Tensor:
    """Summed log-probs of each response given its prompt, shape (n,), with the autograd graph.

    Sequences are right-padded (padding positions are masked out of the sum, so they get zero
    gradient); logits are computed only from the earliest response position on, because the LM
    head over a 49k vocabulary dominates memory at long prompts.
    """
    device = next(model.parameters()).device
    length = max(len(item.input_ids) for item in batch)
    input_ids = torch.zeros(len(batch), length, dtype=torch.long)
    attention = torch.zeros(len(batch), length, dtype=torch.long)
    scored = torch.zeros(len(batch), length, dtype=torch.bool)
    for row, item in enumerate(batch):
        input_ids[row, : len(item.input_ids)] = torch.tensor(item.input_ids)
        attention[row, : len(item.input_ids)] = 1
        scored[row, item.start : len(item.input_ids)] = True
    # the earliest response position (clamped so that a fully truncated batch still keeps >= 2 logits)
    first = min(max(min(item.start for item in batch), 1), length - 1)
    input_ids, attention, scored = input_ids.to(device), attention.to(device), scored.to(device)
    # logits at position t predict token t + 1: keep positions first-1 .. length-2
    logits = model(input_ids=input_ids, attention_mask=attention, logits_to_keep=length - first + 1).logits[:, :-1]
    labels = input_ids[:, first:]
    token_logps = torch.log_softmax(logits.float(), dim=-1).gather(-1, labels.unsqueeze(-1)).squeeze(-1)
    return torch.where(scored[:, first:], token_logps, 0.0).sum(dim=1)


# ---------------------------------------------------------------------------------------------
# Per-sample LoRA gradients


def load_lora_model(model_name: str, train_cfg: TrainConfig, seed: int, adapter: Path | None = None) -> tuple[Any, Any]:
    """(peft model in eval mode, tokenizer): a fresh adapter (A seeded, B = 0), or a trained one."""
    from peft import PeftModel, get_peft_model

    train_cfg.require_resolved("load_lora_model")
    loaded = load_model(model_name, dtype=train_cfg.precision)
    loaded.model.set_attn_implementation(train_cfg.attention)
    if adapter is None:
        torch.manual_seed(seed)  # LoRA A's random init (reseeds torch's global generator)
        model = get_peft_model(loaded.model, lora_config(train_cfg), autocast_adapter_dtype=False)
    else:
        model = PeftModel.from_pretrained(loaded.model, adapter, is_trainable=True, autocast_adapter_dtype=False)
    return model.eval(), loaded.tokenizer  # eval: LoRA dropout off, gradients deterministic


class LoraGradients:
    """Per-sample gradients of `response_logps` w.r.t. the LoRA matrices, flattened.

    `parameters` fixes the flattening order: for each LoRA layer in module order, A (when
    `include_a`) then B, each row-major as its `.weight`.
    """

    def __init__(self, model: Any, include_a: bool) -> None:
        from peft.tuners.lora import LoraLayer

        self.model = model
        self.modules: list[torch.nn.Linear] = []
        for module in model.modules():
            if isinstance(module, LoraLayer):
                for adapter in module.active_adapters:
                    self.modules += (
                        [module.lora_A[adapter], module.lora_B[adapter]] if include_a else [module.lora_B[adapter]]
                    )
        if not self.modules:
            raise ValueError("the model has no active LoRA layers")
        self.parameters = [m.weight for m in self.modules]
        self.dim = sum(p.numel() for p in self.parameters)

    def __call__(self, batch: Sequence[TokenizedResponse]) -> torch.Tensor:
        """(len(batch), dim) float32 on CPU: row b is ∇ logπ(response_b | prompt_b)."""
        captured: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

        def keep(index: int):
            def hook(module: torch.nn.Module, args: tuple, output: torch.Tensor) -> None:
                if index in captured:
                    raise RuntimeError("a LoRA module ran twice in one forward; per-sample gradients would be wrong")
                captured[index] = (args[0], output)

            return hook

        handles = [m.register_forward_hook(keep(i)) for i, m in enumerate(self.modules)]
        try:
            logps = response_logps(self.model, batch)
        finally:
            for handle in handles:
                handle.remove()
        inputs, outputs = zip(*(captured[i] for i in range(len(self.modules))))
        grad_outputs = torch.autograd.grad(logps.sum(), outputs)
        with torch.no_grad():
            # x^T g per sample, then (in, out) -> (out, in): transposing the small result, not the (b, T, out)
            # output gradient, which einsum('bto,bti->boi') copies first (most of this stage's time in bf16)
            per_sample = [
                torch.bmm(x.transpose(1, 2).to(g.dtype), g).transpose(1, 2).flatten(1)
                for g, x in zip(grad_outputs, inputs)
            ]
            return torch.cat(per_sample, dim=1).float().cpu()


# ---------------------------------------------------------------------------------------------
# The stage


@dataclass
class GradientFeatures:
    """Features read back from `features.npz`; look rows up by id."""

    pair_ids: list[str]
    pair_features: np.ndarray
    prompt_ids: list[str]
    prompt_features: np.ndarray
    response_ids: list[str]
    response_features: np.ndarray
    _rows: dict[str, dict[str, int]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._rows = {
            kind: {key: row for row, key in enumerate(ids)}
            for kind, ids in (("pair", self.pair_ids), ("prompt", self.prompt_ids), ("response", self.response_ids))
        }

    def pair(self, pair_id: str) -> np.ndarray:
        """Unit-norm feature of a pair (the normalised descent direction of its DPO loss)."""
        return self.pair_features[self._rows["pair"][pair_id]]

    def prompt(self, prompt_id: str) -> np.ndarray:
        """Unit-norm mean of the prompt's pair features."""
        return self.prompt_features[self._rows["prompt"][prompt_id]]

    def response(self, response_id: str) -> np.ndarray:
        """Projected, unnormalised ∇logπ(response | prompt)."""
        return self.response_features[self._rows["response"][response_id]]


def load_gradient_features(out_dir: Path) -> GradientFeatures:
    with np.load(Path(out_dir) / "features.npz") as data:
        return GradientFeatures(
            pair_ids=data["pair_ids"].tolist(),
            pair_features=data["pair_features"],
            prompt_ids=data["prompt_ids"].tolist(),
            prompt_features=data["prompt_features"],
            response_ids=data["response_ids"].tolist(),
            response_features=data["response_features"],
        )


def _warm_up(
    model_name: str,
    prompts: dict[str, Prompt],
    responses: dict[str, Response],
    pairs: list[Pair],
    train_cfg: TrainConfig,
    cfg: FeaturesConfig,
    seed: int,
    out_dir: Path,
) -> dict[str, Any]:
    """A brief DPO run on `warmup_pairs` seeded-random pool pairs; writes `out_dir/adapter`."""
    rng = np.random.default_rng(seed)
    chosen = [pairs[i] for i in sorted(rng.choice(len(pairs), size=min(cfg.warmup_pairs, len(pairs)), replace=False))]
    return train_dpo(model_name, preference_rows(chosen, prompts, responses), train_cfg, seed, out_dir)


def _check_finite(grads: torch.Tensor, batch: Sequence[TokenizedResponse]) -> None:
    """A NaN/inf gradient would poison every cosine it touches: stop with the responses named."""
    bad = [item.response_id for item, ok in zip(batch, torch.isfinite(grads).all(dim=1).tolist()) if not ok]
    if bad:
        raise BenchError(
            f"features: the gradient of {len(bad)} response(s) is NaN or infinite (first: {bad[0]}), so no feature "
            "can be trusted. The model's weights or its fp16/bf16 range are the usual cause: check the model "
            "(bench eval --model ...), load it in fp32, or pick a strategy without gradient features."
        )


def _tokenize_responses(
    tokenizer: Any, response_ids: list[str], prompts: dict[str, Prompt], responses: dict[str, Response], max_length: int
) -> list[TokenizedResponse]:
    """The responses tokenised as the trainer sees them, in the order they are batched in."""
    items = [
        tokenize_response(tokenizer, rid, prompts[responses[rid].prompt_id].messages, responses[rid].text, max_length)
        for rid in response_ids
    ]
    items.sort(key=lambda item: -len(item.input_ids))  # similar lengths share a batch; peak memory shows first
    return items


def _project_gradients(
    items: list[TokenizedResponse], gradients: LoraGradients, projection: Projection, batch_size: int
) -> tuple[dict[str, np.ndarray], float, float]:
    """(projected gradient by response id, seconds in gradients, seconds projecting): buffered so each projection call covers many rows."""
    buffer_rows = max(batch_size, _PROJECTION_BUFFER_BYTES // (4 * gradients.dim))
    projected: dict[str, np.ndarray] = {}
    buffer: list[torch.Tensor] = []
    buffered_ids: list[str] = []
    seconds_gradients = seconds_projection = 0.0

    def flush() -> None:
        nonlocal seconds_projection
        tick = time.perf_counter()
        rows = projection(torch.cat(buffer)).numpy()
        projected.update(zip(buffered_ids, rows))
        buffer.clear()
        buffered_ids.clear()
        seconds_projection += time.perf_counter() - tick

    with tqdm(total=len(items), desc="features: response gradients", unit="resp") as progress:
        for start in range(0, len(items), batch_size):
            batch = items[start : start + batch_size]
            tick = time.perf_counter()
            grads = gradients(batch)
            _check_finite(grads, batch)
            buffer.append(grads)
            seconds_gradients += time.perf_counter() - tick
            buffered_ids.extend(item.response_id for item in batch)
            if len(buffered_ids) >= buffer_rows:
                flush()
            progress.update(len(batch))
    if buffer:
        flush()
    return projected, seconds_gradients, seconds_projection


def _pair_and_prompt_features(
    response_features: np.ndarray, response_ids: list[str], pairs: list[Pair]
) -> tuple[np.ndarray, list[str], np.ndarray]:
    """(pair features, prompt ids, prompt features): what strategies compare, built from the per-response rows."""
    row = {rid: i for i, rid in enumerate(response_ids)}
    pair_features = normalise(
        response_features[[row[p.chosen_id] for p in pairs]] - response_features[[row[p.rejected_id] for p in pairs]]
    )
    prompt_ids = list(dict.fromkeys(p.prompt_id for p in pairs))
    members: dict[str, list[int]] = {pid: [] for pid in prompt_ids}
    for i, pair in enumerate(pairs):
        members[pair.prompt_id].append(i)
    prompt_features = normalise(np.stack([pair_features[members[pid]].mean(axis=0) for pid in prompt_ids]))
    return pair_features, prompt_ids, prompt_features


def _write_features(
    path: Path,
    pairs: list[Pair],
    pair_features: np.ndarray,
    prompt_ids: list[str],
    prompt_features: np.ndarray,
    response_ids: list[str],
    response_features: np.ndarray,
) -> None:
    """Write the arrays `load_gradient_features` reads, atomically so that a crash leaves no half-written file."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            np.savez(
                handle,
                pair_ids=np.array([p.id for p in pairs]),
                pair_features=pair_features.astype(np.float32),
                prompt_ids=np.array(prompt_ids),
                prompt_features=prompt_features.astype(np.float32),
                response_ids=np.array(response_ids),
                response_features=response_features,
            )


def compute_gradient_features(
    model_name: str,
    prompts: dict[str, Prompt],
    responses: dict[str, Response],
    pairs: list[Pair],
    train_cfg: TrainConfig,
    cfg: FeaturesConfig,
    seed: int,
    out_dir: Path,
) -> dict[str, Any]:
    """Project one gradient per response of `pairs`, form pair and prompt features, write `features.npz`.

    Arrays: `pair_ids`, `pair_features` (n_pairs, D) unit rows in `pairs` order; `prompt_ids`,
    `prompt_features` (unit rows, prompts in order of first appearance); `response_ids`,
    `response_features` (projected, unnormalised). Returns timing and size statistics.
    """
    if not pairs:
        raise ValueError("compute_gradient_features needs at least one pair")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    stats: dict[str, Any] = {"lora_init": cfg.lora_init, "projection": cfg.projection, "dim": cfg.dim}
    adapter = None  # the adapter `cfg.lora_init` asks for: fresh, or briefly trained first
    if cfg.lora_init == "warmup":
        stats["seconds_warmup"] = _warm_up(
            model_name, prompts, responses, pairs, train_cfg, cfg, seed, out_dir / "warmup"
        )["seconds"]
        adapter = out_dir / "warmup" / "adapter"
    model, tokenizer = load_lora_model(model_name, train_cfg, seed, adapter)
    gradients = LoraGradients(model, include_a=cfg.lora_init == "warmup")
    projection = make_projection(cfg.projection, gradients.dim, cfg.dim, cfg.projection_seed)

    response_ids = list(dict.fromkeys(rid for p in pairs for rid in (p.chosen_id, p.rejected_id)))
    items = _tokenize_responses(tokenizer, response_ids, prompts, responses, train_cfg.max_length)
    projected, seconds_gradients, seconds_projection = _project_gradients(items, gradients, projection, cfg.batch_size)
    response_features = np.stack([projected[rid] for rid in response_ids]).astype(np.float32)
    pair_features, prompt_ids, prompt_features = _pair_and_prompt_features(response_features, response_ids, pairs)
    _write_features(
        out_dir / "features.npz", pairs, pair_features, prompt_ids, prompt_features, response_ids, response_features
    )
    stats.update(
        n_pairs=len(pairs),
        n_prompts=len(prompt_ids),
        n_responses=len(response_ids),
        n_empty_responses=sum(item.n_response_tokens == 0 for item in items),
        param_dim=gradients.dim,
        tokens=sum(len(item.input_ids) for item in items),
        response_tokens=sum(item.n_response_tokens for item in items),
        seconds_gradients=seconds_gradients,
        seconds_projection=seconds_projection,
        seconds_total=time.perf_counter() - started,
    )
    stats["seconds_per_pair"] = stats["seconds_total"] / len(pairs)
    return stats
