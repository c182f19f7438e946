"""One worker of a distributed training launch: `accelerate launch -m harness.training.worker SPEC.json`.

The train stage writes SPEC (model, train config, seed, rows file, output folder) and launches
this module in every process; rank 0 writes the adapter, the log and `launch/result.json`.
"""

from __future__ import annotations

import sys
from pathlib import Path

from harness.core.io import read_json, read_jsonl, write_json
from harness.training.config import TrainConfig
from harness.training.dpo import train_here


def main(spec_path: str) -> None:
    spec = read_json(Path(spec_path))
    out_dir = Path(spec["out_dir"])
    result = train_here(
        spec["model"], read_jsonl(Path(spec["rows"])), TrainConfig(**spec["train"]), spec["seed"], out_dir
    )
    from accelerate import PartialState

    if PartialState().is_main_process:
        write_json(Path(spec_path).parent / "result.json", result)


if __name__ == "__main__":
    main(sys.argv[1])
