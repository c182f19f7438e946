"""Config validation: every shipped experiment loads; bad input fails at once, clearly."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from harness.core.errors import ConfigError
from harness.experiment import ExperimentConfig, load_config

REPO = Path(__file__).resolve().parents[2]
EXPERIMENTS = sorted([*(REPO / "experiments").glob("*.yaml"), *(REPO / "experiments" / "paper").glob("*.yaml")])
ACCELERATE_CONFIGS = sorted((REPO / "experiments" / "accelerate").glob("*.yaml"))


def test_there_are_shipped_experiments() -> None:
    names = {str(p.relative_to(REPO / "experiments")) for p in EXPERIMENTS}
    assert {
        "default.yaml",
        "smoke.yaml",
        "paper/hh_harmless.yaml",
        "paper/hh_helpful.yaml",
        "paper/pku_saferlhf.yaml",
        "paper/ultrafeedback.yaml",
        "paper/ablation.yaml",
    } <= names
    assert {p.stem for p in ACCELERATE_CONFIGS} == {"ddp", "ddp_cpu", "fsdp", "zero3"}


@pytest.mark.parametrize("path", ACCELERATE_CONFIGS, ids=lambda p: p.name)
def test_shipped_accelerate_configs_are_accepted(path: Path) -> None:
    """accelerate itself parses each file, and a train config pointing at it validates."""
    from accelerate.commands.config.config_args import load_config_from_file

    from harness.experiment import ExperimentConfig

    assert load_config_from_file(str(path)).distributed_type
    assert ExperimentConfig.model_validate({"train": {"accelerate_config": str(path)}}).train.accelerate_config == str(
        path
    )


@pytest.mark.parametrize("path", EXPERIMENTS, ids=lambda p: p.name)
def test_every_shipped_experiment_validates(path: Path) -> None:
    """Experiments validate as configs; matrices expand into cells whose configs all validate."""
    import yaml

    from harness.matrix.spec import expand, load_matrix

    if "axes" in (yaml.safe_load(path.read_text()) or {}):
        cells = expand(load_matrix(path), path)
        assert cells and all(c.config.select.budget >= 1 for c in cells)
        assert len({c.name for c in cells}) == len(cells)
        assert all("/" not in c.name for c in cells), "cell names become folder names"
    else:
        assert load_config(path).select.budget >= 1


def test_matrix_zip_and_exclude(tmp_path: Path) -> None:
    from harness.core.errors import ConfigError
    from harness.matrix.spec import expand, load_matrix

    spec = tmp_path / "m.yaml"
    spec.write_text(
        f"name: m\nbase: {REPO / 'experiments' / 'smoke.yaml'}\n"
        "axes: {strategy: [original, uniform, bpo], budget: [2, 3, 4], seed: [0, 1], train.learning_rate: [1.0e-4]}\n"
        "zip: [[strategy, budget]]\nexclude: [{strategy: bpo, seed: 1}]\n"
    )
    cells = expand(load_matrix(spec), spec)
    assert [c.name for c in cells] == [
        "original-b2-s0-learning_rate0.0001",
        "original-b2-s1-learning_rate0.0001",
        "uniform-b3-s0-learning_rate0.0001",
        "uniform-b3-s1-learning_rate0.0001",
        "bpo-b4-s0-learning_rate0.0001",
    ]
    assert (
        cells[2].config.select.strategy == "uniform"
        and cells[2].config.select.budget == 3
        and cells[2].config.seed == 0
    )
    spec.write_text(f"name: m\nbase: {REPO / 'experiments' / 'smoke.yaml'}\naxes: {{strategy: [a]}}\nzip: [[budget]]\n")
    with pytest.raises(ConfigError, match="not an axis"):
        load_matrix(spec)


def test_matrix_label_axis_names_zipped_cells_and_sets_nothing(tmp_path: Path) -> None:
    from harness.matrix.spec import expand, load_matrix

    spec = tmp_path / "m.yaml"
    spec.write_text(
        f"name: m\nbase: {REPO / 'experiments' / 'smoke.yaml'}\n"
        "axes: {strategy: [uniform], seed: [0], label: [small, large], prompts.n_train: [8, 16], budget: [3, 6]}\n"
        "zip: [[label, prompts.n_train, budget]]\n"
    )
    cells = expand(load_matrix(spec), spec)
    assert [c.name for c in cells] == ["uniform-b3-s0-small", "uniform-b6-s0-large"]
    assert [(c.config.prompts.n_train, c.config.select.budget) for c in cells] == [(8, 3), (16, 6)]
    assert "label" not in cells[0].config.model_dump()


def test_matrix_axis_written_first_varies_slowest_zipped_groups_included(tmp_path: Path) -> None:
    """Seed first: a matrix stopped part-way has run every strategy of the seeds it finished."""
    from harness.matrix.spec import expand, load_matrix

    spec = tmp_path / "m.yaml"
    spec.write_text(
        f"name: m\nbase: {REPO / 'experiments' / 'smoke.yaml'}\n"
        "axes: {seed: [0, 1], label: [d1, d2], strategy: [uniform, uniform], select.params: [{depth: 1}, {depth: 2}]}\n"
        "zip: [[label, strategy, select.params]]\n"
    )
    cells = expand(load_matrix(spec), spec)
    assert [(c.config.seed, c.config.select.params["depth"]) for c in cells] == [(0, 1), (0, 2), (1, 1), (1, 2)]


def test_overrides_are_typed_and_dotted() -> None:
    config = load_config(
        None, ["train.learning_rate=1e-4", "pool.k=6", "select.params.depth=3", "prompts.n_train=null"]
    )
    assert config.train.learning_rate == 1e-4 and config.pool.k == 6
    assert config.select.params == {"depth": 3} and config.prompts.n_train is None


def test_all_problems_reported_at_once(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("pool:\n  k: many\ntrain:\n  lr: 1\nselect:\n  budget: -3\n")
    with pytest.raises(ConfigError) as info:
        load_config(bad)
    msg = str(info.value)
    assert str(bad) in msg and "3 problem(s)" in msg
    assert "pool.k" in msg and "train.lr: unknown key" in msg and "select.budget" in msg


def test_unknown_strategy_and_params(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="Did you mean uniform"):
        load_config(None, ["select.strategy=unifrm"])
    with pytest.raises(ConfigError, match="select.params.dpth"):
        load_config(None, ["select.params.dpth=2"])


def test_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    bad = tmp_path / "broken.yaml"
    bad.write_text("name: x\npool:\n  k: [1, 2\n")
    with pytest.raises(ConfigError, match=r"broken.yaml line \d+"):
        load_config(bad)


def test_missing_file_and_bad_override() -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config("nope.yaml")
    with pytest.raises(ConfigError, match="expected dotted.key=value"):
        load_config(None, ["train.learning_rate"])


def test_pool_seed_shares_one_pool_across_run_seeds() -> None:
    """pool.seed fixes the prompts, the pool and its features while the run seed varies selection
    and training; unset, every key is what it was before the setting existed."""
    from harness.runner import resolve_run, shared_stage_hashes
    from harness.stages.prompts import inputs as prompts_inputs

    base = ExperimentConfig()
    assert prompts_inputs(base) == {
        "prompts": {
            "source": "builtin",
            "format": "auto",
            "split": "train",
            "data_dir": None,
            "n_train": 48,
            "constraints_per_prompt": 1,
        },
        "seed": 0,
    }
    # unset, the default pool's key is the one test_stage_keys pins (not moved by pool.seed's existence)
    from pinned_keys import PINNED

    from harness.models.resolve import resolve_dtype

    assert shared_stage_hashes(resolve_run(base))["pool"] == PINNED[resolve_dtype("auto")]["pool"]
    shared = [ExperimentConfig(seed=s, pool={"seed": 7}) for s in (0, 1, 2)]
    assert len({shared_stage_hashes(resolve_run(c))["pool"] for c in shared}) == 1
    assert (
        shared_stage_hashes(resolve_run(shared[0]))["pool"]
        == shared_stage_hashes(resolve_run(ExperimentConfig(seed=7)))["pool"]
    )
    assert shared[1].pool_seed == 7 and ExperimentConfig(seed=3).pool_seed == 3
    assert len({shared_stage_hashes(resolve_run(ExperimentConfig(seed=s)))["pool"] for s in (0, 1)}) == 2


def test_builtin_set_enters_the_prompt_and_evaluation_keys_only_when_chosen() -> None:
    from harness.stages.evaluate import inputs as evaluate_inputs
    from harness.stages.preference_pool import samples_inputs as preference_pool_inputs
    from harness.stages.prompts import inputs as prompts_inputs

    base = ExperimentConfig()
    short = ExperimentConfig(prompts={"tasks": "short"})
    typed = ExperimentConfig(prompts={"constraint_types": ["detectable_format:title", "punctuation:no_comma"]})
    from harness.models.choices import resolve

    for inputs in (prompts_inputs, lambda c: evaluate_inputs(resolve(c)), lambda c: preference_pool_inputs(resolve(c))):
        assert len({str(inputs(c)) for c in (base, short, typed)}) == 3
    assert "builtin_set" not in evaluate_inputs(resolve(base))
    with pytest.raises(ValidationError, match="close matches"):
        ExperimentConfig(prompts={"constraint_types": ["detectable_format:titel"]})


def test_control_config_is_the_shuffled_reference_of_the_cell() -> None:
    from harness.control import control_config
    from harness.stages.evaluate import inputs as evaluate_inputs

    cell = ExperimentConfig(
        select={"strategy": "margin", "budget": 16, "params": {"order": "low"}}, evaluate={"control": True}
    )
    control = control_config(cell)
    assert control is not None and control.select.strategy == "control_shuffled" and control.select.budget == 16
    assert control.select.params == {"reference": "margin", "reference_params": {"order": "low"}}
    assert not control.evaluate.control and control_config(control) is None
    assert control_config(ExperimentConfig()) is None
    from harness.models.choices import resolve

    assert evaluate_inputs(resolve(cell)) == evaluate_inputs(
        resolve(ExperimentConfig(select=cell.select))
    )  # the control re-keys no evaluation


def test_an_unknown_strategy_is_listed_with_every_other_problem() -> None:
    """The strategy name and its parameters are validated with the rest of the schema, through the registry: one list."""
    with pytest.raises(ConfigError) as err:
        load_config(None, ["select.strategy=unifrom", "train.lr=1", "pool.k=0", "evaluate.n_prompts=-1"])
    message = str(err.value)
    assert "4 problem(s)" in message and "Did you mean uniform" in message
    assert all(f in message for f in ("train.lr", "pool.k", "evaluate.n_prompts"))
    config = load_config(None, ["select.params.depth=3"])
    assert config.select.typed_params().depth == 3  # validated once, read by the stages


def test_a_matrix_key_that_names_no_field_is_reported_against_the_matrix_file(tmp_path: Path) -> None:
    from harness.matrix.spec import expand, load_matrix

    (tmp_path / "base.yaml").write_text("name: b\n")
    spec_file = tmp_path / "m.yaml"
    spec_file.write_text(
        "name: m\nbase: base.yaml\nset: {train.lerning_rate: 1.0e-4}\naxes: {seed: [0], select.parms: [{depth: 1}]}\n"
    )
    with pytest.raises(ConfigError) as err:
        expand(load_matrix(spec_file), spec_file)
    message = str(err.value)
    assert message.startswith(f"{spec_file}: 2 problem(s) in the matrix")
    assert (
        "set.train.lerning_rate" in message
        and "did you mean train.learning_rate" in message
        and "did you mean select.params" in message
    )


@pytest.mark.parametrize(
    "suite,judge,expected",
    [
        ("mt_bench", {"model": "m"}, "llm"),
        ("ifeval", {}, "verifiable"),
        ("ifeval", {"base_url": "http://127.0.0.1:9/v1", "model": "m"}, "llm"),
    ],
)
def test_a_judge_without_a_type_takes_the_suites_default(suite: str, judge: dict, expected: str) -> None:
    from harness.suites.config import SuiteConfig

    cfg = SuiteConfig.model_validate({"name": suite, "judge": judge})
    assert cfg.judge is not None and cfg.judge.type == expected
    assert cfg.judge.backend == ("openai" if "base_url" in judge else "transformers")
