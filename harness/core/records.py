"""Typed records that stages exchange on disk (docs/design.md §2, data model).

Records are plain dataclasses serialised as JSONL rows; ids are content hashes so that the
same prompt or response always gets the same id, whichever run produced it.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass, field, fields
from functools import cached_property
from typing import Any

import numpy as np

from harness.core.io import content_hash


@dataclass
class Prompt:
    """A prompt, as chat messages ending with a user turn.

    `meta` carries what judges need, e.g. verifiable constraints as
    `{"instruction_id_list": [...], "kwargs": [...]}`, and `base_task` for split bookkeeping.
    """

    id: str
    messages: list[dict[str, str]]
    source: str
    meta: dict[str, Any] = field(default_factory=dict)

    @staticmethod
    def make(messages: list[dict[str, str]], source: str, meta: dict[str, Any] | None = None) -> "Prompt":
        return Prompt(id=prompt_id(messages), messages=messages, source=source, meta=meta or {})


@dataclass
class Response:
    id: str
    prompt_id: str
    text: str
    generator: str
    sampling: dict[str, Any] = field(default_factory=dict)
    seed: int | None = None
    truncated: bool = False


@dataclass
class Score:
    response_id: str
    judge: str
    value: float | None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class Pair:
    id: str
    prompt_id: str
    chosen_id: str
    rejected_id: str
    margin: float | None
    native: bool = False


CONTROL = "control_shuffled"
"""The shuffled-label control strategy's name, spelled once: the runner, the reports and the strategy read it."""


@dataclass
class Selection:
    strategy: str
    budget: int
    pair_ids: list[str]
    diagnostics: dict[str, Any] = field(default_factory=dict)
    flipped: list[str] = field(default_factory=list)
    """Selected pairs trained with chosen and rejected swapped (label-noise controls); usually empty."""


def prompt_id(messages: list[dict[str, str]]) -> str:
    return "p" + content_hash(messages, 12)


def response_id(prompt: str, text: str, generator: str, index: int) -> str:
    """Sampled responses can repeat verbatim; the sample index keeps their ids distinct."""
    return "r" + content_hash([prompt, text, generator, index], 12)


def pair_id(chosen_id: str, rejected_id: str) -> str:
    return "x" + content_hash([chosen_id, rejected_id], 12)


def to_row(record: Any) -> dict[str, Any]:
    return asdict(record)


def from_row(cls: type, row: dict[str, Any]) -> Any:
    names = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in row.items() if k in names})


@dataclass(frozen=True)
class Features:
    """Unit-norm vectors keyed by record id (prompt, pair or response)."""

    vectors: dict[str, np.ndarray]

    def __getitem__(self, key: str) -> np.ndarray:
        return self.vectors[key]

    def matrix(self, keys: list[str]) -> np.ndarray:
        return np.stack([self.vectors[k] for k in keys]) if keys else np.zeros((0, 0), dtype=np.float32)


@dataclass(frozen=True)
class CandidatePool:
    """Prompts, scored responses and candidate pairs, read-only for strategies.

    The optional views are filled by the harness only for strategies that declare them in
    `requires`: prompt and response embeddings, and per-pair / per-prompt gradient features.
    """

    prompts: dict[str, Prompt]
    responses: dict[str, Response]
    scores: dict[str, float]
    pairs: tuple[Pair, ...]
    prompt_embeddings: Features | None = None
    response_embeddings: Features | None = None
    pair_gradients: Features | None = None
    prompt_gradients: Features | None = None

    @cached_property
    def pairs_by_prompt(self) -> dict[str, list[Pair]]:
        """Pairs grouped by prompt, in pool order (prompts with no pair are absent)."""
        grouped: dict[str, list[Pair]] = defaultdict(list)
        for pair in self.pairs:
            grouped[pair.prompt_id].append(pair)
        return dict(grouped)

    @cached_property
    def pair_by_id(self) -> dict[str, Pair]:
        return {p.id: p for p in self.pairs}
