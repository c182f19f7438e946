"""The README's commands are the ones CI runs: a drift between them is how a fresh machine breaks."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
INSTALL_AND_RUN = "bash scripts/install.sh && bench run --strategy bpo"
INSTALL_AND_TEST = "bash scripts/install.sh && python3 -m pytest"


def _code_lines(text: str) -> list[str]:
    blocks = re.findall(r"```bash\n(.*?)```", text, flags=re.S)
    return [line.strip() for block in blocks for line in block.splitlines() if line.strip()]


def test_readme_gives_the_fresh_machine_commands() -> None:
    lines = _code_lines((REPO / "README.md").read_text(encoding="utf-8"))
    assert "python3 -m venv .venv && . .venv/bin/activate" in lines
    assert INSTALL_AND_RUN in lines and INSTALL_AND_TEST in lines


def test_ci_runs_the_readme_test_command_in_a_new_virtual_environment() -> None:
    script = [line.strip() for line in (REPO / ".ci" / "run").read_text(encoding="utf-8").splitlines()]
    commands = [line for line in script if line and not line.startswith("#")]
    venv = next(i for i, line in enumerate(commands) if line.startswith("python3 -m venv"))
    activate = next(i for i, line in enumerate(commands) if "/bin/activate" in line)
    assert venv < activate < commands.index(INSTALL_AND_TEST)
    assert commands[-1] == INSTALL_AND_TEST  # pytest's exit code (5 for "no tests") is the script's
