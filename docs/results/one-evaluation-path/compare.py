"""The same trained adapter, evaluated by the old path (a smoke run at e79088b) and by the new one (the ifeval suite)."""
import json, sys, glob
from pathlib import Path
from harness.config import EvaluateConfig, PromptsConfig
from harness.evaluate import compute_metrics, evaluate_target, read_outputs
from harness.heldout_prompts import HeldoutSet
from harness.suites import EvalTarget, SuiteContext
old = Path("/tmp/eq/old"); m = json.load(open(old / "manifest.json"))
ev = EvaluateConfig.model_validate({k: v for k, v in m["config"]["evaluate"].items()})
pr = PromptsConfig.model_validate(m["config"]["prompts"])
adapter = Path(m["stages"]["train"]["path"]) / "adapter"
ctx = SuiteContext(Path("/tmp/eq/cache-new"), HeldoutSet.of(ev, pr))
rows = {}
for name, a in (("base", None), ("tuned", adapter)):
    out = Path(f"/tmp/eq/new-{name}"); out.mkdir(exist_ok=True)
    evaluate_target(EvalTarget("smollm2-135m-instruct", a, name), ev, ctx, out)
    rows[name] = read_outputs(out)
new = compute_metrics(rows["base"], rows["tuned"], ev)["ifeval_heldout"]
oldm = json.load(open(old / "metrics.json"))["ifeval_heldout"]
same = [k for k in oldm if oldm[k] == new.get(k)]
diff = [k for k in oldm if oldm[k] != new.get(k)]
print(f"{len(same)} of {len(oldm)} metrics identical (value, interval, n, judge): {sorted(same)}")
print("different:", diff, [(oldm[k], new.get(k)) for k in diff])
old_out = [json.loads(l) for l in open(old / "eval_outputs.jsonl")]
print("outputs identical:", [r["tuned_output"] for r in old_out] == [r["output"] for r in rows["tuned"]], [r["base_output"] for r in old_out] == [r["output"] for r in rows["base"]])
