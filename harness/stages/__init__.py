"""The pipeline's stages, one module each, in the order the runner calls them:

prompts -> pool -> preference_pool (held-out pairs) -> embeddings / features (pool views a
strategy declares) -> select -> train -> evaluate_base, preference_reference -> evaluate ->
suite runs (suite_runs) -> outputs (what the run folder holds); the runner then writes the report.

Each stage module owns its cache key (`inputs`: its own config section plus upstream hashes,
derived there and nowhere else), what it computes, and what it publishes into the run folder.
"""
