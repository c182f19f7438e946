"""Ablation matrices: a base config plus axes, expanded to cells that are ordinary runs.

A matrix file:

    name: smoke-matrix
    base: smoke.yaml                 # relative to the matrix file
    set: {evaluate.bootstrap: 200}   # overrides applied to every cell
    axes:
      strategy: [original, uniform]  # shorthands: strategy, budget, seed; or any dotted field
      seed: [0, 1]
    zip: [[strategy, budget]]        # axes that advance together instead of crossing
    exclude: [{strategy: original, seed: 1}]
    # `label` is an axis that names cells and sets nothing: zipped with other axes, it stands in
    # for them in cell names (e.g. label: [hh, pku] zipped with prompts.source and prompts.split)
    baseline: original               # for the comparison report's paired tests
    claims: ["bpo > uniform"]        # hypotheses the comparison tests head to head (BETTER > WORSE)
    primary: {claim: "bpo > uniform", metric: prompt_strict_acc}  # the one hypothesis the matrix is run
                                     # for: marked in the report, kept out of the other claims' Holm family
    families:                        # further claim families, each Holm-adjusted within itself
      depths: {claims: ["uniform vs uniform"]}            # one strategy's settings, pairwise, per budget
      vs_uniform: {claims: ["bpo > uniform"], budget: 128, params: {uniform: {depth: 2}}}
    equivalence_margin: 0.04         # "the same" is a TOST at ±0.04: equivalent, different or undecided

Each cell runs under `runs/<matrix>/<cell>/` with the base config's cache, so stages that
cells share (prompts, pool, features, base-model evaluation) are computed once. A cell whose
run folder already says `done` for the same resolved config is skipped, so an interrupted
matrix resumes where it stopped.
"""

from __future__ import annotations

import functools
import itertools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from harness.analysis.grouping import PLACEMENT, machine_kind, run_kind
from harness.analysis.runs import PAIRED_METRICS
from harness.constraints.metrics import PRIMARY_METRIC
from harness.core.errors import ConfigError, format_validation_error
from harness.core.io import content_hash
from harness.core.run_files import RunFolder
from harness.experiment import ExperimentConfig, load_config
from harness.provenance import machine

if TYPE_CHECKING:
    from harness.models.choices import Resolved

SHORTHANDS = {"strategy": "select.strategy", "budget": "select.budget", "seed": "seed"}


class PrimaryClaim(BaseModel):
    model_config = ConfigDict(extra="forbid")

    claim: str = Field(description="'BETTER > WORSE', the matrix's pre-stated hypothesis")
    metric: str = Field(
        PRIMARY_METRIC,
        description="the paired metric it is judged on: prompt_strict_task_uncut_acc (constraint followed, task done "
        "and the answer not cut), prompt_strict_task_acc (the same, cut answers as they are), "
        "prompt_strict_acc (constraint only), task_done_rate, preference_accuracy or mean_verifiable_reward",
    )
    budget: int | None = Field(None, ge=1, description="only at this budget (default: every budget the matrix runs)")
    params: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="per strategy of the claim, the select.params its primary cell has, e.g. {uniform: {depth: 2}}; a dotted "
        "name is any setting's path, e.g. {bpo: {train.learning_rate: 5.0e-4}}",
    )

    @model_validator(mode="after")
    def _check(self) -> "PrimaryClaim":
        named = parse_claim(self.claim)
        if set(self.params) - set(named):
            raise ValueError(
                f"primary.params names {sorted(set(self.params) - set(named))}, not a side of the claim {self.claim!r}"
            )
        if self.metric not in PAIRED_METRICS:
            raise ValueError(
                f"primary.metric {self.metric!r} is not a paired metric; use one of {', '.join(PAIRED_METRICS)}"
            )
        return self


class ClaimFamily(BaseModel):
    model_config = ConfigDict(extra="forbid")

    claims: list[str] = Field(
        min_length=1, description="'BETTER > WORSE', or 'S vs S' for strategy S's settings pairwise"
    )
    budget: int | None = Field(None, ge=1, description="only at this budget (default: every budget the matrix runs)")
    params: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="per strategy, the settings its cells in this family have, e.g. {uniform: {depth: 2}} (as primary.params)",
    )
    across_budgets: bool = Field(
        False, description="also pair cells of different budgets (bpo at 256 pairs against uniform on the whole pool)"
    )

    @model_validator(mode="after")
    def _check(self) -> "ClaimFamily":
        named = {name for claim in self.claims for name in parse_claim(claim)}
        if set(self.params) - named:
            raise ValueError(f"params names {sorted(set(self.params) - named)}, which no claim of the family names")
        return self


class MatrixSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    base: str = Field(description="experiment YAML, relative to the matrix file")
    set: dict[str, Any] = Field(default_factory=dict)
    axes: dict[str, list[Any]] = Field(min_length=1)
    zip: list[list[str]] = Field(default_factory=list)
    exclude: list[dict[str, Any]] = Field(default_factory=list)
    baseline: str = "original"
    claims: list[str] = Field(default_factory=list, description="'BETTER > WORSE' strategy pairs tested head to head")
    primary: PrimaryClaim | None = Field(None, description="the claim and metric the matrix is run to test")
    families: dict[str, ClaimFamily] = Field(
        default_factory=dict,
        description="further named families of claims, each Holm-adjusted within itself (not with `claims`)",
    )
    equivalence_margin: float | None = Field(
        None,
        gt=0,
        description="the margin of every 'the same' verdict (a TOST at ±margin), written down before the runs",
    )

    @model_validator(mode="after")
    def _check(self) -> "MatrixSpec":
        for name, values in self.axes.items():
            if not values:
                raise ValueError(f"axis {name!r} has no values")
        strategies = {str(v) for v in self.axes.get("strategy", [])}
        family_claims = [claim for family in self.families.values() for claim in family.claims]
        for name in self.families:
            if name in ("claims", "primary"):
                raise ValueError(
                    f"families: {name!r} is the name of the matrix's own claims; name the family otherwise"
                )
        for claim in self.claims + family_claims + ([self.primary.claim] if self.primary else []):
            named = set(parse_claim(claim))
            if strategies and not named <= strategies:
                raise ValueError(
                    f"claim {claim!r} names {sorted(named - strategies)}, not on the strategy axis {sorted(strategies)}"
                )
        zipped = [a for group in self.zip for a in group]
        for axis in zipped:
            if axis not in self.axes:
                raise ValueError(f"zip names {axis!r}, which is not an axis")
        if len(zipped) != len(set(zipped)):
            raise ValueError("an axis appears in two zip groups")
        for group in self.zip:
            if len({len(self.axes[a]) for a in group}) != 1:
                raise ValueError(f"zip group {group} has axes of different lengths")
        for rule in self.exclude:
            unknown = set(rule) - set(self.axes)
            if unknown:
                raise ValueError(f"exclude rule {rule} names {sorted(unknown)}, which are not axes")
        return self


def parse_claim(text: str) -> tuple[str, str]:
    """'bpo > uniform' -> ('bpo', 'uniform'): the strategy expected to win, then the one it should beat.

    A claim is tested head to head on the same held-out prompts (and seeds), which a test of
    each strategy against one baseline cannot give: the paper's claims compare two non-baselines.
    """
    text = str(text)
    pairwise = re.fullmatch(r"\s*(\S+)\s+vs\s+(\S+)\s*", text)
    if pairwise and pairwise.group(1) == pairwise.group(2):
        return pairwise.group(1), pairwise.group(2)
    parts = [part.strip() for part in text.split(">")]
    if len(parts) != 2 or not all(parts) or parts[0] == parts[1]:
        raise ValueError(
            f"claim {text!r} must read 'BETTER > WORSE' with two different strategy names, e.g. 'bpo > uniform', "
            "or 'S vs S' to compare strategy S's settings pairwise, e.g. 'uniform vs uniform'"
        )
    return parts[0], parts[1]


@dataclass
class Cell:
    name: str
    values: dict[str, Any]
    config: ExperimentConfig
    out: Path

    @functools.cached_property
    def resolved(self) -> Resolved:
        """The config resolved on the planning machine, once for every planning question (the run resolves again
        where it runs: a Ray worker may be another kind of machine)."""
        from harness.runner import resolve_run

        return resolve_run(self.config)


def load_matrix(path: str | Path) -> MatrixSpec:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"Matrix file {path} does not exist; see experiments/smoke-matrix.yaml for the format.")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        return MatrixSpec.model_validate(data)
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({err}).") from None
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, str(path))) from None


def _slug(value: Any) -> str:
    return re.sub(r"[^A-Za-z0-9._]+", "", str(value)) or "x"


LABEL = "label"


def cell_name(values: dict[str, Any], labelled: frozenset[str] = frozenset()) -> str:
    """strategy-b<budget>-s<seed>, then the label or each other axis; `labelled` axes are named by the label."""
    parts = [str(values["strategy"])] if "strategy" in values else []
    parts += [f"b{values['budget']}"] if "budget" in values else []
    parts += [f"s{values['seed']}"] if "seed" in values else []
    parts += [_slug(values[LABEL])] if LABEL in values else []
    parts += [
        f"{k.rsplit('.', 1)[-1]}{_slug(v)}"
        for k, v in values.items()
        if k not in SHORTHANDS and k != LABEL and k not in labelled
    ]
    return "-".join(parts)


def _field_problem(path: str) -> str | None:
    """Why a dotted config path names no field of the experiment schema (None when it does; below a free-form mapping
    such as select.params anything goes: the strategy's own parameters are validated with the config)."""
    import difflib

    from pydantic import BaseModel

    model: Any = ExperimentConfig
    parts = path.split(".")
    for i, part in enumerate(parts):
        fields = model.model_fields
        if part not in fields:
            close = difflib.get_close_matches(part, list(fields), n=1)
            where = ".".join(parts[:i])
            hint = f"; did you mean {'.'.join([*parts[:i], close[0]])}?" if close else ""
            return f"no config field {part!r}" + (f" under {where}" if where else "") + hint
        annotation = fields[part].annotation
        inner = next(
            (a for a in getattr(annotation, "__args__", ()) if isinstance(a, type) and issubclass(a, BaseModel)), None
        )
        model = annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else inner
        if model is None:
            return None  # a plain value or a mapping: the rest of the path is its content
    return None


def check_keys(spec: MatrixSpec, matrix_file: Path) -> None:
    """Every field the matrix sets or varies exists, reported against the matrix file that names it (before any
    cell's config is assembled from the base file)."""
    problems = [
        f"  - {section}.{key}: {why}"
        for section, keys in (("set", spec.set), ("axes", spec.axes))
        for key in keys
        if key != LABEL and (why := _field_problem(SHORTHANDS.get(key, key)))
    ]
    if problems:
        raise ConfigError(f"{matrix_file}: {len(problems)} problem(s) in the matrix:\n" + "\n".join(problems))


def expand(
    spec: MatrixSpec, matrix_file: Path, runs_root: Path = Path("runs"), overrides: list[str] | None = None
) -> list[Cell]:
    """Every cell of the matrix, in a stable order, each with its validated config."""
    check_keys(spec, matrix_file)
    zipped = {a for group in spec.zip for a in group}
    blocks: list[list[dict[str, Any]]] = [
        [dict(zip(group, combo)) for combo in zip(*(spec.axes[a] for a in group))] for group in spec.zip
    ]
    blocks += [[{axis: v} for v in values] for axis, values in spec.axes.items() if axis not in zipped]
    # the axis written first varies slowest (seed first: a stopped matrix leaves whole seeds), zipped
    # groups placed where their first axis is written
    order = list(spec.axes)
    blocks.sort(key=lambda block: min(order.index(a) for a in block[0]))
    labelled = frozenset(a for group in spec.zip if LABEL in group for a in group if a not in SHORTHANDS)
    base = Path(matrix_file).parent / spec.base
    extra = overrides or []
    cells, seen = [], set()
    for combo in itertools.product(*blocks):
        values = {k: v for part in combo for k, v in part.items()}
        values = {a: values[a] for a in spec.axes}  # axis order as written
        if any(all(values.get(k) == v for k, v in rule.items()) for rule in spec.exclude):
            continue
        overrides = [
            f"{k}={yaml.safe_dump(v, default_flow_style=True).strip().removesuffix('...').strip()}"
            for k, v in spec.set.items()
        ]
        overrides += [
            f"{SHORTHANDS.get(k, k)}={yaml.safe_dump(v, default_flow_style=True).strip().removesuffix('...').strip()}"
            for k, v in values.items()
            if k != LABEL
        ]
        overrides += list(extra)
        name = cell_name(values, labelled)
        if name in seen:
            raise ConfigError(
                f"matrix {spec.name}: two cells are both named {name!r}; add the axis that tells them apart."
            )
        seen.add(name)
        config = load_config(base, overrides)
        # one spelling of the shared cache for every executor and worker (manifests are compared with it)
        config = config.model_copy(update={"cache_dir": str(Path(config.cache_dir).resolve())})
        cells.append(Cell(name, values, config, runs_root / spec.name / name))
    if not cells:
        raise ConfigError(f"matrix {spec.name}: every cell is excluded.")
    return cells


def config_digest(config: dict[str, Any]) -> str:
    """What a cell computes: its config without the fields that only place its inputs (`PLACEMENT`), so that a matrix
    resumed on a machine whose cache lives elsewhere, or gathered there from several machines, finds its cells done."""
    return content_hash({k: v for k, v in config.items() if k not in PLACEMENT})


def is_done(cell: Cell) -> bool:
    data = RunFolder(cell.out).manifest()
    if not data:
        return False
    return data.get("status") == "done" and config_digest(data.get("config") or {}) == config_digest(
        cell.config.model_dump(mode="json")
    )


def check_seed_machines(cells: list[Cell]) -> None:
    """Refuse to run a cell on this machine where another cell of its seed already ran on another kind of machine.

    A seed's cells are compared with each other (matched seeds: seed s of every strategy shares its pool and its
    pairing in the paired tests); cells computed in bf16 on one CPU and in fp32 on another differ in more than
    their strategy. A seed begun here or on a machine of this kind goes on."""

    here = machine()
    began: dict[int, tuple[str, Path]] = {}
    for cell in cells:
        if RunFolder(cell.out).is_run():
            began.setdefault(cell.config.seed, (run_kind(RunFolder(cell.out).manifest()), cell.out))
    clashes = []
    for cell in cells:
        kind = machine_kind(here, cell.resolved.engine["dtype"])
        if cell.config.seed in began and began[cell.config.seed][0] != kind and not is_done(cell):
            clashes.append((cell, kind, *began[cell.config.seed]))
    if clashes:
        cell, kind, theirs, where = clashes[0]
        seeds = sorted({c.config.seed for c, *_ in clashes})
        raise ConfigError(
            f"seed {cell.config.seed} of this matrix was begun on {theirs} ({where}); this machine is {kind}. A seed's cells "
            f"are compared with each other, so they run on one kind of machine ({len(clashes)} cell(s) of seed(s) "
            f"{', '.join(map(str, seeds))} would not). Resume on a machine of that kind (the same command picks up where it "
            f"stopped), run other seeds here (a seed axis of new seeds, or --runs-root elsewhere), or move that seed's run "
            f"folders out of {where.parent} to start it afresh here."
        )


def plan(cells: list[Cell]) -> list[dict[str, Any]]:
    """For each cell: done already, or which shared stages it computes, finds cached, or reuses from an earlier cell."""
    from harness.runner import shared_stage_hashes

    first: dict[tuple[str, str], str] = {}
    rows = []
    for cell in cells:
        cache = Path(cell.config.cache_dir)
        stages = {}
        for stage, key in shared_stage_hashes(cell.resolved).items():
            if (cache / stage / key / "stage.json").is_file():
                stages[stage] = "cached"
            elif (stage, key) in first:
                stages[stage] = f"reuse ({first[(stage, key)]})"
            else:
                first[(stage, key)] = cell.name
                stages[stage] = "compute"
        rows.append({"cell": cell.name, "done": is_done(cell), "stages": stages, "out": str(cell.out)})
    return rows
