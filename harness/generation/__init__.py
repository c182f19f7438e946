"""Generating answers: the one generate() entry point, the transformers engine, vLLM, and their contract."""
