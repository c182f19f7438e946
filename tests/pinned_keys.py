"""The default config's shared stage keys, pinned per generation dtype: a refactor that re-keys a stage fails first
in tests/stages/test_stage_keys.py (and tests/core/test_config.py reads the pool's pin)."""

from __future__ import annotations

PINNED = {
    "bfloat16": {
        "prompts": "2878d36ca5370c45",
        "samples": "feba997516091ab7",
        "pool": "91061f0623a02ae5",
        "evaluate_base": "f5fbb2331c84be8c",
    },
    "float32": {
        "prompts": "2878d36ca5370c45",
        "samples": "5ad0f008a55c7296",
        "pool": "ec68be21156a981e",
        "evaluate_base": "4700d5b74ddaf6c0",
    },
}
"""The default config's shared stage hashes per generation dtype (the dtype is part of every generating key):
prompts as before harness/stages/ existed; samples since sampling became a stage apart from the pool that judges
them (so another judge labels the same samples); evaluate_base since the metrics of its graded rows changed (the
primary metric counts a cut answer as not done, and cut_share is reported; the grader key names METRICS_VERSION),
before that since the evaluation grades its answers with the task check too (its version is part of the key),
before that when the transformers decoder started batching continuously, when the evaluate stages became the ifeval suite on the run's prompts, and when report.n_examples
left the evaluate section."""
