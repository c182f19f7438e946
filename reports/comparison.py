"""The comparison report over many runs: the statistics of harness/analysis/comparisons.py (leaderboard,
paired tests, claims) as HTML, Markdown, CSV and JSON, with plots.

A report is a pure function of finished runs; a metric a run did not compute is shown as
missing, not dropped.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from harness.analysis.comparisons import (
    DEFAULT_FAMILY,
    ONE_SEED,
    Comparison,
    Family,
    Primary,
    cell_estimate,
    claim_verdict,
    compare,
    count_tests,
    estimate,
    finite,
)
from harness.analysis.runs import PAIRED_METRICS, RunRecord, cells_of, sample_answers
from harness.constraints.metrics import PRIMARY_METRIC
from harness.core.io import write_json, write_text
from harness.core.run_files import RunFolder
from reports.render import format_p

PLOTTED = (
    PRIMARY_METRIC,
    "prompt_strict_acc",
    "task_done_rate",
    "degenerate_share",
    "instruction_strict_acc",
    "win_rate",
    "score",
    "lc_win_rate",
)
"""Metrics plotted against budget when a suite reports them (the first one a report has is the answer's figure)."""
ANSWERS_PER_SETTING = 3
"""Held-out answers shown for each compared setting."""


def _ci(low: Any, high: Any) -> str:
    return f"[{low:+.3f}, {high:+.3f}]"


def summary_markdown(
    board: list[dict[str, Any]], keys: list[str], claims: dict[str, list[dict[str, Any]]], margin: float | None = None
) -> str:
    """The leaderboard and the claims as Markdown, for a write-up or a repository's results folder."""
    lines = [
        "## Leaderboard",
        "",
        "Mean over seeds [95% t-interval across seeds]; ¹ one seed: that run's own CI, which holds the run fixed; "
        "— not computed.",
        "",
    ]
    lines += ["| strategy | budget | setting | seeds | " + " | ".join(keys) + " |", "|" + " --- |" * (len(keys) + 4)]
    for row in board:
        cells = []
        for key in keys:
            c = row["cells"][key]
            cells.append(
                "—"
                if c is None
                else f"{c['mean']:.3f} [{c['low']:.3f}, {c['high']:.3f}]" + ("¹" if c["kind"] == "run CI" else "")
            )
        lines.append(
            f"| {row['strategy']} | {row['budget']} | {row['setting']} | {', '.join(map(str, row['seeds']))} | "
            + " | ".join(cells)
            + " |"
        )
    for metric, tests in claims.items():
        n_tests = count_tests(tests)
        lines += [
            "",
            f"## Claims: {metric}",
            "",
            f"{n_tests} verdict test(s); Holm-adjusted p next to the raw p, within each family (the primary claim, marked ★, is "
            "adjusted only among its own rows). "
            "The difference is the matched-seed estimate the verdict is about; the verdict interval is over matched seeds "
            "(harness/core/stats.py seed_test; held-out prompts resampled by base task within constraint type where the runs "
            "recorded both); the other interval holds these runs fixed. The verdict applies Holm within the family"
            + (
                f"; \"equivalent\" is a TOST at ±{margin:g} (p TOST, Holm-adjusted alike)."
                if margin is not None
                else "."
            ),
            "",
            "| family | claim | budget | setting | difference (matched seeds) | 95% CI, these runs | verdict 95% CI (seeds) | p | p (Holm) | "
            + ("p TOST (Holm) | " if margin is not None else "")
            + "per-seed differences | verdict |",
            "|" + " --- |" * (12 if margin is not None else 11),
        ]
        for t in tests:
            name = f"{t.get('family', DEFAULT_FAMILY)} | " + ("★ " if t.get("primary") else "") + t["claim"]
            setting_text = " vs ".join(x for x in (t.get("better_setting"), t.get("worse_setting")) if x) or t.get(
                "setting", ""
            )
            if "worse_budget" in t:
                setting_text = f"{setting_text}; against {t['worse_budget']} pairs".lstrip("; ")
            blank = " |" * (7 if margin is not None else 6)
            if "diff" not in t:
                lines.append(f"| {name} | {t['budget']} | {setting_text} | — ({t['missing']}) |" + blank)
                continue
            seeds = t.get("seeds_ci")
            head = f"| {name} | {t['budget']} | {setting_text} | {estimate(t):+.3f} | {_ci(t['low'], t['high'])} | "
            if seeds:
                tost = f"{format_p(seeds.get('p_tost_holm'))} | " if margin is not None else ""
                lines.append(
                    head
                    + f"{_ci(seeds['low'], seeds['high'])} | {format_p(seeds['p'])} | {format_p(seeds.get('p_holm'))} | {tost}"
                    + ", ".join(f"{d:+.3f}" for d in seeds["per_seed"])
                    + f" | {claim_verdict(t)} |"
                )
            else:
                lines.append(head + "— | |" + (" |" if margin is not None else "") + f" | | {ONE_SEED} |")
    return "\n".join(lines) + "\n"


def _side(strategy: str, label: str | None) -> str:
    return strategy + (f" ({label})" if label else "")


def claim_text(t: dict[str, Any]) -> str:
    """A claim row in words, naming each side's setting: "bpo > uniform (2 pairs per prompt) at 128 pairs"."""
    if "better_setting" not in t:
        return f"{t['claim']} at {t['budget']} pairs" + (f" ({t['setting']})" if t.get("setting") else "")
    sign = " vs " if t["better"] == t["worse"] else " > "
    if "worse_budget" in t:
        return (
            f"{_side(t['better'], t['better_setting'])} at {t['budget']} pairs{sign}{_side(t['worse'], t['worse_setting'])} "
            f"at {t['worse_budget']} pairs"
        )
    return (
        f"{_side(t['better'], t['better_setting'])}{sign}{_side(t['worse'], t['worse_setting'])} at {t['budget']} pairs"
    )


def _sentence(t: dict[str, Any], metric: str) -> str:
    """One claim row as a sentence: its verdict, interval, seeds and Holm p (or why there is none)."""
    family = t.get("family") or DEFAULT_FAMILY
    head = (
        ("Primary claim: " if t.get("primary") else "")
        + claim_text(t)
        + ("" if t.get("primary") or family == DEFAULT_FAMILY else f" (family {family})")
    )
    if "diff" not in t:
        return f"{head}: undecided, not run ({t['missing']})."
    seeds = t.get("seeds_ci")
    if not seeds:
        return f"{head}: undecided, one seed gives no verdict (difference {t['diff']:+.3f} on these runs)."
    verdict = claim_verdict(t)
    verdict = (
        "does not hold: reversed" + verdict.removeprefix("reversed")
        if verdict.startswith("reversed")
        else "undecided: the verdict interval contains 0"
        if verdict == "undecided"
        else verdict
    )
    tost = f", TOST p (Holm) {format_p(seeds['p_tost_holm'])}" if seeds.get("p_tost_holm") is not None else ""
    return (
        f"{head}: {verdict}. Difference {seeds['diff']:+.3f}, 95% verdict interval {_ci(seeds['low'], seeds['high'])} "
        f"over {seeds['n_seeds']} matched seeds, p {format_p(seeds['p'])} (Holm {format_p(seeds.get('p_holm'))}{tost}); {metric}."
    )


def _summary(claim: str, rows: list[dict[str, Any]]) -> str:
    """An exploratory claim tested in several settings, in one sentence: how many hold, are reversed, undecided or
    have one seed, the range of differences, and each decided setting with its interval and Holm p."""
    decided = [t for t in rows if t.get("seeds_ci")]
    words = [claim_verdict(t).split(",")[0].split(" within")[0] for t in decided]
    counts = [
        (words.count("holds"), "holds"),
        (words.count("reversed"), "reversed"),
        (words.count("equivalent"), "equivalent"),
        (len(decided) - words.count("holds") - words.count("reversed") - words.count("equivalent"), "undecided"),
        (sum(1 for t in rows if "diff" in t and not t.get("seeds_ci")), "one seed, no verdict"),
        (sum(1 for t in rows if "diff" not in t), "not run"),
    ]
    diffs = [d for t in rows if "diff" in t and (d := estimate(t)) is not None]
    text = f"{claim}, exploratory, in {len(rows)} settings: " + ", ".join(f"{label} in {n}" for n, label in counts if n)
    if diffs:
        text += f"; differences {min(diffs):+.3f} to {max(diffs):+.3f}"
    for t, word in zip(decided, words):
        if word in ("holds", "reversed", "equivalent"):
            s = t["seeds_ci"]
            text += (
                f". {claim_verdict(t).capitalize()}: {claim_text(t)}, {s['diff']:+.3f} "
                f"{_ci(s['low'], s['high'])}, Holm p {format_p(s.get('p_holm'))}"
            )
    return text + "."


def answer_lines(claims: dict[str, list[dict[str, Any]]], primary: Primary | None) -> list[str]:
    """The answer a reader needs before any table, on the primary metric (else the first paired metric): one sentence
    per primary test, then one per exploratory claim (tested in several settings: summarised, the settings where it
    is decided named). Undecided claims say why (interval contains 0, one seed, not run)."""
    if not claims:
        return []
    metric = primary.metric if primary and primary.metric in claims else next(iter(claims))
    tested = {(t.get("family"), t["claim"]) for t in claims[metric] if "diff" in t}
    # a context that never ran one side of a claim (another learning rate, say) is no answer; a claim run nowhere is
    rows = [t for t in claims[metric] if "diff" in t or (t.get("family"), t["claim"]) not in tested]
    lines = [_sentence(t, metric) for t in rows if t.get("primary")]
    by_claim: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for t in rows:
        if not t.get("primary"):
            by_claim[(t.get("family") or DEFAULT_FAMILY, t["claim"])].append(t)
    for (family, claim), members in by_claim.items():
        label = claim if family == DEFAULT_FAMILY else f"{claim} (family {family})"
        lines.append(_sentence(members[0], metric) if len(members) == 1 else _summary(label, members))
    return lines


def judge_warning(overlap: dict[str, str]) -> str:
    """The warning shown wherever one judge both labelled the training pairs and grades a suite."""
    return (
        f"Same judge: {overlap['suite']} is graded by {overlap['judge']}, the judge that labelled the training pairs. "
        "A gain there can be the judge's own criteria learned rather than better answers; an out-of-distribution check "
        "(IFBench's other constraints, or another judge) is the generalisation test."
    )


def _series(run: RunRecord) -> str:
    """A plot series in words: the strategy, and its other settings where runs differ in them ("uniform, 2 pairs per prompt")."""
    return run.strategy + (f", {run.label}" if run.label else "")


def _errorbar(ax, x: float, est: dict[str, Any], **style: Any) -> None:
    """One cell's point with its interval (seed t-interval, or the run's own CI with one seed)."""
    low, high = est.get("low"), est.get("high")
    yerr = [[est["mean"] - low], [high - est["mean"]]] if finite(low) and finite(high) else None
    ax.errorbar([x], [est["mean"]], yerr=yerr, fmt="o", capsize=3, ms=5, **style)


def _metric_vs_budget(runs: list[RunRecord], key: str) -> str | None:
    """The dose-response: one line per series (strategy and differing settings), seed intervals as bars."""
    from reports.figures import legend_beside, plt, to_img_tag

    if len({r.budget for r in runs}) < 2:
        return None  # one budget: the leaderboard says it all
    series: dict[str, list[tuple[int, dict[str, Any]]]] = defaultdict(list)
    for members in cells_of(runs):
        est = cell_estimate(members, key)
        if est is not None:
            series[_series(members[0])].append((members[0].budget, est))
    if not series:
        return None
    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    for i, (name, pts) in enumerate(sorted(series.items())):
        pts.sort(key=lambda p: p[0])
        color = f"C{i % 10}"
        ax.plot([b for b, _ in pts], [e["mean"] for _, e in pts], color=color, label=name)
        for budget, est in pts:
            _errorbar(ax, budget, est, color=color)
    ax.set_xscale("log", base=2)
    budgets = sorted({b for pts in series.values() for b, _ in pts})
    ax.set_xticks(budgets, [str(b) for b in budgets])
    ax.set_xlabel("budget (pairs)")
    ax.set_ylabel(key)
    ax.set_title("against budget (bars: 95% interval over seeds; one seed: its run CI)", fontsize=8)
    ax.grid(alpha=0.3)
    legend_beside(ax, fontsize=7)
    return to_img_tag(fig, f"{key} against budget")


def _surface(runs: list[RunRecord], key: str, save_to: Path | None = None) -> str | None:
    """The answer's figure: `key` against mean depth (log scale; breadth = budget / depth), one panel per budget with
    3+ cells, one point per cell with its seed interval. A strategy with 3+ cells in a panel (uniform at several
    depths) is drawn as a line; every series keeps its colour across panels."""
    from reports.figures import plt, to_img_tag

    panels: dict[int, list[tuple[str, str, float, dict[str, Any]]]] = {}
    for budget in sorted({r.budget for r in runs}):
        points = []
        for members in cells_of([r for r in runs if r.budget == budget]):
            depths = [r.mean_depth for r in members if r.mean_depth is not None]
            est = cell_estimate(members, key)
            if depths and est is not None:
                # a line joins one strategy's cells that differ only in its own parameters (uniform's depths), never
                # across another setting such as the learning rate
                line = members[0].strategy + (f", {members[0].context_label}" if members[0].context_label else "")
                points.append((line, _series(members[0]), float(np.mean(depths)), est))
        if len(points) >= 3:
            panels[budget] = points
    if not panels:
        return None
    lines = {(b, s) for b, pts in panels.items() for s in {p[0] for p in pts} if sum(p[0] == s for p in pts) >= 3}
    names = sorted({(p[0] if (b, p[0]) in lines else p[1]) for b, pts in panels.items() for p in pts})
    colour = {name: plt.get_cmap("tab20")(i % 20) for i, name in enumerate(names)}  # 20: a curve has 13 cells
    markers = "osD^vP*Xhp<>"
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels) + 1.5, 4.2), sharey=True, squeeze=False)
    handles: dict[str, Any] = {}
    for ax, (budget, points) in zip(axes[0], panels.items()):
        for strategy in sorted({p[0] for p in points if (budget, p[0]) in lines}):
            pts = sorted((p for p in points if p[0] == strategy), key=lambda p: p[2])
            handles[strategy] = ax.plot(
                [p[2] for p in pts],
                [p[3]["mean"] for p in pts],
                "-",
                color=colour[strategy],
                lw=1.5,
                label=f"{strategy} (each point a depth)",
            )[0]
            for _, _, depth, est in pts:
                _errorbar(ax, depth, est, color=colour[strategy])
        alone = [p for p in points if (budget, p[0]) not in lines]
        at_depth: dict[float, list[str]] = defaultdict(list)
        for _, name, depth, _ in alone:
            at_depth[round(depth, 2)].append(name)
        for strategy, name, depth, est in alone:
            crowd = at_depth[round(depth, 2)]
            depth *= 2 ** (0.07 * (crowd.index(name) - (len(crowd) - 1) / 2))  # dodge cells of one depth apart
            low, high = est.get("low"), est.get("high")
            yerr = [[est["mean"] - low], [high - est["mean"]]] if finite(low) and finite(high) else None
            handles[name] = ax.errorbar(
                [depth],
                [est["mean"]],
                yerr=yerr,
                fmt=markers[names.index(name) % len(markers)],
                capsize=3,
                ms=7,
                color=colour[name],
                label=name,
            )
        ax.set_xscale("log", base=2)
        ax.set_xticks([1, 2, 4, 8], ["1", "2", "4", "8"])
        ax.set_title(f"{budget} pairs", fontsize=10)
        ax.set_xlabel("mean depth (pairs per selected prompt)")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel(key.split("/", 1)[1] if "/" in key else key)
    means = [p[3]["mean"] for pts in panels.values() for p in pts]
    low, high = min(means) - 0.12, max(means) + 0.12  # a two-seed t-interval can span the whole scale: clip it, say so
    clipped = any(
        finite(p[3].get("low")) and (p[3]["low"] < low or p[3]["high"] > high) for pts in panels.values() for p in pts
    )
    axes[0][0].set_ylim(low, high)
    ordered = sorted(handles)
    rows = (len(ordered) + 3) // 4
    fig.legend(
        [handles[n] for n in ordered],
        [handles[n].get_label() for n in ordered],
        loc="lower center",
        ncol=4,
        fontsize=8,
        frameon=False,
        bbox_to_anchor=(0.5, 0.0),
    )
    fig.suptitle(
        f"{key} against depth at each budget (bars: 95% interval over seeds; one seed: its run CI; cells of one depth "
        "drawn slightly apart" + ("; bars cut at the axes" if clipped else "") + ")",
        fontsize=10,
    )
    fig.tight_layout(rect=(0, 0.045 * rows + 0.01, 1, 1))
    return to_img_tag(fig, f"{key} against mean depth, one panel per budget", save_to)


def _breadth_vs_depth(runs: list[RunRecord]) -> str | None:
    from reports.figures import legend_beside, plt, to_img_tag

    pts = [(_series(r), r.breadth, r.mean_depth) for r in runs if r.breadth is not None and r.mean_depth is not None]
    if not pts:
        return None
    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    # settings often share a point (every strategy at 2 pairs per prompt): hollow markers of distinct shapes, the
    # first drawn largest, so that no setting hides another
    for i, strategy in enumerate(sorted({p[0] for p in pts})):
        xs = [b for s, b, _ in pts if s == strategy]
        ys = [d for s, _, d in pts if s == strategy]
        ax.scatter(
            xs,
            ys,
            label=strategy,
            s=max(110 - 8 * i, 18),
            marker="osD^vPX<>ph*"[i % 12],
            facecolors="none",
            edgecolors=f"C{i % 10}",
            linewidths=1.3,
        )
    ax.set_title("hollow markers: settings at one point stay visible", fontsize=8)
    ax.set_xlabel("breadth (prompts)")
    ax.set_ylabel("mean depth (pairs per prompt)")
    ax.grid(alpha=0.3)
    legend_beside(ax, fontsize=7)
    return to_img_tag(fig, "breadth against mean depth")


def render_comparison(
    run_dirs: list[Path],
    out_file: Path,
    baseline: str = "original",
    claims: list[tuple[str, str]] = (),
    primary: Primary | None = None,
    margin: float | None = None,
    families: Sequence[Family] = (),
) -> Path:
    """Write the comparison HTML to `out_file`, with metrics.csv, metrics.json, paired_tests.json, summary.md and the
    answer's figure (surface.png) next to it.

    `primary` is the one hypothesis the matrix was run to test, marked as such and kept out of
    the other claims' multiple-comparison adjustment; `margin` the equivalence margin of every TOST verdict.
    """
    import os

    from reports.render import render

    c = compare(run_dirs, baseline, claims, primary, margin, families)
    runs, out_file = c.runs, Path(out_file)
    suites = list(dict.fromkeys(k.split("/", 1)[0] for k in c.keys))
    plotted = [k for k in (f"{s}/{m}" for s in suites for m in PLOTTED) if k in c.keys]
    html = render(
        "comparison.html.j2",
        runs=runs,
        run_links={str(r.path): os.path.relpath(r.folder / RunFolder.REPORT, out_file.parent) for r in runs},
        suites={s: [k for k in c.keys if k.split("/", 1)[0] == s] for s in suites},
        board=c.board,
        any_setting=any(r.label for r in runs),
        tests={PAIRED_METRICS[name]: rows for name, rows in c.tests.items()},
        claims={PAIRED_METRICS[name]: rows for name, rows in c.claims.items()},
        n_tests={PAIRED_METRICS[name]: count_tests(rows) for name, rows in c.tests.items()},
        n_claim_tests={PAIRED_METRICS[name]: count_tests(rows) for name, rows in c.claims.items()},
        primary=primary.describe() if primary else None,
        primary_metric=primary.metric if primary else None,
        answer=answer_lines(c.claims, primary),
        baseline=baseline,
        verdict_of=claim_verdict,
        margin=margin,
        judges=sorted(
            {
                (r["suite"], r["judge"], bool(r["weak_judge"]))
                for r in c.rows
                if r["judge"] and not r["judge"].startswith("none")
            }
        ),
        n_budgets=len({r.budget for r in runs}),
        # the answer's figure first, at full width: held-out accuracy against depth, a panel per budget
        surface=next((f for f in (_surface(runs, k, out_file.parent / "surface.png") for k in plotted[:1]) if f), None),
        figures=[f for f in [_metric_vs_budget(runs, k) for k in plotted] + [_breadth_vs_depth(runs)] if f],
        judge_overlap=c.judge_overlap,
        compute=c.compute,
        answers=[
            (
                _series(members[0]) + f", {members[0].budget} pairs",
                sample_answers(members[0].path, ANSWERS_PER_SETTING, members[0].seed),
            )
            for members in cells_of(runs)
        ],
    )
    write_text(out_file, html)
    _write_tables(c, out_file.parent)
    return out_file


def _write_tables(c: Comparison, folder: Path) -> None:
    """metrics.csv, metrics.json, paired_tests.json and summary.md: the numbers of the report, for other tools."""
    buf = io.StringIO()
    fields = [
        "run",
        "strategy",
        "budget",
        "setting",
        "seed",
        "suite",
        "metric",
        "value",
        "ci_low",
        "ci_high",
        "n",
        "judge",
        "weak_judge",
    ]
    writer = csv.DictWriter(buf, fieldnames=fields)
    writer.writeheader()
    writer.writerows(c.rows)
    write_text(folder / "metrics.csv", buf.getvalue())
    write_json(folder / "metrics.json", c.rows)
    write_json(
        folder / "paired_tests.json",
        {
            "baseline": c.baseline,
            "primary": {
                "claim": " > ".join(c.primary.claim),
                "metric": c.primary.metric,
                "budget": c.primary.budget,
                "params": {k: dict(v) for k, v in c.primary.params},
            }
            if c.primary
            else None,
            "judge_overlap": c.judge_overlap,
            "compute": c.compute,
            "equivalence_margin": c.margin,
            "families": sorted({t.get("family", DEFAULT_FAMILY) for rows in c.claims.values() for t in rows}),
            "tests": c.tests,
            "claims": c.claims,
        },
    )
    answer = answer_lines(c.claims, c.primary)
    warning = "".join(f"> {judge_warning(w)}\n\n" for w in c.judge_overlap)
    machines = "; ".join(
        f"{kind} ran seed{'s' if len(seeds) > 1 else ''} {', '.join(map(str, seeds))}"
        for kind, seeds in c.compute.get("seeds_by_machine", {}).items()
    )
    write_text(
        folder / "summary.md",
        ("## The answer\n\n" + "".join(f"- {line}\n" for line in answer) + "\n" if answer else "")
        + warning
        + (f"Seeds by machine: {machines}.\n\n" if machines else "")
        + summary_markdown(
            c.board, [k for k in c.keys if not k.split("/", 1)[1].startswith("paired_diff.")], c.claims, c.margin
        ),
    )
