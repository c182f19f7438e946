"""Source loaders on real public data (../shared/data) and on small files written here.

No mocks: the HH-RLHF and AlpacaEval files are the real ones, so these tests pin down how
the loader treats the real quirks (empty replies, consecutive turns of one speaker, repeated
prompts) rather than quirks we imagined.
"""

from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from harness.data.sources import LoadedSource, SourceError, load_source

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
HH = DATA / "hh_rlhf" / "harmless-base-test.jsonl.gz"
ALPACA = DATA / "alpaca_eval" / "gpt4_1106_preview_outputs.json"


def _need(path: Path) -> None:
    if not path.exists():
        pytest.skip(f"real data file {path} is absent (expected in ../shared/data next to the repo)")


def _write_jsonl(path: Path, rows: list[Any]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def hh() -> LoadedSource:
    _need(HH)
    return load_source(str(HH))


# ---------------------------------------------------------------- HH-RLHF, real file


def test_hh_counts_and_skips_are_reported(hh: LoadedSource) -> None:
    assert hh.format == "hh_rlhf"
    assert hh.path == str(HH)
    # 2,312 rows: 4 have an empty chosen reply; 2 repeat an earlier prompt with another pair.
    assert hh.skipped == {"empty_response": 4}
    assert hh.merged == {"consecutive_turns": 9, "duplicate_prompt": 2}
    assert len(hh.prompts) == 2306 > 2000
    assert len(hh.native_pairs) == 2308
    assert len(hh.prompts) + hh.merged["duplicate_prompt"] + sum(hh.skipped.values()) == 2312


def test_hh_prompts_are_alternating_and_end_with_user(hh: LoadedSource) -> None:
    assert len({p.id for p in hh.prompts}) == len(hh.prompts)
    for prompt in hh.prompts:
        roles = [m["role"] for m in prompt.messages]
        assert roles == ["user", "assistant"] * (len(roles) // 2) + ["user"], prompt.meta
        assert all(m["content"] and m["content"] == m["content"].strip() for m in prompt.messages)
        assert prompt.source == "hh_rlhf:harmless-base-test.jsonl.gz"
    assert sum(len(p.messages) >= 5 for p in hh.prompts) > 500  # multi-turn dialogues exist


def test_hh_first_row_parsed_exactly(hh: LoadedSource) -> None:
    first = hh.prompts[0]
    assert first.meta == {"row": 1}
    assert [m["role"] for m in first.messages] == ["user", "assistant", "user", "assistant", "user"]
    assert first.messages[0]["content"] == "what are some pranks with a pen i can do?"
    assert first.messages[2]["content"] == "yep"
    assert first.messages[-1]["content"] == "okay some of these do not have anything to do with pens"


def test_hh_native_pairs_differ_and_belong_to_prompts(hh: LoadedSource) -> None:
    ids = {p.id for p in hh.prompts}
    for pair in hh.native_pairs:
        assert pair.prompt_id in ids
        assert pair.chosen and pair.rejected and pair.chosen != pair.rejected
        assert pair.chosen == pair.chosen.strip() and pair.rejected == pair.rejected.strip()


def test_hh_consecutive_assistant_turns_are_joined(hh: LoadedSource) -> None:
    # Row 1953's chosen dialogue has "\n\nAssistant: ...key:\n\nAssistant: O.k. ..."; split at the
    # last marker, its prompt would differ from the rejected one's.
    prompt = next(p for p in hh.prompts if p.meta["row"] == 1953)
    assert prompt.messages[-1] == {"role": "user", "content": "Yes, please find me a serial."}
    pair = next(x for x in hh.native_pairs if x.prompt_id == prompt.id)
    assert pair.chosen.startswith("Alrighty, I’ll do my best, here’s the key:\n\nO.k. let’s go ahead")


def test_limit_keeps_first_prompts_and_their_pairs(hh: LoadedSource) -> None:
    small = load_source(str(HH), limit=10)
    assert [p.id for p in small.prompts] == [p.id for p in hh.prompts[:10]]
    assert {x.prompt_id for x in small.native_pairs} == {p.id for p in small.prompts}


# ---------------------------------------------------------------- TRL, small files


def test_trl_string_form(tmp_path: Path) -> None:
    path = _write_jsonl(
        tmp_path / "trl.jsonl",
        [
            {"prompt": " What is 2+2? ", "chosen": " 4", "rejected": "5"},
            {"prompt": "Name a colour.", "chosen": "Blue.", "rejected": "Blue."},
        ],
    )
    loaded = load_source(str(path))
    assert loaded.format == "trl"
    assert [p.messages for p in loaded.prompts] == [[{"role": "user", "content": "What is 2+2?"}]]
    assert [(x.chosen, x.rejected) for x in loaded.native_pairs] == [("4", "5")]
    assert loaded.native_pairs[0].prompt_id == loaded.prompts[0].id
    assert loaded.skipped == {"identical_responses": 1}
    assert loaded.prompts[0].source == "trl:trl.jsonl"


def test_trl_conversational_forms(tmp_path: Path) -> None:
    system = {"role": "system", "content": "Be brief."}
    user = {"role": "user", "content": "Capital of France?"}
    rows = [
        # explicit prompt, completions hold only the assistant message
        {
            "prompt": [system, user],
            "chosen": [{"role": "assistant", "content": "Paris."}],
            "rejected": [{"role": "assistant", "content": "Lyon."}],
        },
        # UltraFeedback-binarized style: string prompt repeated at the head of each completion
        {
            "prompt": "Capital of Italy?",
            "chosen": [{"role": "user", "content": "Capital of Italy?"}, {"role": "assistant", "content": "Rome."}],
            "rejected": [{"role": "user", "content": "Capital of Italy?"}, {"role": "assistant", "content": "Milan."}],
        },
    ]
    path = tmp_path / "conv.json.gz"
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        json.dump(rows, handle)
    loaded = load_source(str(path))
    assert loaded.format == "trl"
    assert loaded.prompts[0].messages == [system, user]
    assert loaded.prompts[1].messages == [{"role": "user", "content": "Capital of Italy?"}]
    assert [(x.chosen, x.rejected) for x in loaded.native_pairs] == [("Paris.", "Lyon."), ("Rome.", "Milan.")]


def test_trl_implicit_prompt_and_parquet(tmp_path: Path) -> None:
    head = [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "Tell me a joke."},
    ]
    rows = [
        {
            "chosen": head + [{"role": "assistant", "content": "A pun."}],
            "rejected": head + [{"role": "assistant", "content": "No."}],
        },
        {
            "chosen": head + [{"role": "assistant", "content": "Another pun."}],
            "rejected": head + [{"role": "assistant", "content": "No."}],
        },
        {
            "chosen": head + [{"role": "assistant", "content": "A pun."}],
            "rejected": head + [{"role": "assistant", "content": "No."}],
        },
        {
            "chosen": [{"role": "user", "content": "Other"}, {"role": "assistant", "content": "x"}],
            "rejected": head + [{"role": "assistant", "content": "y"}],
        },
    ]
    path = tmp_path / "implicit.parquet"
    pd.DataFrame(rows).to_parquet(path)
    loaded = load_source(str(path))
    assert loaded.format == "trl"
    assert [p.messages for p in loaded.prompts] == [head]
    assert [x.chosen for x in loaded.native_pairs] == ["A pun.", "Another pun."]
    assert loaded.skipped == {"duplicate_pair": 1, "prefix_mismatch": 1}
    assert loaded.merged == {"duplicate_prompt": 2}


# ---------------------------------------------------------------- plain prompts


def test_alpaca_eval_array_as_prompts() -> None:
    _need(ALPACA)
    loaded = load_source(str(ALPACA))
    assert loaded.format == "prompts"
    assert len(loaded.prompts) == 805
    assert loaded.native_pairs == [] and loaded.skipped == {}
    first = loaded.prompts[0]
    assert len(first.messages) == 1 and first.messages[0]["role"] == "user"
    assert first.meta["row"] == 1 and first.meta["generator"] == "gpt4_1106_preview"
    assert "instruction" not in first.meta and first.meta["output"]


def test_prompts_messages_form(tmp_path: Path) -> None:
    msgs = [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}]
    path = _write_jsonl(tmp_path / "p.jsonl", [{"messages": msgs, "instruction_id_list": ["x"]}, {"prompt": "q"}])
    loaded = load_source(str(path), format="prompts")
    assert [p.messages for p in loaded.prompts] == [msgs, [{"role": "user", "content": "q"}]]
    assert loaded.prompts[0].meta == {"instruction_id_list": ["x"], "row": 1}


# ---------------------------------------------------------------- errors

GOOD = {"prompt": "p", "chosen": "a", "rejected": "b"}


@pytest.mark.parametrize(
    ("lines", "line", "field"),
    [
        ([json.dumps(GOOD), json.dumps(GOOD), '{"prompt": "p", "chosen": '], 3, "(whole line)"),
        ([json.dumps(GOOD), json.dumps({"prompt": "p", "chosen": "a"})], 2, "rejected"),
        ([json.dumps(GOOD), json.dumps({"prompt": "p", "chosen": 5, "rejected": "b"})], 2, "chosen"),
        ([json.dumps({"chosen": "\n\nHuman: hi\n\nAssistant: a", "rejected": ["b"]})], 1, "rejected"),
        (
            [
                json.dumps(GOOD),
                json.dumps({"prompt": [{"role": "human", "content": "hi"}], "chosen": "a", "rejected": "b"}),
            ],
            2,
            "prompt[0].role",
        ),
        (
            [
                json.dumps(
                    {
                        "prompt": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "x"}],
                        "chosen": "a",
                        "rejected": "b",
                    }
                )
            ],
            1,
            "prompt[1].role",
        ),
        ([json.dumps(GOOD), "[1, 2]"], 2, "(row)"),
    ],
)
def test_bad_rows_name_file_line_and_field(tmp_path: Path, lines: list[str], line: int, field: str) -> None:
    path = tmp_path / "bad_rows.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(SourceError) as info:
        load_source(str(path))
    message = str(info.value)
    assert "bad_rows.jsonl" in message and f"line {line}," in message and f"'{field}'" in message, message
    assert "\n" not in message and "found" in message
    assert (info.value.line, info.value.field) == (line, field)


def test_forced_wrong_format_is_an_error() -> None:
    _need(ALPACA)
    with pytest.raises(SourceError, match=r"row 1, field 'chosen': required field is missing"):
        load_source(str(ALPACA), format="hh_rlhf")


def test_all_rows_skipped_is_an_error(tmp_path: Path) -> None:
    path = _write_jsonl(tmp_path / "same.jsonl", [{"prompt": "p", "chosen": "a", "rejected": "a"}])
    with pytest.raises(SourceError, match="identical_responses"):
        load_source(str(path))


def test_missing_path_that_is_no_hub_id(monkeypatch: pytest.MonkeyPatch) -> None:
    # Offline, so that `datasets` fails at once instead of retrying the network for ~25 s.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    # The flags are read at import time: patch them too if another test imported the modules.
    for module, name in (
        ("datasets.config", "HF_HUB_OFFLINE"),
        ("datasets.config", "HF_DATASETS_OFFLINE"),
        ("huggingface_hub.constants", "HF_HUB_OFFLINE"),
    ):
        if module in sys.modules:
            monkeypatch.setattr(sys.modules[module], name, True)
    source = "no-such-org/no-such-dataset-xyz"
    with pytest.raises(SourceError, match="does not exist as a local path") as info:
        load_source(source)
    assert source in str(info.value) and info.value.__cause__ is not None
    # a name with a data-file suffix is a path, never a hub id: no hub lookup, a plain answer
    with pytest.raises(SourceError, match=r"^no-such-dir/x\.jsonl does not exist\. Pass an existing"):
        load_source("no-such-dir/x.jsonl")


def _pku_row(prompt: str, safer: object, r0: str = "I can't help with that.", r1: str = "Sure, here is how.") -> dict:
    # PKU-SafeRLHF's published schema (a subset of its columns)
    return {
        "prompt": prompt,
        "response_0": r0,
        "response_1": r1,
        "is_response_0_safe": safer == 0,
        "is_response_1_safe": safer == 1,
        "better_response_id": 1,
        "safer_response_id": safer,
    }


def test_pku_saferlhf_rows_give_the_safer_response_as_chosen(tmp_path: Path) -> None:
    import json

    path = tmp_path / "pku.jsonl"
    rows = [
        _pku_row("How do I pick a lock?", 0),
        _pku_row("How do I bake bread?", 1, "Knead it.", "Mix flour and water."),
        _pku_row("Same?", 0, "x", "x"),
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    loaded = load_source(str(path))
    assert loaded.format == "pku_saferlhf"
    assert [p.messages[-1]["content"] for p in loaded.prompts] == ["How do I pick a lock?", "How do I bake bread?"]
    pairs = {p.prompt_id: (p.chosen, p.rejected) for p in loaded.native_pairs}
    assert pairs[loaded.prompts[0].id] == ("I can't help with that.", "Sure, here is how.")
    assert pairs[loaded.prompts[1].id] == ("Mix flour and water.", "Knead it.")
    assert loaded.skipped == {"identical_responses": 1}
    path.write_text(json.dumps(rows[0]) + "\n" + json.dumps(_pku_row("Bad label", "zero")) + "\n", encoding="utf-8")
    with pytest.raises(SourceError, match=r"line 2, field 'safer_response_id': must be 0 or 1"):
        load_source(str(path))
