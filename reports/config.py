"""The `report` section: what the run report shows (run_report.py)."""

from __future__ import annotations

from pydantic import Field

from harness.core.sections import Section


class ReportConfig(Section):
    """What the reports show; no stage reads it, so changing it re-keys nothing."""

    n_examples: int = Field(6, ge=0, description="held-out examples shown side by side in the run report")
