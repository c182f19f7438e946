"""The real CLI on the embedded model with experiments/smoke.yaml, end to end."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harness.constraints.metrics import PRIMARY_METRIC

REPO = Path(__file__).resolve().parents[2]


def bench(*args: str, cwd: Path = REPO, plugins: Path | None = None) -> subprocess.CompletedProcess:
    """The real CLI in a subprocess; `plugins`: a folder whose modules join the strategies package (as files
    dropped into strategies/ do)."""
    entry = ["-m", "harness.cli"]
    if plugins:
        entry = [
            "-c",
            f"import strategies; strategies.__path__.append({str(plugins)!r}); from harness.cli import main; main()",
        ]
    return subprocess.run([sys.executable, *entry, *args], cwd=cwd, capture_output=True, text=True, timeout=900)


def bench_on_smoke_cache(
    smoke_out: Path, out: Path, *args: str, plugins: Path | None = None
) -> subprocess.CompletedProcess:
    """The smoke config again, with the first run's stage cache, so shared stages are reused."""
    cache = json.loads((smoke_out / "manifest.json").read_text())["config"]["cache_dir"]
    proc = bench(
        "run",
        *args,
        "--config",
        "experiments/smoke.yaml",
        "--out",
        str(out),
        "--set",
        f"cache_dir={cache}",
        plugins=plugins,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    root = tmp_path_factory.mktemp("smoke")
    out = root / "run"
    proc = bench("run", "--config", "experiments/smoke.yaml", "--out", str(out), "--set", f"cache_dir={root / 'cache'}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out, proc


@pytest.mark.slow
def test_smoke_run_writes_the_run_contract(smoke_run) -> None:
    out, proc = smoke_run
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "done" and manifest["seed"] == 0 and manifest["versions"]["torch"]
    assert set(manifest["stages"]) == {
        "prompts",
        "samples",
        "pool",
        "embeddings",
        "select",
        "train",
        "evaluate_base",
        "preference_reference",
        "evaluate",
        "report",
    }
    assert all(s["status"] == "computed" for s in manifest["stages"].values())
    selection = json.loads((out / "selection.json").read_text())
    budget = manifest["config"]["select"]["budget"]
    assert len(selection["pair_ids"]) == budget == sum(selection["diagnostics"]["depth"].values())
    assert (out / "train" / "adapter" / "adapter_config.json").is_file()
    log = [json.loads(line) for line in (out / "train" / "log.jsonl").read_text().splitlines()]
    assert any("loss" in r for r in log)
    metrics = json.loads((out / "metrics.json").read_text())["ifeval_heldout"]
    for name, m in metrics.items():
        assert m["ci_low"] <= m["value"] <= m["ci_high"] and m["n"] > 0 and m["judge"]
        if "acc" in name and "diff" not in name or name == "win_rate_vs_base":
            assert 0.0 <= m["value"] <= 1.0
    html = (out / "report.html").read_text()
    for section in (
        "Held-out metrics",
        "Data diagnostics",
        "Training",
        "Held-out examples",
        "Cost per stage",
        "Resolved config",
    ):
        assert section in html
    assert "data:image/png;base64" in html and "<script" not in html
    assert "pool" in proc.stdout and "seconds" in proc.stdout
    # selection cost next to training cost, in the manifest and the report
    assert set(manifest["cost"]) == {
        "selection_seconds",
        "selection_stages",
        "training_seconds",
        "selection_per_training",
    }
    assert manifest["cost"]["selection_stages"] == ["embeddings", "select"] and manifest["cost"]["training_seconds"] > 0
    assert "Selection cost next to training cost" in html
    # a console a person can read: no raw per-step dictionaries, no third-party warnings (they are in run.log)
    console = proc.stdout + proc.stderr
    assert "{'loss'" not in console and "FutureWarning" not in console and "Loading weights" not in console
    assert "train: DPO" in proc.stderr and (out / "run.log").is_file()
    assert "FutureWarning" in (out / "run.log").read_text()


@pytest.mark.slow
def test_second_identical_run_is_fully_cached_and_identical(smoke_run) -> None:
    out, _ = smoke_run
    before = {name: (out / name).read_text() for name in ("selection.json", "metrics.json")}
    bench_on_smoke_cache(out, out)
    manifest = json.loads((out / "manifest.json").read_text())
    assert all(s["status"] == "cached" for n, s in manifest["stages"].items() if n != "report")
    assert {name: (out / name).read_text() for name in before} == before


@pytest.mark.slow
def test_other_strategy_reuses_pool_and_base_evaluation(smoke_run, tmp_path: Path) -> None:
    """...and, with evaluate.control, trains the shuffled control of the same pairs next to it,
    whose effect the cell's report and the printed headline quote. A user's broken strategy file beside the
    others does not stop it: the run warns, naming the file."""
    out, _ = smoke_run
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "my_strategy.py").write_text("from harness.no_such_module import Selection\n", encoding="utf-8")
    proc = bench_on_smoke_cache(
        out, tmp_path / "o", "--strategy", "original", "--set", "evaluate.control=true", plugins=plugins
    )
    warning = r"warning: the strategy plugin .*my_strategy\.py could not be imported \(ModuleNotFoundError: No module named 'harness.no_such_module'"
    assert re.search(warning, proc.stderr), proc.stderr[-3000:]
    stages = json.loads((tmp_path / "o" / "manifest.json").read_text())["stages"]
    assert stages["pool"]["status"] == stages["evaluate_base"]["status"] == "cached"
    assert stages["select"]["status"] == stages["train"]["status"] == "computed"
    selection = json.loads((tmp_path / "o" / "selection.json").read_text())
    assert set(selection["diagnostics"]["depth"].values()) == {1}
    control_dir = tmp_path / "o-control"
    control = json.loads((control_dir / "selection.json").read_text())
    assert control["strategy"] == "control_shuffled" and set(control["pair_ids"]) == set(selection["pair_ids"])
    record = json.loads((tmp_path / "o" / "control.json").read_text())
    effect = json.loads((control_dir / "metrics.json").read_text())["ifeval_heldout"][f"paired_diff.{PRIMARY_METRIC}"]
    assert record["effect"] == effect
    assert f"shuffled-label control {effect['value']:+.3f}" in proc.stdout and "control: train" in proc.stdout
    assert "shuffled-label control" in (tmp_path / "o" / "report.html").read_text()


@pytest.mark.parametrize(
    "args, expected",
    [
        (["--strategy", "unifrom"], "Did you mean uniform"),
        (["--set", "train.lr=1"], "train.lr: unknown key"),
        (["--set", "pool.k=many"], "pool.k"),
        (["--budget", "100000"], "cannot be met"),
        (["--set", "prompts.source=../shared/data/hh_rlhf/harmless-base-test.jsonl.gz"], "cannot be judged"),
        (["--set", "prompts.source=no/such/file.jsonl"], "no/such/file.jsonl"),
    ],
)
def test_bad_input_is_one_clear_error_and_writes_nothing(
    args: list[str], expected: str, tmp_path: Path, monkeypatch
) -> None:
    if "hh_rlhf" in " ".join(args) and not (REPO.parent / "shared" / "data" / "hh_rlhf").is_dir():
        pytest.skip("shared HH-RLHF data not present")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    out = tmp_path / "run"
    proc = bench(
        "run",
        "--config",
        "experiments/smoke.yaml",
        "--out",
        str(out),
        "--set",
        f"cache_dir={tmp_path / 'cache'}",
        *args,
    )
    assert proc.returncode == 2
    assert expected in proc.stderr and "Traceback" not in proc.stderr
    assert not out.exists()


def test_strategies_command_lists_the_registry() -> None:
    proc = bench("strategies")
    assert proc.returncode == 0
    names = [line.split()[0] for line in proc.stdout.splitlines() if line.strip()]
    assert set(names) == {
        "original",
        "random",
        "uniform",
        "random_depth",
        "length_depth",
        "embedding_depth",
        "bpo",
        "margin",
        "less",
        "control_shuffled",
    }


@pytest.mark.slow
def test_bpo_end_to_end_on_the_smoke_pool(smoke_run, tmp_path: Path) -> None:
    out, _ = smoke_run
    bench_on_smoke_cache(out, tmp_path / "b", "--strategy", "bpo")
    manifest = json.loads((tmp_path / "b" / "manifest.json").read_text())
    assert manifest["stages"]["pool"]["status"] == "cached"
    assert manifest["stages"]["embeddings"]["status"] == "cached"  # computed by the uniform run on this pool
    assert manifest["stages"]["features"]["status"] == "computed"
    diag = json.loads((tmp_path / "b" / "selection.json").read_text())["diagnostics"]
    assert sum(diag["depth"].values()) == manifest["config"]["select"]["budget"]
    assert diag["gradient_clusters_covered"] >= 1 and diag["clusters"] >= 1
    assert "seconds" not in diag, "timings would make selections differ between identical runs"
    timings = json.loads((Path(manifest["stages"]["select"]["path"]) / "stage.json").read_text())["seconds_by_part"]
    for key in ("embeddings", "gradients", "projection", "clustering"):
        assert timings[key] is not None and timings[key] >= 0


@pytest.mark.slow
def test_run_evaluates_extra_suites_on_base_and_tuned(smoke_run, tmp_path: Path) -> None:
    out, _ = smoke_run
    suites = "evaluate.suites=[{name: ifbench, limit: 3, max_new_tokens: 24}]"
    bench_on_smoke_cache(out, tmp_path / "s", "--set", suites)
    run = tmp_path / "s"
    stages = json.loads((run / "manifest.json").read_text())["stages"]
    assert stages["train"]["status"] == stages["evaluate"]["status"] == "cached"  # suites do not re-key them
    assert stages["suite_ifbench_tuned"]["status"] == stages["suite_ifbench_base"]["status"] == "computed"
    metrics = json.loads((run / "metrics.json").read_text())
    assert {"tuned.instruction_strict_acc", "base.instruction_strict_acc"} <= set(metrics["ifbench"])
    assert "ifeval_heldout" in metrics
    for label in ("base", "tuned"):
        assert len((run / "suites" / "ifbench" / label / "input_response_data.jsonl").read_text().splitlines()) == 3
    assert "<h3>ifbench</h3>" in (run / "report.html").read_text()


@pytest.fixture(scope="module")
def three_runs(smoke_run, tmp_path_factory) -> list[Path]:
    """uniform (the smoke run) at budget 4, original at budget 4, random at budget 3: one shared pool."""
    out, _ = smoke_run
    root = tmp_path_factory.mktemp("three")
    bench_on_smoke_cache(out, root / "original", "--strategy", "original")
    bench_on_smoke_cache(out, root / "random", "--strategy", "random", "--budget", "3")
    return [out, root / "original", root / "random"]


@pytest.mark.slow
def test_comparison_report_agrees_with_the_runs_metrics(three_runs, tmp_path: Path) -> None:
    index = tmp_path / "cmp" / "index.html"
    proc = bench("report", *map(str, three_runs), "-o", str(index), "--baseline", "original")
    assert proc.returncode == 0, proc.stderr[-3000:]
    html = index.read_text()
    for section in ("Judges", "Leaderboard", "Paired tests against original", "More plots", "Runs"):
        assert f">{section}<" in html or f"<h2>{section}" in html
    rows = json.loads((tmp_path / "cmp" / "metrics.json").read_text())
    csv_lines = (tmp_path / "cmp" / "metrics.csv").read_text().splitlines()
    n_metrics = sum(len(t) for run in three_runs for t in json.loads((run / "metrics.json").read_text()).values())
    assert len(rows) == len(csv_lines) - 1 == n_metrics
    for run in three_runs:
        value = json.loads((run / "metrics.json").read_text())["ifeval_heldout"]["tuned.prompt_strict_acc"]["value"]
        mine = [
            r
            for r in rows
            if r["run"] == run.name and r["suite"] == "ifeval_heldout" and r["metric"] == "prompt_strict_acc"
        ]
        assert mine[0]["value"] == value
        assert f"{value:.3f}" in html  # single seed: the leaderboard shows the run's own value and CI
        assert f'href="{os.path.relpath(run / "report.html", index.parent)}"' in html
    # uniform at budget 4 is paired with original at budget 4; random at budget 3 has no baseline there
    assert "missing: no original run with this setting (budget 3)" in html
    tests = json.loads((tmp_path / "cmp" / "paired_tests.json").read_text())["tests"]["prompt_strict_acc"]
    uniform = next(t for t in tests if t["strategy"] == "uniform")
    assert "diff" in uniform and uniform["significant"] is None  # one seed each: these runs compared, no verdict
    assert html.count("data:image/png;base64") >= 2  # a metric against budget (two budgets) and breadth vs depth


def _chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.skip("chromium is not installed (.ci/run installs Debian's `chromium` package)")
    return path


@pytest.mark.slow
def test_report_in_a_real_browser_shows_model_text_as_text(smoke_run, tmp_path: Path) -> None:
    """Headless Chromium loads the report: everything is inline, and hostile model output stays text."""
    from html.parser import HTMLParser

    out, _ = smoke_run
    run = tmp_path / "hostile"
    shutil.copytree(out, run)
    script, img = "<script>alert(1)</script>", "<img src=x onerror=document.title='pwned'>"
    rows = [json.loads(x) for x in (run / "eval_outputs.jsonl").read_text().splitlines()]
    rows[0]["tuned_output"] = f"Sure! {script} and {img}"
    rows[0]["prompt"] = f"{img} prompt"
    (run / "eval_outputs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert bench("report", str(run)).returncode == 0

    browser = _chromium()
    url = (run / "report.html").as_uri()
    dump = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr", "--dump-dom", url],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert dump.returncode == 0, dump.stderr[-2000:]
    assert "Failed to load resource" not in dump.stderr and "ERR_FILE_NOT_FOUND" not in dump.stderr

    class Elements(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.tags: list[tuple[str, dict]] = []
            self.text: list[str] = []

        def handle_starttag(self, tag, attrs):
            self.tags.append((tag, dict(attrs)))

        def handle_data(self, data):
            self.text.append(data)

    dom = Elements()
    dom.feed(dump.stdout)
    text = "".join(dom.text)
    assert script in text and img in text  # shown literally, as text
    assert not [t for t, _ in dom.tags if t in ("script", "iframe", "object", "embed", "link")]
    assert all(a.get("src", "").startswith("data:image/png;base64,") for t, a in dom.tags if t == "img")
    assert not [a for _, a in dom.tags if any(k.startswith("on") for k in a)]
    assert "pwned" not in dump.stdout.split("<title>", 1)[1].split("</title>", 1)[0]  # no handler ran

    shot = tmp_path / "report.png"
    proc = subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            f"--screenshot={shot}",
            "--window-size=1200,2600",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0 and shot.is_file(), proc.stderr[-2000:]
    import matplotlib.image

    pixels = matplotlib.image.imread(shot)
    assert pixels.shape[:2] == (2600, 1200) and pixels.std() > 0.05  # rendered content, not a blank page


def matrix_args(root: Path, *extra: str) -> list[str]:
    return [
        "matrix",
        "experiments/smoke-matrix.yaml",
        "--runs-root",
        str(root),
        "--set",
        f"cache_dir={root / 'cache'}",
        *extra,
    ]


def matrix_results(root: Path) -> dict[str, tuple[list[str], dict[str, float]]]:
    """Per cell: the selected pair ids and the held-out metric values."""
    return {
        cell.name: (
            json.loads((cell / "selection.json").read_text())["pair_ids"],
            {k: v["value"] for k, v in json.loads((cell / "metrics.json").read_text())["ifeval_heldout"].items()},
        )
        for cell in (root / "smoke-matrix").iterdir()
        if (cell / "selection.json").is_file()
    }


@pytest.fixture(scope="module")
def local_matrix(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    root = tmp_path_factory.mktemp("matrix") / "local"
    dry = bench(*matrix_args(root, "--dry-run"))
    assert dry.returncode == 0, dry.stderr[-2000:]
    proc = bench(*matrix_args(root))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return root, dry


@pytest.mark.slow
def test_smoke_matrix_computes_the_pool_once_and_resumes(local_matrix) -> None:
    root, dry = local_matrix
    assert (
        dry.stdout.count("reuse (original-b4-s0)") == 8
    )  # prompts, samples, pool and base evaluation of the later cells
    cells = ["original-b4-s0", "uniform-b4-s0", "bpo-b4-s0"]
    pools = [json.loads((root / "smoke-matrix" / c / "manifest.json").read_text())["stages"]["pool"] for c in cells]
    assert [p["status"] for p in pools] == ["computed", "cached", "cached"] and len({p["hash"] for p in pools}) == 1
    assert len(list((root / "cache" / "pool").iterdir())) == 1
    assert (root / "smoke-matrix" / "comparison" / "index.html").is_file()
    again = bench(*matrix_args(root))
    assert again.returncode == 0 and again.stdout.count("skipped (done)") == 3


@pytest.mark.slow
def test_a_matrix_gathered_from_other_machines_is_compared_without_running(local_matrix, tmp_path: Path) -> None:
    """Cells that ran elsewhere (another cache path) and were gathered into one folder: --report-only finds them done
    and writes the matrix's comparison; it runs nothing, so the cache it is pointed at stays absent."""
    gathered = tmp_path / "gathered" / "smoke-matrix"
    shutil.copytree(local_matrix[0] / "smoke-matrix", gathered, ignore=shutil.ignore_patterns("comparison"))
    other_cache = tmp_path / "elsewhere"
    args = ["matrix", "experiments/smoke-matrix.yaml", "--runs-root", str(gathered.parent)]
    proc = bench(*args, "--report-only", "--set", f"cache_dir={other_cache}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "3 of 3 cells done" in proc.stdout and (gathered / "comparison" / "index.html").is_file()
    assert not other_cache.exists()
    empty = bench("matrix", "experiments/smoke-matrix.yaml", "--runs-root", str(tmp_path / "none"), "--report-only")
    assert empty.returncode == 2 and "no cell of smoke-matrix is done" in empty.stderr
    both = bench(*args, "--report-only", "--dry-run")
    assert both.returncode == 2 and "choose one" in both.stderr


@pytest.mark.slow
def test_ray_executor_gives_the_local_executors_results(local_matrix, tmp_path: Path) -> None:
    """The smoke matrix on a local Ray instance equals the local executor's run. The workers start from the local
    run's shared stages (prompts, samples, pool, views, the base evaluation: what a bundle restores) and compute
    every cell's own (selection, training, tuned evaluation) themselves."""
    if importlib.util.find_spec("ray") is None:
        pytest.skip("Ray is not installed (pip install 'ray>=2.40'; part of the dev extras)")
    shutil.copytree(local_matrix[0] / "cache", tmp_path / "cache", ignore=shutil.ignore_patterns(".locks"))
    for own in ("select", "train", "evaluate", "preference_reference"):
        shutil.rmtree(tmp_path / "cache" / own, ignore_errors=True)
    # relative runs root and cache, from another working folder: workers must agree with the driver on both
    args = [
        "matrix",
        str(REPO / "experiments" / "smoke-matrix.yaml"),
        "--runs-root",
        "runs",
        "--set",
        "cache_dir=cache",
        "--executor",
        "ray",
    ]
    proc = bench(*args, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (
        len(list((tmp_path / "cache" / "pool").iterdir())) == 1
        and len(list((tmp_path / "cache" / "train").iterdir())) == 3
    )
    ray_results = matrix_results(tmp_path / "runs")
    assert len(ray_results) == 3 and ray_results == matrix_results(local_matrix[0])
    assert (tmp_path / "runs" / "smoke-matrix" / "comparison" / "index.html").is_file()
    again = bench(*args, cwd=tmp_path)
    assert again.returncode == 0 and again.stdout.count("skipped (done)") == 3, again.stdout[-2000:]


def test_matrix_executors_record_a_failed_cell_by_one_policy(tmp_path: Path, capsys) -> None:
    """A cell whose model does not exist (refused before any weights load) is recorded by `failed`
    and reported in one red line, and the next cell still goes on (it is done, so skipped). The Ray
    worker runs the same `run_cell`, so a Ray matrix records the failure with the same fields."""
    import dataclasses

    from harness.core.errors import BenchError
    from harness.core.io import write_json
    from harness.matrix.executors import CellResult, failed, report, run_cell, run_local
    from harness.matrix.spec import expand, is_done, load_matrix
    from harness.runner import run_experiment

    path = REPO / "experiments" / "smoke-matrix.yaml"
    bad, done = expand(
        load_matrix(path), path, tmp_path / "runs", ["model=/no/such/model", f"cache_dir={tmp_path / 'cache'}"]
    )[:2]
    write_json(done.out / "manifest.json", {"status": "done", "config": done.config.model_dump(mode="json")})
    assert is_done(done) and not is_done(bad)

    failure, skipped = run_local([bad, done])
    assert skipped == CellResult(done.name, "skipped (done)", 0.0, "-")
    assert (failure.name, failure.status, failure.pool_status, failure.log_path) == (bad.name, "failed", "-", None)
    assert "/no/such/model does not exist" in failure.error and not bad.out.exists()
    assert f"cell {bad.name} failed: {failure.error}\n" in capsys.readouterr().err  # a user error has no traceback file
    with pytest.raises(BenchError) as raised:
        run_experiment(bad.config, bad.out)
    assert failed(bad, raised.value, failure.seconds) == failure
    assert dataclasses.replace(run_cell(bad), seconds=failure.seconds) == failure  # what a Ray worker sends back

    crash = RuntimeError("boom")
    crash.log_path = str(tmp_path / "error.log")  # as run_experiment names the traceback of an unexpected error
    report(failed(bad, crash, 1.0))
    assert capsys.readouterr().err == f"cell {bad.name} failed: boom (traceback: {crash.log_path})\n"


def test_matrix_executor_choices_are_the_executors() -> None:
    """`--executor` writes the names out (importing the executors would load the engine for every command)."""
    from harness.cli import matrix
    from harness.matrix.executors import EXECUTORS

    option = next(p for p in matrix.params if p.name == "executor")
    assert tuple(option.type.choices) == tuple(EXECUTORS)


@pytest.mark.slow
def test_heldout_pairs_sampled_on_evaluation_prompts_are_shared_by_strategies_and_seeds(
    smoke_run, tmp_path: Path
) -> None:
    from harness.data.heldout import eval_prompts
    from harness.experiment import load_config
    from harness.runner import resolve_run, shared_stage_hashes

    out, _ = smoke_run
    extra = ("--set", "preference.k=3", "--set", "preference.prompts=6")
    bench_on_smoke_cache(out, tmp_path / "u", *extra)
    bench_on_smoke_cache(out, tmp_path / "o", "--strategy", "original", *extra)
    first, second = (json.loads((tmp_path / r / "manifest.json").read_text())["stages"] for r in ("u", "o"))
    assert first["preference_pool"]["status"] == "computed" and second["preference_pool"]["status"] == "cached"
    assert first["pool"]["status"] == "cached"  # the training pool is untouched by the held-out pairs
    config = load_config(Path(REPO / "experiments/smoke.yaml"), ["preference.k=3", "preference.prompts=6"])
    eval_ids = {p.id for p in eval_prompts(config.evaluate, 6)}
    rows = {
        r: [json.loads(line) for line in (tmp_path / r / "heldout_preferences.jsonl").read_text().splitlines()]
        for r in ("u", "o")
    }
    assert rows["u"] and {x["pair_id"] for x in rows["u"]} == {x["pair_id"] for x in rows["o"]}
    assert {x["prompt_id"] for x in rows["u"]} <= eval_ids
    pool_pairs = Path(first["pool"]["path"]) / "pairs.jsonl"
    train_ids = {json.loads(line)["prompt_id"] for line in pool_pairs.read_text().splitlines()}
    assert not train_ids & eval_ids
    metric = json.loads((tmp_path / "u" / "metrics.json").read_text())["preference_heldout"][
        "tuned.preference_accuracy"
    ]
    # n counts the prompts, the unit its interval resamples; the pairs are counted apart
    assert (
        metric["n"] == len({x["prompt_id"] for x in rows["u"]})
        and metric["n_pairs"] == len(rows["u"])
        and 0.0 <= metric["value"] <= 1.0
    )
    # the pair set depends on the evaluation prompts and the model, never on the run seed
    other_seed = config.model_copy(update={"seed": 1})
    assert (
        shared_stage_hashes(resolve_run(config))["preference_pool"]
        == shared_stage_hashes(resolve_run(other_seed))["preference_pool"]
    )
    assert shared_stage_hashes(resolve_run(config))["pool"] != shared_stage_hashes(resolve_run(other_seed))["pool"]


@pytest.mark.slow
def test_regrade_gives_an_old_run_the_task_check_the_evaluate_stage_gives(smoke_run, tmp_path: Path) -> None:
    """A finished run graded before the task check (its task fields and metrics removed) regrades, with no
    generation, to the verdicts and task metrics the evaluate stage computed."""
    out, _ = smoke_run
    old = tmp_path / "old"
    shutil.copytree(out, old)
    rows = [json.loads(line) for line in (old / "eval_outputs.jsonl").read_text().splitlines()]
    graded = [(r.pop("base_task_check"), r.pop("tuned_task_check")) for r in rows]
    (old / "eval_outputs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    metrics = json.loads((old / "metrics.json").read_text())
    task_keys = [k for k in metrics["ifeval_heldout"] if "task" in k or "degenerate" in k]
    assert task_keys and "paired_diff.prompt_strict_task_acc" in task_keys
    metrics["ifeval_heldout"] = {k: v for k, v in metrics["ifeval_heldout"].items() if k not in task_keys}
    (old / "metrics.json").write_text(json.dumps(metrics))
    proc = bench("regrade", str(old))
    assert proc.returncode == 0, proc.stderr[-2000:]
    again = [json.loads(line) for line in (old / "eval_outputs.jsonl").read_text().splitlines()]
    assert [(r["base_task_check"], r["tuned_task_check"]) for r in again] == graded
    fresh, first = (json.loads((run / "metrics.json").read_text())["ifeval_heldout"] for run in (old, out))
    assert {k: fresh[k]["value"] for k in task_keys} == {k: first[k]["value"] for k in task_keys}
    assert json.loads((old / "manifest.json").read_text())["task_check_version"]["version"] >= 1


@pytest.mark.slow
def test_another_judge_labels_the_same_samples_without_sampling_again(smoke_run, tmp_path: Path) -> None:
    """The samples are a stage apart from the pool that judges them: the verifiable_task judge relabels the smoke
    run's samples (cached) into a pool of its own, whose pairs record what the task check found."""
    from harness.core.io import read_jsonl
    from harness.experiment import load_config
    from harness.run_folder import Run
    from harness.runner import resolve_run
    from harness.stages import pool, prompts

    out, _ = smoke_run
    first = json.loads((out / "manifest.json").read_text())
    config = load_config(
        REPO / "experiments" / "smoke.yaml",
        [f"cache_dir={first['config']['cache_dir']}", "pool.judge.type=verifiable_task"],
    )
    run = Run(config, tmp_path / "never-opened", resolve_run(config))
    s_prompts, training, native = prompts.run(run)
    result, relabelled = pool.run(run, s_prompts, training, native)
    assert run.stages["samples"] == {
        **run.stages["samples"],
        "status": "cached",
        "hash": first["stages"]["samples"]["hash"],
    }
    assert run.stages["pool"]["status"] == "computed" and result.hash != first["stages"]["pool"]["hash"]
    before = {r["id"] for r in read_jsonl(Path(first["stages"]["pool"]["path"]) / "responses.jsonl")}
    assert set(relabelled.responses) == before
    stats = json.loads((result.path / "stage.json").read_text())
    assert stats["chosen_degenerate_share"] is not None and stats["rejected_degenerate_share"] is not None
    assert not (tmp_path / "never-opened").exists()


@pytest.mark.slow
def test_a_pool_bundle_restores_the_same_keys_and_selections_in_an_empty_cache(smoke_run, tmp_path: Path) -> None:
    """bench cache export from a bpo run, then a run naming the bundle on an empty cache: the pool, its
    embeddings and gradient features come from the bundle (cached, same keys) and bpo selects the same pairs."""
    out, _ = smoke_run
    first = tmp_path / "first"
    bench_on_smoke_cache(out, first, "--strategy", "bpo")
    bundle = tmp_path / "pool.tar.gz"
    exported = bench("cache", "export", str(first), "-o", str(bundle))
    assert exported.returncode == 0, exported.stderr[-2000:]
    assert "features" in exported.stdout and "pool" in exported.stdout
    empty = tmp_path / "empty-cache"
    second = tmp_path / "second"
    proc = bench(
        "run",
        "--strategy",
        "bpo",
        "--config",
        "experiments/smoke.yaml",
        "--out",
        str(second),
        "--set",
        f"cache_dir={empty}",
        "--set",
        f"bundle={bundle}",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    a, b = (json.loads((run / "manifest.json").read_text())["stages"] for run in (first, second))
    for stage in ("prompts", "samples", "pool", "embeddings", "features"):
        assert b[stage]["hash"] == a[stage]["hash"] and b[stage]["status"] == "cached", stage
    assert b["select"]["hash"] == a["select"]["hash"]
    assert (second / "selection.json").read_text() == (first / "selection.json").read_text()
    # another pool under the same key (another CPU's kernels) is refused, and nothing is overwritten
    pairs = next((empty / "pool").glob("*/pairs.jsonl"))
    other = tmp_path / "other-cache"
    shutil.copytree(empty, other)
    stage_json = next((other / "pool").glob("*/stage.json"))
    their_pairs = stage_json.parent / "pairs.jsonl"
    their_pairs.write_text(
        "\n".join(reversed(their_pairs.read_text().splitlines())) + "\n"
    )  # intact, but other contents
    record = json.loads(stage_json.read_text())
    record["files"]["pairs.jsonl"] = [their_pairs.stat().st_size, hashlib.sha256(their_pairs.read_bytes()).hexdigest()]
    stage_json.write_text(json.dumps(record))
    refused = bench("cache", "import", str(bundle), "--cache-dir", str(other))
    assert refused.returncode == 2 and "different pool under the same key" in refused.stderr
    assert json.loads(stage_json.read_text())["files"]["pairs.jsonl"] == record["files"]["pairs.jsonl"]
    again = bench("cache", "import", str(bundle), "--cache-dir", str(empty))
    assert again.returncode == 0 and again.stdout.count("present") == 5 and pairs.is_file()
    # a machine that resolves the other dtype: the pool is the bundle's (keyed by the engine that sampled it, so
    # its views and the selection are too), and what generates here is computed and keyed by this machine's dtype
    from harness.models.resolve import resolve_dtype

    here = resolve_dtype("auto")
    there = "float32" if here == "bfloat16" else "bfloat16"
    third = tmp_path / "third"
    proc = bench(
        "run",
        "--strategy",
        "bpo",
        "--config",
        "experiments/smoke.yaml",
        "--out",
        str(third),  # a short evaluation: bf16
        "--set",
        f"cache_dir={empty}",
        "--set",
        f"bundle={bundle}",
        "--set",
        f"generation.dtype={there}",  # may be emulated
        "--set",
        "evaluate.n_prompts=4",
        "--set",
        "evaluate.max_new_tokens=16",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    manifest = json.loads((third / "manifest.json").read_text())
    c = manifest["stages"]
    for stage in ("prompts", "samples", "pool", "embeddings", "features", "select"):
        assert c[stage]["hash"] == a[stage]["hash"] and c[stage]["status"] == "cached", stage
    assert manifest["generation"]["dtype"] == there and manifest["sampled_by"]["samples"]["dtype"] == here
    assert c["evaluate_base"]["status"] == "computed" and c["evaluate_base"]["hash"] != b["evaluate_base"]["hash"]
    # a pool that really differs is refused before anything runs, naming the difference
    refused = bench(
        "run",
        "--config",
        "experiments/smoke.yaml",
        "--out",
        str(tmp_path / "fourth"),
        "--set",
        f"cache_dir={empty}",
        "--set",
        f"bundle={bundle}",
        "--set",
        "pool.k=3",
    )
    assert refused.returncode == 2 and "sampling.k = 4 there, 3 here" in refused.stderr, refused.stderr[-2000:]
    assert not (tmp_path / "fourth").exists()
