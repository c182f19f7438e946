"""TRL-format preference rows whose chosen answer is short and plain and rejected one long and comma-filled: a
preference a tiny model can learn in a few steps (shared by the training and held-out evaluation tests)."""

from __future__ import annotations


def preference_rows(n: int) -> list[dict]:
    return [
        {
            "prompt": [{"role": "user", "content": f"Describe item {i}."}],
            "chosen": [{"role": "assistant", "content": "A short plain answer."}],
            "rejected": [
                {"role": "assistant", "content": "A long, rambling, comma-filled answer, with, commas" + "!" * i}
            ],
        }
        for i in range(n)
    ]
