"""Portable stage bundles: a pool (its prompts, samples, pairs, embeddings and gradient features)
exported from one cache and restored into any other, under the same keys.

A comparison that runs for hours may be resumed on a new machine, or on another CPU model whose
bf16 kernels sample a different pool under the same key; collaborators and Ray workers need the
pool too. A bundle carries the committed stage folders byte for byte (with their `stage.json`
and file fingerprints), so a restored cache gives the same stage keys, the same pool and the
same selections. Importing never overwrites a stage that differs: two pools under one key is
exactly the confusion a bundle exists to prevent.
"""

from __future__ import annotations

import io
import json
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.core.cache import fingerprints, intact
from harness.core.errors import BenchError
from harness.core.io import atomic_dir, atomic_path, read_json

SHARED_STAGES = ("prompts", "pool", "preference_pool", "embeddings", "features")
"""The stages a pool's users share (every strategy and seed on it): what a bundle carries by default."""
INDEX = "bundle.json"


@dataclass(frozen=True)
class BundledStage:
    name: str
    hash: str
    files: dict[str, list]


def stages_of_runs(run_dirs: list[Path], names: tuple[str, ...] = SHARED_STAGES) -> list[tuple[str, str, Path]]:
    """(stage, hash, cached folder) of the `names` stages the runs used, once each, in pipeline order."""
    found: dict[tuple[str, str], Path] = {}
    for run in run_dirs:
        manifest_path = Path(run) / "manifest.json"
        if not manifest_path.is_file():
            raise BenchError(f"{run} has no manifest.json: pass run folders written by `bench run` or `bench matrix`.")
        manifest = read_json(manifest_path)
        cache = Path(manifest.get("config", {}).get("cache_dir", "runs/cache"))
        for name, record in (manifest.get("stages") or {}).items():
            if name in names:
                folder = cache / name / record["hash"]
                if not (folder / "stage.json").is_file():
                    raise BenchError(f"{run}: its {name} stage ({record['hash']}) is not in {cache}; run it again "
                                     "(or point at the cache it used) before exporting.")
                found.setdefault((name, record["hash"]), folder)
    if not found:
        raise BenchError(f"none of {', '.join(map(str, run_dirs))} used a stage among {', '.join(names)}.")
    order = {name: i for i, name in enumerate(SHARED_STAGES)}
    return [(n, h, p) for (n, h), p in sorted(found.items(), key=lambda item: (order.get(item[0][0], 99), item[0][1]))]


def export_bundle(stages: list[tuple[str, str, Path]], out: Path, machine: dict[str, Any] | None = None) -> list[BundledStage]:
    """Write the stage folders and an index to `out` (a .tar.gz), atomically; returns what it holds."""
    bundled = []
    for name, key, folder in stages:
        if not intact(name, folder):
            raise BenchError(f"{folder}: the cached {name} stage is damaged; recompute it before exporting.")
        bundled.append(BundledStage(name, key, read_json(folder / "stage.json")["files"]))
    index = {"format": 1, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "machine": machine or {},
             "stages": [{"name": b.name, "hash": b.hash, "files": b.files} for b in bundled]}
    with atomic_path(Path(out)) as tmp:
        _write_tar(tmp, index, stages)
        tmp.chmod(0o644)  # a file to share: readable like any other in the repository
    return bundled


def _write_tar(tmp: Path, index: dict[str, Any], stages: list[tuple[str, str, Path]]) -> None:
    """The index first, then every stage file under <stage>/<hash>/, with owners and file times zeroed."""
    with tarfile.open(tmp, "w:gz") as tar:
        data = json.dumps(index, indent=1).encode()
        info = tarfile.TarInfo(INDEX)
        info.size, info.mtime = len(data), 0
        tar.addfile(info, io.BytesIO(data))
        for name, key, folder in stages:
            for file in sorted(p for p in folder.rglob("*") if p.is_file()):
                member = tar.gettarinfo(str(file), arcname=f"{name}/{key}/{file.relative_to(folder)}")
                member.mtime, member.uid, member.gid, member.uname, member.gname = 0, 0, 0, "", ""
                with open(file, "rb") as handle:
                    tar.addfile(member, handle)


def read_index(bundle: Path) -> dict[str, Any]:
    try:
        with tarfile.open(bundle, "r:gz") as tar:
            member = tar.extractfile(INDEX)
            if member is None:
                raise KeyError(INDEX)
            return json.loads(member.read())
    except (tarfile.TarError, KeyError, OSError, ValueError) as exc:
        raise BenchError(f"{bundle} is not a stage bundle written by `bench cache export` ({exc}).") from None


def import_bundle(bundle: Path, cache_dir: Path) -> list[tuple[BundledStage, str]]:
    """Restore every stage of `bundle` into `cache_dir`: (stage, "restored" | "present") per stage.

    A stage already cached with the same files is left alone; one cached with other files
    (another pool under the same key: another CPU's bf16 kernels) is refused with what to do.
    Each stage lands whole or not at all (extracted into a temporary folder, its fingerprints
    checked, then renamed).
    """
    index = read_index(bundle)
    stages = [BundledStage(s["name"], s["hash"], s["files"]) for s in index["stages"]]
    conflicts = [s for s in stages if intact(s.name, cache_dir / s.name / s.hash)
                 and read_json(cache_dir / s.name / s.hash / "stage.json").get("files") != s.files]
    if conflicts:
        first = conflicts[0]
        raise BenchError(
            f"{cache_dir / first.name / first.hash} already holds a different {first.name} under the same key "
            f"({len(conflicts)} such stage(s)): probably computed on another CPU model, whose bf16 kernels sample other "
            f"responses. Runs on the two would not share one pool. Import into an empty cache (--cache-dir, or "
            f"cache_dir in the config) or remove those folders first."
        )
    out = []
    with tarfile.open(bundle, "r:gz") as tar:
        members = {m.name: m for m in tar.getmembers()}
        for stage in stages:
            target = cache_dir / stage.name / stage.hash
            if intact(stage.name, target):
                out.append((stage, "present"))
                continue
            with atomic_dir(target) as tmp:
                for rel in [*stage.files, "stage.json"]:
                    member = members.get(f"{stage.name}/{stage.hash}/{rel}")
                    if member is None or not member.isfile() or ".." in Path(rel).parts or Path(rel).is_absolute():
                        raise BenchError(f"{bundle}: {stage.name}/{stage.hash}/{rel} is missing or not a plain file; the bundle is damaged.")
                    dest = tmp / rel
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    source = tar.extractfile(member)
                    assert source is not None
                    dest.write_bytes(source.read())
                if fingerprints(tmp) != stage.files:
                    raise BenchError(f"{bundle}: the files of {stage.name}/{stage.hash} do not match their fingerprints; the bundle is damaged.")
            out.append((stage, "restored"))
    return out


def restore_for(bundle: Path, cache_dir: Path, pool_hash: str) -> None:
    """Restore `bundle` for a run whose pool key is `pool_hash`; refuse a bundle that holds another pool (made
    from another config or bpo-bench version), since the run would then sample a pool of its own."""
    held = [s["hash"] for s in read_index(bundle)["stages"] if s["name"] == "pool"]
    if pool_hash not in held:
        raise BenchError(
            f"bundle = {bundle} holds pool {', '.join(held) or '(none)'}, but this experiment's pool is {pool_hash} "
            "(its prompts, pool settings, model or bpo-bench version differ from the bundle's). Run the configuration "
            "the bundle was exported from, export a new bundle, or set bundle: null to sample a pool here."
        )
    import_bundle(bundle, cache_dir)
