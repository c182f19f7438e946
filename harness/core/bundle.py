"""Portable stage bundles: a pool (its prompts, samples, pairs, embeddings and gradient features)
exported from one cache and restored into any other, under the same keys.

A comparison that runs for hours may be resumed on a new machine, or on another CPU model whose
bf16 kernels sample a different pool under the same key; collaborators and Ray workers need the
pool too. A bundle carries the committed stage folders byte for byte (with their `stage.json`
and file fingerprints), so a restored cache gives the same stage keys, the same pool and the
same selections. Importing never overwrites a stage that differs: two pools under one key is
exactly the confusion a bundle exists to prevent.

A sampled stage is data wherever it was drawn: a pool sampled in bf16 serves a machine that
resolves fp32 (`sampled_by`), keyed by the engine that drew it, while every stage computed on
the new machine is keyed by that machine's own choices.
"""

from __future__ import annotations

import functools
import io
import json
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness import __version__
from harness.core.cache import SCHEMA_VERSION, fingerprints, intact, stage_hash
from harness.core.errors import BenchError
from harness.core.io import atomic_dir, atomic_path, read_json
from harness.core.run_files import RunFolder

SHARED_STAGES = ("prompts", "samples", "pool", "preference_samples", "preference_pool", "embeddings", "features")
"""The stages a pool's users share (every strategy and seed on it): what a bundle carries by default."""
INDEX = "bundle.json"


@dataclass(frozen=True)
class BundledStage:
    name: str
    hash: str
    files: dict[str, list]
    inputs: dict[str, Any] | None = None
    """the stage's cache-key inputs (its `stage.json`): what a run compares its own with"""


def stages_of_runs(run_dirs: list[Path], names: tuple[str, ...] = SHARED_STAGES) -> list[tuple[str, str, Path]]:
    """(stage, hash, cached folder) of the `names` stages the runs used, once each, in pipeline order."""
    found: dict[tuple[str, str], Path] = {}
    for run in run_dirs:
        folder = RunFolder(run)
        if not folder.is_run():
            raise BenchError(
                f"{run} has no {RunFolder.MANIFEST}: pass run folders written by `bench run` or `bench matrix`."
            )
        manifest = folder.manifest()
        cache = Path(manifest.get("config", {}).get("cache_dir", "runs/cache"))
        for name, record in (manifest.get("stages") or {}).items():
            if name in names:
                folder = cache / name / record["hash"]
                if not (folder / "stage.json").is_file():
                    raise BenchError(
                        f"{run}: its {name} stage ({record['hash']}) is not in {cache}; run it again "
                        "(or point at the cache it used) before exporting."
                    )
                found.setdefault((name, record["hash"]), folder)
    if not found:
        raise BenchError(f"none of {', '.join(map(str, run_dirs))} used a stage among {', '.join(names)}.")
    order = {name: i for i, name in enumerate(SHARED_STAGES)}
    return [(n, h, p) for (n, h), p in sorted(found.items(), key=lambda item: (order.get(item[0][0], 99), item[0][1]))]


def export_bundle(
    stages: list[tuple[str, str, Path]], out: Path, machine: dict[str, Any] | None = None
) -> list[BundledStage]:
    """Write the stage folders and an index to `out` (a .tar.gz), atomically; returns what it holds."""
    bundled = []
    for name, key, folder in stages:
        if not intact(name, folder):
            raise BenchError(f"{folder}: the cached {name} stage is damaged; recompute it before exporting.")
        record = read_json(folder / "stage.json")
        bundled.append(BundledStage(name, key, record["files"], record.get("inputs")))
    index = {
        "format": 2,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine or {},
        "version": __version__,
        "schema": SCHEMA_VERSION,
        "stages": [{"name": b.name, "hash": b.hash, "files": b.files, "inputs": b.inputs} for b in bundled],
    }
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
    conflicts = [
        s
        for s in stages
        if intact(s.name, cache_dir / s.name / s.hash)
        and read_json(cache_dir / s.name / s.hash / "stage.json").get("files") != s.files
    ]
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
                        raise BenchError(
                            f"{bundle}: {stage.name}/{stage.hash}/{rel} is missing or not a plain file; the bundle is damaged."
                        )
                    dest = tmp / rel
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    source = tar.extractfile(member)
                    assert source is not None
                    dest.write_bytes(source.read())
                if fingerprints(tmp) != stage.files:
                    raise BenchError(
                        f"{bundle}: the files of {stage.name}/{stage.hash} do not match their fingerprints; the bundle is damaged."
                    )
            out.append((stage, "restored"))
    return out


def bundled_stages(bundle: Path) -> list[BundledStage]:
    """The stages a bundle holds, with their key inputs (read from the index, or from each stage's
    `stage.json` in bundles written before the index carried them)."""
    return _bundled_stages(str(Path(bundle).resolve()), Path(bundle).stat().st_mtime_ns)


@functools.lru_cache(maxsize=8)
def _bundled_stages(path: str, mtime_ns: int) -> list[BundledStage]:
    stages = [BundledStage(s["name"], s["hash"], s["files"], s.get("inputs")) for s in read_index(Path(path))["stages"]]
    if all(s.inputs is not None for s in stages):
        return stages
    wanted = {f"{s.name}/{s.hash}/stage.json": s for s in stages}
    found: dict[str, dict[str, Any]] = {}
    with tarfile.open(path, "r:gz") as tar:
        for member in tar:
            if member.name in wanted:
                handle = tar.extractfile(member)
                found[member.name] = json.loads(handle.read()).get("inputs") if handle else None
    return [
        BundledStage(
            s.name, s.hash, s.files, s.inputs if s.inputs is not None else found.get(f"{s.name}/{s.hash}/stage.json")
        )
        for s in stages
    ]


def sampled_by(
    bundle: Path, stage: str, local: dict[str, Any], machine_fields: tuple[str, ...]
) -> dict[str, Any] | None:
    """The machine fields (back end, dtype, decoder) of the copy of `stage` that `bundle` holds with inputs
    otherwise equal to `local`, or None if it holds none.

    The copy matches only if its key is what this bpo-bench version computes from those inputs, so a pool
    made by another version, or from other prompts, settings, model or seed, is never taken for this one.
    """
    kept = {k: v for k, v in local.items() if k not in machine_fields}
    for held in bundled_stages(bundle):
        if held.name != stage or held.inputs is None:
            continue
        theirs = {k: held.inputs[k] for k in machine_fields if k in held.inputs}
        if stage_hash(stage, {**kept, **theirs}) == held.hash:
            return theirs
    return None


def why_not(
    bundle: Path,
    stage: str,
    local: dict[str, Any],
    machine_fields: tuple[str, ...],
    upstream: dict[str, dict[str, Any]] | None = None,
) -> str:
    """Why `bundle` holds no copy of `stage` for a run whose inputs are `local`: the inputs that differ, field
    by field (the machine's own choices are not among them), or the bpo-bench version when none does.
    `upstream` gives this run's inputs of the stages whose hashes `local` holds (e.g. "prompts"): a differing
    upstream hash is explained by that stage's own inputs where the bundle carries it."""
    stages = bundled_stages(bundle)
    held = [s for s in stages if s.name == stage]
    if not held:
        return f"bundle = {bundle} holds no {stage} stage; export one from a run that sampled it."
    differing: list[str] = []
    for copy in held:
        for path in _differences(local, copy.inputs or {}, ""):
            field = path.split(" ")[0]
            if field in machine_fields:
                continue
            theirs = next(
                (s for s in stages if s.name == field and copy.inputs and s.hash == copy.inputs.get(field)), None
            )
            if upstream and field in upstream and theirs is not None and theirs.inputs is not None:
                differing += [f"{field} stage: {d}" for d in _differences(upstream[field], theirs.inputs, "")]
            else:
                differing.append(path)
    index = read_index(bundle)
    if differing:
        what = "; ".join(dict.fromkeys(differing))
    else:
        what = (
            f"its bpo-bench version ({index.get('version', 'older than 0.1.0')} there, {__version__} here) or stage "
            f"schema ({index.get('schema', '?')} there, {SCHEMA_VERSION} here)"
        )
    return (
        f"bundle = {bundle} holds {stage} {', '.join(s.hash for s in held)}, which is not this experiment's: {what}. "
        "Run the configuration the bundle was exported from, export a new bundle, or set bundle: null to sample here."
    )


_UNSET = object()


def _differences(ours: Any, theirs: Any, path: str) -> list[str]:
    """Dotted paths at which two key-input records differ, each with both values."""
    if isinstance(ours, dict) and isinstance(theirs, dict):
        return [
            d
            for k in sorted(set(ours) | set(theirs))
            for d in _differences(ours.get(k, _UNSET), theirs.get(k, _UNSET), f"{path}.{k}" if path else k)
        ]
    if ours == theirs:
        return []

    def shown(value: Any) -> str:
        return "unset" if value is _UNSET else json.dumps(value)[:80]

    return [f"{path} = {shown(theirs)} there, {shown(ours)} here"]
