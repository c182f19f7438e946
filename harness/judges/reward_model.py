"""A sequence-classification reward model as judge (e.g. Skywork-Reward, ArmoRM, any RM folder).

The scalar is the single logit of a one-label head, or the last label's logit minus the first
for a multi-label head. The conversation is rendered with the reward model's own chat template
when it has one, so the model sees the format it was trained on.
"""

from __future__ import annotations

from harness.core.errors import BenchError
from harness.core.records import Prompt
from harness.judges.base import Judge, Judgment, register
from harness.judges.config import JudgeConfig
from harness.models.checks import check_model
from harness.models.resolve import device, resolve_model, trust_remote_code


@register
class RewardModelJudge(Judge):
    name = "reward_model"

    @classmethod
    def check_config(cls, cfg: JudgeConfig) -> None:
        super().check_config(cfg)
        if not cfg.model:
            raise ValueError("a reward_model judge needs `model` (a sequence-classification hub id or folder)")

    @classmethod
    def preflight(cls, cfg: JudgeConfig, field: str) -> None:

        check_model(cfg.model, f"{field}.model")  # type: ignore[arg-type]

    def __init__(self, config: JudgeConfig):
        super().__init__(config)
        self._model = None

    @property
    def label(self) -> str:  # type: ignore[override]
        return f"reward model {self.config.model}" + (" - WEAK: a model under 1B parameters" if self.weak else "")

    def _load(self):
        if self._model is None:
            import torch
            from transformers import AutoModelForSequenceClassification, AutoTokenizer

            source = resolve_model(self.config.model)  # type: ignore[arg-type]
            try:
                self._tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=trust_remote_code())
                self._model = (
                    AutoModelForSequenceClassification.from_pretrained(
                        source, dtype=torch.float32, trust_remote_code=trust_remote_code()
                    )
                    .to(device())
                    .eval()
                )
            except (OSError, ValueError) as err:
                raise BenchError(
                    f"judge.model {self.config.model!r} could not be loaded as a sequence-classification reward model: {err}"
                ) from None
            if self._tokenizer.pad_token is None:
                self._tokenizer.pad_token = self._tokenizer.eos_token
            self._model.config.pad_token_id = self._tokenizer.pad_token_id
            n_params = sum(p.numel() for p in self._model.parameters())
            self.weak = n_params < 1e9
        return self._model

    def _text(self, prompt: Prompt, response: str) -> str:
        chat = prompt.messages + [{"role": "assistant", "content": response}]
        if getattr(self._tokenizer, "chat_template", None):
            return self._tokenizer.apply_chat_template(chat, tokenize=False)
        return "".join(f"{m['role']}: {m['content']}\n\n" for m in chat)

    def score_many(self, items: list[tuple[Prompt, str]]) -> list[Judgment]:
        import torch  # here, not with the module: the judge registry imports it to validate configs

        with torch.inference_mode():
            return self._score_many(items, torch)

    def _score_many(self, items: list[tuple[Prompt, str]], torch) -> list[Judgment]:
        model = self._load()
        tok = self._tokenizer
        tok.truncation_side = "left"
        out: list[Judgment] = []
        for start in range(0, len(items), self.config.batch_size):
            batch = [self._text(p, r) for p, r in items[start : start + self.config.batch_size]]
            enc = tok(batch, return_tensors="pt", padding=True, truncation=True, max_length=self.config.max_length)
            logits = model(**{k: v.to(model.device) for k, v in enc.items()}).logits.float()
            values = logits[:, 0] if logits.shape[1] == 1 else logits[:, -1] - logits[:, 0]
            out.extend(
                Judgment(float(v)) if torch.isfinite(v) else Judgment(None, error="non-finite reward") for v in values
            )
        return out
