"""Untrusted text and code: nothing from data or models is executed, unpickled or written outside its folder.

Model outputs and dataset text are escaped in HTML (the browser test in test_e2e.py renders a
report with script-bearing text); here: a scan of our own source for ways to execute or
unpickle data, the remote-code switch, and file names made from untrusted text.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from fault_judge import FaultJudge

from harness.models.resolve import engine_key

ENGINE = engine_key("auto", "auto")
"""what this machine generates with: the engine a run would resolve here"""

REPO = Path(__file__).resolve().parents[2]
OUR_CODE = [p for d in ("harness", "strategies", "reports", "benchmarks") for p in (REPO / d).rglob("*.py")]


def _calls(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            name = (
                func.id
                if isinstance(func, ast.Name)
                else f"{ast.unparse(func.value)}.{func.attr}"
                if isinstance(func, ast.Attribute)
                else ""
            )
            yield node, name


@pytest.mark.parametrize("path", OUR_CODE, ids=lambda p: str(p.relative_to(REPO)))
def test_no_code_execution_or_unpickling_of_data(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node, name in _calls(tree):
        where = f"{path.relative_to(REPO)}:{node.lineno}"
        assert name not in (
            "eval",
            "exec",
            "compile",
            "pickle.load",
            "pickle.loads",
            "yaml.load",
            "yaml.unsafe_load",
        ), where
        keywords = {k.arg: k.value for k in node.keywords}
        if name == "torch.load":
            assert isinstance(keywords.get("weights_only"), ast.Constant) and keywords["weights_only"].value is True, (
                where
            )
        for flag in ("allow_pickle", "shell"):
            assert not (isinstance(keywords.get(flag), ast.Constant) and keywords[flag].value is True), (
                f"{flag}=True at {where}"
            )
        # remote code only through the opt-in switch, never hard-wired on
        trust = keywords.get("trust_remote_code")
        assert not (isinstance(trust, ast.Constant) and trust.value is True), f"trust_remote_code=True at {where}"
        if (
            name.endswith("from_pretrained")
            and "gguf_file" not in keywords
            and "PeftModel" not in name
            and "GenerationConfig" not in name
        ):
            assert trust is not None, f"{where}: from_pretrained without an explicit trust_remote_code"


def test_remote_code_is_off_unless_the_user_opts_in(monkeypatch) -> None:
    from harness.models.resolve import trust_remote_code

    monkeypatch.delenv("BENCH_TRUST_REMOTE_CODE", raising=False)
    assert trust_remote_code() is False
    monkeypatch.setenv("BENCH_TRUST_REMOTE_CODE", "true")  # only the documented value turns it on
    assert trust_remote_code() is False
    monkeypatch.setenv("BENCH_TRUST_REMOTE_CODE", "1")
    assert trust_remote_code() is True


def test_file_names_from_untrusted_text_stay_in_their_folder() -> None:
    from harness.core.io import safe_filename

    for text in (
        "../../etc/passwd",
        "/abs/path",
        "a/../../b",
        "..",
        "",
        "meta-llama/Llama-3.1-8B",
        "x" * 500,
        "con\0trol",
    ):
        name = safe_filename(text)
        assert (
            name
            and "/" not in name
            and "\\" not in name
            and "\0" not in name
            and name not in (".", "..")
            and len(name) <= 120
        )


def test_a_hostile_model_name_cannot_write_outside_the_output_folder(tiny_model: Path, tmp_path: Path) -> None:
    mt_bench = REPO.parent / "shared" / "data" / "mt_bench"
    if not (mt_bench / "question.jsonl").is_file():
        pytest.skip("shared MT-Bench data not present")
    from harness.eval_runner import run_suite
    from harness.judges.config import JudgeConfig
    from harness.suites import EvalTarget
    from harness.suites.config import SuiteConfig

    server = FaultJudge()
    try:
        judge = JudgeConfig(type="llm", backend="openai", base_url=server.url("ok"), model="fault-judge")
        cfg = SuiteConfig(name="mt_bench", path=str(mt_bench), limit=1, max_new_tokens=8, judge=judge)
        out = tmp_path / "a" / "b" / "out"
        run_suite(cfg, EvalTarget(str(tiny_model), ENGINE, None, "../../../escaped"), out, tmp_path / "cache")
    finally:
        server.close()
    written = sorted(
        str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file() and "cache" not in p.parts
    )
    assert all(w.startswith("a/b/out/") for w in written), written
    assert (out / "model_answer" / "escaped.jsonl").is_file()
