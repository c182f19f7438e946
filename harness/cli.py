"""`bench`: run one experiment cell, list strategies, re-render reports."""

from __future__ import annotations

import functools
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import click

from harness.constraints.metrics import PRIMARY_METRIC
from harness.core.bundle import SHARED_STAGES, export_bundle, import_bundle, read_index, stages_of_runs
from harness.core.console import RUN_LOG, quiet_console
from harness.core.errors import BenchError, ConfigError, StageFailure, format_validation_error
from harness.core.io import write_json
from harness.core.run_files import RunFolder
from harness.core.sections import apply_overrides
from harness.eval_runner import eval_target, run_suite
from harness.experiment import load_config
from harness.models.config import EMBEDDED_MODEL
from harness.models.resolve import user_cache
from harness.preflight import check_experiment, require
from harness.provenance import machine
from harness.run_folder import default_out_dir, write_error_log
from harness.suites._common import run_heldout
from harness.suites.config import SuiteConfig
from strategies import get_strategy, strategy_names

if TYPE_CHECKING:
    from harness.matrix.spec import Cell, MatrixSpec

DEFAULT_CONFIG = "experiments/default.yaml"


def _default_config_path() -> Path | None:
    """experiments/default.yaml in the working folder, else the one next to this checkout."""
    for candidate in (Path(DEFAULT_CONFIG), Path(__file__).resolve().parents[1] / DEFAULT_CONFIG):
        if candidate.is_file():
            return candidate
    return None


def _quiet_unless_verbose(command):
    """Adds --verbose: third-party warnings, log messages and progress bars stay off the console unless
    it is given (a run keeps them in its run.log either way)."""

    @click.option(
        "--verbose",
        "-v",
        is_flag=True,
        help="Also show third-party warnings, log messages and progress bars (a run keeps them in <run>/run.log either way).",
    )
    @functools.wraps(command)
    def wrapper(*args, verbose: bool = False, **kwargs):

        with quiet_console(verbose):
            return command(*args, **kwargs)

    return wrapper


class _Group(click.Group):
    """User errors as one paragraph (exit 2); anything unexpected as one paragraph too (exit 1),
    naming the stage, the exception's one-line message and the file holding the full traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except BenchError as exc:
            click.secho(f"Error: {exc}", fg="red", err=True)
            sys.exit(2)
        except KeyboardInterrupt:
            click.secho(
                "Interrupted. Finished stages are cached: run the same command again to resume.", fg="yellow", err=True
            )
            sys.exit(130)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except Exception as exc:
            if _debug(ctx):
                raise
            click.secho(_failure_paragraph(ctx, exc), fg="red", err=True)
            sys.exit(1)


def _debug(ctx: click.Context) -> bool:
    return bool(ctx.params.get("debug")) or os.environ.get("BENCH_DEBUG", "") not in ("", "0")


def _failure_paragraph(ctx: click.Context, exc: Exception) -> str:
    """One paragraph for an unexpected failure; the traceback goes to a file (the run folder's
    error.log when a run folder exists, else a log under the user cache)."""

    command = ctx.invoked_subcommand or "bench"
    cause = exc.__cause__ if isinstance(exc, StageFailure) and exc.__cause__ is not None else exc
    log = getattr(exc, "log_path", None) or getattr(cause, "log_path", None)
    if log is None:
        log = write_error_log(
            user_cache() / "logs" / f"{command}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log", exc
        )
    where = f" in stage `{exc.stage}`" if isinstance(exc, StageFailure) else ""
    message = (str(cause).strip().splitlines() or [""])[0][:300]
    return (
        f"Error: bench {command} failed{where}: {type(cause).__name__}: {message}\n"
        f"The full traceback is in {log}. Run it again with `bench --debug {command} ...` (or BENCH_DEBUG=1) "
        "to see it here; finished stages are cached, so a rerun resumes. If it looks like a bug in "
        "bpo-bench, please report it with that file."
    )


@click.group(cls=_Group)
@click.version_option(package_name="bpo-bench")
@click.option(
    "--debug",
    is_flag=True,
    help="Show the full traceback of an unexpected error instead of one paragraph (also BENCH_DEBUG=1).",
)
def main(debug: bool) -> None:
    """bpo-bench: how should a fixed budget of preference pairs be split between breadth
    (many prompts) and depth (many pairs per prompt)?

    \b
    Quick start:
      bench strategies                       list the balancing strategies
      bench run --strategy bpo               one cell on experiments/default.yaml
      bench run --strategy original --config experiments/smoke.yaml
      bench report runs/default-bpo-b256-s0

    Exit codes: 0 done, 1 an unexpected error (its traceback is written to a file, named in the
    message), 2 an input to fix (the message says which and how).
    """


@main.command()
@click.option("--strategy", "-s", help="Strategy name (see `bench strategies`); overrides select.strategy.")
@click.option(
    "--config",
    "-c",
    "config_path",
    type=click.Path(dir_okay=False),
    help=f"Experiment YAML [default: {DEFAULT_CONFIG}].",
)
@click.option(
    "--budget", "-b", type=int, help="Number of preference pairs every strategy gets; overrides select.budget."
)
@click.option("--seed", type=int, help="Seed for sampling, selection and training; overrides seed.")
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override any config field, e.g. --set train.learning_rate=1e-4 --set pool.k=6. Repeatable.",
)
@click.option(
    "--out", type=click.Path(file_okay=False), help="Run folder [default: runs/<name>-<strategy>-b<budget>-s<seed>]."
)
@_quiet_unless_verbose
def run(strategy, config_path, budget, seed, overrides, out) -> None:
    """Run one experiment cell: prompts -> pool -> select -> train -> evaluate -> report.

    Every stage is cached under cache_dir by a hash of its inputs, so re-running the same
    command resumes where it stopped, and another strategy on the same pool reuses the pool,
    and the base model's evaluation. Prints seconds per stage at the end; the run folder holds
    manifest.json, selection.json, train/, metrics.json and report.html.
    """
    from harness.control import control_config, control_dir, record_control
    from harness.runner import run_experiment
    from reports.run_report import write_report

    path = Path(config_path) if config_path else _default_config_path()
    extra = list(overrides)
    if strategy:
        extra.append(f"select.strategy={strategy}")
    if budget is not None:
        extra.append(f"select.budget={budget}")
    if seed is not None:
        extra.append(f"seed={seed}")
    config = load_config(path, extra)
    out_dir = Path(out) if out else default_out_dir(config)
    click.echo(
        f"bench run: strategy={config.select.strategy} budget={config.select.budget} seed={config.seed} -> {out_dir}"
    )
    manifests = {"": run_experiment(config, out_dir)}
    control = control_config(config)
    if control is not None:
        control_out = control_dir(out_dir)
        click.echo(f"\nbench run: the shuffled-label control (evaluate.control) -> {control_out}")
        manifests["control: "] = run_experiment(control, control_out)
        record_control(out_dir, control_out)
        write_report(out_dir)
    _print_summary(manifests, out_dir)


def _print_summary(manifests: dict[str, dict], out_dir: Path) -> None:
    """Seconds per stage (the control's stages prefixed), the metrics, and the headline last."""
    from harness.control import CONSTRAINT_ONLY, graded_by_task, headline

    click.echo("\nstage                    status     seconds")
    total = 0.0
    for prefix, manifest in manifests.items():
        for name, s in manifest["stages"].items():
            total += s["seconds"]
            click.echo(f"{prefix + name:<24} {s['status']:<10} {s['seconds']:>8.1f}")
    click.echo(f"{'total':<35} {total:>8.1f}")
    if (out_dir / RUN_LOG).is_file():
        click.echo(f"third-party warnings and messages: {out_dir / RUN_LOG} (bench run --verbose shows them)")
    metrics = RunFolder(out_dir).metrics()
    click.echo("")
    _print_metrics(metrics)
    effect = headline(metrics)
    if effect:
        control = RunFolder(out_dir).control()
        line = f"\nheadline: held-out accuracy (constraint followed and task done), tuned - base {_effect(effect)}"
        if control and control.get("effect"):
            line += f"; shuffled-label control {_effect(control['effect'])}"
        click.echo(line + " (95% CI over held-out prompts, this seed)")
        graded = graded_by_task(metrics)
        constraint_only, degenerate = headline(metrics, CONSTRAINT_ONLY), graded.get("degenerate_share", {})
        click.echo(
            f"constraint only (IFEval strict): tuned - base {_effect(constraint_only)}; answers that do not do their task: "
            + ", ".join(f"{side} {record['value']:.1%}" for side, record in degenerate.items())
        )
    click.echo(f"\nreport: {RunFolder(out_dir) / RunFolder.REPORT}")


def _effect(record: dict) -> str:
    return f"{record['value']:+.3f} [{record['ci_low']:+.3f}, {record['ci_high']:+.3f}]"


@main.command(name="eval")
@click.option(
    "--suite",
    "-S",
    "suite",
    metavar="NAME",
    help="Which suite: ifeval, ifbench, alpaca_eval, mt_bench, lm_eval, or one of your own (a module in harness/suites/); or give --config.",
)
@click.option(
    "--model",
    "-m",
    default=None,
    help="A run folder, an adapter folder, a hub id or a model folder [default: the embedded base model].",
)
@click.option(
    "--config",
    "-c",
    "config_path",
    type=click.Path(exists=True, dir_okay=False),
    help="A suite YAML (the fields of one evaluate.suites entry).",
)
@click.option(
    "--judge",
    metavar="TYPE",
    help="Judge type: verifiable, reward_model, llm, or one of your own (a module in harness/judges/) [default: the suite's, verifiable for ifeval/ifbench, llm for alpaca_eval/mt_bench].",
)
@click.option(
    "--judge-model", help="Reward model or LLM judge: hub id, folder, or (openai back end) the served model name."
)
@click.option("--judge-url", help="LLM judge on an OpenAI-compatible endpoint, e.g. http://127.0.0.1:8000/v1.")
@click.option("--judge-key-env", help="Name of the environment variable holding the endpoint's API key.")
@click.option(
    "--judge-prompts",
    type=click.Path(dir_okay=False),
    help="FastChat judge_prompts.jsonl, for MT-Bench numbers comparable with published ones.",
)
@click.option("--path", "data_path", help="Suite data: a file, folder or hub id (per suite: docs/evaluation.md).")
@click.option("--limit", type=int, help="Evaluate only the first N items.")
@click.option(
    "--reference", help="alpaca_eval: reference outputs file, 'base', or a run folder; mt_bench: reference answers."
)
@click.option("--task", "tasks", multiple=True, help="lm_eval: task name (repeatable).")
@click.option("--include-path", type=click.Path(file_okay=False), help="lm_eval: folder with your own task YAMLs.")
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override any suite field, e.g. --set max_new_tokens=128 --set judge.concurrency=8.",
)
@click.option(
    "--chat-template",
    type=click.Path(exists=True, dir_okay=False),
    help="A Jinja chat-template file for a model whose tokenizer has none (or to replace its own).",
)
@click.option(
    "--backend",
    type=click.Choice(["auto", "transformers", "vllm"]),
    default="auto",
    show_default=True,
    help="Generation engine: auto = vLLM when installed and a GPU is present, else transformers.",
)
@click.option(
    "--dtype",
    type=click.Choice(["auto", "float32", "bfloat16"]),
    default="auto",
    show_default=True,
    help="Generation dtype: auto = bfloat16 where the GPU or CPU multiplies in it natively (AMX, AVX512-BF16), else float32.",
)
@click.option("--cache-dir", default="runs/cache", show_default=True, help="Stage and judgment cache.")
@click.option("--out", type=click.Path(file_okay=False), help="Output folder [default: runs/eval/<model>-<suite>].")
@_quiet_unless_verbose
def eval_cmd(
    suite,
    model,
    config_path,
    judge,
    judge_model,
    judge_url,
    judge_key_env,
    judge_prompts,
    data_path,
    limit,
    reference,
    tasks,
    include_path,
    overrides,
    chat_template,
    backend,
    dtype,
    cache_dir,
    out,
) -> None:
    """Evaluate any model on one suite, the way the alignment literature does.

    \b
    Examples (offline, on this machine):
      bench eval --suite ifbench                                   # IFBench, 294 prompts, verifiable
      bench eval --suite alpaca_eval --limit 20 \\
          --path ../shared/data/alpaca_eval/gpt4_1106_preview_outputs.json
      bench eval --suite mt_bench --limit 8 --path ../shared/data/mt_bench/question.jsonl
      bench eval --suite lm_eval --task my_task --include-path my_tasks/
      bench eval --model runs/default-bpo-b256-s0 --suite ifeval    # a tuned run
    \b
    With an API judge (the key stays in the environment):
      bench eval --suite mt_bench --judge llm --judge-url https://api.openai.com/v1 \\
          --judge-model gpt-4o --judge-key-env OPENAI_API_KEY \\
          --judge-prompts ../shared/data/mt_bench/judge_prompts.jsonl ...

    Writes OUT/metrics.json (value, 95% CI, n, judge, weak_judge per metric), manifest.json and
    the suite's exports (alpaca_eval's and FastChat's formats). Cached: a rerun calls nothing.
    """

    flags = {"name": suite, "path": data_path, "limit": limit, "reference": reference, "include_path": include_path}
    judge_flags = {
        "type": judge,
        "model": judge_model,
        "base_url": judge_url,
        "api_key_env": judge_key_env,
        "judge_prompts": judge_prompts,
    }
    cfg = _suite_config(config_path, flags, list(tasks), judge_flags, list(overrides))
    target = eval_target(model or EMBEDDED_MODEL, chat_template, backend, dtype)
    out_dir = Path(out) if out else Path("runs") / "eval" / f"{Path(target.label).name}-{cfg.name}"
    click.echo(
        f"bench eval: suite={cfg.name} model={target.model}"
        + (f" adapter={target.adapter}" if target.adapter else "")
        + f" -> {out_dir}"
    )
    start = time.perf_counter()
    metrics = run_suite(cfg, target, out_dir, Path(cache_dir), run_heldout(model or EMBEDDED_MODEL))
    _print_metrics({cfg.name: metrics})
    click.echo(f"\n{time.perf_counter() - start:.1f} s; metrics: {RunFolder(out_dir) / RunFolder.METRICS}")


def _suite_config(
    config_path: str | None, flags: dict, tasks: list[str], judge_flags: dict, overrides: list[str]
) -> SuiteConfig:
    """The suite `bench eval` runs: the --config YAML, then the flags given, then --set."""
    import yaml
    from pydantic import ValidationError

    data: dict = {}
    if config_path:
        data = yaml.safe_load(Path(config_path).read_text(encoding="utf-8")) or {}
        if not isinstance(data, dict):
            raise ConfigError(f"{config_path}: the top level must be a mapping (the fields of one suite).")
    data.update({k: v for k, v in flags.items() if v is not None})
    if tasks:
        data["tasks"] = tasks
    if any(v is not None for v in judge_flags.values()):
        j = dict(data.get("judge") or {})
        j.update({k: v for k, v in judge_flags.items() if v is not None})
        data["judge"] = j  # a missing type and backend are the config's to default (SuiteConfig, JudgeConfig)
    data = apply_overrides(data, overrides)
    if "name" not in data:
        raise ConfigError("bench eval: name a suite with --suite (or `name:` in --config).")
    try:
        return SuiteConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, config_path or "bench eval options")) from None


def _print_metrics(metrics: dict) -> None:
    for suite, table in metrics.items():
        for name, m in table.items():
            weak = "  (weak judge)" if m.get("weak_judge") else ""
            failed = f"  failed={m['n_failed']}" if m.get("n_failed") else ""
            click.echo(
                f"{suite}/{name:<34} {m['value']:.3f}  [{m['ci_low']:.3f}, {m['ci_high']:.3f}]  n={m['n']}{failed}{weak}"
            )


@main.command()
@click.argument("matrix_file", type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--dry-run",
    is_flag=True,
    help="List the cells and, per cell, which shared stages it computes, finds cached or reuses.",
)
@click.option(
    "--report-only",
    is_flag=True,
    help="Run no cell: write the comparison report of the cells already done under RUNS_ROOT/<matrix>/ (for a matrix "
    "whose cells ran on several machines: gather their folders there first).",
)
# the names in harness.matrix.executors.EXECUTORS, written out: importing it here would load the engine for every command
@click.option(
    "--executor",
    type=click.Choice(["local", "ray"]),
    default="local",
    show_default=True,
    help="local: one cell after another in this process; ray: one Ray task per cell (both resumable).",
)
@click.option("--address", default=None, help="ray: address of an existing Ray cluster (default: start a local one).")
@click.option("--gpus-per-cell", default=0.0, show_default=True, type=float, help="ray: GPUs each cell requests.")
@click.option(
    "--runs-root",
    default="runs",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Cells run under RUNS_ROOT/<matrix name>/<cell>.",
)
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a config field in every cell, e.g. --set cache_dir=/shared/cache.",
)
@_quiet_unless_verbose
def matrix(matrix_file, dry_run, report_only, executor, address, gpus_per_cell, runs_root, overrides) -> None:
    """Run an ablation matrix (strategies x budgets x seeds x any config field), then write its
    comparison report to RUNS_ROOT/<matrix>/comparison/index.html.

    Cells share the stage cache, so the pool, features and base-model evaluation they have in
    common are computed once; a cell already done with the same config is skipped, so running
    the command again resumes an interrupted matrix.

    \b
    Examples:
      bench matrix experiments/smoke-matrix.yaml --dry-run
      bench matrix experiments/ablation.yaml
      bench matrix experiments/ablation.yaml --report-only --runs-root gathered/
    """
    from harness.matrix.executors import EXECUTORS
    from harness.matrix.spec import expand, is_done, load_matrix

    if dry_run and report_only:
        raise ConfigError("--dry-run lists what would run and --report-only compares what ran: choose one.")
    spec = load_matrix(matrix_file)
    cells = expand(spec, Path(matrix_file), Path(runs_root), list(overrides))
    if report_only:
        done = sum(is_done(c) for c in cells)
        if not done:
            raise ConfigError(
                f"--report-only: no cell of {spec.name} is done under {Path(runs_root) / spec.name}; put the finished "
                f"cells' folders there (named as `bench matrix {matrix_file} --dry-run` lists them), or run the matrix."
            )
        click.echo(f"matrix {spec.name}: {done} of {len(cells)} cells done; comparing them, running none.")
        _compare_finished(spec, cells, Path(runs_root))
        return
    chosen = EXECUTORS[executor]
    if not dry_run:
        _check_matrix(cells, chosen.needs, f"--executor {executor}")
    _print_plan(spec.name, cells)
    if dry_run:
        return
    results = chosen.run(cells, address, gpus_per_cell)
    click.echo(f"\n{'cell':<34} {'result':<20} {'seconds':>8}  pool")
    for r in results:
        result = f"failed: {r.error}"[:60] if r.status == "failed" else r.status
        click.echo(f"{r.name:<34} {result:<20} {r.seconds:>8.1f}  {r.pool_status}")
    _compare_finished(spec, cells, Path(runs_root))
    failures = [r.name for r in results if r.status == "failed"]
    if failures:
        raise BenchError(
            f"{len(failures)} cell(s) failed: {', '.join(failures)}; rerun the same command to retry them."
        )


def _check_matrix(cells: list[Cell], needs: tuple[str, str] | None, needed_for: str) -> None:
    """The executor's package, then every cell's inputs, before the first cell runs for an hour."""
    from harness.matrix.spec import check_seed_machines, is_done

    if needs:
        require(*needs, needed_for)
    check_seed_machines(cells)
    for config in {c.config.model_dump_json(): c.config for c in cells if not is_done(c)}.values():
        check_experiment(config)


def _print_plan(name: str, cells: list[Cell]) -> None:
    """Per cell: done already, or which shared stages it computes, finds cached or reuses."""
    from harness.matrix.spec import plan

    rows = plan(cells)
    click.echo(f"matrix {name}: {len(cells)} cells")
    shared = list(
        dict.fromkeys(stage for r in rows for stage in r["stages"])
    )  # prompts, pool, evaluate_base[, preference_pool]
    click.echo(f"{'cell':<30} {'state':<7} " + " ".join(f"{stage:<28}" for stage in shared).rstrip())
    for r in rows:
        cells_ = " ".join(f"{r['stages'].get(stage, '-'):<28}" for stage in shared).rstrip()
        click.echo(f"{r['cell']:<30} {'done' if r['done'] else 'to run':<7} {cells_}")


def _compare_finished(spec: MatrixSpec, cells: list[Cell], runs_root: Path) -> None:
    """The comparison report of the cells done so far (also after some failed: the rest still compare)."""
    from harness.analysis.comparisons import Family, Primary
    from harness.matrix.spec import is_done, parse_claim
    from reports.comparison import render_comparison

    finished = [c.out for c in cells if is_done(c)]
    if finished:
        out = runs_root / spec.name / "comparison" / "index.html"
        primary = (
            Primary.of(parse_claim(spec.primary.claim), spec.primary.metric, spec.primary.budget, spec.primary.params)
            if spec.primary
            else None
        )
        families = [
            Family.of(name, [parse_claim(c) for c in f.claims], f.budget, f.params, f.across_budgets)
            for name, f in spec.families.items()
        ]
        click.echo(
            render_comparison(
                finished,
                out,
                baseline=spec.baseline,
                claims=[parse_claim(c) for c in spec.claims],
                primary=primary,
                margin=spec.equivalence_margin,
                families=families,
            )
        )


@main.command()
@click.argument("runs", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False))
@click.option(
    "--effect", default=0.05, show_default=True, help="Target difference to detect (0.05 = 5 points of accuracy)."
)
@click.option("--alpha", default=0.05, show_default=True, help="Two-sided significance level.")
@click.option("--power", "power_", default=0.8, show_default=True, help="Wanted power (1 - beta).")
@click.option("--out", "out_file", type=click.Path(dir_okay=False), help="Also write the table as JSON.")
def power(runs, effect, alpha, power_, out_file) -> None:
    """How small a difference between two settings can the verdict test detect? (from a pilot matrix)

    \b
    Give the runs of a pilot matrix with at least 2 settings run on the same 2 (better 3+) seeds:
      bench matrix experiments/ablation.yaml
      bench power runs/ablation
    Runs are grouped by everything in their config but the seed (like `bench report`); duplicate
    (setting, seed) folders and differing held-out prompt sets are refused. For each context
    (budget and other settings bar the strategy) and held-out metric it estimates, from the
    matched per-seed differences of every pair of settings, the variance components of a
    difference: sd run (a whole run shifting between seeds, with its 95% upper bound: few seeds
    pin it down poorly), sd prompt x strategy (interaction) and sd noise (a prompt flipping
    between seeds); with held-out units drawn anew per seed only their sum (sd unit) is defined.
    Held-out prompts whose base task and constraint type the runs recorded are analysed with the
    base task as the unit (sd task, ICC) and the constraint type as a fixed stratum. Every pair
    of settings also gets its own MDE.
    It prints the minimum detectable effect (MDE) of the verdict test the comparison report
    runs (t over matched seeds, noncentral; at the point estimate and at the upper bound of the
    run-shift term) and the units needed to detect --effect at 2, 3, 5 or 10 seeds ("never": run
    shifts alone are too large; one seed gives no verdict at all). Model: harness/analysis/power.py.
    """
    from harness.analysis.power import analyse
    from harness.analysis.runs import load_runs

    rows = analyse(load_runs([Path(r) for r in runs], need_outputs=True), effect, alpha, power_)
    click.echo(
        f"effect {effect:g}, alpha {alpha:g}, power {power_:g}; the test: t over matched seeds (harness/core/stats.py seed_test)"
    )
    click.echo(
        f"{'budget':>6} {'metric':<24} {'design':<7} {'units':>5} {'tasks':>5} {'seeds':>5} {'sd run':>7} {'≤ (95%)':>7} "
        f"{'sd task':>7} {'sd p×s':>7} {'ICC':>5} {'sd noise':>8} {'MDE':>6} {'MDE≤':>6}  units needed at "
        + "/".join(map(str, rows[0]["units_needed"]))
        + " seeds"
    )
    for r in rows:
        needed = " / ".join("never" if n is None else str(n) for n in r["units_needed"].values())
        flag = "" if r["detects_effect_at_pilot"] else "  (cannot detect the effect at these sizes)"
        crossed = r["design"] == "crossed"
        task = f"{r['var_c'] ** 0.5:>7.3f}" if "var_c" in r else f"{'—':>7}"
        icc = f"{r['icc']:>5.2f}" if r.get("icc") is not None else f"{'—':>5}"
        inter, noise = (
            (f"{r['var_b'] ** 0.5:>7.3f}", f"{r['var_e'] ** 0.5:>8.3f}")
            if crossed
            else (f"{'—':>7}", f"{r['var_unit'] ** 0.5:>8.3f}")
        )
        click.echo(
            f"{r['budget']:>6} {r['metric']:<24} {r['design']:<7} {r['n_units']:>5} {r.get('n_clusters', '—'):>5} {r['pilot_seeds']:>5} "
            f"{r['var_a'] ** 0.5:>7.3f} {r['var_a_upper'] ** 0.5:>7.3f} {task} {inter} {icc} {noise} {r['mde_at_pilot']:>6.3f} "
            f"{r['mde_at_upper']:>6.3f}  {needed}{flag}" + (f"  [{r['setting']}]" if r["setting"] else "")
        )
    if any("strata" in r for r in rows):
        click.echo(
            "held-out prompts: the base task is the unit resampled (tasks), the constraint type a fixed stratum removed first; "
            "share of the prompt x strategy variance that was type: "
            + ", ".join(f"{r['metric']} {r['stratum_share']:.0%}" for r in rows if "strata" in r)
        )
    if any(r["by_pair"] for r in rows):
        click.echo(
            "MDE per pair of settings (each pair's own components; seed r: correlation of the two cells' per-seed means):"
        )
        for r in rows:
            for pair in r["by_pair"]:
                corr = "—" if pair["seed_correlation"] is None else f"{pair['seed_correlation']:+.2f}"
                click.echo(
                    f"{r['budget']:>6} {r['metric']:<24} {pair['a']} vs {pair['b']}: sd run {pair['var_a'] ** 0.5:.3f} "
                    f"(≤ {pair['var_a_upper'] ** 0.5:.3f}), MDE {pair['mde_at_pilot']:.3f} (≤ {pair['mde_at_upper']:.3f}) "
                    f"at {r['n_units']} units x {pair['pilot_seeds']} seeds, seed r {corr}"
                )
    if any(r["design"] == "nested" for r in rows):
        click.echo(
            "nested: held-out units differ by seed; sd noise is then the whole per-unit spread of a difference (sd unit)."
        )
    if out_file:
        write_json(Path(out_file), rows)


@main.command(name="confounds")
@click.argument("runs", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False))
@click.option(
    "--pair",
    "pairs",
    multiple=True,
    metavar="'A > B'",
    help="Also adjust A − B for answer length and, with --ood, test A − B head to head on the other suite, e.g. "
    "--pair 'bpo > uniform' (quote it). Repeatable.",
)
@click.option(
    "--ood",
    "ood",
    type=click.Path(exists=True, file_okay=False),
    help="A folder of `bench eval` outputs on another suite, one per run (DIR/<matrix folder>/<run folder>/) and the base model's (DIR/base/): "
    "each cell's out-of-distribution gain, e.g. IFBench.",
)
@click.option("--out", "out_file", type=click.Path(dir_okay=False), help="Also write every table as JSON.")
def confounds_cmd(runs, pairs, ood, out_file) -> None:
    """What besides the data could make one setting win: the selected type mix, answer length, truncation.

    \b
    From finished runs (folders, or folders of them such as runs/<matrix>):
      bench confounds runs/testbed-pilot --pair 'bpo > uniform'
    per constraint type each cell's effect and the share of its selected pairs on that type; per
    type the pass rate against log words; a length-adjusted A − B (on prompts whose two answers
    are within ±20% in words, with a verdict over matched seeds; and a regression of pass on the
    cells, the types and log words); the truncation rate per cell; with --ood, each cell's gain
    on another suite's prompts (out of distribution) and its correlation with the held-out gain:
      for r in runs/testbed-curve/*-s0-*; do bench eval --model $r --suite ifbench --out runs/ifbench/testbed-curve/$(basename $r); done
      bench eval --suite ifbench --out runs/ifbench/base
      bench confounds runs/testbed-curve --ood runs/ifbench --pair 'bpo > uniform'
    (with --pair, that pair head to head on the other suite: A − B over matched seeds).
    Model: harness/analysis/confounds.py.
    """
    from harness.analysis.confounds import confounds
    from harness.analysis.runs import run_folders
    from harness.matrix.spec import parse_claim

    folders = run_folders([Path(r) for r in runs])
    try:
        parsed = [parse_claim(p) for p in pairs]
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--pair") from None
    result = confounds(folders, parsed, Path(ood) if ood else None)
    click.echo(
        f"{'cell':<28} {'budget':>6} {'type':<44} {'n':>5} {'tuned':>6} {'base':>6} {'effect':>7} {'selected':>8} {'words':>6}"
    )
    for r in result["by_type"]:
        share = "—" if r["selected_share"] is None else f"{r['selected_share']:.1%}"
        click.echo(
            f"{r['cell']:<28} {r['budget']:>6} {r['type']:<44} {r['n']:>5} {r['tuned']:>6.3f} {r['base']:>6.3f} {r['effect']:>+7.3f} {share:>8} {r['words']:>6.1f}"
        )
    click.echo("pass rate against length, per type (least squares on log words; points per doubling of words):")
    for r in result["length_slopes"]:
        click.echo(
            f"  {r['type']:<44} n {r['n']:>5}  pass {r['pass']:.3f}  {r['per_doubling']:+.3f} per doubling  r {r['r']:+.2f}"
        )
    for r in result["length_adjusted"]:
        verdict = r["same_length_verdict"]
        interval = (
            f" [{verdict['low']:+.3f}, {verdict['high']:+.3f}] over {verdict['n_seeds']} seeds"
            if verdict
            else " (no verdict)"
        )
        same = "—" if r["same_length_diff"] is None else f"{r['same_length_diff']:+.3f}{interval}"
        click.echo(
            f"{r['budget']} pairs: {r['a']} − {r['b']}: raw {r['raw']:+.3f} ({r['seeds']} seeds; {r['words_a']:.1f} vs {r['words_b']:.1f} words); "
            f"answers within ±20% words ({r['same_length_share']:.0%} of prompts): {same}; "
            f"regression on cell + type + log words: {r['regression_diff']:+.3f}"
        )
    click.echo("truncated at max_new_tokens (tuned / base):")
    for r in result["truncation"]:
        rate = "not recorded" if r["tuned"] is None else f"{r['tuned']:.1%} / {r['base']:.1%}"
        click.echo(
            f"  {r['cell']:<28} {r['budget']:>4} pairs  {rate}  ({r['n']} answers, {r['words']:.1f} words on average)"
        )
    if ood:
        table = result["out_of_distribution"]
        click.echo(f"out of distribution ({ood}): tuned − base prompt-level strict accuracy, next to the held-out gain")
        for r in table["cells"]:
            verdict = r["verdict"]
            over = f"; over {len(r['seeds'])} seeds [{verdict['low']:+.3f}, {verdict['high']:+.3f}]" if verdict else ""
            held = "—" if r["held_out_gain"] is None else f"{r['held_out_gain']:+.3f}"
            click.echo(
                f"  {r['cell']:<28} {r['budget']:>4} pairs  {r['effect']:+.3f} [{r['low']:+.3f}, {r['high']:+.3f}] ({r['tuned']:.3f} vs {r['base']:.3f}, "
                f"n {r['n']}, seeds {', '.join(map(str, r['seeds']))}{over})  held-out {held}"
                + ("  (control)" if r["control"] else "")
            )
        c = table["correlation"]
        click.echo(
            "  held-out gain vs out-of-distribution gain across cells: "
            + (
                "— (constant or < 4 cells)"
                if c["r"] is None
                else f"r {c['r']:+.2f} [{c['low']:+.2f}, {c['high']:+.2f}], n {c['n_cells']}"
            )
        )
        for t in table["head_to_head"]:
            verdict = t["verdict"]
            over = (
                f"over seeds {', '.join(map(str, t['seeds']))} [{verdict['low']:+.3f}, {verdict['high']:+.3f}], p {verdict['p']:.3f}"
                if verdict
                else f"seed {t['seeds'][0]} only: no verdict"
            )
            click.echo(
                f"  head to head, {t['budget']} pairs: {t['a']} − {t['b']} {t['diff']:+.3f} [{t['low']:+.3f}, {t['high']:+.3f}] "
                f"({t['a_acc']:.3f} vs {t['b_acc']:.3f}, n {t['n']}); {over}"
            )
    if out_file:
        write_json(Path(out_file), result)


@main.command(name="diagnostics")
@click.argument("runs", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False))
@click.option(
    "--metric",
    default=PRIMARY_METRIC,
    show_default=True,
    help="The held-out metric whose gain (tuned − base) the properties should predict.",
)
@click.option(
    "--out",
    "out_file",
    type=click.Path(dir_okay=False),
    help="Also write every table (per run, per cell, correlations) as JSON.",
)
def diagnostics_cmd(runs, metric, out_file) -> None:
    """What could explain the curve: does a property of the selected set predict held-out gain?

    \b
    From finished runs (folders, or folders of them such as runs/<matrix>):
      bench diagnostics runs/testbed-curve --out diagnostics.json
    per cell (seeds averaged): G-Vendi of the selected pairs' projected gradients, the Vendi
    score of their prompt and chosen-answer embeddings, the degenerate share of their chosen and
    rejected answers (task check, where the pool judge recorded it), the chosen answers' judge score and
    length, the pass rate of the selected prompts' samples, breadth and depth; then each
    property's correlation with the cell's gain, with a 95% interval, per budget and over all
    budgets. Reads the pool's stages from the cache the runs recorded (restore a shared pool
    with `bench cache import` first). Shuffled-label controls are left out, and cells whose
    selections repeat another cell's at every seed count once. Model:
    harness/analysis/diagnostics.py.
    """
    from harness.analysis.diagnostics import PROPERTIES, diagnostics
    from harness.analysis.runs import run_folders

    result = diagnostics(run_folders([Path(r) for r in runs]), metric)
    short = {
        "g_vendi": "G-Vendi",
        "prompt_vendi": "V prompt",
        "chosen_vendi": "V chosen",
        "chosen_degenerate": "degen c",
        "rejected_degenerate": "degen r",
        "chosen_score": "chosen",
        "prompt_pass_rate": "pass",
        "chosen_words": "words",
        "breadth": "breadth",
        "mean_depth": "depth",
    }
    click.echo(f"{'cell':<34} {'budget':>6} {'seeds':>5} {'gain':>7} " + " ".join(f"{short[p]:>8}" for p in PROPERTIES))
    for c in result["cells"]:
        gain = "—" if c["gain"] is None else f"{c['gain']:+.3f}"
        values = " ".join("—".rjust(8) if c[p] is None else f"{c[p]:>8.2f}" for p in PROPERTIES)
        note = (
            "  (control: not correlated)"
            if c["control"]
            else f"  (same selections as {c['same_as']}: counted once)"
            if c["same_as"]
            else ""
        )
        click.echo(f"{c['cell'][:34]:<34} {c['budget']:>6} {c['seeds']:>5} {gain:>7} {values}{note}")
    click.echo(f"correlation with the gain in {metric} across cells (Pearson r, 95% Fisher-z interval):")
    for r in result["correlations"]:
        value = (
            "— (constant or < 4 cells)"
            if r["r"] is None
            else f"r {r['r']:+.2f} [{r['low']:+.2f}, {r['high']:+.2f}], p {r['p']:.3f}"
        )
        click.echo(f"  {r['scope']:<32} {PROPERTIES[r['property']]:<44} n {r['n_cells']:>3}  {value}")
    if out_file:
        write_json(Path(out_file), result)


@main.group()
def cache() -> None:
    """Move a shared pool between caches: `bench cache export` / `bench cache import`.

    \b
    A comparison on one pool must keep that pool across machines (a new machine has no cache;
    another CPU model's bf16 kernels sample another pool under the same key). Export the pool's
    stages from a finished run, commit or copy the file, and restore it anywhere:
      bench cache export runs/testbed-pilot/testbed-bpo-b128-s0 -o pools/testbed.tar.gz
      bench cache import pools/testbed.tar.gz --cache-dir runs/cache
    or name it in the experiment (`bundle: pools/testbed.tar.gz`): every run restores it first.
    """


@cache.command(name="export")
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False))
@click.option(
    "-o", "--out", "out_file", required=True, type=click.Path(dir_okay=False), help="The bundle to write (.tar.gz)."
)
@click.option(
    "--stage",
    "stages",
    multiple=True,
    metavar="NAME",
    help="Stages to carry (repeatable); default: prompts, samples, pool, preference_samples, preference_pool, embeddings, features.",
)
def cache_export(run_dirs, out_file, stages) -> None:
    """Write the shared stages the RUN_DIRS used (from their cache) into one bundle.

    Give several runs to collect every view of the pool (a bpo run has the gradient features,
    an embedding_depth run the embeddings).
    """

    found = stages_of_runs([Path(r) for r in run_dirs], tuple(stages) or SHARED_STAGES)
    bundled = export_bundle(found, Path(out_file), machine())
    size = Path(out_file).stat().st_size / 2**20
    for stage in bundled:
        click.echo(
            f"  {stage.name:<16} {stage.hash}  {len(stage.files)} files, {sum(f[0] for f in stage.files.values()) / 2**20:.1f} MiB"
        )
    click.echo(f"wrote {out_file} ({size:.1f} MiB, {len(bundled)} stages)")


@cache.command(name="import")
@click.argument("bundle", type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--cache-dir",
    default="runs/cache",
    show_default=True,
    type=click.Path(file_okay=False),
    help="The cache to restore into.",
)
def cache_import(bundle, cache_dir) -> None:
    """Restore a bundle's stages into a cache (same keys; stages already there are checked, never overwritten)."""

    index = read_index(Path(bundle))
    for stage, state in import_bundle(Path(bundle), Path(cache_dir)):
        click.echo(f"  {stage.name:<16} {stage.hash}  {state}")
    cpu = (index.get("machine") or {}).get("cpu")
    click.echo(f"restored {bundle} into {cache_dir}" + (f" (exported on {cpu})" if cpu else ""))


@main.command()
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False))
def regrade(run_dirs) -> None:
    """Grade finished runs' held-out outputs again with the task check, in place: no generation, no training.

    \b
    Each eval_outputs.jsonl row gains base_task_check and tuned_task_check ({done, kind, cut}); metrics.json gains
    task_done_rate, prompt_strict_task_acc (constraint followed AND task done), prompt_strict_task_uncut_acc (the
    same with a cut answer counted as not done: the headline) and the degenerate
    share by kind, for the base and the tuned model; report.html is rendered again where the run has one.
    RUN_DIRS are run folders or folders of them (runs/<matrix>), e.g.
      bench regrade docs/results/testbed-primary/runs docs/results/testbed-pilot/runs
    then `bench report ... -o` compares them on the new metric (--primary-metric prompt_strict_task_uncut_acc).
    """
    from tqdm.auto import tqdm

    from harness.analysis.runs import run_folders
    from harness.constraints.metrics import PRIMARY_METRIC
    from harness.evaluation.regrade import Regrader
    from reports.run_report import write_report

    folders = [f for f in run_folders([Path(d) for d in run_dirs]) if RunFolder(f).has(RunFolder.EVAL_OUTPUTS)]
    if not folders:
        raise BenchError(
            f"no finished runs with held-out outputs ({RunFolder.EVAL_OUTPUTS}) under {', '.join(run_dirs)}."
        )
    regrader = Regrader()
    for folder in tqdm(folders, desc="regrade", unit="run"):
        metrics = regrader.regrade(folder)
        if RunFolder(folder).has(RunFolder.REPORT):
            write_report(folder)
        old, new = metrics.get("paired_diff.prompt_strict_acc"), metrics.get(f"paired_diff.{PRIMARY_METRIC}")
        tqdm.write(
            f"{folder}: tuned - base, constraint only {_effect(old)}; constraint and task, whole answers {_effect(new)}; "
            f"degenerate answers {metrics['base.degenerate_share']['value']:.1%} -> {metrics['tuned.degenerate_share']['value']:.1%}"
        )


@main.command()
def strategies() -> None:
    """List the registered balancing strategies."""

    for name in strategy_names():
        click.echo(f"{name:<16} {get_strategy(name).description}")


@main.command()
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False))
@click.option(
    "-o",
    "--out",
    "out_file",
    type=click.Path(dir_okay=False),
    help="Also write a comparison report of all RUN_DIRS to this HTML file (metrics.csv, metrics.json, paired_tests.json and summary.md go next to it).",
)
@click.option(
    "--baseline",
    default="original",
    show_default=True,
    help="Strategy every other setting is tested against, on the same prompts and matched seeds (verdicts need 2+ seeds).",
)
@click.option(
    "--claim",
    "claims",
    multiple=True,
    metavar="'BETTER > WORSE'",
    help="Also test two strategies head to head, e.g. --claim 'bpo > uniform' (quote it: > is a shell redirect). Repeatable.",
)
@click.option(
    "--primary",
    metavar="'BETTER > WORSE'",
    help="The one claim the runs were made to test: marked in the report and kept out of the other claims' Holm adjustment.",
)
@click.option(
    "--primary-metric",
    default=PRIMARY_METRIC,
    show_default=True,
    help="The paired metric --primary is judged on (prompt_strict_acc: constraint only, as IFEval).",
)
@click.option(
    "--primary-budget", type=click.IntRange(min=1), help="--primary only at this budget (default: at every budget)."
)
@click.option(
    "--primary-param",
    "primary_params",
    multiple=True,
    metavar="STRATEGY.PARAM=VALUE",
    help="--primary only for the cells with this strategy parameter, e.g. --primary-param uniform.depth=2, or setting "
    "(a dotted path), e.g. --primary-param bpo.train.learning_rate=0.0005. Repeatable.",
)
@click.option(
    "--margin",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Equivalence margin: every test also gets a TOST at ±MARGIN, and its verdict can be 'equivalent' (write the "
    "margin down before the runs; e.g. 0.04). Without it, no verdict says 'the same'.",
)
def report(
    run_dirs, out_file, baseline, claims, primary, primary_metric, primary_budget, primary_params, margin
) -> None:
    """Re-render report.html for each run folder (a pure function of its files) and, with -o,
    a comparison report over all of them: leaderboard (one row per setting: runs are grouped by
    their whole config bar the seed; mean and 95% CI across seeds), paired tests against
    --baseline and shuffled labels (verdicts over matched seeds; Holm within each family: the tests
    against the baseline, those against the control, the primary claim, the other claims; with
    --margin, equivalence by TOST),
    metric-vs-budget and breadth-vs-depth plots, links to each run. Two folders of one setting
    and seed are refused.

    \b
    Examples:
      bench report runs/default-bpo-b256-s0
      bench report runs/default-*-b256-s0 -o runs/comparison/index.html --baseline original
      bench report runs/ablation/*-s? -o runs/ablation/comparison/index.html --claim 'bpo > uniform'
      bench report runs/testbed-curve/* -o answer.html --primary 'bpo > uniform' \\
          --primary-budget 128 --primary-param uniform.depth=2 --baseline original
    """
    import yaml

    from harness.analysis.comparisons import Primary
    from harness.matrix.spec import parse_claim
    from reports.comparison import render_comparison
    from reports.run_report import write_report

    if (claims or primary) and not out_file:
        raise click.UsageError("--claim and --primary test strategies in the comparison report: add -o FILE.html.")
    try:
        parsed = [parse_claim(c) for c in claims]
    except ValueError as err:
        raise click.BadParameter(str(err), param_hint="--claim") from None
    try:
        primary_claim = parse_claim(primary) if primary else None
    except ValueError as err:
        raise click.BadParameter(str(err), param_hint="--primary") from None
    params: dict[str, dict[str, object]] = {}
    for item in primary_params:
        name, sep, value = item.partition("=")
        strategy, dot, param = name.partition(".")
        if not (sep and dot and strategy and param) or (primary_claim and strategy not in primary_claim):
            raise click.BadParameter(
                f"{item!r}: give STRATEGY.PARAM=VALUE with STRATEGY a side of --primary, e.g. uniform.depth=2.",
                param_hint="--primary-param",
            )
        params.setdefault(strategy, {})[param] = yaml.safe_load(value)
    if (primary_budget or params) and not primary_claim:
        raise click.UsageError(
            "--primary-budget and --primary-param narrow --primary: give --primary 'BETTER > WORSE' too."
        )
    primary_claim = Primary.of(primary_claim, primary_metric, primary_budget, params) if primary_claim else None
    for run_dir in run_dirs:
        if not RunFolder(run_dir).is_run():
            raise BenchError(f"{run_dir} has no {RunFolder.MANIFEST}: pass a folder written by `bench run`.")
        click.echo(write_report(Path(run_dir)))
    if out_file:
        click.echo(
            render_comparison(
                [Path(d) for d in run_dirs],
                Path(out_file),
                baseline=baseline,
                claims=parsed,
                primary=primary_claim,
                margin=margin,
            )
        )


if __name__ == "__main__":
    main()
