"""Judge prompt templates: ours by default, FastChat's `judge_prompts.jsonl` on request.

Ours follow the same structure and placeholders as FastChat's MT-Bench prompts (so either set
renders through one code path) but are worded independently. For MT-Bench numbers comparable
with published ones, point `judge.judge_prompts` at FastChat's file.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from harness.core.errors import BenchError


@dataclass(frozen=True)
class JudgePrompt:
    name: str
    system_prompt: str
    prompt_template: str
    output_format: str  # "[[rating]]" or "[[A]]"


_RATE = "Finish with your rating on a 1-to-10 scale written exactly as [[rating]], for example: Rating: [[6]]."
_SINGLE_SYSTEM = "You are a fair and careful grader of AI assistant answers."
_SINGLE = (
    "Grade the assistant's answer to the user's question below. Weigh how helpful, correct, relevant and "
    "detailed it is. Explain your judgment in a few sentences first. " + _RATE + "\n\n"
    "[Question]\n{question}\n\n[Assistant's Answer Begins]\n{answer}\n[Assistant's Answer Ends]"
)
_SINGLE_MATH = (
    "Grade the assistant's answer to the user's question below against the reference answer, which is "
    "correct. Check the assistant's answer for mistakes first, then explain briefly. " + _RATE + "\n\n"
    "[Question]\n{question}\n\n[Reference Answer Begins]\n{ref_answer_1}\n[Reference Answer Ends]\n\n"
    "[Assistant's Answer Begins]\n{answer}\n[Assistant's Answer Ends]"
)
_CONVERSATION = (
    "[Conversation Begins]\n\nUser:\n{question_1}\n\nAssistant:\n{answer_1}\n\nUser:\n{question_2}\n\n"
    "Assistant:\n{answer_2}\n\n[Conversation Ends]"
)
_MULTI_SYSTEM = (
    "You are a fair and careful grader of AI assistant answers. Grade only the assistant's answer to the "
    "user's SECOND question in the conversation below, for helpfulness, correctness, relevance and detail. "
    "Explain your judgment in a few sentences first. " + _RATE
)
_MULTI_MATH_SYSTEM = (
    "You are a fair and careful grader of AI assistant answers. Grade only the assistant's answer to the "
    "user's SECOND question in the conversation below, against the reference answers, which are correct. "
    "Check for mistakes first, then explain briefly. " + _RATE
)
_REFERENCE_CONVERSATION = (
    "[Reference Answers Begin]\n\nUser:\n{question_1}\n\nReference:\n{ref_answer_1}\n\nUser:\n{question_2}\n\n"
    "Reference:\n{ref_answer_2}\n\n[Reference Answers End]\n\n"
)
_PAIR_SYSTEM = (
    "You are a fair and careful judge. Compare the answers of two AI assistants to the user's question "
    "below and decide which follows the user's instructions and answers the question better, weighing "
    "helpfulness, correctness, relevance and detail. Ignore the order in which the answers appear, their "
    "length, and the assistants' names. Explain briefly, then give your verdict exactly as [[A]] if "
    "assistant A is better, [[B]] if assistant B is better, or [[C]] for a tie."
)
_PAIR = (
    "[Question]\n{question}\n\n[Assistant A's Answer Begins]\n{answer_a}\n[Assistant A's Answer Ends]\n\n"
    "[Assistant B's Answer Begins]\n{answer_b}\n[Assistant B's Answer Ends]"
)
_PAIR_MATH = (
    "[Question]\n{question}\n\n[Reference Answer Begins]\n{ref_answer_1}\n[Reference Answer Ends]\n\n"
    + _PAIR.split("\n\n", 1)[1]
)

BUILTIN: dict[str, JudgePrompt] = {
    p.name: p
    for p in (
        JudgePrompt("single-v1", _SINGLE_SYSTEM, _SINGLE, "[[rating]]"),
        JudgePrompt("single-math-v1", _SINGLE_SYSTEM, _SINGLE_MATH, "[[rating]]"),
        JudgePrompt("single-v1-multi-turn", _MULTI_SYSTEM, _CONVERSATION, "[[rating]]"),
        JudgePrompt(
            "single-math-v1-multi-turn", _MULTI_MATH_SYSTEM, _REFERENCE_CONVERSATION + _CONVERSATION, "[[rating]]"
        ),
        JudgePrompt("pair-v2", _PAIR_SYSTEM, _PAIR, "[[A]]"),
        JudgePrompt("pair-math-v1", _PAIR_SYSTEM, _PAIR_MATH, "[[A]]"),
    )
}


def load_judge_prompts(path: str | None) -> dict[str, JudgePrompt]:
    """Our templates, overridden by those in a FastChat-format judge_prompts.jsonl when given."""
    prompts = dict(BUILTIN)
    if path is None:
        return prompts
    file = Path(path).expanduser()
    if not file.is_file():
        raise BenchError(
            f"judge.judge_prompts: {file} does not exist; pass FastChat's judge_prompts.jsonl or leave it unset."
        )
    for lineno, line in enumerate(file.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            prompts[row["name"]] = JudgePrompt(
                row["name"], row["system_prompt"], row["prompt_template"], row["output_format"]
            )
        except (json.JSONDecodeError, KeyError, TypeError) as err:
            raise BenchError(
                f"{file} line {lineno}: not a judge prompt row ({err}); each line needs name, system_prompt, "
                "prompt_template and output_format, as in FastChat's judge_prompts.jsonl."
            ) from None
    return prompts


def _turns(messages: list[dict[str, str]], answer: str) -> tuple[list[str], list[str]]:
    users = [m["content"] for m in messages if m["role"] == "user"]
    answers = [m["content"] for m in messages if m["role"] == "assistant"] + [answer]
    return users, answers


def render_single(
    prompts: dict[str, JudgePrompt], messages: list[dict[str, str]], answer: str, reference: list[str] | None
) -> tuple[JudgePrompt, list[dict[str, str]]]:
    """Chat messages asking for a 1-10 rating of `answer` to the conversation's last user turn."""
    users, answers = _turns(messages, answer)
    math = "-math" if reference else ""
    if len(users) == 2:
        template = prompts[f"single{math}-v1-multi-turn"]
        fields = {"question_1": users[0], "question_2": users[1], "answer_1": answers[0], "answer_2": answers[1]}
        if reference:
            fields |= {"ref_answer_1": reference[0], "ref_answer_2": reference[1] if len(reference) > 1 else ""}
    else:
        template = prompts[f"single{math}-v1"]
        context = "".join(f"{m['role'].capitalize()}: {m['content']}\n\n" for m in messages[:-1])
        fields = {"question": context + users[-1], "answer": answer}
        if reference:
            fields["ref_answer_1"] = reference[len(users) - 1] if len(reference) >= len(users) else reference[-1]
    return template, _chat(template, fields)


def render_pair(
    prompts: dict[str, JudgePrompt], messages: list[dict[str, str]], a: str, b: str, reference: list[str] | None
) -> tuple[JudgePrompt, list[dict[str, str]]]:
    """Chat messages asking which of two answers to the conversation's last user turn is better."""
    template = prompts["pair-math-v1" if reference else "pair-v2"]
    context = "".join(f"{m['role'].capitalize()}: {m['content']}\n\n" for m in messages[:-1])
    fields = {"question": context + messages[-1]["content"], "answer_a": a, "answer_b": b}
    if reference:
        fields["ref_answer_1"] = reference[-1]
    return template, _chat(template, fields)


def _chat(template: JudgePrompt, fields: dict[str, str]) -> list[dict[str, str]]:
    # One pass over the template, not str.format: answers may contain braces or placeholders.
    text = re.sub(r"\{(\w+)\}", lambda m: fields.get(m.group(1), m.group(0)), template.prompt_template)
    return [{"role": "system", "content": template.system_prompt}, {"role": "user", "content": text}]
