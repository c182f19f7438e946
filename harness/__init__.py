"""bpo-bench engine: data, generation, judges, trainer, evaluation, runner and CLI."""

from harness.core import moved

__version__ = "0.1.0"

moved.install()  # old import paths of moved modules keep working, with a warning, for one release
