"""Verifiable constraints: the offline IFEval/IFBench checkers and the metrics defined on their verdicts."""
