"""Which model, template, engine and dtype a run uses, and loading it."""
