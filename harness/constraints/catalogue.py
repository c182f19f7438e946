"""The constraint catalogue: every verifiable constraint type the built-in prompts draw from, with the
arguments we use and our wording, which types conflict, and the check that a configured list names
known types. Checked with lm-eval's IFEval checkers through `harness.constraints.checkers`;
importing this module does not import lm-eval, only `validate_constraint` does.
"""

from __future__ import annotations

import copy
import difflib
import itertools
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from harness.constraints.checkers import registry

Kwargs = dict[str, Any]


@dataclass(frozen=True)
class ConstraintType:
    """One verifiable constraint: the lm-eval checker, the arguments we use, our wording.

    `variants` lists every kwargs dict the type can produce, so that the builder knows exactly
    how many distinct prompts a task can yield and can refuse a request it cannot meet.
    """

    instruction_id: str
    variants: tuple[Kwargs, ...]
    phrase: Callable[[Kwargs], str]

    def sample(self, rng: random.Random) -> Kwargs:
        """Draw one kwargs dict; a copy, so callers may keep or mutate it freely."""
        return copy.deepcopy(rng.choice(self.variants))


# Generic words that fit an answer on any topic, so a keyword constraint never asks for
# something off-topic. The two pools are disjoint and no word contains another, because
# lm-eval's keyword checkers match substrings and the forbidden-word checker whole words.
KEYWORD_POOL = (
    "bright",
    "careful",
    "clear",
    "easy",
    "fresh",
    "friendly",
    "gentle",
    "happy",
    "important",
    "morning",
    "quiet",
    "simple",
    "today",
    "together",
    "useful",
    "warm",
)
# Words a small model uses often unprompted, so that avoiding them is a real choice.
FORBIDDEN_POOL = (
    "also",
    "best",
    "good",
    "great",
    "just",
    "make",
    "many",
    "people",
    "really",
    "things",
    "very",
)
END_PHRASES = (
    "Is there anything else I can help with?",
    "Any other questions?",
    "Let me know if you have more questions.",
    "I hope this helps!",
    "Thank you for reading.",
)


def _one_or_two(pool: Sequence[str], key: str) -> tuple[Kwargs, ...]:
    """Sorted lists, as lm-eval stores them, so `validate_constraint`'s round trip is exact."""
    singles = [[word] for word in pool]
    pairs = [sorted(pair) for pair in itertools.combinations(pool, 2)]
    return tuple({key: words} for words in singles + pairs)


def _quoted_words(words: Sequence[str], joiner: str) -> str:
    return f" {joiner} ".join(f"'{word}'" for word in words)


def _times(n: int) -> str:
    return "twice" if n == 2 else f"{n} times"


# Lower bounds stay short: SmolLM2-135M rambles, and an answer that needs 150 words (~200
# tokens) is cut off at the pool's max_new_tokens and dropped from pairs (docs/design.md §6).
_WORDS_BOUNDS = {"less than": (40, 50, 60, 80), "at least": (50, 60, 80, 100)}
_SENTENCES_BOUNDS = {"less than": (3, 4, 5, 6), "at least": (3, 4, 5, 6)}


def _relation_variants(bounds: dict[str, tuple[int, ...]], key: str) -> tuple[Kwargs, ...]:
    return tuple({key: n, "relation": rel} for rel, ns in bounds.items() for n in ns)


def _phrase_words(kw: Kwargs) -> str:
    if kw["relation"] == "less than":
        return f"Answer in fewer than {kw['num_words']} words."
    return f"Your answer must be at least {kw['num_words']} words long."


def _phrase_sentences(kw: Kwargs) -> str:
    if kw["relation"] == "less than":
        return f"Answer in fewer than {kw['num_sentences']} sentences."
    return f"Write at least {kw['num_sentences']} sentences."


def _phrase_placeholders(kw: Kwargs) -> str:
    n = kw["num_placeholders"]
    if n == 1:
        return "Include at least one placeholder in square brackets, such as [name]."
    return f"Include at least {n} placeholders in square brackets, such as [name] and [date]."


def _phrase_highlights(kw: Kwargs) -> str:
    n = kw["num_highlights"]
    parts = "one part" if n == 1 else f"{n} parts"
    return f"Highlight at least {parts} of your answer with markdown, i.e. *highlighted section*."


_ALL_TYPES = (
    ConstraintType(
        "punctuation:no_comma",
        ({},),
        lambda kw: "Do not use any commas in your answer.",
    ),
    ConstraintType(
        "detectable_format:number_bullet_lists",
        tuple({"num_bullets": n} for n in (2, 3, 4, 5)),
        lambda kw: f"Format your answer as exactly {kw['num_bullets']} bullet points using markdown '* ' bullets.",
    ),
    ConstraintType(
        "detectable_content:postscript",
        ({"postscript_marker": "P.S."}, {"postscript_marker": "P.P.S"}),
        lambda kw: "End your answer with a postscript starting with " + kw["postscript_marker"].removesuffix(".") + ".",
    ),
    ConstraintType(
        "keywords:frequency",
        tuple({"keyword": word, "frequency": n, "relation": "at least"} for word in KEYWORD_POOL for n in (2, 3)),
        lambda kw: f"Use the word '{kw['keyword']}' at least {_times(kw['frequency'])}.",
    ),
    ConstraintType(
        "keywords:existence",
        _one_or_two(KEYWORD_POOL, "keywords"),
        lambda kw: (
            f"Include the word{'s' if len(kw['keywords']) > 1 else ''} "
            f"{_quoted_words(kw['keywords'], 'and')} in your answer."
        ),
    ),
    ConstraintType(
        "keywords:forbidden_words",
        _one_or_two(FORBIDDEN_POOL, "forbidden_words"),
        lambda kw: (
            f"Do not use the word{'s' if len(kw['forbidden_words']) > 1 else ''} "
            f"{_quoted_words(kw['forbidden_words'], 'or')} anywhere in your answer."
        ),
    ),
    ConstraintType(
        "length_constraints:number_words",
        _relation_variants(_WORDS_BOUNDS, "num_words"),
        _phrase_words,
    ),
    ConstraintType(
        "length_constraints:number_sentences",
        _relation_variants(_SENTENCES_BOUNDS, "num_sentences"),
        _phrase_sentences,
    ),
    ConstraintType(
        "detectable_content:number_placeholders",
        tuple({"num_placeholders": n} for n in (1, 2, 3)),
        _phrase_placeholders,
    ),
    ConstraintType(
        "detectable_format:number_highlighted_sections",
        tuple({"num_highlights": n} for n in (1, 2, 3)),
        _phrase_highlights,
    ),
    ConstraintType(
        "detectable_format:title",
        ({},),
        lambda kw: "Give your answer a title wrapped in double angular brackets, like <<title>>.",
    ),
    ConstraintType(
        "startend:end_checker",
        tuple({"end_phrase": p} for p in END_PHRASES),
        lambda kw: f"Finish your answer with the exact phrase '{kw['end_phrase']}'. No other words should follow.",
    ),
    ConstraintType(
        "startend:quotation",
        ({},),
        lambda kw: "Wrap your entire answer in double quotation marks.",
    ),
    ConstraintType(
        "detectable_format:json_format",
        ({},),
        lambda kw: "Give your entire answer as valid JSON. You may wrap it in ``` markdown ticks.",
    ),
    ConstraintType(
        "length_constraints:number_paragraphs",
        tuple({"num_paragraphs": n} for n in (2, 3, 4)),
        lambda kw: (
            f"Your answer must contain exactly {kw['num_paragraphs']} paragraphs, "
            "with the markdown divider *** on its own line between them."
        ),
    ),
    ConstraintType(
        "change_case:english_lowercase",
        ({},),
        lambda kw: "Write your entire answer in English using only lowercase letters. No capital letters are allowed.",
    ),
    ConstraintType(
        "change_case:english_capital",
        ({},),
        lambda kw: "Write your entire answer in English using only capital letters.",
    ),
    ConstraintType(
        "change_case:capital_word_frequency",
        tuple({"capital_frequency": n, "capital_relation": "at least"} for n in (3, 5, 8)),
        lambda kw: f"Write at least {kw['capital_frequency']} words in ALL CAPITAL LETTERS for emphasis.",
    ),
    ConstraintType(
        "detectable_format:multiple_sections",
        tuple({"section_spliter": s, "num_sections": n} for s in ("Section", "SECTION") for n in (2, 3)),
        lambda kw: (
            f"Divide your answer into {kw['num_sections']} sections and start each one "
            f"with '{kw['section_spliter']} X', where X is its number "
            f"({kw['section_spliter']} 1, {kw['section_spliter']} 2, ...)."
        ),
    ),
)


def _index(types: Sequence[ConstraintType]) -> dict[str, ConstraintType]:
    table: dict[str, ConstraintType] = {}
    for ctype in types:
        if ctype.instruction_id in table:
            raise ValueError(f"constraint type {ctype.instruction_id!r} defined twice")
        table[ctype.instruction_id] = ctype
    return table


CONSTRAINT_TYPES: dict[str, ConstraintType] = _index(_ALL_TYPES)

# Types whose samples disagree often enough to yield preference pairs: the base model's pass
# rate among finished samples is mid-range. Rule: keep a type when that rate lies in [0.1, 0.9],
# where a prompt with K = 5 samples forms at least one pair with probability 1 − p⁵ − (1 − p)⁵
# ≥ 0.41 (0.94 at p = 0.5). harness/data/CONSTRAINT_PASS_RATES.md (regenerated by
# benchmarks/constraint_pass_rates.py) measures these 12 types at 0.13 (end phrase) to 0.79
# (forbidden words), all inside the rule; prompts that still tie get more samples
# (`pool.k_max`). Left out: all-lowercase (0/32 in a pilot) and, not yet measured, formats we
# expect small models seldom meet (all-uppercase, JSON, *** paragraphs, Section markers,
# capital-word counts, quotation marks); one joins the default once the table measures it in range.
DEFAULT_CONSTRAINT_TYPES: tuple[str, ...] = (
    "punctuation:no_comma",
    "detectable_format:number_bullet_lists",
    "detectable_content:postscript",
    "keywords:frequency",
    "keywords:existence",
    "keywords:forbidden_words",
    "length_constraints:number_words",
    "length_constraints:number_sentences",
    "detectable_content:number_placeholders",
    "detectable_format:number_highlighted_sections",
    "detectable_format:title",
    "startend:end_checker",
)


def _conflict_pairs() -> frozenset[frozenset[str]]:
    """Pairs that cannot both be met, or whose wording contradicts the other's.

    Narrower than lm-eval's INSTRUCTION_CONFLICTS in places (keywords and JSON may combine) and
    wider in others (a capitalised end phrase cannot be written in lowercase; P.S. and an exact
    closing phrase both claim the last line; word and sentence counts together over-constrain).
    """
    pairs = [
        ("change_case:english_lowercase", "change_case:english_capital"),
        ("change_case:english_lowercase", "change_case:capital_word_frequency"),
        ("change_case:english_lowercase", "detectable_content:postscript"),
        ("change_case:english_lowercase", "startend:end_checker"),
        ("change_case:english_lowercase", "detectable_format:multiple_sections"),
        ("change_case:english_capital", "change_case:capital_word_frequency"),
        ("change_case:english_capital", "startend:end_checker"),
        ("change_case:english_capital", "detectable_format:multiple_sections"),
        ("startend:quotation", "detectable_format:title"),
        ("startend:quotation", "detectable_format:number_bullet_lists"),
        ("detectable_content:postscript", "startend:end_checker"),
        ("length_constraints:number_words", "length_constraints:number_sentences"),
        ("length_constraints:number_paragraphs", "length_constraints:number_sentences"),
        ("length_constraints:number_paragraphs", "detectable_format:multiple_sections"),
        ("detectable_format:multiple_sections", "detectable_format:number_highlighted_sections"),
    ]
    json_compatible = {"keywords:existence", "keywords:forbidden_words"}
    pairs += [
        ("detectable_format:json_format", other)
        for other in CONSTRAINT_TYPES
        if other not in json_compatible | {"detectable_format:json_format"}
    ]
    return frozenset(frozenset(pair) for pair in pairs)


_CONFLICTS = _conflict_pairs()


def conflicts(type_a: str, type_b: str) -> bool:
    """Whether two types may not share a prompt; a type conflicts with itself."""
    return type_a == type_b or frozenset((type_a, type_b)) in _CONFLICTS


def validate_constraint(instruction_id: str, kwargs: Kwargs) -> None:
    """Build the real lm-eval checker with `kwargs`; raise ValueError if it would not use them.

    lm-eval does not reject a missing or out-of-range argument: it quietly draws a random one
    (a negative word count, a two-letter `letter`), which would make the verdict disagree with
    the instruction we showed. So beyond catching errors we demand that the checker reports
    back exactly the arguments we gave.
    """

    checkers = registry()
    if instruction_id not in checkers:
        close = difflib.get_close_matches(instruction_id, list(checkers), n=3)
        raise ValueError(f"unknown IFEval instruction {instruction_id!r}; close matches: {close}")
    checker = checkers[instruction_id](instruction_id)
    try:
        checker.build_description(**kwargs)
    except (TypeError, ValueError) as err:
        raise ValueError(f"constraint {instruction_id!r} rejects kwargs {kwargs}: {err}") from err
    expected = set(checker.get_instruction_args_keys())
    if set(kwargs) != expected:
        raise ValueError(
            f"constraint {instruction_id!r} takes kwargs {sorted(expected)}, got {sorted(kwargs)};"
            " a missing one would be drawn at random by lm-eval"
        )
    used = checker.get_instruction_args() or {}
    if used != kwargs:
        raise ValueError(f"constraint {instruction_id!r}: lm-eval replaced kwargs {kwargs} with {used}")


def check_constraint_types(constraint_types: Sequence[str]) -> list[str]:
    names = list(constraint_types)
    unknown = [name for name in names if name not in CONSTRAINT_TYPES]
    if unknown:
        hints = {u: difflib.get_close_matches(u, list(CONSTRAINT_TYPES), n=3) for u in unknown}
        raise ValueError(f"unknown constraint types {unknown}; close matches: {hints}")
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ValueError(f"constraint types listed twice: {repeated}")
    return names
