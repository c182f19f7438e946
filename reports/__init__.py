"""HTML reports: pure functions of the files in a run folder; no stage imports them."""
