"""Every judgment cached by a hash of (judge id, kind, prompt, response[s]).

An append-only JSONL file per judge under `cache_dir/judgments/`: a rerun, or another suite
or strategy asking the same question, makes no new call. Only good judgments are stored, so
a judge that failed (timeout, unparsable rating) is asked again next time. A torn last line
(the process was killed mid-write) is ignored on load.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from harness.core.io import content_hash
from harness.core.records import Prompt
from harness.judges.base import Judge, Judgment


def _key(judge: Judge, kind: str, prompt: Prompt, responses: tuple[str, ...]) -> str:
    return content_hash(
        {"judge": judge.id, "kind": kind, "messages": prompt.messages, "meta": prompt.meta, "responses": responses}
    )


class CachedJudge:
    """Wraps a judge; asks it only what the cache file does not already answer."""

    def __init__(self, judge: Judge, cache_dir: Path):
        self.judge = judge
        self.path = Path(cache_dir) / "judgments" / f"{judge.id.replace(':', '-')}.jsonl"
        self._known: dict[str, dict] = {}
        self.calls = 0
        self.hits = 0
        if self.path.is_file():
            for line in self.path.read_text(encoding="utf-8").splitlines():
                try:
                    row = json.loads(line)
                    self._known[row["key"]] = row
                except (json.JSONDecodeError, KeyError, TypeError):
                    continue

    def score_many(self, items: list[tuple[Prompt, str]]) -> list[Judgment]:
        return self._many(
            "score", [(p, (r,)) for p, r in items], lambda todo: self.judge.score_many([(p, r[0]) for p, r in todo])
        )

    def compare_many(self, items: list[tuple[Prompt, str, str]]) -> list[Judgment]:
        return self._many(
            "compare",
            [(p, (a, b)) for p, a, b in items],
            lambda todo: self.judge.compare_many([(p, *r) for p, r in todo]),
        )

    def _many(self, kind: str, items: list[tuple[Prompt, tuple[str, ...]]], ask) -> list[Judgment]:
        keys = [_key(self.judge, kind, p, r) for p, r in items]
        missing: dict[str, tuple[Prompt, tuple[str, ...]]] = {}
        for k, item in zip(keys, items):
            if k not in self._known:
                missing.setdefault(k, item)
        fresh: dict[str, Judgment] = {}
        if missing:
            answers = ask(list(missing.values()))
            self.calls += len(missing)
            good = []
            for k, j in zip(missing, answers):
                fresh[k] = j
                if j.ok:
                    row = {"key": k, "value": j.value, "details": j.details}
                    self._known[k] = row
                    good.append(row)
            self._append(good)
        out = []
        for k in keys:
            if k in fresh:
                out.append(fresh[k])
            else:
                row = self._known[k]
                self.hits += 1
                out.append(Judgment(row["value"], details=row["details"]))
        return out

    def _append(self, rows: list[dict]) -> None:
        if not rows:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
            fh.flush()
            os.fsync(fh.fileno())
