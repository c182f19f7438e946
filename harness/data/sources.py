"""Loaders for real preference and prompt data (docs/design.md §2, the `prompts` stage input).

A source is a local file (.json, .jsonl, .json.gz, .jsonl.gz, .parquet) or a Hugging Face hub
id; it is normalised into `Prompt` records plus the native chosen/rejected pairs the source
carries. Four row formats are understood (`FORMATS`; auto-detected from the first row, or named):

- `hh_rlhf`: `{"chosen": str, "rejected": str}`, each a whole "\\n\\nHuman: ...\\n\\nAssistant: ..."
  dialogue; the prompt is the shared prefix up to the last Assistant turn.
- `trl`: TRL's `{"prompt", "chosen", "rejected"}` as strings or as `{role, content}` message
  lists, and TRL's implicit-prompt form (only `chosen`/`rejected`, full conversations sharing a
  prefix).
- `prompts`: `{"prompt": ...}`, `{"messages": [...]}` or `{"instruction": str}` rows (e.g.
  AlpacaEval), with no native pairs.
- `pku_saferlhf`: PKU-SafeRLHF's `{"prompt", "response_0", "response_1", "safer_response_id",
  "better_response_id"}`; the native pair follows the harmlessness label (`safer_response_id`),
  the preference the paper's safety setting trains on.

Two kinds of trouble are kept apart on purpose. A row that breaks the schema (malformed JSON,
a missing field, a wrong type, an unknown role, a prompt not ending with a user turn) raises
`SourceError` naming file, line and field: the file is not what the user thinks it is, and
loading on would give silently wrong data. A row that is well-formed but cannot give a
preference pair (an empty reply, identical replies, chosen and rejected that diverge before
the last reply) is a known quirk of real data sets: it is skipped and counted by reason in
`LoadedSource.skipped`, so a report can say how much was dropped and why.

Message contents are stripped of surrounding whitespace in every format, so that the same
dialogue gets the same prompt id whether it comes from the raw HH-RLHF text or from a TRL
conversion of it.
"""

from __future__ import annotations

import gzip
import json
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.core.records import Prompt

FORMATS = ("hh_rlhf", "trl", "prompts", "pku_saferlhf")
ROLES = ("system", "user", "assistant")
SUFFIXES = (".jsonl", ".jsonl.gz", ".json", ".json.gz", ".parquet")
MAX_ROW_BYTES = 4 << 20
"""One JSON Lines row over 4 MiB is a broken file (e.g. lost newlines joining rows), not a prompt."""

# HH-RLHF turn markers. Only markers after a blank line open a turn: the data also holds
# "Human:" inside replies (the model role-playing the user), which is text, not a turn.
_HH_TURN = re.compile(r"\n\n(Human|Assistant):")
_HH_ROLE = {"Human": "user", "Assistant": "assistant"}


class SourceError(ValueError):
    """A source that cannot be loaded as asked, explained in one paragraph.

    The message names the file (or hub id), the 1-based line or row, the field, what was
    found and what to do; the same facts are kept as attributes for callers that want them.
    """

    def __init__(self, message: str, *, path: str, line: int | None = None, field: str | None = None):
        super().__init__(message)
        self.path = path
        self.line = line
        self.field = field


@dataclass
class NativePair:
    """A pair the source itself ranks: assistant texts of the final turn."""

    prompt_id: str
    chosen: str
    rejected: str


@dataclass
class LoadedSource:
    """Normalised prompts and native pairs, with an account of what was dropped or merged.

    `skipped`: rows dropped, by reason (`empty_response`, `identical_responses`,
    `prefix_mismatch`, `no_final_assistant`, `unparseable_dialogue`, `empty_prompt`,
    `duplicate_pair`). `merged`: rows kept after a merge, by kind (`consecutive_turns`: HH
    dialogues where consecutive turns of one speaker were joined into one message;
    `duplicate_prompt`: rows whose prompt repeats an earlier one, folded into it).
    """

    prompts: list[Prompt]
    native_pairs: list[NativePair]
    format: str
    path: str
    skipped: dict[str, int] = field(default_factory=dict)
    merged: dict[str, int] = field(default_factory=dict)


class _Skip(Exception):
    """Raised by a row parser for a well-formed row that yields no usable pair."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass
class _Where:
    """Where a row sits, so that every error can point at it."""

    path: str
    unit: str  # "line" for JSON Lines, "row" otherwise
    number: int

    def error(self, field_name: str, problem: str, found: str, fix: str) -> SourceError:
        message = f"{self.path}, {self.unit} {self.number}, field '{field_name}': {problem}; found {found}. {fix}"
        return SourceError(message, path=self.path, line=self.number, field=field_name)


@dataclass
class _Parsed:
    messages: list[dict[str, str]]
    meta: dict[str, Any]
    chosen: str | None = None
    rejected: str | None = None
    merged_turns: bool = False


def _show(value: Any) -> str:
    """A short, typed rendering of a found value for error messages."""
    text = repr(value)
    if len(text) > 80:
        text = text[:77] + "..."
    return f"{type(value).__name__} {text}"


def _missing(row: dict[str, Any]) -> str:
    return f"nothing (the row has keys {sorted(row)})"


# ---------------------------------------------------------------- reading rows


def _open_lines(path: Path) -> Iterator[bytes]:
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rb") as handle:
        yield from handle


def _decode(raw: bytes, where: _Where) -> str:
    try:
        return raw.decode("utf-8").lstrip("\ufeff") if where.number == 1 else raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise where.error(
            "(whole line)", f"not valid UTF-8 ({exc.reason})", _show(raw[:60]), "Re-encode the file as UTF-8."
        ) from exc


def _jsonl_rows(path: Path, label: str) -> Iterator[tuple[_Where, Any]]:
    for number, raw in enumerate(_open_lines(path), 1):
        where = _Where(label, "line", number)
        if len(raw) > MAX_ROW_BYTES:
            raise where.error(
                "(whole line)",
                f"the line is {len(raw) / 2**20:.1f} MB, over the {MAX_ROW_BYTES >> 20} MB limit for one row",
                _show(raw[:40]),
                "Check that each row ends with a newline (lost newlines join rows into one line), or shorten the text.",
            )
        text = _decode(raw, where)
        if not text.strip():
            continue
        try:
            yield where, json.loads(text)
        except json.JSONDecodeError as exc:
            raise where.error(
                "(whole line)",
                f"malformed JSON ({exc.msg} at column {exc.colno})",
                _show(text.rstrip("\n")),
                "Fix or remove this line: in JSON Lines every line is one complete JSON "
                "object (a pretty-printed document must be a JSON array instead).",
            ) from exc


def _json_rows(path: Path, label: str) -> Iterator[tuple[_Where, Any]]:
    """A .json file is either one JSON array of rows or, as `datasets` also accepts, JSON Lines."""
    with (gzip.open if path.name.endswith(".gz") else open)(path, "rb") as handle:
        head = handle.read(4096).decode("utf-8", errors="ignore").lstrip("\ufeff \t\r\n")
    if not head.startswith("["):
        yield from _jsonl_rows(path, label)
        return
    raw = b"".join(_open_lines(path))
    try:
        text = raw.decode("utf-8").lstrip("\ufeff")
    except UnicodeDecodeError as exc:
        raise _Where(label, "line", raw[: exc.start].count(b"\n") + 1).error(
            "(JSON array)",
            f"not valid UTF-8 ({exc.reason})",
            _show(raw[exc.start : exc.start + 20]),
            "Re-encode the file as UTF-8.",
        ) from exc
    try:
        rows = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _Where(label, "line", exc.lineno).error(
            "(JSON array)",
            f"malformed JSON ({exc.msg} at column {exc.colno})",
            _show(text.splitlines()[exc.lineno - 1] if text.splitlines() else ""),
            "Fix the JSON at that line; the file must be one JSON array of row objects.",
        ) from exc
    for number, row in enumerate(rows, 1):
        yield _Where(label, "row", number), row


def _parquet_rows(path: Path, label: str) -> Iterator[tuple[_Where, Any]]:
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises several types for unreadable files
        raise SourceError(
            f"{label}: not a readable Parquet file ({type(exc).__name__}: {exc}). "
            "Check that the file is complete and really Parquet.",
            path=label,
        ) from exc
    number = 0
    for batch in parquet.iter_batches(batch_size=1024):
        for row in batch.to_pylist():
            number += 1
            yield _Where(label, "row", number), row


def _hub_rows(source: str, split: str, data_dir: str | None) -> Iterator[tuple[_Where, Any]]:
    import datasets  # imported here: it is slow to import and only hub ids need it

    try:
        dataset = datasets.load_dataset(source, data_dir=data_dir, split=split)
    except Exception as exc:  # datasets raises many types (connection, not found, config)
        where = (
            "is a local directory that `datasets` could not read"
            if Path(source).is_dir()
            else "does not exist as a local path, and as a Hugging Face hub id it could not be loaded"
        )
        raise SourceError(
            f"{source!r} {where} (split={split!r}, data_dir={data_dir!r}): {type(exc).__name__}: {exc}. "
            f"Pass an existing {'/'.join(SUFFIXES)} file, or check the hub id, the network and "
            "HF_HUB_OFFLINE.",
            path=source,
        ) from exc
    for number, row in enumerate(dataset, 1):
        yield _Where(source, "row", number), row


def _rows(source: str, split: str, data_dir: str | None) -> tuple[Iterator[tuple[_Where, Any]], str, str]:
    """Rows of a source, with its display path and the name used in `Prompt.source`."""
    path = Path(source)
    if path.is_file():
        label = str(path)
        name = path.name
        if name.endswith((".jsonl", ".jsonl.gz")):
            return _jsonl_rows(path, label), label, name
        if name.endswith((".json", ".json.gz")):
            return _json_rows(path, label), label, name
        if name.endswith(".parquet"):
            return _parquet_rows(path, label), label, name
        raise SourceError(
            f"{label}: unsupported file type; found {path.suffix or 'no suffix'!r}. "
            f"Convert it to one of {', '.join(SUFFIXES)}.",
            path=label,
        )
    if source.endswith(SUFFIXES) or source.startswith(("/", "./", "../", "~")):
        raise SourceError(
            f"{source} does not exist. Pass an existing {'/'.join(SUFFIXES)} file (relative paths start "
            "from the working folder), or a hub data set id.",
            path=source,
        )
    name = source + (f"/{data_dir}" if data_dir else "") + f"[{split}]"
    return _hub_rows(source, split, data_dir), source, name


# ---------------------------------------------------------------- parsing fields


def _text(row: dict[str, Any], key: str, where: _Where) -> str:
    if key not in row:
        raise where.error(key, "required field is missing", _missing(row), f"Add '{key}' to this row.")
    value = row[key]
    if not isinstance(value, str):
        raise where.error(key, "expected a string", _show(value), f"Make '{key}' a string.")
    return value.strip()


def _messages(value: Any, key: str, where: _Where) -> list[dict[str, str]]:
    """Validate a `{role, content}` message list; keep only role and content, stripped."""
    if not isinstance(value, list) or not value:
        raise where.error(
            key,
            "expected a non-empty list of {role, content} messages",
            _show(value),
            f"Make '{key}' a list like [{{\"role\": \"user\", \"content\": \"...\"}}].",
        )
    out = []
    for index, message in enumerate(value):
        here = f"{key}[{index}]"
        if not isinstance(message, dict):
            raise where.error(
                here,
                "expected a {role, content} object",
                _show(message),
                "Write each message as an object with 'role' and 'content'.",
            )
        role, content = message.get("role"), message.get("content")
        if role not in ROLES:
            raise where.error(
                f"{here}.role",
                f"unknown role (expected one of {', '.join(ROLES)})",
                _show(role),
                "Rename the role (e.g. 'human' to 'user', 'gpt' to 'assistant').",
            )
        if not isinstance(content, str):
            raise where.error(
                f"{here}.content",
                "expected a string",
                _show(content),
                "Give every message its text as a string 'content'.",
            )
        out.append({"role": role, "content": content.strip()})
    return out


def _prompt_messages(value: Any, key: str, where: _Where) -> list[dict[str, str]]:
    """A prompt as a string (one user turn) or as messages, which must end with a user turn."""
    if isinstance(value, str):
        if not value.strip():
            raise _Skip("empty_prompt")
        return [{"role": "user", "content": value.strip()}]
    messages = _messages(value, key, where)
    if messages[-1]["role"] != "user":
        raise where.error(
            f"{key}[{len(messages) - 1}].role",
            "a prompt must end with a user message",
            _show(messages[-1]["role"]),
            "Drop the trailing reply from the prompt (for a full conversation use format='trl' with chosen/rejected).",
        )
    if not messages[-1]["content"]:
        raise _Skip("empty_prompt")
    return messages


def _assistant_text(messages: list[dict[str, str]], key: str, offset: int, where: _Where) -> str:
    """Join a completion's messages, which must all be assistant turns, into one reply."""
    for index, message in enumerate(messages):
        if message["role"] != "assistant":
            raise where.error(
                f"{key}[{offset + index}].role",
                "a completion may only hold assistant messages",
                _show(message["role"]),
                "Keep only the reply in chosen/rejected, or put the whole conversation "
                "there and leave out 'prompt' (TRL's implicit-prompt form).",
            )
    return "\n\n".join(m["content"] for m in messages if m["content"])


def _split_final_reply(messages: list[dict[str, str]]) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """Split a conversation before its trailing run of assistant messages."""
    end = len(messages)
    while end > 0 and messages[end - 1]["role"] == "assistant":
        end -= 1
    return messages[:end], messages[end:]


# ---------------------------------------------------------------- row formats


def _hh_dialogue(text: str) -> tuple[list[dict[str, str]], bool]:
    """Parse an HH-RLHF dialogue into alternating messages.

    Consecutive turns of one speaker (the data has "\\n\\nAssistant: a\\n\\nAssistant: b") are
    joined with a blank line: chat templates need alternating roles, and splitting at the
    last marker instead would cut a reply in two and make chosen and rejected disagree on
    the prompt. Returns the messages and whether such a join happened.
    """
    parts = _HH_TURN.split(text)
    if len(parts) < 3 or parts[0].strip():
        raise _Skip("unparseable_dialogue")
    messages: list[dict[str, str]] = []
    merged = False
    for speaker, content in zip(parts[1::2], parts[2::2]):
        role, content = _HH_ROLE[speaker], content.strip()
        if messages and messages[-1]["role"] == role:
            merged = True
            messages[-1]["content"] = "\n\n".join(c for c in (messages[-1]["content"], content) if c)
        else:
            messages.append({"role": role, "content": content})
    return messages, merged


def _parse_hh(row: dict[str, Any], where: _Where) -> _Parsed:
    chosen_text, rejected_text = _text(row, "chosen", where), _text(row, "rejected", where)
    # The texts were stripped, which removed the "\n\n" before the first "Human:"; put it back
    # so that the first turn parses like every other (some copies of the data lack it anyway).
    chosen, merged_c = _hh_dialogue("\n\n" + chosen_text)
    rejected, merged_r = _hh_dialogue("\n\n" + rejected_text)
    if chosen[-1]["role"] != "assistant" or rejected[-1]["role"] != "assistant":
        raise _Skip("no_final_assistant")
    if not chosen[-1]["content"] or not rejected[-1]["content"]:
        raise _Skip("empty_response")
    prompt = chosen[:-1]
    if prompt != rejected[:-1]:
        raise _Skip("prefix_mismatch")
    if not prompt or not prompt[-1]["content"]:
        raise _Skip("empty_prompt")
    if chosen[-1]["content"] == rejected[-1]["content"]:
        raise _Skip("identical_responses")
    return _Parsed(
        prompt, {"row": where.number}, chosen[-1]["content"], rejected[-1]["content"], merged_turns=merged_c or merged_r
    )


def _trl_completion(row: dict[str, Any], key: str, prompt: list[dict[str, str]], where: _Where) -> str:
    """A completion given next to an explicit prompt.

    Some data sets (e.g. UltraFeedback binarized) repeat the prompt at the head of chosen and
    rejected; that copy is dropped so that only the reply remains.
    """
    if key not in row:
        raise where.error(key, "required field is missing", _missing(row), f"Add '{key}' to this row.")
    value = row[key]
    if isinstance(value, str):
        return value.strip()
    messages = _messages(value, key, where)
    offset = len(prompt) if messages[: len(prompt)] == prompt else 0
    return _assistant_text(messages[offset:], key, offset, where)


def _trl_conversation(row: dict[str, Any], key: str, where: _Where) -> tuple[list[dict[str, str]], str]:
    """Prompt and reply of one full conversation in TRL's implicit-prompt form."""
    if key not in row:
        raise where.error(key, "required field is missing", _missing(row), f"Add '{key}' to this row.")
    if isinstance(row[key], str):
        raise where.error(
            "prompt",
            "required field is missing (chosen/rejected are plain strings, so the prompt cannot be inferred)",
            _missing(row),
            "Add 'prompt', or use format='hh_rlhf' if the strings are whole Human/Assistant dialogues.",
        )
    messages = _messages(row[key], key, where)
    prompt, reply = _split_final_reply(messages)
    if not reply:
        raise where.error(
            f"{key}[{len(messages) - 1}].role",
            "the conversation must end with an assistant reply",
            _show(messages[-1]["role"]),
            "End chosen/rejected with the assistant message being ranked.",
        )
    if not prompt or prompt[-1]["role"] != "user":
        found = _show(prompt[-1]["role"]) if prompt else "no message before the reply"
        raise where.error(
            f"{key}[{max(len(prompt) - 1, 0)}].role",
            "the prompt part must end with a user message",
            found,
            "Put a user message right before the final assistant reply.",
        )
    return prompt, "\n\n".join(m["content"] for m in reply if m["content"])


def _parse_trl(row: dict[str, Any], where: _Where) -> _Parsed:
    if "prompt" in row:
        prompt = _prompt_messages(row["prompt"], "prompt", where)
        chosen = _trl_completion(row, "chosen", prompt, where)
        rejected = _trl_completion(row, "rejected", prompt, where)
    else:
        prompt, chosen = _trl_conversation(row, "chosen", where)
        rejected_prompt, rejected = _trl_conversation(row, "rejected", where)
        if rejected_prompt != prompt:
            raise _Skip("prefix_mismatch")
        if not prompt[-1]["content"]:
            raise _Skip("empty_prompt")
    if not chosen or not rejected:
        raise _Skip("empty_response")
    if chosen == rejected:
        raise _Skip("identical_responses")
    return _Parsed(prompt, {"row": where.number}, chosen, rejected)


def _parse_prompts(row: dict[str, Any], where: _Where) -> _Parsed:
    """A plain prompt; the row's other fields go to `meta` (constraints, reference outputs)."""
    if "prompt" in row:
        key, messages = "prompt", _prompt_messages(row["prompt"], "prompt", where)
    elif "messages" in row:
        key, messages = "messages", _prompt_messages(row["messages"], "messages", where)
    elif "instruction" in row:
        key, text = "instruction", _text(row, "instruction", where)
        if not text:
            raise _Skip("empty_prompt")
        messages = [{"role": "user", "content": text}]
    else:
        raise where.error(
            "prompt",
            "no prompt field (expected 'prompt', 'messages' or 'instruction')",
            _missing(row),
            "Add one of these fields, or pass the right format=.",
        )
    meta = {k: v for k, v in row.items() if k != key}
    meta["row"] = where.number
    return _Parsed(messages, meta)


def _parse_pku(row: dict[str, Any], where: _Where) -> _Parsed:
    prompt = _text(row, "prompt", where)
    responses = [_text(row, "response_0", where), _text(row, "response_1", where)]
    safer = row.get("safer_response_id")
    if safer not in (0, 1) or isinstance(safer, bool):
        raise where.error("safer_response_id", "must be 0 or 1", _show(safer), "Use PKU-SafeRLHF rows as published.")
    if not prompt:
        raise _Skip("empty_prompt")
    if not all(responses):
        raise _Skip("empty_response")
    if responses[0] == responses[1]:
        raise _Skip("identical_responses")
    return _Parsed([{"role": "user", "content": prompt}], {"row": where.number}, responses[safer], responses[1 - safer])


_PARSERS = {"hh_rlhf": _parse_hh, "trl": _parse_trl, "prompts": _parse_prompts, "pku_saferlhf": _parse_pku}


def _detect(row: dict[str, Any], where: _Where) -> str:
    """Pick the format from the first row's keys.

    Any of chosen/rejected means a pair format, even if the other is missing, so that a
    broken pair file fails loudly instead of loading as plain prompts without its pairs.
    """
    if "safer_response_id" in row and "response_0" in row:
        return "pku_saferlhf"
    if "chosen" in row or "rejected" in row:
        if "prompt" in row or isinstance(row.get("chosen", row.get("rejected")), list):
            return "trl"
        return "hh_rlhf"
    if {"prompt", "messages", "instruction"} & row.keys():
        return "prompts"
    raise where.error(
        "(keys)",
        "cannot tell the format from the keys",
        _show(sorted(row)),
        "Use rows with chosen/rejected (hh_rlhf), prompt/chosen/rejected (trl), or "
        "prompt/messages/instruction (prompts), or pass format=.",
    )


# ---------------------------------------------------------------- entry point


def load_source(
    source: str, *, format: str = "auto", split: str = "train", data_dir: str | None = None, limit: int | None = None
) -> LoadedSource:
    """Load a local file or hub data set into prompts and native pairs.

    `split` and `data_dir` apply to hub ids (and local dataset directories) only. Rows sharing
    a prompt are merged into its first occurrence, keeping every distinct native pair; `limit`
    then keeps the first `limit` prompts and their pairs. The whole source is always read, so
    that a bad row anywhere is reported and the skip counts describe the whole source.
    """
    if format != "auto" and format not in FORMATS:
        raise ValueError(f"format must be 'auto' or one of {', '.join(FORMATS)}; got {format!r}")
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be a positive number of prompts or None; got {limit!r}")
    rows, label, name = _rows(source, split, data_dir)
    fmt = None if format == "auto" else format
    prompts: dict[str, Prompt] = {}
    pairs: dict[tuple[str, str, str], NativePair] = {}
    skipped: Counter[str] = Counter()
    merged: Counter[str] = Counter()
    for where, row in rows:
        if not isinstance(row, dict):
            raise where.error("(row)", "expected a JSON object", _show(row), "Write each row as an object.")
        if fmt is None:
            fmt = _detect(row, where)
        try:
            parsed = _PARSERS[fmt](row, where)
        except _Skip as skip:
            skipped[skip.reason] += 1
            continue
        prompt = Prompt.make(parsed.messages, f"{fmt}:{name}", parsed.meta)
        if prompt.id in prompts:
            merged["duplicate_prompt"] += 1
        else:
            prompts[prompt.id] = prompt
        if parsed.merged_turns:
            merged["consecutive_turns"] += 1
        if parsed.chosen is not None and parsed.rejected is not None:
            key = (prompt.id, parsed.chosen, parsed.rejected)
            if key in pairs:
                skipped["duplicate_pair"] += 1
            else:
                pairs[key] = NativePair(prompt.id, parsed.chosen, parsed.rejected)
    if not prompts:
        detail = f"every row was skipped ({dict(skipped)})" if skipped else "it holds no rows"
        raise SourceError(
            f"{label}: no usable prompts, {detail}. Check that the source and format={fmt or format!r} match the data.",
            path=label,
        )
    kept = list(prompts.values())[:limit]
    kept_ids = {p.id for p in kept}
    return LoadedSource(
        prompts=kept,
        native_pairs=[p for p in pairs.values() if p.prompt_id in kept_ids],
        format=fmt or format,
        path=label,
        skipped=dict(skipped),
        merged=dict(merged),
    )
