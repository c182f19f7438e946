"""Config validation: every shipped experiment loads; bad input fails at once, clearly."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.config import ConfigError, load_config

EXPERIMENTS = sorted((Path(__file__).resolve().parents[1] / "experiments").glob("*.yaml"))


def test_there_are_shipped_experiments() -> None:
    names = {p.name for p in EXPERIMENTS}
    assert {"default.yaml", "smoke.yaml"} <= names


@pytest.mark.parametrize("path", EXPERIMENTS, ids=lambda p: p.name)
def test_every_shipped_experiment_validates(path: Path) -> None:
    config = load_config(path)
    assert config.select.budget >= 1


def test_overrides_are_typed_and_dotted() -> None:
    config = load_config(None, ["train.learning_rate=1e-4", "pool.k=6", "select.params.depth=3", "prompts.n_train=null"])
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
