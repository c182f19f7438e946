"""Evaluation suites, registered by name (see harness/suites/base.py for the contract)."""

from harness.suites.base import EvalTarget, get_suite, register_suite

__all__ = ["EvalTarget", "get_suite", "register_suite"]
