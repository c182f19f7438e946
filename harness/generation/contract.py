"""What every generation back end returns, and the two steps they share (chat templating, cutting
at end-of-sequence), apart from both so that neither back end imports the other."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Generation:
    text: str
    truncated: bool
    n_tokens: int


def chat_texts(tokenizer, conversations: list[list[dict[str, str]]]) -> list[str]:
    return [tokenizer.apply_chat_template(c, add_generation_prompt=True, tokenize=False) for c in conversations]


def to_generation(tokens: list[int], eos_ids: set[int], tokenizer) -> Generation:
    """New tokens -> the contract: text up to the first EOS; no EOS means max_new_tokens ran out."""
    ended = next((n for n, t in enumerate(tokens) if t in eos_ids), None)
    kept = tokens if ended is None else tokens[:ended]
    return Generation(
        text=tokenizer.decode(kept, skip_special_tokens=True).strip(), truncated=ended is None, n_tokens=len(kept)
    )
