"""What a person sees while `bench` works: one progress bar per stage and our own lines, nothing else.

Third-party libraries report through Python warnings, their loggers and their own progress bars
(transformers' "Loading weights", datasets' "Map", sentence-transformers' "Batches"). While a
command runs, `quiet_console` keeps all of that off the terminal (`--verbose` lets it through), and
`run_log` writes every warning and library log record of a run to `<run>/run.log`, verbose or not,
so nothing is lost: it is only out of the way.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

LIBRARIES = (
    "py.warnings",
    "transformers",
    "trl",
    "peft",
    "accelerate",
    "datasets",
    "huggingface_hub",
    "sentence_transformers",
    "torch",
    "lm_eval",
    "alpaca_eval",
    "nltk",
    "absl",
    "urllib3",
    "httpx",
    "filelock",
    "ray",
)
"""The loggers whose records are third-party chatter ("py.warnings" carries Python warnings)."""

RUN_LOG = "run.log"
"""The file in a run folder that holds the run's warnings and library log records."""


def _loggers() -> list[logging.Logger]:
    return [logging.getLogger(name) for name in LIBRARIES]


@contextlib.contextmanager
def quiet_console(verbose: bool) -> Iterator[None]:
    """Third-party warnings, log records and progress bars off the terminal unless `verbose` (they still
    reach `run_log`); everything is restored afterwards."""
    saved = [(lg, lg.handlers[:], lg.propagate, lg.level) for lg in _loggers()]
    logging.captureWarnings(True)
    with warnings.catch_warnings():
        warnings.simplefilter("default")  # each warning once per place, as Python shows them by default
        bars = _library_progress_bars(enabled=verbose)
        for lg in _loggers():
            lg.handlers = [
                h for h in lg.handlers if not isinstance(h, logging.StreamHandler) or isinstance(h, logging.FileHandler)
            ]
            lg.propagate = False
            if lg.level == logging.NOTSET or lg.level > logging.WARNING:
                lg.setLevel(logging.WARNING)
            if verbose:
                lg.addHandler(_stderr_handler())
        try:
            yield
        finally:
            bars()
            logging.captureWarnings(False)
            for lg, handlers, propagate, level in saved:
                lg.handlers, lg.propagate, lg.level = handlers, propagate, level


class _RunLogHandler(logging.Handler):
    """Appends records to a run's log file; records that arrive before the run folder exists wait in memory."""

    def __init__(self, path: Path) -> None:
        super().__init__(logging.INFO)
        self.path = path
        self.pending: list[str] = []
        self.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.pending.append(self.format(record))
            self.flush()
        except Exception:  # a log line must never break a run
            self.handleError(record)

    def flush(self) -> None:
        if self.pending and self.path.parent.is_dir():
            with open(self.path, "a", encoding="utf-8") as handle:
                handle.write("\n".join(self.pending) + "\n")
            self.pending.clear()


@contextlib.contextmanager
def run_log(out_dir: Path) -> Iterator[Path]:
    """Every third-party log record of this block (and, under `quiet_console`, every Python warning),
    appended to `<out_dir>/run.log`."""
    handler = _RunLogHandler(Path(out_dir) / RUN_LOG)
    for lg in _loggers():
        lg.addHandler(handler)
    try:
        yield handler.path
    finally:
        for lg in _loggers():
            lg.removeHandler(handler)
        handler.flush()


def _stderr_handler() -> logging.Handler:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(name)s %(levelname)s: %(message)s"))
    return handler


def _library_progress_bars(enabled: bool):
    """Switch the progress bars of transformers (loading weights), huggingface_hub and datasets; returns an undo."""
    undo = []
    with contextlib.suppress(ImportError):
        from transformers.utils import logging as hf_logging

        was = hf_logging.is_progress_bar_enabled()
        (hf_logging.enable_progress_bar if enabled else hf_logging.disable_progress_bar)()
        undo.append(hf_logging.enable_progress_bar if was else hf_logging.disable_progress_bar)
    with contextlib.suppress(ImportError):
        import datasets

        was = datasets.is_progress_bar_enabled()
        (datasets.enable_progress_bars if enabled else datasets.disable_progress_bars)()
        undo.append(datasets.enable_progress_bars if was else datasets.disable_progress_bars)

    def restore() -> None:
        for step in undo:
            step()

    return restore
