"""DPO training (TRL + LoRA), its distributed worker, cached reference log-probs, per-sample gradient features."""
