"""Evaluation suites, registered by name (see harness/suites/base.py for the contract)."""

from harness.suites.base import EvalTarget, SuiteContext, get_suite, register

__all__ = ["EvalTarget", "SuiteContext", "get_suite", "register"]
