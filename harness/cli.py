"""`bench`: run one experiment cell, list strategies, re-render reports."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from harness.config import BenchError, load_config

DEFAULT_CONFIG = "experiments/default.yaml"


def _default_config_path() -> Path | None:
    """experiments/default.yaml in the working folder, else the one next to this checkout."""
    for candidate in (Path(DEFAULT_CONFIG), Path(__file__).resolve().parents[1] / DEFAULT_CONFIG):
        if candidate.is_file():
            return candidate
    return None


class _Group(click.Group):
    """Print user errors as one paragraph, without a traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except BenchError as exc:
            click.secho(f"Error: {exc}", fg="red", err=True)
            sys.exit(2)


@click.group(cls=_Group)
@click.version_option(package_name="bpo-bench")
def main() -> None:
    """bpo-bench: how should a fixed budget of preference pairs be split between breadth
    (many prompts) and depth (many pairs per prompt)?

    \b
    Quick start:
      bench strategies                       list the balancing strategies
      bench run --strategy bpo               one cell on experiments/default.yaml
      bench run --strategy original --config experiments/smoke.yaml
      bench report runs/default-bpo-b12-s0
    """


@main.command()
@click.option("--strategy", "-s", help="Strategy name (see `bench strategies`); overrides select.strategy.")
@click.option("--config", "-c", "config_path", type=click.Path(dir_okay=False), help=f"Experiment YAML [default: {DEFAULT_CONFIG}].")
@click.option("--budget", "-b", type=int, help="Number of preference pairs every strategy gets; overrides select.budget.")
@click.option("--seed", type=int, help="Seed for sampling, selection and training; overrides seed.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override any config field, e.g. --set train.learning_rate=1e-4 --set pool.k=6. Repeatable.")
@click.option("--out", type=click.Path(file_okay=False), help="Run folder [default: runs/<name>-<strategy>-b<budget>-s<seed>].")
def run(strategy, config_path, budget, seed, overrides, out) -> None:
    """Run one experiment cell: prompts -> pool -> select -> train -> evaluate -> report.

    Every stage is cached under cache_dir by a hash of its inputs, so re-running the same
    command resumes where it stopped, and another strategy on the same pool reuses the pool,
    and the base model's evaluation. Prints seconds per stage at the end; the run folder holds
    manifest.json, selection.json, train/, metrics.json and report.html.
    """
    from harness.runner import default_out_dir, run_experiment

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
    click.echo(f"bench run: strategy={config.select.strategy} budget={config.select.budget} seed={config.seed} -> {out_dir}")
    manifest = run_experiment(config, out_dir)
    _print_summary(manifest, out_dir)


def _print_summary(manifest: dict, out_dir: Path) -> None:
    from harness.io import read_json

    click.echo("\nstage           status     seconds")
    total = 0.0
    for name, s in manifest["stages"].items():
        total += s["seconds"]
        click.echo(f"{name:<15} {s['status']:<10} {s['seconds']:>8.1f}")
    click.echo(f"{'total':<26} {total:>8.1f}")
    metrics = read_json(out_dir / "metrics.json")
    click.echo("")
    for suite, table in metrics.items():
        for name, m in table.items():
            click.echo(f"{suite}/{name:<34} {m['value']:.3f}  [{m['ci_low']:.3f}, {m['ci_high']:.3f}]  n={m['n']}")
    click.echo(f"\nreport: {out_dir / 'report.html'}")


@main.command()
def strategies() -> None:
    """List the registered balancing strategies."""
    from strategies import get_strategy, strategy_names

    for name in strategy_names():
        click.echo(f"{name:<16} {get_strategy(name).description}")


@main.command()
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False))
def report(run_dirs) -> None:
    """Re-render report.html for one or more run folders (a pure function of their files)."""
    from reports.run_report import write_report

    for run_dir in run_dirs:
        if not (Path(run_dir) / "manifest.json").is_file():
            raise BenchError(f"{run_dir} has no manifest.json: pass a folder written by `bench run`.")
        click.echo(write_report(Path(run_dir)))


if __name__ == "__main__":
    main()
