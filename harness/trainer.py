"""The shared DPO trainer: TRL `DPOTrainer` with a PEFT LoRA adapter.

The reference policy is the same model with the adapter disabled, so no second copy of the
weights is held. Settings that break or crawl on CPU (bf16, TRL's default gradient
checkpointing and its 1e-6 learning rate) are set from our config, never left to defaults.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from harness.config import TrainConfig
from harness.models import device, load_tokenizer, resolve_model


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
    """The LoRA adapter every trained model and every gradient feature lives in."""
    from peft import LoraConfig

    return LoraConfig(
        r=train_cfg.lora_r,
        lora_alpha=train_cfg.lora_alpha,
        lora_dropout=train_cfg.lora_dropout,
        target_modules=list(train_cfg.target_modules),
        task_type="CAUSAL_LM",
    )


def train_dpo(model_name: str, rows: list[dict[str, Any]], cfg: TrainConfig, seed: int, out_dir: Path) -> dict[str, Any]:
    """Train a LoRA adapter on `rows`; writes `adapter/` and `log.jsonl` into `out_dir`."""
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, TrainerCallback, set_seed
    from trl import DPOConfig, DPOTrainer

    set_seed(seed)
    tokenizer = load_tokenizer(model_name)
    model = AutoModelForCausalLM.from_pretrained(resolve_model(model_name), dtype=torch.float32)
    on_gpu = device() == "cuda"
    args = DPOConfig(
        output_dir=str(out_dir / "trl"),
        per_device_train_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.grad_accum,
        num_train_epochs=cfg.epochs,
        learning_rate=cfg.learning_rate,
        warmup_steps=cfg.warmup_steps,
        beta=cfg.beta,
        max_length=cfg.max_length,
        truncation_mode="keep_start",
        bf16=bool(on_gpu and torch.cuda.is_bf16_supported()),
        use_cpu=not on_gpu,
        gradient_checkpointing=cfg.gradient_checkpointing,
        logging_steps=cfg.logging_steps,
        save_strategy="no",
        report_to="none",
        seed=seed,
        data_seed=seed,
        disable_tqdm=False,
    )
    peft_config = lora_config(cfg)
    log: list[dict[str, Any]] = []

    class _Collect(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs:
                log.append({"step": state.global_step, "epoch": state.epoch, **logs})

    trainer = DPOTrainer(
        model=model,
        args=args,
        train_dataset=Dataset.from_list(rows),
        processing_class=tokenizer,
        peft_config=peft_config,
        callbacks=[_Collect()],
    )
    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start
    trainer.model.save_pretrained(out_dir / "adapter")
    with open(out_dir / "log.jsonl", "w", encoding="utf-8") as handle:
        for record in log:
            handle.write(json.dumps(record) + "\n")
    return {"seconds": seconds, "n_pairs": len(rows), "steps": trainer.state.global_step, "seconds_per_pair": seconds / max(len(rows), 1)}
