"""bpo-bench engine: data, generation, judges, trainer, evaluation, runner and CLI."""

__version__ = "0.1.0"
