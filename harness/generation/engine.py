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
  live rows cost, and **waiting prompts take their places** (continuous batching): a batch that
  only drained spent most of its steps on a few long answers at a few rows per matrix product.

Outputs honour the generation contract (harness/generation/generate.py): new tokens only, up to and
including the first end-of-sequence token; callers cut there.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
from collections.abc import Callable, Iterator
from dataclasses import dataclass

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


def sample_top_p(
    logits: torch.Tensor,
    temperature: float,
    top_p: float,
    generator: torch.Generator,
    widths: tuple[int, ...] = TOP_K_FIRST,
) -> torch.Tensor:
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
    """The most likely token per row (the first of ties, as `argmax`). `max` reads bf16 logits as they are:
    upcasting changes no value or order, and on CPU the upcast plus an fp32 argmax costs 5x what `max`
    costs (and a bf16 argmax 6x): 13 ms against 2.6 ms per step at 192 rows x 49k."""
    return logits.max(dim=-1).indices


CHUNK = 32
"""Positions a KV slab grows by: attention spans at most CHUNK - 1 unfilled slots, and the slab is copied once per CHUNK steps."""


class SlabLayer(DynamicLayer):
    """One layer's KV cache in a contiguous slab that grows CHUNK positions at a time.

    `update` writes in place and returns the whole slab, so attention reads contiguous memory
    (CPU bf16 matmuls copy a view of the filled part first: 1.5-1.8x the time of reading the slab,
    measured at 192 rows x 200 positions). The slots not yet written are zeros that the mask hides:
    `get_mask_sizes` reports the slab's length, as transformers' StaticLayer does, so the 2D padding
    mask is padded with False over them and causality hides them from the prefill. Full attention
    only: `decode` uses it for models without sliding-window layers.
    """

    def __init__(self) -> None:
        super().__init__()
        self.length = 0

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        self.device = key_states.device
        self.keys, self.values = key_states[:, :, :0], value_states[:, :, :0]
        self.is_initialized = True

    @staticmethod
    def capacity(length: int) -> int:
        return -(-length // CHUNK) * CHUNK

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs
    ) -> tuple[torch.Tensor, torch.Tensor]:
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
        grown = slab.new_empty(rows, heads, self.capacity(length), dim)
        grown[:, :, : self.length] = slab[:, :, : self.length]
        grown[:, :, self.length :] = 0  # zeros, not garbage, where the mask hides: 0-weight x NaN would be NaN
        return grown

    def get_mask_sizes(self, query_length: int) -> tuple[int, int]:
        return self.capacity(self.length + query_length), 0

    def get_seq_length(self) -> int:
        return self.length

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        """Keep (or repeat) these rows; a repeated index copies a row, which is how a shared prefill fans out."""
        if self.is_initialized:
            self.keys, self.values = self.keys[indices], self.values[indices]


def grouped_attention(
    module, query, key, value, attention_mask, dropout: float = 0.0, scaling: float | None = None, **kwargs
):
    """Attention of one new token per row against its KV group; SDPA for longer queries (prefill).

    `query` is [rows, heads, 1, dim], `key`/`value` [rows, kv_heads, length, dim]; query head h
    reads KV head h // (heads / kv_heads), as transformers' `repeat_kv` lays them out. The
    mask is SDPA's (boolean, True = attend, or additive float) over the same length, or None.
    """
    if query.shape[2] != 1 or dropout or (attention_mask is not None and attention_mask.shape[-1] != key.shape[2]):
        return sdpa_attention_forward(
            module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs
        )
    rows, heads, _, dim = query.shape
    kv_heads, length = key.shape[1], key.shape[2]
    grouped = query.reshape(rows, kv_heads, heads // kv_heads, dim)
    # K as the left operand, as the slab lays it out: a transposed K on the right is copied by every CPU bf16
    # matmul (the whole cache, at every layer and step); the small query block is what gets transposed
    scores = _at_least_fp32(torch.matmul(key, grouped.transpose(-1, -2)).transpose(-1, -2)) * (
        scaling if scaling is not None else dim**-0.5
    )
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
def packed_linears(model, rows: int) -> Iterator[int]:
    """On a CPU, bf16 `nn.Linear` layers run from weights reordered once into oneDNN's blocked layout; yields
    how many layers were packed (0 elsewhere: other devices, dtypes, a PyTorch without the op, or a CPU whose
    oneDNN has no bf16 kernels: `bf16_packing_supported`).

    `F.linear` reorders a bf16 weight at every call, which doubles the memory traffic of a decode
    step (a step reads every weight once, a few rows at a time). The packed kernel gives bit-identical
    outputs; benchmarks/throughput.py measures the difference. `rows` is oneDNN's batch hint (any batch
    size runs on the packed weights). Every layer gets its own forward back on exit.
    """
    usable = next(model.parameters()).device.type == "cpu" and bf16_packing_supported()
    layers = (
        [m for m in model.modules() if type(m) is torch.nn.Linear and m.weight.dtype == torch.bfloat16]
        if usable
        else []
    )
    for layer in layers:
        packed = torch.ops.mkldnn._reorder_linear_weight(layer.weight.detach(), rows)
        layer.forward = functools.partial(_packed_linear, packed=packed, bias=layer.bias)
    try:
        yield len(layers)
    finally:
        for layer in layers:
            del layer.forward


def bf16_packing_supported() -> bool:
    """Whether oneDNN can pack and multiply bf16 weights on this CPU: it needs AVX512 (BW, VL, DQ) or AVX-NE-CONVERT,
    and refuses otherwise ("bf16 path needs the cpu support ..."), where bf16 runs through PyTorch's emulation."""
    mkldnn = getattr(torch.ops, "mkldnn", None)
    return (
        torch.backends.mkldnn.is_available()
        and hasattr(mkldnn, "_linear_pointwise")
        and bool(mkldnn._is_mkldnn_bf16_supported())
    )


def _packed_linear(x: torch.Tensor, packed: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    return torch.ops.mkldnn._linear_pointwise(x.contiguous(), packed, bias, "none", [], "")


@contextlib.contextmanager
def _fast_path(model, rows: int) -> Iterator[tuple[Callable[[], Cache], bool]]:
    """(a maker of KV caches for one decode, whether they are slabs): slabs with grouped attention for
    full-attention SDPA models, else transformers' own dynamic cache and the model's attention (sliding
    windows and the like stay exact); packed linear layers either way (`packed_linears`)."""
    config = model.config
    previous = getattr(config, "_attn_implementation", None)
    with packed_linears(model, rows):
        if previous != "sdpa" or not full_attention_only(model):
            yield (lambda: DynamicCache(config=config)), False
            return
        config._attn_implementation = GROUPED
        layers = config.get_text_config().num_hidden_layers
        try:
            yield (lambda: Cache(layers=[SlabLayer() for _ in range(layers)])), True
        finally:
            config._attn_implementation = previous


COMPACT_SHARE = 8
"""Finished rows leave the batch once they are 1/COMPACT_SHARE of it: each removal copies every layer's
KV cache, so dropping rows one at a time (about 0.5 GB per removal at 80 rows) costs more than
carrying a few finished rows (under 1 ms per row per step) for a while."""

REFILL_SHARE = 4
"""Waiting prompts join the batch once 1/REFILL_SHARE of its places are free (continuous batching): a
batch that only drains spends most of its steps on a few long answers, and a step's matrix products
cost little more for 200 rows than for 30 (benchmarks/throughput.py measures the difference)."""


@dataclass
class _Rows:
    """The rows decoding together: their KV cache, the 2-D mask it holds, where each row's next token
    goes, the logits its next token is picked from, which sequence each row is, how many tokens each
    has made, and which are still live (a finished row rides along until the batch is compacted)."""

    cache: Cache
    mask: torch.Tensor
    next_position: torch.Tensor
    logits: torch.Tensor
    sequence: torch.Tensor
    made: torch.Tensor
    live: torch.Tensor

    def select(self, keep: torch.Tensor) -> "_Rows":
        self.cache.batch_select_indices(keep)
        return _Rows(
            self.cache,
            self.mask[keep],
            self.next_position[keep],
            self.logits[keep],
            self.sequence[keep],
            self.made[keep],
            self.live[keep],
        )


@torch.inference_mode()
def decode(
    model,
    sequences: list[list[int]],
    *,
    max_new_tokens: int,
    eos_ids: set[int],
    pick: Picker,
    batch_size: int,
    pad_id: int = 0,
    on_finished: Callable[[int], None] | None = None,
) -> list[list[int]]:
    """New tokens per prompt (token lists in, admitted in the given order), each ending at its first EOS or
    after max_new_tokens.

    At most `batch_size` rows decode at once. With slab caches, whenever 1/REFILL_SHARE of the places are
    free, waiting prompts are prefilled and join the rows still decoding (continuous batching: their KV
    is right-aligned with the others' and the columns before their prompt are masked); otherwise the
    next prompts start when the batch has finished. Rows are independent: a finished row's later tokens
    are computed (until it leaves the batch) and discarded, and a repeated prompt's rows share its
    prefill. `on_finished(n)` is told as rows finish.
    """
    cache_arg = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
    out: list[list[int]] = [[] for _ in sequences]
    if not sequences or max_new_tokens <= 0:
        return out
    eos = torch.tensor(sorted(eos_ids), dtype=torch.long)
    waiting = list(range(len(sequences)))[::-1]  # popped from the end: the given order
    rows: _Rows | None = None
    with _fast_path(model, batch_size) as (new_cache, slabs):
        while True:
            live = 0 if rows is None else int(rows.live.sum())
            if waiting and (rows is None or (slabs and (batch_size - live) * REFILL_SHARE >= batch_size)):
                admitted = [waiting.pop() for _ in range(min(batch_size - live, len(waiting)))]
                fresh = _admit(
                    model, new_cache(), cache_arg, [sequences[i] for i in admitted], torch.tensor(admitted), pad_id
                )
                rows = fresh if rows is None else _merge(rows.select(rows.live.nonzero().squeeze(1)), fresh)
            assert rows is not None
            token = pick(rows.logits)
            for sequence, t, is_live in zip(rows.sequence.tolist(), token.tolist(), rows.live.tolist()):
                if is_live:
                    out[sequence].append(t)
            rows.made += 1
            ended = rows.live & (torch.isin(token, eos) | (rows.made >= max_new_tokens))
            if bool(ended.any()):
                rows.live &= ~ended
                if on_finished is not None:
                    on_finished(int(ended.sum()))
            if not bool(rows.live.any()):
                if not waiting:
                    break
                rows = None
                continue
            if int((~rows.live).sum()) * COMPACT_SHARE >= len(rows.live):
                keep = rows.live.nonzero().squeeze(1)
                rows, token = rows.select(keep), token[keep]
            rows.mask = torch.cat([rows.mask, rows.mask.new_ones(rows.mask.shape[0], 1)], dim=1)
            rows.logits = model(
                input_ids=token[:, None],
                attention_mask=rows.mask,
                position_ids=rows.next_position[:, None],
                use_cache=True,
                **{cache_arg: rows.cache},
            ).logits[:, -1]
            rows.next_position = rows.next_position + 1
    return out


def _admit(model, cache: Cache, cache_arg: str, prompts: list[list[int]], sequence: torch.Tensor, pad_id: int) -> _Rows:
    """Prefill `prompts` (left-padded together) into a fresh cache, repeated prompts once."""
    width = max(len(p) for p in prompts)
    input_ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for row, prompt in enumerate(prompts):
        input_ids[row, width - len(prompt) :] = torch.tensor(prompt, dtype=torch.long)
        attention_mask[row, width - len(prompt) :] = 1
    device = next(model.parameters()).device
    input_ids, attention_mask = input_ids.to(device), attention_mask.to(device)
    unique, fan_out = _unique_rows(input_ids, attention_mask)
    logits, mask, last_position = _prefill(model, cache, cache_arg, input_ids[unique], attention_mask[unique])
    if len(unique) < len(prompts):
        cache.batch_select_indices(fan_out)
        logits, mask, last_position = logits[fan_out], mask[fan_out], last_position[fan_out]
    n = len(prompts)
    return _Rows(
        cache,
        mask,
        last_position + 1,
        logits,
        sequence,
        torch.zeros(n, dtype=torch.long),
        torch.ones(n, dtype=torch.bool),
    )


def _merge(old: _Rows, new: _Rows) -> _Rows:
    """Both sets of rows in one slab cache, right-aligned (every row's next token goes to the same column);
    columns masked for every row are dropped from the left."""
    length = max(old.mask.shape[1], new.mask.shape[1])
    masks = [torch.nn.functional.pad(r.mask, (length - r.mask.shape[1], 0)) for r in (old, new)]
    mask = torch.cat(masks)
    used = mask.any(0).nonzero()
    first = int(used[0]) if len(used) else 0
    mask = mask[:, first:]
    layers = []
    for a, b in zip(old.cache.layers, new.cache.layers):
        layer = SlabLayer()
        layer.is_initialized, layer.device, layer.length = True, a.keys.device, length - first
        capacity = SlabLayer.capacity(layer.length)
        for name in ("keys", "values"):
            slabs = (getattr(a, name), getattr(b, name))
            rows, heads, _, dim = slabs[0].shape
            merged = slabs[0].new_zeros(rows + slabs[1].shape[0], heads, capacity, dim)  # zeros where the mask hides
            for start, source, slab in ((0, a, slabs[0]), (rows, b, slabs[1])):
                shift = length - source.length - first  # where this source's column 0 lands
                skip = max(0, -shift)
                merged[start : start + slab.shape[0], :, shift + skip : shift + source.length] = slab[
                    :, :, skip : source.length
                ]
            setattr(layer, name, merged)
        layers.append(layer)
    return _Rows(
        Cache(layers=layers),
        mask,
        *(
            torch.cat([getattr(old, f), getattr(new, f)])
            for f in ("next_position", "logits", "sequence", "made", "live")
        ),
    )


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
        logits = model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=positions,
            use_cache=True,
            logits_to_keep=1,
            **{cache_arg: cache},
        ).logits[:, -1]
        return logits, attention_mask, positions[:, -1]
    rows = input_ids.shape[0]
    start = int(width - lengths.max())  # the longest prompt's first token
    prefix = input_ids[lengths.argmax(), start : start + shared][None]
    model(
        input_ids=prefix,
        attention_mask=torch.ones_like(prefix),
        position_ids=torch.arange(shared)[None],
        use_cache=True,
        logits_to_keep=1,
        **{cache_arg: cache},
    )
    cache.batch_select_indices(torch.zeros(rows, dtype=torch.long))
    rest_width = int(lengths.max()) - shared
    rest_ids = input_ids[:, width - rest_width :]
    own_start = width - lengths + shared  # where each row's tokens after the shared prefix begin
    rest_mask = (torch.arange(width - rest_width, width)[None] >= own_start[:, None]).to(attention_mask.dtype)
    mask = torch.cat([attention_mask.new_ones(rows, shared), rest_mask], dim=1)
    positions = (shared + rest_mask.cumsum(-1) - 1).clamp(min=shared)
    logits = model(
        input_ids=rest_ids,
        attention_mask=mask,
        position_ids=positions,
        use_cache=True,
        logits_to_keep=1,
        **{cache_arg: cache},
    ).logits[:, -1]
    return logits, mask, positions[:, -1]


def _shared_prefix(input_ids: torch.Tensor, lengths: torch.Tensor) -> int:
    """How many leading real tokens all (left-padded) rows have in common, leaving each row at least one of its own."""
    width, shortest = input_ids.shape[1], int(lengths.min())
    if input_ids.shape[0] < 2 or shortest < 2:
        return 0
    starts = width - lengths
    aligned = torch.stack(
        [input_ids[r, int(starts[r]) : int(starts[r]) + shortest - 1] for r in range(input_ids.shape[0])]
    )
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
