"""A batched decoding loop for the transformers engine: the fast path behind `generate_with`.

`model.generate` spends about 40% of a sampled step on top-p over the whole vocabulary (a full
sort of 49k logits per row per step), re-concatenates the KV cache at every step, and keeps
finished rows in the batch until the longest ends. Here (each measured by
benchmarks/throughput.py):

- **shared prefill.** Identical prompts in a batch (the pool samples each prompt K times) are
  prefilled once and their KV rows copied, so the prompt costs 1/K; the prefix all of a
  batch's prompts start with (the chat template's system prompt: 24 of SmolLM2's ~64 prompt
  tokens) is prefilled once for the whole batch.
- **a preallocated KV cache** (`SlabLayer`): each step writes its keys and values in place and
  attends over a view of the filled part, instead of concatenating the whole cache.
- **grouped decode attention** (`grouped_attention`): one query token per row attends its KV
  head's group with two batched matmuls, without repeating K/V per query head; CPU SDPA takes
  several times longer at one query token in bf16. Prefill keeps SDPA.
- **top-p by partial sort.** The nucleus (transformers' `TopPLogitsWarper` set: tokens whose
  more-likely predecessors hold less than `top_p` of the mass) is found among the `k` most
  likely tokens whenever the first k - 1 of them already hold `top_p`; rows where they do not
  fall back to the full sort. The distribution sampled from is the same; no token is dropped
  that the full sort would keep (a silent top-k would).
- **finished rows leave the batch**, their cache rows with them, so a batch costs what its
  live rows cost.

Outputs honour the generation contract (harness/generation.py): new tokens only, up to and
including the first end-of-sequence token; callers cut there.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Callable, Iterator

import torch
from transformers import AttentionInterface
from transformers.cache_utils import Cache, DynamicCache, DynamicLayer
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

Picker = Callable[[torch.Tensor], torch.Tensor]

TOP_K_FIRST = (256, 2048)
"""How many of a row's most likely tokens the partial sorts look at, in turn, before a full sort of the row.
On the default pool the first covers about 89% of rows (benchmarks/throughput.py prints the share)."""

GROUPED = "bench_grouped_decode"
"""The attention implementation `decode` switches an SDPA model to while it runs."""


def nucleus_mask(sorted_probs: torch.Tensor, top_p: float) -> torch.Tensor:
    """Which of the (descending) sorted tokens are in the nucleus: those whose predecessors hold < top_p (the first always)."""
    exclusive = sorted_probs.cumsum(-1) - sorted_probs
    keep = exclusive < top_p
    keep[..., 0] = True
    return keep


def _draw(weights: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Column index per row, drawn in proportion to `weights` (unnormalised): argmax(w / E), E ~ Exp(1).

    The exponential race is exact and costs one pass over the row; torch.multinomial costs
    about 30 ms per step on a 32 x 49k batch on this machine.
    """
    race = torch.empty_like(weights).exponential_(generator=generator)
    return (weights / race).argmax(dim=-1)


def sample_top_p(logits: torch.Tensor, temperature: float, top_p: float, generator: torch.Generator, widths: tuple[int, ...] = TOP_K_FIRST) -> torch.Tensor:
    """One token per row from softmax(logits / temperature) restricted to its top-p nucleus, exactly.

    Each row's nucleus is looked for among its `widths[0]` most likely tokens, then the
    next width's, and only then in the fully sorted row. Probabilities are normalised over the
    whole vocabulary (a log-sum-exp pass), never over the candidates.
    """
    scaled = _at_least_fp32(logits) / temperature
    if top_p >= 1.0:
        return _draw(torch.softmax(scaled, dim=-1), generator)
    log_total = torch.logsumexp(scaled, dim=-1, keepdim=True)
    vocab = scaled.shape[-1]
    chosen = torch.empty(scaled.shape[0], dtype=torch.long, device=scaled.device)
    pending = torch.arange(scaled.shape[0], device=scaled.device)
    for k in (*(w for w in widths if w < vocab), vocab):
        rows = scaled if len(pending) == scaled.shape[0] else scaled[pending]
        top, index = rows.topk(k, dim=-1) if k < vocab else rows.sort(dim=-1, descending=True)
        top = torch.exp(top - log_total[pending])
        covered = top[:, : k - 1].sum(-1) >= top_p if k < vocab else torch.ones_like(pending, dtype=torch.bool)
        if bool(covered.any()):
            probs = top[covered]
            keep = nucleus_mask(probs, top_p)
            width = int(keep.sum(-1).max())  # the nucleus is a prefix of the sorted row: sample within the widest one
            pick = _draw(probs[:, :width] * keep[:, :width], generator)
            chosen[pending[covered]] = index[covered].gather(1, pick[:, None]).squeeze(1)
        pending = pending[~covered]
        if len(pending) == 0:
            break
    return chosen


def _at_least_fp32(x: torch.Tensor) -> torch.Tensor:
    return x.to(torch.promote_types(x.dtype, torch.float32))


def greedy(logits: torch.Tensor) -> torch.Tensor:
    return _at_least_fp32(logits).argmax(dim=-1)  # argmax over bf16 is not vectorised on CPU: 5x slower than over fp32


CHUNK = 32
"""Positions a KV slab grows by: attention spans at most CHUNK - 1 unfilled slots, and the slab is copied once per CHUNK steps."""


class SlabLayer(DynamicLayer):
    """One layer's KV cache in a contiguous slab that grows CHUNK positions at a time.

    `update` writes in place and returns the whole slab, so attention reads contiguous memory
    (a view of the filled part would be copied by every matmul, which costs what concatenation
    costs). The slots not yet written are zeros that the mask hides: `get_mask_sizes` reports the
    slab's length, as transformers' StaticLayer does, so the 2D padding mask is padded with False
    over them and causality hides them from the prefill. Full attention only: `decode` uses it for
    models without sliding-window layers.
    """

    def __init__(self) -> None:
        super().__init__()
        self.length = 0

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        self.device = key_states.device
        self.keys, self.values = key_states[:, :, :0], value_states[:, :, :0]
        self.is_initialized = True

    @staticmethod
    def _capacity(length: int) -> int:
        return -(-length // CHUNK) * CHUNK

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        end = self.length + key_states.shape[-2]
        if end > self.keys.shape[-2]:
            self.keys, self.values = self._grown(self.keys, end), self._grown(self.values, end)
        self.keys[:, :, self.length : end] = key_states
        self.values[:, :, self.length : end] = value_states
        self.length = end
        return self.keys, self.values

    def _grown(self, slab: torch.Tensor, length: int) -> torch.Tensor:
        rows, heads, _, dim = slab.shape
        grown = slab.new_zeros(rows, heads, self._capacity(length), dim)  # zeros, not garbage: 0-weight x NaN would be NaN
        grown[:, :, : self.length] = slab[:, :, : self.length]
        return grown

    def get_mask_sizes(self, query_length: int) -> tuple[int, int]:
        return self._capacity(self.length + query_length), 0

    def get_seq_length(self) -> int:
        return self.length

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        """Keep (or repeat) these rows; a repeated index copies a row, which is how a shared prefill fans out."""
        if self.is_initialized:
            self.keys, self.values = self.keys[indices], self.values[indices]


def grouped_attention(module, query, key, value, attention_mask, dropout: float = 0.0, scaling: float | None = None, **kwargs):
    """Attention of one new token per row against its KV group; SDPA for longer queries (prefill).

    `query` is [rows, heads, 1, dim], `key`/`value` [rows, kv_heads, length, dim]; query head h
    reads KV head h // (heads / kv_heads), as transformers' `repeat_kv` lays them out. The
    mask is SDPA's (boolean, True = attend, or additive float) over the same length, or None.
    """
    if query.shape[2] != 1 or dropout or (attention_mask is not None and attention_mask.shape[-1] != key.shape[2]):
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs)
    rows, heads, _, dim = query.shape
    kv_heads, length = key.shape[1], key.shape[2]
    grouped = query.reshape(rows, kv_heads, heads // kv_heads, dim)
    scores = _at_least_fp32(torch.matmul(grouped, key.transpose(-1, -2))) * (scaling if scaling is not None else dim**-0.5)
    if attention_mask is not None:
        mask = attention_mask.reshape(rows, 1, 1, length)
        scores = scores.masked_fill(~mask, float("-inf")) if mask.dtype == torch.bool else scores + mask
    out = torch.matmul(torch.softmax(scores, dim=-1).to(value.dtype), value)
    return out.reshape(rows, 1, heads, dim), None


AttentionInterface.register(GROUPED, grouped_attention)
AttentionMaskInterface.register(GROUPED, sdpa_mask)


def full_attention_only(model) -> bool:
    """Whether every layer attends to the whole prefix (no sliding window, no chunked or linear attention)."""
    config = model.config.get_text_config()
    kinds = getattr(config, "layer_types", None)
    if kinds is not None:
        return all(kind == "full_attention" for kind in kinds)
    return getattr(config, "sliding_window", None) is None and getattr(config, "attention_chunk_size", None) is None


@contextlib.contextmanager
def _fast_path(model) -> Iterator[Cache]:
    """The KV cache for one decode: slabs with grouped attention for full-attention SDPA models, else
    transformers' own dynamic cache and the model's attention (sliding windows and the like stay exact)."""
    config = model.config
    previous = getattr(config, "_attn_implementation", None)
    if previous != "sdpa" or not full_attention_only(model):
        yield DynamicCache(config=config)
        return
    config._attn_implementation = GROUPED
    try:
        yield Cache(layers=[SlabLayer() for _ in range(config.get_text_config().num_hidden_layers)])
    finally:
        config._attn_implementation = previous


COMPACT_SHARE = 8
"""Finished rows leave the batch once they are 1/COMPACT_SHARE of it: each removal copies every layer's
KV cache, so dropping rows one at a time (about 0.5 GB per removal at 80 rows) costs more than
carrying a few finished rows (under 1 ms per row per step) for a while."""


@torch.inference_mode()
def decode(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, *, max_new_tokens: int, eos_ids: set[int], pick: Picker) -> list[list[int]]:
    """New tokens per row (left-padded batch in), each list ending at its first EOS or after max_new_tokens.

    Rows are independent: a finished row's later tokens are computed (until it leaves the batch)
    and discarded, and a repeated prompt's rows share its prefill.
    """
    cache_arg = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
    rows = input_ids.shape[0]
    out: list[list[int]] = [[] for _ in range(rows)]
    if rows == 0 or max_new_tokens <= 0:
        return out
    unique, fan_out = _unique_rows(input_ids, attention_mask)
    eos = torch.tensor(sorted(eos_ids), dtype=torch.long)
    with _fast_path(model) as cache:
        logits, mask, last_position = _prefill(model, cache, cache_arg, input_ids[unique], attention_mask[unique])
        if len(unique) < rows:
            cache.batch_select_indices(fan_out)
            logits, mask, last_position = logits[fan_out], mask[fan_out], last_position[fan_out]
        next_position = last_position + 1
        present = torch.arange(rows)  # the batch's rows, in cache order
        alive = torch.ones(rows, dtype=torch.bool)
        for step in range(max_new_tokens):
            token = pick(logits)
            for row, t, live in zip(present.tolist(), token.tolist(), alive.tolist()):
                if live:
                    out[row].append(t)
            alive &= ~torch.isin(token, eos)
            if step + 1 == max_new_tokens or not bool(alive.any()):
                break
            if int((~alive).sum()) * COMPACT_SHARE >= len(present):
                keep = alive.nonzero().squeeze(1)
                cache.batch_select_indices(keep)
                present, token, mask, next_position, alive = present[keep], token[keep], mask[keep], next_position[keep], alive[keep]
            mask = torch.cat([mask, mask.new_ones(mask.shape[0], 1)], dim=1)
            logits = model(input_ids=token[:, None], attention_mask=mask, position_ids=next_position[:, None],
                           use_cache=True, **{cache_arg: cache}).logits[:, -1]
            next_position = next_position + 1
    return out


SHARED_PREFIX_MIN = 8
"""Tokens all of a batch's prompts must share at their start (a chat template's system prompt) for them to be prefilled once."""


def _prefill(model, cache: Cache, cache_arg: str, input_ids: torch.Tensor, attention_mask: torch.Tensor):
    """Run the prompts (left-padded, all distinct) into `cache`: (last logits, the 2D mask the cache now holds, last positions).

    The prefix every prompt starts with (the chat template's system prompt and turn header) is
    computed once, in one row, and copied to every row; each prompt's remainder follows it,
    left-padded, so a row's cache reads [shared prefix | padding | own tokens] with the padding
    masked and positions counted over real tokens only, as they would be without sharing.
    """
    width = input_ids.shape[1]
    lengths = attention_mask.sum(-1)
    shared = _shared_prefix(input_ids, lengths)
    if shared < SHARED_PREFIX_MIN:
        positions = (attention_mask.cumsum(-1) - 1).clamp(min=0)
        logits = model(input_ids=input_ids, attention_mask=attention_mask, position_ids=positions, use_cache=True,
                       logits_to_keep=1, **{cache_arg: cache}).logits[:, -1]
        return logits, attention_mask, positions[:, -1]
    rows = input_ids.shape[0]
    start = int(width - lengths.max())  # the longest prompt's first token
    prefix = input_ids[lengths.argmax(), start : start + shared][None]
    model(input_ids=prefix, attention_mask=torch.ones_like(prefix), position_ids=torch.arange(shared)[None], use_cache=True,
          logits_to_keep=1, **{cache_arg: cache})
    cache.batch_select_indices(torch.zeros(rows, dtype=torch.long))
    rest_width = int(lengths.max()) - shared
    rest_ids = input_ids[:, width - rest_width :]
    own_start = width - lengths + shared  # where each row's tokens after the shared prefix begin
    rest_mask = (torch.arange(width - rest_width, width)[None] >= own_start[:, None]).to(attention_mask.dtype)
    mask = torch.cat([attention_mask.new_ones(rows, shared), rest_mask], dim=1)
    positions = (shared + rest_mask.cumsum(-1) - 1).clamp(min=shared)
    logits = model(input_ids=rest_ids, attention_mask=mask, position_ids=positions, use_cache=True,
                   logits_to_keep=1, **{cache_arg: cache}).logits[:, -1]
    return logits, mask, positions[:, -1]


def _shared_prefix(input_ids: torch.Tensor, lengths: torch.Tensor) -> int:
    """How many leading real tokens all (left-padded) rows have in common, leaving each row at least one of its own."""
    width, shortest = input_ids.shape[1], int(lengths.min())
    if input_ids.shape[0] < 2 or shortest < 2:
        return 0
    starts = width - lengths
    aligned = torch.stack([input_ids[r, int(starts[r]) : int(starts[r]) + shortest - 1] for r in range(input_ids.shape[0])])
    differs = (aligned != aligned[0]).any(0).nonzero()
    return int(differs[0]) if len(differs) else shortest - 1


def _unique_rows(input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows holding the batch's distinct prompts (first occurrence), and for each row the position of its prompt among them."""
    position: dict[bytes, int] = {}
    unique: list[int] = []
    fan_out: list[int] = []
    for row in range(input_ids.shape[0]):
        key = input_ids[row].numpy().tobytes() + attention_mask[row].numpy().tobytes()
        if key not in position:
            position[key] = len(unique)
            unique.append(row)
        fan_out.append(position[key])
    return torch.tensor(unique, dtype=torch.long), torch.tensor(fan_out, dtype=torch.long)
