"""Ablation matrices: the matrix file's schema and cells, and the executors that run them."""
