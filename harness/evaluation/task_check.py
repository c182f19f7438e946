"""The task check: does an answer do what its base task asks, with substance?

The verifiable judge sees only the constraint, so `P.S.`, `[name]`, `SECTION 1 SECTION 2`, a loop, an
echo of the prompt or a refusal all pass it, and a model tuned on its labels learns to answer with the
marker alone. This check answers the other half of the question, offline and deterministically:

1. `refusal`: the answer declines a harmless task ("as an AI I cannot ..."), anywhere in it;
2. the answer's substance: the content words left after removing the constraint's markers (P.S., [..],
   << >>, asterisks, bullets, "SECTION n"), repeated sentences and phrases, the prompt's own words (the
   task's and the constraint's) and filler. A real answer, however short, says at least two things the
   prompt did not ("Soccer, tennis, basketball."), or one that names the topic's own vocabulary ("A joey.");
   without them the answer is a `loop` (mostly repetition), an `echo` (mostly the prompt's words) or
   `marker_only`;
3. `off_topic`: for a built-in base task, the answer uses none of the task's topic terms
   (harness/data/task_keys.jsonl, written once per task) and its embedding (MiniLM) does not rank the task
   among the few closest of its task set. Prompts that are not built-in tasks get steps 1-2 only.

It does not check facts. Calibrated against hand-labelled answers by benchmarks/task_check.py.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from harness.core.records import Prompt
from harness.data.builtin import builtin_task, load_builtin_tasks, task_set_of, task_terms
from harness.models.embedder import EMBEDDED_EMBEDDER, embed_texts

VERSION = 1
"""Changes whenever a verdict can change: part of the key of every judgment and evaluation that uses it."""


TOPIC_RANK = 3
"""An answer is on its task's topic if the task is among the TOPIC_RANK tasks of its set closest to it."""
MIN_NOVEL = 2
"""Content words a real answer adds to the prompt's, at least (one suffices when it is one of the task's terms)."""
LOOP_SHARE = 0.5
"""The share of an answer's words that repeat earlier ones above which a failed answer is called a loop."""
ECHO_WORDS = 2
"""Prompt words a failed answer repeats, at least, to be called an echo rather than marker-only."""
META_WORDS = 2
META_NOVEL = 8
"""An answer with META_WORDS distinct words of the constraints' vocabulary (title, bullet, placeholder ...) and at
most META_NOVEL content words of its own talks about its constraint rather than doing its task."""

_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
_MARKERS = re.compile(
    r"\bhighlight(?:ed)? section\b|\bP\.\s?P\.\s?S\.?|\bP\.\s?S\b\.?|\[[^\]\n]{0,60}\]|<<|>>|[*_#`~]+|^\s*(?:[-•+]|\d+[.)])\s+"
    r"|\b(?:section|part|paragraph|chapter)\s*\d+\b",
    re.IGNORECASE | re.MULTILINE,
)
_REFUSAL = re.compile(
    r"\bas an? (?:ai|artificial intelligence|large language model|language model|text[- ]based|chatbot|digital assistant"
    r"|virtual assistant|machine learning)"
    r"|\bi(?:'m| am) (?:an ai|a chatbot|a language model|a text[- ]based|just an ai|a virtual|a digital|an artificial)"
    r"|\bi (?:do not|don't) have (?:the )?(?:ability|capability|capacity|personal (?:experiences|opinions|feelings)|access to)"
    r"|\bi(?:'m| am) (?:not able|unable) to (?:provide|assist|help|answer|access|generate|create|write|fulfill|comply|engage)"
    r"|\bi (?:cannot|can ?not|can't) (?:provide|assist|answer|fulfill|comply|generate|engage|browse|access)"
    r"|\bi(?:'m| am) (?:designed|programmed|trained) to\b"
    r"|\bi(?:'m| am) (?:a |an )?(?:helpful |friendly )?(?:ai|chatbot|language model)\b"
    r"|\bi(?:'m| am) not (?:capable of|able to respond|sure how to)"
    r"|^\s*i(?:'m| am) not sure\b",
    re.IGNORECASE | re.MULTILINE,
)
_FILLER = frozenset(
    "sure okay ok certainly absolutely course here's answer answers response respond question questions below "
    "following task sentence prompt instruction instructions format formatted word words title titled section "
    "sections highlight highlighted placeholder placeholders bullet bullets point points postscript comma commas "
    "phrase markdown asterisk asterisks example note exactly least end start ask asks asked want wants wanted "
    "like you'd i'd i'll let know need needs request requested".split()
)
_UNIT = re.compile(r"(?<=[.!?\n])\s+")


@functools.lru_cache(maxsize=1)
def _stopwords() -> frozenset[str]:
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    return frozenset(ENGLISH_STOP_WORDS)


@functools.lru_cache(maxsize=1)
def _stemmer() -> Any:
    from nltk.stem.porter import PorterStemmer

    return PorterStemmer()


@functools.lru_cache(maxsize=65536)
def stem(word: str) -> str:
    return _stemmer().stem(word)


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def without_repeats(text: str) -> str:
    """The text with every sentence or line that repeats an earlier one removed, and immediately repeated
    runs of up to eight words collapsed ("happy happy happy" -> "happy"): what the answer says once."""
    kept, seen = [], set()
    for unit in _UNIT.split(text):
        key = " ".join(words(unit))
        if key and key in seen:
            continue
        seen.add(key)
        kept.append(unit)
    tokens = " ".join(kept).split()
    for n in range(1, 9):
        out: list[str] = []
        for token in tokens:
            out.append(token)
            if len(out) >= 2 * n and [w.lower().strip(".,!?;:") for w in out[-n:]] == [
                w.lower().strip(".,!?;:") for w in out[-2 * n : -n]
            ]:
                del out[-n:]
        tokens = out
    return " ".join(tokens)


@dataclass(frozen=True)
class TaskContext:
    """What the check reads of a prompt: the base task's text, the constraint's wording, and for a built-in
    task its topic terms and id (the task set ranks the topic)."""

    task: str
    constraint: str
    task_id: str | None = None
    terms: tuple[str, ...] = ()

    def source(self) -> str | None:
        """The text a task asks to transform ("Rewrite this sentence more simply: <source>"), if it gives one."""
        head, sep, tail = self.task.partition(": ")
        return tail if sep and len(words(tail)) >= 3 and len(words(head)) <= 12 else None


@dataclass(frozen=True)
class TaskVerdict:
    done: bool
    kind: str
    """"ok", or one of DEGENERATE_KINDS (harness/constraints/metrics.py)"""
    details: dict[str, Any] = field(default_factory=dict)

    def record(self) -> dict[str, Any]:
        return {"done": self.done, "kind": self.kind, **self.details}

    def graded(self, cut: bool | None) -> dict[str, Any]:
        """The task record a graded output row carries: the verdict, and whether the answer was cut at max_new_tokens
        (None: not known), which the primary metric reads (harness/constraints/metrics.py)."""
        return {"done": self.done, "kind": self.kind, "cut": cut}


def context_of(prompt: Prompt) -> TaskContext:
    """The base task and constraint wording of a prompt: a built-in prompt's from its task; any other's is the
    whole prompt as the task (its constraint wording cannot be told apart, so every prompt word is echo)."""

    text = prompt.messages[-1]["content"]
    task_id = prompt.meta.get("base_task")
    task = builtin_task(task_id) if task_id else None
    if task is None or not text.startswith(task.text):
        return TaskContext(task=text, constraint="")
    return TaskContext(task=task.text, constraint=text[len(task.text) :], task_id=task_id, terms=task_terms(task_id))


_META = frozenset(
    "title titled bullet bullets placeholder placeholders highlight highlighted section sections postscript "
    "comma commas keyword keywords phrase markdown".split()
)
"""Words of the constraints' own vocabulary: an answer that talks about them is about the constraint, not the task."""


def substance(context: TaskContext, answer: str) -> dict[str, Any]:
    """The measurements a verdict is made of (reported with it), and the answer's remainder: what it says once,
    without markers and without the units (sentences, lines) that only repeat the prompt."""
    once = without_repeats(answer)
    prompt_stems = {stem(w) for w in words(context.task) + words(context.constraint)}

    def content(text: str) -> list[str]:
        return [w for w in words(text) if w not in _stopwords() and w not in _FILLER and (len(w) > 1 or w.isdigit())]

    units = [_MARKERS.sub(" ", u) for u in _UNIT.split(once)]
    echo_units = [u for u in units if len(content(u)) >= 2 and {stem(w) for w in content(u)} <= prompt_stems]
    remainder = " ".join(u for u in units if u not in echo_units)
    stems = {stem(w) for w in content(remainder)}
    task_stems = {stem(w) for w in words(context.task)}
    total = len(words(answer))
    source = context.source()
    return {
        "rewritten": bool(source) and _rewrites(source, context.task, once),
        "novel": len(stems - prompt_stems),
        "echoed": len({stem(w) for u in units for w in content(u)} & prompt_stems),
        "echo_units": len(echo_units),
        "meta": len({w for w in words(remainder) if w in _META} - set(words(context.task))),
        "terms": sorted(
            {t for t in context.terms for w in words(remainder) if w.startswith(t) and stem(w) not in task_stems}
        ),
        "repeated_share": round(1 - len(words(once)) / total, 3) if total else 0.0,
        "refusal": bool(_REFUSAL.search(once)),
        "remainder": remainder,
    }


def _rewrites(source: str, task: str, answer: str) -> bool:
    """Some sentence or line of the answer rewrites the source: it keeps a third of the source's content words and
    is not the source itself (the task's instruction, where a line repeats it, is not part of the rewrite)."""
    theirs = {stem(w) for w in words(source) if w not in _stopwords()}
    original = " ".join(words(source))
    instruction = " ".join(words(task.partition(": ")[0]))
    for unit in _UNIT.split(answer):
        ours = " ".join(words(unit)).replace(instruction, " ").strip()
        if not ours or ours == original or original in ours:
            continue
        kept = theirs & {stem(w) for w in ours.split()}
        if theirs and len(kept) >= len(theirs) / 3 and len(ours.split()) <= 3 * len(original.split()) + 10:
            return True
    return False


def verdict(context: TaskContext, m: dict[str, Any], topic_rank: int | None) -> TaskVerdict:
    """The check's verdict from an answer's measurements (`substance`) and its task's topic rank (None: not ranked)."""
    details = {k: v for k, v in m.items() if k != "remainder"} | {"topic_rank": topic_rank}
    if m["refusal"]:
        return TaskVerdict(False, "refusal", details)
    if m["repeated_share"] >= LOOP_SHARE:
        return TaskVerdict(False, "loop", details)
    if m["meta"] >= META_WORDS and m["novel"] <= META_NOVEL:
        return TaskVerdict(False, "echo", details)
    if not m["rewritten"] and m["novel"] < MIN_NOVEL and not (m["novel"] >= 1 and m["terms"]):
        return TaskVerdict(False, "echo" if m["echoed"] >= ECHO_WORDS or m["echo_units"] else "marker_only", details)
    if context.terms and not m["terms"] and topic_rank is not None and topic_rank >= TOPIC_RANK:
        return TaskVerdict(False, "off_topic", details)
    return TaskVerdict(True, "ok", details)


class TaskCheck:
    """The check over many answers at once (one embedding batch for the topic ranks)."""

    def __init__(self, embedder: str | None = None):

        self.embedder = embedder or EMBEDDED_EMBEDDER

    def check_many(self, items: Sequence[tuple[Prompt, str]]) -> list[TaskVerdict]:
        contexts = [context_of(p) for p, _ in items]
        measured = [substance(c, a) for c, (_, a) in zip(contexts, items)]
        # only an answer that passes everything else and names none of its task's terms needs its topic ranked (the
        # embedder is loaded for those alone)
        asks = [
            bool(c.task_id and c.terms and not m["terms"] and m["remainder"].strip()) and verdict(c, m, None).done
            for c, m in zip(contexts, measured)
        ]
        ranks = self._topic_ranks(contexts, [m["remainder"] for m in measured], asks)
        return [verdict(c, m, r) for c, m, r in zip(contexts, measured, ranks)]

    def _topic_ranks(self, contexts: list[TaskContext], remainders: list[str], asks: list[bool]) -> list[int | None]:
        """Where each asked answer's own task ranks among its task set's tasks by embedding similarity (0 = closest)."""

        ranked = [i for i, ask in enumerate(asks) if ask]
        out: list[int | None] = [None] * len(contexts)
        if not ranked:
            return out
        vectors = embed_texts([remainders[i] for i in ranked], self.embedder)
        for i, vector in zip(ranked, vectors):
            ids, matrix = _task_matrix(task_set_of(contexts[i].task_id), self.embedder)
            sims = matrix @ vector
            out[i] = int((sims > sims[ids.index(contexts[i].task_id)]).sum())
        return out


@functools.lru_cache(maxsize=4)
def _task_matrix(task_set: str, embedder: str) -> tuple[list[str], np.ndarray]:
    """(task ids, their texts' embeddings) of one built-in task set."""

    tasks = load_builtin_tasks(task_set)
    return [t.task_id for t in tasks], embed_texts([t.text for t in tasks], embedder)
