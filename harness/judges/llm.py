"""LLM-as-judge: single-answer grading on 1-10 and pairwise comparison in both orders.

Single grading asks for `[[rating]]` (MT-Bench style); a reply without a parsable rating in
1..10 is a recorded failure, never a score. Pairwise judging asks twice with the answers
swapped; the pair is a win only when both orders agree, and a disagreement is a tie, which
cancels the judge's position bias (as FastChat and AlpacaEval do).

In `logprobs` mode (the default for local judges) the verdict is read from next-token
probabilities after a prefilled "Rating: [[" / "Verdict: [[": the rating is the expected value
over 1..10 (G-Eval style) and the pairwise preference is the probability mass for `a` over
both orders, ties counting half (alpaca_eval's weighted annotators). Small models rarely
follow the output format when generating, so this turns their opinion into a number instead of
a parse failure; it does not make a weak judge strong, and reports still flag it as weak.
"""

from __future__ import annotations

import re

from harness.core.errors import BenchError
from harness.core.records import Prompt
from harness.judges._llm_backends import OpenAIBackend, TransformersBackend
from harness.judges._llm_prompts import load_judge_prompts, render_pair, render_single
from harness.judges.base import JUDGE_FIELDS, Judge, Judgment, register
from harness.judges.config import JudgeConfig
from harness.models.checks import check_chat_template, check_endpoint, check_model
from harness.models.config import EMBEDDED_MODEL

_RATING = re.compile(r"\[\[(\d+(?:\.\d+)?)\]\]")
_RATING_BACKUP = re.compile(r"\[(\d+(?:\.\d+)?)\]")
_VERDICT = re.compile(r"\[\[([ABC])\]\]")
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([MB])\b", re.IGNORECASE)


def parse_rating(text: str) -> float | None:
    """The 1-10 rating in a judge reply (FastChat's patterns: [[x]], then [x]), or None."""
    for pattern in (_RATING, _RATING_BACKUP):
        found = pattern.findall(text)
        if found:
            value = float(found[-1])
            return value if 1 <= value <= 10 else None
    return None


def parse_verdict(text: str) -> str | None:
    found = _VERDICT.findall(text)
    return found[-1] if found else None


def params_from_name(name: str) -> float | None:
    """Parameter count guessed from a model name such as 'Qwen2.5-0.5B' or 'SmolLM2-135M'."""
    match = _SIZE.search(name.rstrip("/").rsplit("/", 1)[-1].replace("_", "-"))  # not a folder such as /mnt/7b-models/
    if not match:
        return None
    return float(match.group(1)) * (1e6 if match.group(2).upper() == "M" else 1e9)


@register
class LLMJudge(Judge):
    name = "llm"
    fields = frozenset(JUDGE_FIELDS)

    @classmethod
    def check_config(cls, cfg: JudgeConfig) -> None:
        super().check_config(cfg)
        if cfg.backend == "openai" and not (cfg.base_url and cfg.model):
            raise ValueError("the openai back end needs `base_url` (e.g. http://127.0.0.1:8000/v1) and `model`")

    @classmethod
    def preflight(cls, cfg: JudgeConfig, field: str) -> None:
        """An endpoint is connected to (and its key variable read); a local judge model is looked at,
        with its chat template (a local LLM judge is prompted with chat messages)."""

        if cfg.backend == "openai":
            OpenAIBackend(cfg)  # refuses an unset key variable, with the same message the judge would give
            check_endpoint(cfg.base_url, cfg.timeout_s, f"{field}.base_url")
            return
        check_model(cfg.model or EMBEDDED_MODEL, f"{field}.model")
        check_chat_template(cfg.model or EMBEDDED_MODEL, f"{field}.model")

    def __init__(self, config: JudgeConfig | None = None):
        super().__init__(config or JudgeConfig(type="llm"))
        self.prompts = load_judge_prompts(self.config.judge_prompts)
        self._backend: TransformersBackend | OpenAIBackend | None = None

        model = self.config.model or EMBEDDED_MODEL
        where = f"{self.config.base_url}" if self.config.backend == "openai" else "local transformers"
        size = params_from_name(model if model != EMBEDDED_MODEL else "SmolLM2-135M")
        self.weak = size is not None and size < 1e9
        prompts = "FastChat judge prompts" if self.config.judge_prompts else "our judge prompts"
        mode = "logprobs" if self.logprobs else "generate"
        self._describe = f"llm judge {model} ({where}; {prompts}; {mode})"

    @property
    def label(self) -> str:  # type: ignore[override]
        return self._describe + (" - WEAK: a model under 1B parameters" if self.weak else "")

    @property
    def logprobs(self) -> bool:
        if self.config.mode == "auto":
            return self.config.backend == "transformers"
        if self.config.mode == "logprobs" and self.config.backend != "transformers":
            raise BenchError("judge.mode: logprobs needs a local transformers judge; use mode: generate for endpoints.")
        return self.config.mode == "logprobs"

    @property
    def backend(self) -> TransformersBackend | OpenAIBackend:
        # Loaded on first use, so a fully cached rerun never loads the judge model.
        if self._backend is None:
            self._backend = (
                OpenAIBackend(self.config) if self.config.backend == "openai" else TransformersBackend(self.config)
            )
            if isinstance(self._backend, TransformersBackend):
                self.weak = self._backend.n_params < 1e9
        return self._backend

    def score_many(self, items: list[tuple[Prompt, str]]) -> list[Judgment]:
        if not items:
            return []
        rendered = [render_single(self.prompts, p.messages, r, p.meta.get("reference")) for p, r in items]
        if self.logprobs:
            return self._rate_by_logprobs(rendered)
        replies = self.backend.complete([chat for _, chat in rendered], desc="judge: rate")
        out = []
        for (template, _), reply in zip(rendered, replies):
            if isinstance(reply, Exception):
                out.append(Judgment(None, details={"template": template.name}, error=f"judge call failed: {reply}"))
                continue
            rating = parse_rating(reply)
            details = {"template": template.name, "reply": reply}
            out.append(
                Judgment(rating, details, None if rating is not None else "no [[rating]] in 1..10 in the judge's reply")
            )
        return out

    def _rate_by_logprobs(self, rendered: list) -> list[Judgment]:
        choices = [str(r) for r in range(1, 11)]
        probs = self.backend.next_token_probs([chat for _, chat in rendered], "Rating: [[", choices, desc="judge: rate")  # type: ignore[union-attr]
        out = []
        for (template, _), p in zip(rendered, probs):
            if isinstance(p, Exception):
                out.append(Judgment(None, details={"template": template.name}, error=f"judge call failed: {p}"))
                continue
            expected = sum(int(c) * q for c, q in p.items())
            out.append(Judgment(expected, {"template": template.name, "mode": "logprobs", "probs": p}))
        return out

    def compare_many(self, items: list[tuple[Prompt, str, str]]) -> list[Judgment]:
        if not items:
            return []
        chats = []
        for p, a, b in items:
            ref = p.meta.get("reference")
            chats.append(render_pair(self.prompts, p.messages, a, b, ref)[1])
            chats.append(render_pair(self.prompts, p.messages, b, a, ref)[1])
        if self.logprobs:
            probs = self.backend.next_token_probs(
                chats, "Verdict: [[", ["A", "B", "C"], desc="judge: compare (both orders)"
            )  # type: ignore[union-attr]
            replies = [p if isinstance(p, Exception) else max(p, key=p.get) for p in probs]
        else:
            replies = self.backend.complete(chats, desc="judge: compare (both orders)")
        out = []
        for i in range(len(items)):
            first, second = replies[2 * i], replies[2 * i + 1]
            failed = [r for r in (first, second) if isinstance(r, Exception)]
            if failed:
                out.append(Judgment(None, error=f"judge call failed: {failed[0]}"))
                continue
            if self.logprobs:
                # alpaca_eval's "weighted" annotators: a continuous preference from the verdict
                # probabilities of both orders (in the swapped order, "B" names answer a).
                ab, ba = probs[2 * i], probs[2 * i + 1]
                value = (ab["A"] + ba["B"]) / 2 + (ab["C"] + ba["C"]) / 4  # type: ignore[index]
                out.append(Judgment(value, {"verdict_ab": first, "verdict_ba": second, "probs_ab": ab, "probs_ba": ba}))
                continue
            v1, v2 = parse_verdict(first), parse_verdict(second)  # type: ignore[arg-type]
            details = {"verdict_ab": v1, "verdict_ba": v2, "reply_ab": first, "reply_ba": second}
            if v1 is None or v2 is None:
                out.append(Judgment(None, details, "no [[A]]/[[B]]/[[C]] verdict in the judge's reply"))
                continue
            # In the swapped order, "A" names answer b.
            if v1 == "A" and v2 == "B":
                value = 1.0
            elif v1 == "B" and v2 == "A":
                value = 0.0
            else:
                value = 0.5
            out.append(Judgment(value, details))
        return out
