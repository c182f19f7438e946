"""What finished runs say: statistics, metrics, grouping into settings, comparisons, power, confounds, diagnostics."""
