"""Prompts and pairs: prompt sources, the built-in task sets and constraint catalogue, held-out prompts, pairing."""
