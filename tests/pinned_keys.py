"""The default config's shared stage keys, pinned per generation engine: a refactor that re-keys a stage fails first
in tests/stages/test_stage_keys.py (and tests/core/test_config.py reads the pool's pin)."""

from __future__ import annotations

from harness.models.resolve import engine_key

PINNED = {
    "bfloat16": {"prompts": "2878d36ca5370c45", "samples": "feba997516091ab7", "pool": "91061f0623a02ae5", "evaluate_base": "f5fbb2331c84be8c"},
    "float32": {"prompts": "2878d36ca5370c45", "samples": "5ad0f008a55c7296", "pool": "ec68be21156a981e", "evaluate_base": "4700d5b74ddaf6c0"},
    "float32+onednn-packed": {"prompts": "2878d36ca5370c45", "samples": "131e370e1d7a6c3c", "pool": "223717fec69c568c",
                              "evaluate_base": "08bf3ba67a68f58d"},
}
"""The default config's shared stage hashes per generation engine (the dtype, and on a CPU that packs fp32 weights the
packing, are part of every generating key: `engine_key`):
prompts as before harness/stages/ existed; samples since sampling became a stage apart from the pool that judges
them (so another judge labels the same samples); evaluate_base since the metrics of its graded rows changed (the
primary metric counts a cut answer as not done, and cut_share is reported; the grader key names METRICS_VERSION),
before that since the
evaluation grades its answers with the task check too (its version is part of the key), before that when the transformers decoder started batching
continuously, when the evaluate stages became the ifeval suite on the run's prompts, and when report.n_examples
left the evaluate section."""


def pinned(dtype: str) -> dict[str, str]:
    """This machine's pins for `dtype`: fp32 keys name the packing where it packs fp32 weights (an x86 CPU:
    `packs_linears`), and a GPU's do not."""
    engine = engine_key("transformers", dtype)
    return PINNED["+".join([dtype, *([engine["linear"]] if "linear" in engine else [])])]
