"""The bad-input corpus: every malformed input is one clear error, and nothing half-written.

Each case runs the real CLI (in process, through click's runner, so that 30 cases take
seconds) and must: exit with code 2 (a user error), print one message that names the file
or field and the fix, print no traceback, leave no run folder, and leave the stage cache with
complete stages only. Files live in tests/fixtures/bad_inputs/; the 10 MB line is written here.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from click.testing import CliRunner

from harness.cli import main
from harness.core.io import read_json

REPO = Path(__file__).resolve().parents[2]
CORPUS = REPO / "tests" / "fixtures" / "bad_inputs"
SMOKE = str(REPO / "experiments" / "smoke.yaml")


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(*extra: str) -> list[str]:
    return ["run", "--config", SMOKE, "--out", "{T}/run", "--set", "cache_dir={T}/cache", *extra]


def _source(name: str, *extra: str) -> list[str]:
    path = name if name.startswith("{") else f"{{D}}/{name}"
    return _run("--set", f"prompts.source={path}", *extra)


LLM_JUDGE = "{type: llm, backend: openai, base_url: 'http://127.0.0.1:{PORT}/v1', model: m}"

# (case id, argv with {D} = corpus folder, {T} = temp folder, {PORT} = a closed port, what the message must say)
CASES = [
    (
        "truncated_json_line",
        _source("truncated_line.jsonl"),
        r"truncated_line\.jsonl, line 2, field '\(whole line\)': malformed JSON",
    ),
    (
        "wrong_type",
        _source("wrong_type.jsonl"),
        r"wrong_type\.jsonl, line 2, field 'chosen': expected a string; found int 42\. Make 'chosen' a string",
    ),
    (
        "missing_chosen",
        _source("missing_chosen.jsonl"),
        r"missing_chosen\.jsonl, line 1, field 'chosen': required field is missing.*Add 'chosen'",
    ),
    ("empty_file", _source("empty.jsonl"), r"empty\.jsonl: no usable prompts, it holds no rows"),
    ("empty_prompts", _source("empty_prompts.jsonl"), r"every row was skipped \(\{'empty_prompt': 2\}\)"),
    (
        "non_utf8_bytes",
        _source("non_utf8.jsonl"),
        r"non_utf8\.jsonl, line 2.*not valid UTF-8.*Re-encode the file as UTF-8",
    ),
    ("ten_mb_line", _source("{T}/huge.jsonl"), r"huge\.jsonl, line 2.*10\.0 MB.*limit"),
    (
        "hh_without_assistant_turn",
        _source("hh_no_assistant.jsonl"),
        r"every row was skipped \(\{'no_final_assistant': 2\}\)",
    ),
    (
        "chosen_equals_rejected",
        _source("chosen_equals_rejected.jsonl"),
        r"every row was skipped \(\{'identical_responses': 1\}\)",
    ),
    (
        "prompt_ends_with_assistant",
        _source("trl_prompt_ends_with_assistant.jsonl"),
        r"line 1, field 'prompt\[1\]\.role': a prompt must end with a user message",
    ),
    ("unknown_role", _source("unknown_role.jsonl"), r"field 'prompt\[0\]\.role': unknown role.*Rename the role"),
    ("not_parquet", _source("not_parquet.parquet"), r"not_parquet\.parquet: not a readable Parquet file"),
    ("missing_source_file", _source("no_such_file.jsonl"), r"no_such_file\.jsonl does not exist\. Pass an existing"),
    (
        "config_unknown_key",
        ["run", "--config", "{D}/config_unknown_key.yaml", "--out", "{T}/run"],
        r"pool\.temprature: unknown key; remove it or check its spelling",
    ),
    (
        "config_bad_yaml",
        ["run", "--config", "{D}/config_bad_syntax.yaml", "--out", "{T}/run"],
        r"config_bad_syntax\.yaml line \d+, column \d+: not valid YAML",
    ),
    (
        "config_not_a_mapping",
        ["run", "--config", "{D}/config_list_top.yaml", "--out", "{T}/run"],
        r"the top level must be a mapping",
    ),
    ("config_file_missing", ["run", "--config", "{D}/nope.yaml", "--out", "{T}/run"], r"nope\.yaml does not exist"),
    ("override_without_equals", _run("--set", "pool.k"), r"expected dotted\.key=value"),
    ("override_wrong_type", _run("--set", "pool.k=many"), r"pool\.k: .*many"),
    ("negative_budget", _run("--budget", "-3"), r"select\.budget: .*greater than or equal to 1"),
    ("budget_above_pool", _run("--budget", "100000"), r"select\.budget = 100000 pairs cannot be met.*Lower --budget"),
    ("unknown_strategy", _run("--strategy", "unifrom"), r"unifrom.*Did you mean uniform"),
    ("unknown_format", _run("--set", "prompts.format=csv"), r"prompts\.format: "),
    ("model_path_missing", _run("--set", "model={T}/no/such/model"), r"model: .*no/such/model does not exist"),
    ("model_folder_without_config", _run("--set", "model={D}"), r"exists but has no config\.json"),
    (
        "judge_url_refused",
        _source("{REPO}/../shared/data/hh_rlhf/harmless-base-test.jsonl.gz", "--set", f"pool.judge={LLM_JUDGE}"),
        r"pool\.judge: cannot reach http://127\.0\.0\.1:\d+/v1 .*refused.*start the server",
    ),
    (
        "judge_key_variable_unset",
        _run(
            "--set",
            "pool.judge={type: llm, backend: openai, base_url: 'http://127.0.0.1:{PORT}/v1', model: m, api_key_env: BENCH_TEST_UNSET_KEY}",
        ),
        r"BENCH_TEST_UNSET_KEY.*not set",
    ),
    (
        "verifiable_judge_on_unconstrained_prompts",
        _source("{REPO}/../shared/data/hh_rlhf/harmless-base-test.jsonl.gz"),
        r"cannot be judged",
    ),
    (
        "accelerate_config_missing",
        _run("--set", "train.accelerate_config={T}/none.yaml"),
        r"train\.accelerate_config: .*does not exist",
    ),
    (
        "accelerate_config_not_accelerate",
        _run("--set", "train.accelerate_config={D}/accelerate_not_a_config.yaml"),
        r"is not an accelerate config",
    ),
    (
        "preference_source_missing",
        _run("--set", "preference.source={T}/none.jsonl"),
        r"preference.source: .*none\.jsonl does not exist",
    ),
    (
        "preference_source_and_k",
        _run("--set", "preference.source={T}/none.jsonl", "--set", "preference.k=4"),
        r"preference.source or preference.k, not both",
    ),
    (
        "eval_suite_file_missing",
        _run("--set", "evaluate.suites=[{name: ifeval, path: '{T}/none.jsonl'}]"),
        r"suite ifeval: path .*none\.jsonl does not exist",
    ),
    (
        "eval_ifeval_duplicate_keys",
        [
            "eval",
            "--suite",
            "ifeval",
            "--path",
            "{D}/ifeval_duplicate_keys.jsonl",
            "--out",
            "{T}/run",
            "--cache-dir",
            "{T}/cache",
        ],
        r"ifeval_duplicate_keys\.jsonl line 2: key 1001 repeats line 1",
    ),
    (
        "eval_ifeval_unknown_instruction",
        [
            "eval",
            "--suite",
            "ifeval",
            "--path",
            "{D}/ifeval_unknown_instruction.jsonl",
            "--out",
            "{T}/run",
            "--cache-dir",
            "{T}/cache",
        ],
        r"ifeval_unknown_instruction\.jsonl line 1: unknown instruction id 'punctuation:no_semicolons'",
    ),
    (
        "eval_mt_bench_bad_line",
        [
            "eval",
            "--suite",
            "mt_bench",
            "--path",
            "{D}/mt_bench_bad_line.jsonl",
            "--out",
            "{T}/run",
            "--cache-dir",
            "{T}/cache",
        ],
        r"mt_bench_bad_line\.jsonl line 2: not valid JSON",
    ),
    (
        "matrix_exclude_unknown_axis",
        ["matrix", "{D}/matrix_bad_exclude.yaml", "--dry-run"],
        r"exclude rule .* names \['strategi'\], which are not axes",
    ),
]


@pytest.fixture(scope="module")
def huge_line_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("huge")
    row = '{"prompt": "' + "x" * (10 * 1024 * 1024) + '"}\n'
    (folder / "huge.jsonl").write_text('{"prompt": "fine"}\n' + row, encoding="utf-8")
    return folder


def test_the_corpus_is_big_enough() -> None:
    assert len(CASES) >= 20 and len({c[0] for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case, argv, expected", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_clear_error_and_leaves_nothing_half_written(
    case: str, argv: list[str], expected: str, tmp_path: Path, huge_line_dir: Path, monkeypatch
) -> None:
    import re

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.delenv("BENCH_TEST_UNSET_KEY", raising=False)
    if "shared/data" in " ".join(argv) and not (REPO.parent / "shared" / "data" / "hh_rlhf").is_dir():
        pytest.skip("shared HH-RLHF data not present")
    temp = tmp_path if case != "ten_mb_line" else huge_line_dir
    port = str(_closed_port())
    args = [
        a.replace("{D}", str(CORPUS)).replace("{T}", str(temp)).replace("{PORT}", port).replace("{REPO}", str(REPO))
        for a in argv
    ]
    monkeypatch.chdir(tmp_path)  # anything written relative to the working folder lands here
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    message = result.stderr
    assert re.search(expected, message, re.S), message
    assert "Traceback" not in result.output
    assert [line for line in message.splitlines() if line.startswith("Error:")] == [
        message[message.index("Error:") :].splitlines()[0]
    ]
    assert not (temp / "run").exists(), "a failed run must not leave a run folder"
    _assert_cache_holds_only_complete_stages(temp / "cache")
    _assert_cache_holds_only_complete_stages(tmp_path / "runs" / "cache")


def _assert_cache_holds_only_complete_stages(cache: Path) -> None:
    if not cache.is_dir():
        return
    for stage_dir in cache.iterdir():
        if stage_dir.name.startswith(".") or not stage_dir.is_dir() or stage_dir.name == "judgments":
            continue
        for entry in stage_dir.iterdir():
            assert not entry.name.endswith(".tmp"), f"temporary folder left behind: {entry}"
            assert read_json(entry / "stage.json")["hash"] == entry.name, f"incomplete stage folder {entry}"
