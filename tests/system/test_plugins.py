"""A strategy, a suite and a judge are each one new file in their package.

Each test writes the plugin as a module into a folder added to its package's search path (what
dropping the file into strategies/, harness/suites/ or harness/judges/ does) and then uses it
through the harness's own entry points: config validation, preflight, the select stage's
strategy runner, the suite runner, the pool stage. Nothing in the harness names the plugin.
"""

from __future__ import annotations

import importlib
import json
import re
import sys
import textwrap
from pathlib import Path

import pytest
from pydantic import ValidationError

from harness.core.errors import BenchError, ConfigError
from harness.core.registry import JUDGES, POOL_VIEWS, STRATEGIES, SUITES, Registry
from harness.experiment import load_config
from harness.generation.config import GenerationConfig
from harness.judges.config import JudgeConfig
from harness.models.choices import resolve_generation
from harness.models.resolve import engine_key
from harness.stages.config import PoolConfig
from harness.suites.config import SuiteConfig
from harness.training.config import TrainConfig

ENGINE = engine_key("auto", "auto")
"""what this machine generates with: the engine a run would resolve here"""


@pytest.fixture
def add_plugin(tmp_path: Path, monkeypatch):
    """add_plugin(registry, module name, source): the module becomes part of the registry's package."""
    added: list[str] = []

    def add(registry: Registry, name: str, source: str) -> None:
        package = importlib.import_module(registry.package)
        folder = tmp_path / registry.package.replace(".", "_")
        folder.mkdir(exist_ok=True)
        (folder / f"{name}.py").write_text(textwrap.dedent(source), encoding="utf-8")
        registry.discover()
        monkeypatch.setattr(package, "__path__", [*package.__path__, str(folder)])
        monkeypatch.setattr(registry, "_items", dict(registry._items))  # the plugin leaves with the test
        monkeypatch.setattr(registry, "_discovered", False)
        monkeypatch.setattr(registry, "_broken", {})
        monkeypatch.setattr(registry, "_clashes", {})
        monkeypatch.setattr(registry, "_origins", dict(registry._origins))
        added.append(f"{registry.package}.{name}")

    yield add
    for module in added:
        sys.modules.pop(module, None)


STRATEGY = '''
    from strategies.base import Selection, Strategy, register


    @register
    class FirstPairs(Strategy):
        name = "first_pairs"
        description = "test plugin: the pool's first pairs"

        def select(self, pool, budget, rng, params):
            return Selection(self.name, budget, [p.id for p in pool.pairs[:budget]])
'''


def test_a_strategy_is_one_new_file(add_plugin) -> None:
    from test_strategies import POOLS

    from harness.stages.select import run_strategy

    add_plugin(STRATEGIES, "first_pairs", STRATEGY)
    config = load_config(None, ["select.strategy=first_pairs", "select.budget=5"])
    chosen = run_strategy(POOLS[0], config.select, seed=0)
    assert chosen.pair_ids == [p.id for p in POOLS[0].pairs[:5]]
    assert chosen.diagnostics["breadth"] >= 1  # the shared diagnostics the harness adds to every strategy
    with pytest.raises(ConfigError, match="Did you mean first_pairs"):
        load_config(None, ["select.strategy=first_pair"])
    add_plugin(STRATEGIES, "first_pairs_again", STRATEGY)
    with pytest.raises(
        BenchError,
        match=r"strategy 'first_pairs' is registered twice, by strategies.first_pairs and strategies.first_pairs_again",
    ):
        load_config(None, ["select.strategy=first_pairs"])


def test_a_plugin_written_against_an_old_import_path_runs_with_a_warning(add_plugin, capsys) -> None:
    old = STRATEGY.replace(
        "from strategies.base import Selection, Strategy, register",
        "from harness.records import Selection\n    from strategies.base import Strategy\n    from strategies.registry import register",
    )
    add_plugin(STRATEGIES, "old_pairs", old.replace("first_pairs", "old_pairs"))
    assert load_config(None, ["select.strategy=old_pairs"]).select.strategy == "old_pairs"
    assert re.search(
        r"warning: .*old_pairs\.py imports harness\.records, which moved to harness\.core\.records",
        capsys.readouterr().err,
    )


def test_the_old_config_module_answers_with_the_sections_beside_their_code(capsys) -> None:
    """harness.core.config held every section; a plugin importing a section from there still runs this release."""
    sys.modules.pop("harness.core.config", None)
    old = importlib.import_module("harness.core.config")
    assert old.TrainConfig is TrainConfig and old.load_config(None).train == TrainConfig()
    assert "imports harness.core.config, which moved to harness.experiment" in capsys.readouterr().err


def test_a_judge_or_suite_registered_by_its_old_function_runs_with_a_warning(add_plugin, capsys) -> None:
    """register_judge and register_suite were what a judge and a suite called before every kind registered the same way."""
    old_judge = JUDGE.replace("register\n", "register_judge\n")  # the import and the decorator
    add_plugin(JUDGES, "length", old_judge)
    assert JUDGES.get("length").name == "length" and JUDGES.origin("length") == "harness.judges.length"
    assert re.search(
        r"warning: .*length\.py uses harness\.judges\.base\.register_judge, which is now harness\.judges\.base\.register",
        capsys.readouterr().err,
    )
    old_suite = SUITE.replace("generate_cached, register\n", "generate_cached, register_suite\n").replace(
        'register(Suite(evaluate, default_judge=None, preflight=lambda cfg, field: PREFLIGHTS.append(field), name="echo_label"))',
        'register_suite("echo_label", Suite(evaluate, default_judge=None))',
    )
    add_plugin(SUITES, "echo_label", old_suite)
    assert SUITES.get("echo_label").name == "echo_label" and SUITES.origin("echo_label") == "harness.suites.echo_label"
    assert re.search(
        r"warning: .*echo_label\.py uses harness\.suites\.base\.register_suite, which is now harness\.suites\.base\.register",
        capsys.readouterr().err,
    )


VIEW = '''
    from harness.pool_views.base import PoolView, ViewResult, register


    def compute(run, pool, pool_hash):
        return ViewResult({}, "none", pool_hash)


    register(PoolView(compute, name="nothing"))
'''


def test_a_pool_view_is_one_new_file_and_discovery_imports_only_views(add_plugin, capsys) -> None:
    from harness.pool_views.base import get_view

    add_plugin(POOL_VIEWS, "nothing", VIEW)
    assert get_view("nothing", "some_strategy").compute(None, None, "h").hash == "h"
    assert set(POOL_VIEWS.names()) == {"embeddings", "gradients", "nothing"}
    assert POOL_VIEWS.package == "harness.pool_views"  # asking for a view imports view modules, not every stage
    from harness.stages.views import PoolView  # the contract's old home: it still imports, with a warning

    assert PoolView is sys.modules["harness.pool_views.base"].PoolView
    assert (
        "uses harness.stages.views.PoolView, which is now harness.pool_views.base.PoolView" in capsys.readouterr().err
    )


def test_a_broken_plugin_file_stops_only_the_commands_that_may_need_it(add_plugin, tmp_path: Path, capsys) -> None:
    add_plugin(
        STRATEGIES,
        "mended",
        STRATEGY.replace("first_pairs", "mended").replace("from strategies.base", "from harness.no_such_module"),
    )
    assert load_config(None, ["select.strategy=uniform"]).select.strategy == "uniform"  # other strategies still run
    assert re.search(
        r"warning: the strategy plugin .*mended\.py could not be imported \(ModuleNotFoundError",
        capsys.readouterr().err,
    )
    for _ in range(2):  # a name that may live in the broken file names that file, on every lookup
        with pytest.raises(
            ConfigError, match=r"Unknown strategy 'mended'.*mended\.py could not be imported \(ModuleNotFoundError"
        ):
            load_config(None, ["select.strategy=mended"])
    (tmp_path / "strategies" / "mended.py").write_text(
        textwrap.dedent(STRATEGY).replace("first_pairs", "mended"), encoding="utf-8"
    )
    assert load_config(None, ["select.strategy=mended"]).select.strategy == "mended"  # found without a restart


SUITE = '''
    from harness.suites.base import Suite, generate_cached, register

    PREFLIGHTS = []


    def evaluate(cfg, target, out, ctx):
        answers = generate_cached(cfg, target, ctx.cache_dir, [[{"role": "user", "content": "Say hello."}]], "greedy")
        (out / "label.txt").write_text(target.label)
        return {"label_length": {"value": float(len(target.label)), "ci_low": None, "ci_high": None, "n": len(answers), "judge": "none"}}


    register(Suite(evaluate, default_judge=None, preflight=lambda cfg, field: PREFLIGHTS.append(field), name="echo_label"))
'''


def test_a_suite_is_one_new_file(add_plugin, tiny_model: Path, tmp_path: Path) -> None:
    from harness.eval_runner import run_suite
    from harness.suites import EvalTarget

    add_plugin(SUITES, "echo_label", SUITE)
    config = load_config(None, ["evaluate.suites=[{name: echo_label, max_new_tokens: 8}]"])
    cfg = config.evaluate.suites[0]
    assert cfg.judge_config() is None  # declared: it scores itself
    with pytest.raises(ValidationError, match="echo_label scores itself"):
        SuiteConfig(name="echo_label", judge={"type": "verifiable"})
    with pytest.raises(ValidationError, match="only apply to the lm_eval suite"):
        SuiteConfig(name="echo_label", tasks=["hellaswag"])
    metrics = run_suite(cfg, EvalTarget(str(tiny_model), ENGINE, None, "tiny"), tmp_path / "out", tmp_path / "cache")
    assert metrics == {"label_length": {"value": 4.0, "ci_low": None, "ci_high": None, "n": 1, "judge": "none"}}
    assert (tmp_path / "out" / "label.txt").read_text() == "tiny"
    assert json.loads((tmp_path / "out" / "metrics.json").read_text())["echo_label"] == metrics
    assert sys.modules["harness.suites.echo_label"].PREFLIGHTS == ["echo_label"]  # the runner ran its preflight


JUDGE = '''
    from harness.judges.base import Judge, Judgment, register


    @register
    class LengthJudge(Judge):
        name = "length"
        label = "length in characters (test plugin; sees no quality: weak)"
        weak = True

        @classmethod
        def check_config(cls, cfg):
            super().check_config(cfg)
            if cfg.model:
                raise ValueError("the length judge takes no model")

        def score_many(self, items):
            return [Judgment(float(len(response))) for _, response in items]
'''


def test_a_judge_is_one_new_file(add_plugin, tiny_model: Path, tmp_path: Path) -> None:
    from harness.core.io import read_jsonl
    from harness.data.builtin import build_builtin_prompts
    from harness.preflight import check_judge
    from harness.stages.candidates import build_pool, draw_samples, read_pool, read_samples

    add_plugin(JUDGES, "length", JUDGE)
    cfg = JudgeConfig(type="length")
    check_judge(cfg, "pool.judge")
    with pytest.raises(ValidationError, match="takes no model"):
        JudgeConfig(type="length", model="x")
    with pytest.raises(ValidationError, match="only apply to type: llm"):
        JudgeConfig(type="length", base_url="http://127.0.0.1:1/v1")
    with pytest.raises(ValidationError, match="Did you mean length"):
        JudgeConfig(type="lenght")
    prompts, _ = build_builtin_prompts(seed=0, n_train=3)
    pool_cfg = PoolConfig(k=3, max_new_tokens=8, batch_size=9, drop_truncated=False, judge=cfg)
    draw_samples(str(tiny_model), prompts, pool_cfg, 0, tmp_path, resolve_generation(GenerationConfig()))
    build_pool(
        str(tiny_model),
        prompts,
        [],
        read_samples(tmp_path),
        pool_cfg,
        seed=0,
        out=tmp_path,
        generation=resolve_generation(GenerationConfig()),
        cache_dir=tmp_path / "cache",
    )
    pool = read_pool(tmp_path, prompts)
    assert {s["response_id"]: s["value"] for s in read_jsonl(tmp_path / "scores.jsonl")} == {
        r.id: float(len(r.text)) for r in pool.responses.values()
    }
    assert pool.pairs
    for pair in pool.pairs:  # pairs follow the plugin's verdicts
        assert len(pool.responses[pair.chosen_id].text) > len(pool.responses[pair.rejected_id].text)


def test_the_readmes_plugin_imports_import() -> None:
    """The README shows one import line per plugin kind; each must work as printed."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Strategies and plugins") :]
    lines = [line.split("#")[0].strip() for line in section[section.index("```python") :].split("```")[1].splitlines()]
    imports = [line for line in lines if line.startswith("from ")]
    assert len(imports) == 4
    for line in imports:
        exec(line, {})  # noqa: S102  (the README's own import lines)


@pytest.mark.parametrize("registry", [STRATEGIES, JUDGES, SUITES, POOL_VIEWS], ids=lambda r: r.kind)
def test_each_plugin_lives_in_a_file_named_as_it_is_registered(registry: Registry) -> None:
    """A reader looking for `control_shuffled` opens strategies/control_shuffled.py, and for `ifbench`
    harness/suites/ifbench.py; helpers start with an underscore."""
    assert {name: registry.origin(name) for name in registry.names()} == {
        name: f"{registry.package}.{name}" for name in registry.names()
    }
