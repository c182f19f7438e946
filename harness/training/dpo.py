"""The shared DPO trainer: TRL `DPOTrainer` with a PEFT LoRA adapter.

The reference policy is the same model with the adapter disabled, so no second copy of the
weights is held. Settings that break or crawl on CPU (TRL's default gradient checkpointing and
its 1e-6 learning rate) are set from our config, never left to defaults. bf16 autocast runs
where `train.precision` resolves to it: GPUs with bf16 and CPUs with AMX / AVX512-BF16, where
it is faster than fp32 (benchmarks/throughput.py measures by how much, and how close the loss
curve and adapter stay to fp32's).
"""

from __future__ import annotations

import collections
import contextlib
import json
import math
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from harness.core.errors import BenchError
from harness.core.io import read_json, write_json, write_jsonl
from harness.models.resolve import device, load_tokenizer, resolve_model, trust_remote_code
from harness.training.config import TrainConfig


def preference_rows(pairs, prompts, responses) -> list[dict[str, Any]]:
    """TRL's conversational preference format, one row per selected pair."""
    rows = []
    for pair in pairs:
        prompt = prompts[pair.prompt_id]
        rows.append(
            {
                "prompt": prompt.messages,
                "chosen": [{"role": "assistant", "content": responses[pair.chosen_id].text}],
                "rejected": [{"role": "assistant", "content": responses[pair.rejected_id].text}],
            }
        )
    return rows


def lora_config(train_cfg: TrainConfig) -> Any:
    """The LoRA adapter every trained model and every gradient feature lives in, on the resolved target modules
    (the cache keys name them)."""
    from peft import LoraConfig

    return LoraConfig(
        r=train_cfg.lora_r,
        lora_alpha=train_cfg.lora_alpha,
        lora_dropout=train_cfg.lora_dropout,
        target_modules=list(train_cfg.require_resolved("lora_config").target_modules),
        task_type="CAUSAL_LM",
    )


def train_dpo(
    model_name: str, rows: list[dict[str, Any]], cfg: TrainConfig, seed: int, out_dir: Path
) -> dict[str, Any]:
    """Train a LoRA adapter on `rows`; writes `adapter/` and `log.jsonl` into `out_dir`.

    In this process by default; under `accelerate launch` (DDP, ZeRO-3, FSDP, multi-CPU) when
    `cfg.accelerate_config` is set, with the same code running in every worker. `cfg` is resolved for this
    machine (`harness.models.choices.resolve_train`).
    """
    cfg.require_resolved("train_dpo")
    if cfg.accelerate_config:
        return _launch(model_name, rows, cfg, seed, out_dir)
    return train_here(model_name, rows, cfg, seed, out_dir)


def train_here(
    model_name: str, rows: list[dict[str, Any]], cfg: TrainConfig, seed: int, out_dir: Path
) -> dict[str, Any]:
    """The training loop itself, in this process (which may be one worker of a distributed launch)."""
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, set_seed

    set_seed(seed)
    # the arguments come before the model: under ZeRO-3 they decide how the weights are loaded
    args = _dpo_args(cfg, seed, out_dir)
    tokenizer = load_tokenizer(model_name)
    model = AutoModelForCausalLM.from_pretrained(
        resolve_model(model_name),
        dtype=torch.float32,
        trust_remote_code=trust_remote_code(),
        attn_implementation=cfg.attention,
    )
    log: list[dict[str, Any]] = []
    skipped_steps: list[int] = []
    trainer = _trainer_class(cfg)(
        model=model,
        args=args,
        train_dataset=Dataset.from_list(rows),
        processing_class=tokenizer,
        peft_config=lora_config(cfg),
        callbacks=[_collect_logs(log), _stop_on_nonfinite(cfg, skipped_steps), _progress_bar()],
    )
    _without_printed_logs(trainer)
    if rows and "ref_chosen_logps" in rows[0]:
        # the reference log-probs came with the rows (harness/training/reference_logps.py): read them from each batch,
        # as TRL does after its own `precompute_ref_log_probs` pass, instead of a reference forward per step
        trainer.precompute_ref_logps = True
    start = time.perf_counter()
    with _completion_positions_only():
        trainer.train()
    seconds = time.perf_counter() - start
    # a collective call: under FSDP / ZeRO-3 every worker contributes its shard of the weights
    state_dict = trainer.accelerator.get_state_dict(trainer.model)
    result = {
        "seconds": seconds,
        "n_pairs": len(rows),
        "steps": trainer.state.global_step,
        "seconds_per_pair": seconds / max(len(rows), 1),
        "processes": trainer.accelerator.num_processes,
        "skipped_nonfinite_steps": skipped_steps,
    }
    if trainer.is_world_process_zero():
        _save_adapter_and_log(trainer, state_dict, log, out_dir)
    return result


def _trainer_class(cfg: TrainConfig) -> Any:
    """TRL's `DPOTrainer`; with `train.batching: length_grouped`, one whose batches hold pairs of similar length
    (`LengthGroupedBatches`), which pads less."""
    from trl import DPOTrainer

    if cfg.batching == "random":
        return DPOTrainer

    class LengthGroupedDPOTrainer(DPOTrainer):
        def _get_train_sampler(self, train_dataset=None):
            dataset = train_dataset if train_dataset is not None else self.train_dataset
            lengths = [
                len(p) + max(len(c), len(r))
                for p, c, r in zip(dataset["prompt_ids"], dataset["chosen_ids"], dataset["rejected_ids"])
            ]
            seed = self.args.data_seed if self.args.data_seed is not None else self.args.seed
            return LengthGroupedBatches(
                lengths, self.args.train_batch_size * self.args.gradient_accumulation_steps, seed
            )

    return LengthGroupedDPOTrainer


class LengthGroupedBatches:
    """A sampler whose consecutive `batch_size` indices are pairs of similar length, in a random order of batches.

    Each epoch: ties broken at random, pairs sorted by length (prompt + longer response, as TRL tokenised
    them), cut into batches, and the full batches shuffled, the short last one kept last so that batches
    stay aligned; seeded, and a new order every epoch. Unlike transformers' `LengthGroupedSampler`, whose
    megabatches run from longest to shortest (a length curriculum), the order of batches is random.
    """

    def __init__(self, lengths: list[int], batch_size: int, seed: int) -> None:
        import torch

        self.lengths, self.batch_size = lengths, batch_size
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return len(self.lengths)

    def __iter__(self) -> Iterator[int]:
        import torch

        shuffled = torch.randperm(len(self.lengths), generator=self.generator).tolist()
        order = sorted(shuffled, key=lambda i: self.lengths[i])
        batches = [order[i : i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        last = [batches.pop()] if batches and len(batches[-1]) < self.batch_size else []
        for b in torch.randperm(len(batches), generator=self.generator).tolist() + list(
            range(len(batches), len(batches) + len(last))
        ):
            yield from (batches + last)[b]


def _dpo_args(cfg: TrainConfig, seed: int, out_dir: Path) -> Any:
    """TRL's arguments from our config, so that no setting that breaks or crawls on CPU is left to TRL's defaults."""
    from trl import DPOConfig

    on_gpu = device() == "cuda"
    return DPOConfig(
        output_dir=str(out_dir / "trl"),
        per_device_train_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.grad_accum,
        num_train_epochs=cfg.epochs,
        learning_rate=cfg.learning_rate,
        warmup_steps=cfg.warmup_steps,
        beta=cfg.beta,
        max_length=cfg.max_length,
        truncation_mode="keep_start",
        bf16=cfg.precision == "bfloat16",
        use_cpu=not on_gpu,
        gradient_checkpointing=cfg.gradient_checkpointing,
        gradient_checkpointing_kwargs={"use_reentrant": False} if cfg.gradient_checkpointing else None,
        ddp_find_unused_parameters=False,
        logging_steps=cfg.logging_steps,
        save_strategy="no",
        report_to="none",
        seed=seed,
        data_seed=seed,
        disable_tqdm=False,
    )


def _collect_logs(log: list[dict[str, Any]]) -> Any:
    """A callback appending the trainer's log records to `log` on the main process, for `log.jsonl`."""
    from transformers import TrainerCallback

    class _Collect(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and state.is_world_process_zero:
                log.append({"step": state.global_step, "epoch": state.epoch, **logs})

    return _Collect()


def _progress_bar() -> Any:
    """One bar for the training stage: step, loss and reward accuracy of the last logged step."""
    from tqdm.auto import tqdm
    from transformers import TrainerCallback

    class _Bar(TrainerCallback):
        bar: Any = None

        def on_train_begin(self, args, state, control, **kwargs):
            if state.is_world_process_zero:
                self.bar = tqdm(total=state.max_steps, desc="train: DPO", unit="step")

        def on_step_end(self, args, state, control, **kwargs):
            if self.bar is not None:
                self.bar.update(state.global_step - self.bar.n)

        def on_log(self, args, state, control, logs=None, **kwargs):
            if self.bar is not None and logs and "loss" in logs:
                accuracy = logs.get("rewards/accuracies")
                self.bar.set_postfix_str(
                    f"loss {logs['loss']:.4f}" + (f", reward acc {accuracy:.2f}" if accuracy is not None else ""),
                    refresh=False,
                )

        def on_train_end(self, args, state, control, **kwargs):
            if self.bar is not None:
                self.bar.close()
                self.bar = None

    return _Bar()


def _without_printed_logs(trainer: Any) -> None:
    """Drop transformers' own console callbacks, which print every log record as a raw dictionary
    (the records are kept in log.jsonl, and the progress bar shows loss and reward accuracy)."""
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    for callback in (ProgressCallback, PrinterCallback):
        trainer.remove_callback(callback)


def _stop_on_nonfinite(cfg: TrainConfig, skipped_steps: list[int]) -> Any:
    """A callback enforcing `cfg.nonfinite`, so that a NaN/inf gradient or loss never reaches a saved adapter unnoticed."""
    import torch
    from transformers import TrainerCallback

    class _Finite(TrainerCallback):
        """Stop (or skip the step) on a NaN/inf gradient before the optimizer applies it."""

        def on_pre_optimizer_step(self, args, state, control, model=None, **kwargs):
            bad = [n for n, p in model.named_parameters() if p.grad is not None and not torch.isfinite(p.grad).all()]
            if not bad:
                return
            if cfg.nonfinite == "skip_step":
                for p in model.parameters():
                    p.grad = None  # optimizers skip parameters without a gradient
                skipped_steps.append(state.global_step + 1)
                return
            raise BenchError(
                f"train: NaN or infinite gradient at step {state.global_step + 1} (first in {bad[0]}); stopped, no "
                "adapter saved. Lower train.learning_rate, check the pairs (empty or huge responses) and the model's "
                "weights, or set train.nonfinite=skip_step to drop such steps."
            )

        def on_log(self, args, state, control, logs=None, **kwargs):
            loss = (logs or {}).get("loss")
            if cfg.nonfinite == "error" and loss is not None and not math.isfinite(loss):
                raise BenchError(
                    f"train: the DPO loss is {loss} at step {state.global_step}; stopped, no adapter saved."
                )

    return _Finite()


def _save_adapter_and_log(trainer: Any, state_dict: dict[str, Any], log: list[dict[str, Any]], out_dir: Path) -> None:
    """Write `adapter/` and `log.jsonl`: the main process's job, once every worker has given its shard to `state_dict`."""
    trainer.accelerator.unwrap_model(trainer.model).save_pretrained(out_dir / "adapter", state_dict=state_dict)
    with open(out_dir / "log.jsonl", "w", encoding="utf-8") as handle:
        for record in log:
            handle.write(json.dumps(record) + "\n")


@contextlib.contextmanager
def _completion_positions_only() -> Iterator[None]:
    """Let TRL's fused LM head score only the completion positions on CPU, as it does on CUDA.

    TRL (1.x) scores every position, prompt and padding included, on devices without Triton, so
    that Neuron's compiler sees one tile shape per batch; CPUs have no such compiler, and the
    prompt's positions cost most of the LM head's work there (49k-way log-softmax forward and
    backward). Which positions count is decided by one predicate in `trl.trainer.utils`; it is
    swapped for the duration of training and restored after. The loss is the same (the masked
    positions are discarded either way); benchmarks/throughput.py measures the time saved.
    """
    import trl.trainer.utils as trl_utils

    original = getattr(trl_utils, "_use_triton", None)
    if original is None or device() != "cpu":  # a TRL without that predicate, or a GPU: nothing to change
        yield
        return
    trl_utils._use_triton = lambda dev: dev.type == "cpu" or original(dev)
    try:
        yield
    finally:
        trl_utils._use_triton = original


def _launch(model_name: str, rows: list[dict[str, Any]], cfg: TrainConfig, seed: int, out_dir: Path) -> dict[str, Any]:
    """Run `harness.training.worker` under `accelerate launch`, streaming its output; fail with its last lines."""
    work = out_dir / "launch"
    work.mkdir(parents=True, exist_ok=True)
    write_jsonl(work / "rows.jsonl", rows)
    spec = {
        "model": model_name,
        "train": cfg.model_dump(),
        "seed": seed,
        "out_dir": str(out_dir.resolve()),
        "rows": str((work / "rows.jsonl").resolve()),
    }
    write_json(work / "spec.json", spec)
    command = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--config_file",
        str(Path(cfg.accelerate_config).expanduser()),
    ]
    if cfg.num_processes:
        command += ["--num_processes", str(cfg.num_processes)]
    command += ["-m", "harness.training.worker", str(work / "spec.json")]
    tail: collections.deque[str] = collections.deque(maxlen=25)
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace"
    ) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            sys.stderr.write(line)
            tail.append(line.rstrip())
    if proc.returncode != 0 or not (work / "result.json").is_file():
        raise BenchError(
            f"training under `accelerate launch --config_file {cfg.accelerate_config}` failed (exit code {proc.returncode}). "
            "Its last lines:\n  " + "\n  ".join(tail)
        )
    result = read_json(work / "result.json")
    shutil.rmtree(work)
    return result
