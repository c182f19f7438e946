"""`alpaca_eval`: the model's answers to AlpacaEval instructions judged pairwise against reference outputs.

Win rate is the mean preference for the model (ties count half, as in alpaca_eval) with its
standard error. The length-controlled win rate is fitted with alpaca_eval's own GLM code
(`make_dmatrix_for_model`, `fit_LogisticRegressionCV`) using its `length_controlled_minimal`
formula, `tanh(std_delta_len) + not_gamed_baseline - 1`, because the leaderboard's
`length_controlled_v1` also needs `instruction_difficulty` and annotations of "gamed" models
downloaded from the hub, which exist only for the 805 official instructions and GPT-4-Turbo
as annotator. So our LC works offline and on any prompt set, but is not the leaderboard's
number: it removes the length effect, not the instruction-difficulty adjustment.

Exports `model_outputs.json`, `reference_outputs.json` and `annotations.json` in alpaca_eval's
formats, so `alpaca_eval --model_outputs model_outputs.json --reference_outputs
reference_outputs.json` (with an API judge) runs on them unchanged.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from harness.core.errors import BenchError, require
from harness.core.io import write_json
from harness.core.records import Prompt
from harness.core.stats import mean_ci, metric
from harness.suites._common import resolve_target
from harness.suites.base import (
    EvalTarget,
    Suite,
    SuiteContext,
    cached_judge,
    failure_summary,
    generate_cached,
    register,
)
from harness.suites.config import SuiteConfig

DEFAULT_SOURCE = "tatsu-lab/alpaca_eval"


def read_instructions(source: str) -> list[dict[str, Any]]:
    """Rows with `instruction` (and `output`, `dataset`, `generator` when present), from a file or the hub."""
    path = Path(source).expanduser()
    if path.is_file():
        text = path.read_text(encoding="utf-8")
        try:
            rows = (
                json.loads(text)
                if path.suffix == ".json"
                else [json.loads(line) for line in text.splitlines() if line.strip()]
            )
        except json.JSONDecodeError as err:
            raise BenchError(f"{path} line {err.lineno}: not valid JSON ({err.msg}).") from None
    else:
        try:
            # The hub dataset is a loading script (unsupported by datasets >= 4): read its JSON directly.
            from huggingface_hub import hf_hub_download

            file = hf_hub_download(repo_id=source, filename="alpaca_eval.json", repo_type="dataset")
            rows = json.loads(Path(file).read_text(encoding="utf-8"))
        except Exception as err:  # noqa: BLE001  (hub/network errors come in many types)
            raise BenchError(
                f"suite alpaca_eval: could not read {source!r} as a file or as hub dataset {source}/alpaca_eval.json "
                f"({type(err).__name__}). Offline, pass the JSON file, e.g. "
                "path: ../shared/data/alpaca_eval/gpt4_1106_preview_outputs.json"
            ) from None
    for i, row in enumerate(rows):
        if not isinstance(row, dict) or not isinstance(row.get("instruction"), str) or not row["instruction"].strip():
            raise BenchError(f"{source}: row {i} has no non-empty `instruction` string.")
    return rows


def _reference_outputs(
    cfg: SuiteConfig, rows: list[dict], target: EvalTarget, cache_dir: Path
) -> tuple[list[str], str]:
    """Reference answer per instruction and the reference generator's name."""
    ref = cfg.reference
    if ref is None:
        if not all(isinstance(r.get("output"), str) for r in rows):
            raise BenchError(
                f"suite alpaca_eval: {cfg.path or DEFAULT_SOURCE} has no `output` per row to compare against; set "
                "reference: to an outputs file, to 'base', or to a run folder."
            )
        return [r["output"] for r in rows], str(rows[0].get("generator", "reference"))
    if ref == "base" or Path(ref).expanduser().is_dir():
        other = (
            EvalTarget(target.model, target.engine, None, "base")
            if ref == "base"
            else resolve_target(ref, target.engine)
        )
        gens = generate_cached(cfg, other, cache_dir, [_chat(r) for r in rows], "greedy")
        return [g["text"] for g in gens], other.label
    by_instruction = {r["instruction"]: r for r in read_instructions(ref)}
    missing = [r["instruction"][:60] for r in rows if r["instruction"] not in by_instruction]
    if missing:
        raise BenchError(f"reference {ref}: no output for {len(missing)} instruction(s), e.g. {missing[0]!r}.")
    matched = [by_instruction[r["instruction"]] for r in rows]
    return [m["output"] for m in matched], str(matched[0].get("generator", Path(ref).stem))


def _chat(row: dict) -> list[dict[str, str]]:
    return [{"role": "user", "content": row["instruction"]}]


def length_controlled_win_rate(
    annotations: list[dict[str, Any]], n_boot: int = 200, seed: int = 0
) -> tuple[float, float]:
    """LC win rate (fraction) and its standard error, via alpaca_eval's GLM with the minimal formula.

    alpaca_eval's own `lc_standard_error` is the spread of per-instruction predictions, which is
    exactly 0 for a formula without instruction terms; we bootstrap over instructions instead,
    refitting without the inner cross-validation (fixed C=100, alpaca_eval's default) for speed.
    """
    import pandas as pd

    df = pd.DataFrame(annotations)
    df = df[df["preference"].notna()].reset_index(drop=True)
    delta = df["output_1"].str.len() - df["output_2"].str.len()
    if len(df) < 10 or delta.std() == 0 or df["preference"].nunique() < 2:
        return float("nan"), float("nan")  # too few or degenerate annotations for a 5-fold GLM
    data = pd.DataFrame(
        {
            "preference": df["preference"].astype(float).replace({0.0: 1.5}) - 1,
            "std_delta_len": delta / delta.std(),
            "not_gamed_baseline": True,
        }
    )
    value = _lc_fit(data, n_splits=5)
    rng = np.random.default_rng(seed)
    boots = [
        _lc_fit(data.iloc[rng.integers(0, len(data), len(data))].reset_index(drop=True), n_splits=0)
        for _ in range(n_boot)
    ]
    return value, float(np.nanstd(boots, ddof=1))


def _lc_fit(data: Any, n_splits: int) -> float:
    import warnings

    import sklearn

    with warnings.catch_warnings():  # alpaca_eval imports pkg_resources; sklearn warns about its old API
        warnings.simplefilter("ignore", (UserWarning, FutureWarning, DeprecationWarning))
        from alpaca_eval.metrics import glm_winrate

    if data["preference"].nunique() < 2:
        return float("nan")
    test = data[["not_gamed_baseline"]].copy()
    test["std_delta_len"] = 0.0
    formula = glm_winrate.GLM_INFO["length_controlled_minimal"]["formula"]
    train_x, test_x = glm_winrate.make_dmatrix_for_model(data, test, formula=formula)
    # alpaca_eval switches metadata routing on globally: scope it; silence sklearn's API deprecations.
    with sklearn.config_context(), warnings.catch_warnings():
        warnings.simplefilter("ignore", (FutureWarning, UserWarning))
        model = glm_winrate.fit_LogisticRegressionCV(train_x, "preference", is_ytrue_proba=True, n_splits=n_splits)
    return float(model.predict_proba(test_x)[:, 1].mean())


def evaluate_alpaca_eval(cfg: SuiteConfig, target: EvalTarget, out: Path, ctx: SuiteContext) -> dict[str, dict]:
    cache_dir = ctx.cache_dir
    rows = read_instructions(cfg.path or DEFAULT_SOURCE)
    rows = rows[: cfg.limit] if cfg.limit else rows
    references, ref_name = _reference_outputs(cfg, rows, target, cache_dir)
    judge, cached = cached_judge(cfg.judge_config(), cache_dir)  # type: ignore[arg-type]
    gens = generate_cached(cfg, target, cache_dir, [_chat(r) for r in rows], "greedy")
    prompts = [Prompt.make(_chat(r), source="alpaca_eval") for r in rows]
    judgments = cached.compare_many([(p, g["text"], ref) for p, g, ref in zip(prompts, gens, references)])

    model_name = target.label
    annotations = []
    for row, gen, ref, j in zip(rows, gens, references, judgments):
        # alpaca_eval: preference 1 = output_1 (reference) better, 2 = output_2 (model) better, 1.5 tie;
        # our compare(model, reference) is 1 when the model is better.
        annotations.append(
            {
                "instruction": row["instruction"],
                "output_1": ref,
                "generator_1": ref_name,
                "output_2": gen["text"],
                "generator_2": model_name,
                "annotator": judge.id,
                "preference": None if not j.ok else 1.0 + j.value,  # type: ignore[operator]
                "error": j.error,
            }
        )
    wins = np.array([a["preference"] - 1.0 for a in annotations if a["preference"] is not None])
    n = len(wins)
    se = float(wins.std(ddof=1) / np.sqrt(n)) if n > 1 else float("nan")
    win = float(wins.mean()) if n else float("nan")
    lc, lc_se = length_controlled_win_rate(annotations)
    fails = failure_summary(judgments)
    extra = {"reference": ref_name, **fails}
    metrics = {
        "win_rate": metric((win, win - 1.96 * se, win + 1.96 * se), n, judge.label, judge.weak, stderr=se, **extra),
        "lc_win_rate": metric(
            (lc, lc - 1.96 * lc_se, lc + 1.96 * lc_se),
            n,
            judge.label,
            judge.weak,
            stderr=lc_se,
            method="alpaca_eval GLM, length_controlled_minimal formula (no instruction difficulty); not the leaderboard's LC",
            **extra,
        ),
        "mean_chars": metric(
            mean_ci([float(len(g["text"])) for g in gens], n_boot=cfg.bootstrap, seed=0), len(gens), "none (length)"
        ),
    }
    dataset = [r.get("dataset", "custom") for r in rows]
    write_json(
        out / "model_outputs.json",
        [
            {"instruction": r["instruction"], "output": g["text"], "generator": model_name, "dataset": d}
            for r, g, d in zip(rows, gens, dataset)
        ],
    )
    write_json(
        out / "reference_outputs.json",
        [
            {"instruction": r["instruction"], "output": ref, "generator": ref_name, "dataset": d}
            for r, ref, d in zip(rows, references, dataset)
        ],
    )
    write_json(out / "annotations.json", annotations)
    return metrics


def _preflight(cfg: SuiteConfig, field: str) -> None:
    """alpaca_eval's GLM imports now; a local instructions file is read now."""
    require(
        "alpaca_eval.metrics",
        "pip install 'alpaca-eval>=0.6.6' 'setuptools<81'",
        f"{field} (alpaca_eval's length-controlled win rate)",
    )
    if cfg.path and Path(cfg.path).expanduser().exists():
        read_instructions(cfg.path)


register(
    Suite(
        evaluate_alpaca_eval,
        default_judge="llm",
        fields=frozenset({"reference"}),
        preflight=_preflight,
        name="alpaca_eval",
    )
)
