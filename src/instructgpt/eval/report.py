"""The run's report: `report.md` and a self-contained `report.html` (images embedded) from the eval
results, the stage record and the training metrics. A model whose stage failed, did not run, or was
redone after it was evaluated is named with the reason instead of showing numbers."""
from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape

from instructgpt.eval.evaluate import is_current
from instructgpt.eval.plots import training_curves, win_rate_figure
from instructgpt.eval.stats import fmt, win_text
from instructgpt.utils.io import atomic_write_text

ORDER = ("pretrained", "pretrained-prompted", "sft", "ppo", "ppo-ptx", "dpo")
STAGE_OF = {"pretrained": "pretrain", "pretrained-prompted": "pretrain", "sft": "sft", "ppo": "ppo",
            "ppo-ptx": "ppo-ptx", "dpo": "dpo"}
BAD = ("failed", "interrupted", "not run", "running")
SAMPLE_TASKS = 6
STAGES_FILE = "stages.json"  # the pipeline's record of each stage's status and time


def load_results(eval_dir: Path, stages: dict[str, dict]) -> tuple[dict, list[dict], dict[str, str]]:
    """(summary, current results in display order, {model: why it has no numbers})."""
    summary_path = eval_dir / "summary.json"
    if not summary_path.is_file():
        return {}, [], {}
    summary = json.loads(summary_path.read_text())
    results, missing = [], {}
    names = sorted(summary["models"], key=lambda n: ORDER.index(n) if n in ORDER else len(ORDER))
    for name in names:
        stage = stages.get(STAGE_OF.get(name, ""), {})
        path = eval_dir / f"{name}.json"
        if stage.get("status") in BAD:
            missing[name] = f"its stage {STAGE_OF[name]} {stage['status']} in the latest run"
            continue
        if not path.is_file():
            missing[name] = "not evaluated"
            continue
        r = json.loads(path.read_text())
        if not is_current(r):
            missing[name] = "the model changed after it was evaluated (stale results not shown)"
            continue
        results.append(r)
    return summary, results, missing


def headline(eval_dir: Path, stages: dict[str, dict] | None = None) -> str:
    """The headline table as plain text (what `make demo` prints at the end)."""
    if stages is None:
        stages = _stages(eval_dir.parent).get("stages", {})
    summary, results, missing = load_results(eval_dir, stages)
    if not results:
        return "no evaluation results" + (": " + "; ".join(f"{k}: {v}" for k, v in missing.items()) if missing else "")
    rows = _headline_rows(results)
    text = [f"{'model':<20} {'win rate vs ' + summary['baseline']:<24} {'held-in':>8} {'held-out':>9} "
            f"{'tax':>7} {'KL':>7} {'tokens':>7} {'LM NLL':>7}"]
    for r in rows:
        text.append(f"{r['name']:<20} {r['win']:<24} {r['held_in']:>8} {r['held_out']:>9} {r['tax']:>7} "
                    f"{r['kl']:>7} {r['tokens']:>7} {r['nll']:>7}")
    text += [f"{name:<20} no numbers: {why}" for name, why in missing.items()]
    return "\n".join(text)


def write(run_dir: str | Path, eval_dir: str | Path) -> Path:
    """Write `report.md`, `report.html` and `plots/*.png` in `run_dir`; returns the HTML's path."""
    run_dir, eval_dir = Path(run_dir), Path(eval_dir)
    record = _stages(run_dir)
    stages = record.get("stages", {})
    summary, results, missing = load_results(eval_dir, stages)
    plots = run_dir / "plots"
    figures = []
    judged = [r for r in results if r.get("win_rate") is not None]
    if judged:
        figures.append(("Win rate against " + summary["baseline"], win_rate_figure(judged, summary["baseline"],
                                                                                plots / "win_rate.png")))
    curves = training_curves(run_dir / "metrics", plots / "training_curves.png")
    if curves:
        figures.append(("Training curves", curves))
    problems = [f"stage {name}: {s['status']}" + (f" ({s.get('error') or s.get('reason')})"
                                                   if s.get("error") or s.get("reason") else "")
                for name, s in stages.items() if name != "report" and (s["status"] in BAD or s["status"] == "skipped")]
    context = {
        "name": run_dir.name, "time": time.strftime("%Y-%m-%d %H:%M"), "summary": summary,
        "headline": _headline_rows(results), "missing": missing, "problems": problems,
        "stage_rows": [{"name": k, "status": s["status"], "seconds": f"{s.get('seconds', 0.0):.0f}"}
                       for k, s in stages.items() if k != "report"],
        "total_seconds": f"{record.get('total_seconds', 0.0):.0f}",
        "task_table": _task_table(results, summary), "cluster_table": _cluster_table(results, summary),
        "rm_accuracy": summary.get("rm_accuracy", {}), "samples": _samples(results),
        "config": (run_dir / "run.yaml").read_text() if (run_dir / "run.yaml").is_file() else "",
        "models": [r["name"] for r in results],
    }
    env = Environment(loader=PackageLoader("instructgpt.eval", "templates"), autoescape=select_autoescape(["html.j2"], default_for_string=False),
                      trim_blocks=True, lstrip_blocks=True)
    md_figures = [(title, path.relative_to(run_dir).as_posix()) for title, path in figures]
    html_figures = [(title, "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()) for title, path
                    in figures]
    atomic_write_text(run_dir / "report.md", env.get_template("report.md.j2").render(**context, figures=md_figures))
    html = run_dir / "report.html"
    atomic_write_text(html, env.get_template("report.html.j2").render(**context, figures=html_figures))
    return html


def _stages(run_dir: Path) -> dict[str, Any]:
    path = run_dir / STAGES_FILE
    return json.loads(path.read_text()) if path.is_file() else {}


def _change(after: float | None, before: float | None) -> float | None:
    return None if after is None or before is None else after - before


def _headline_rows(results: list[dict]) -> list[dict[str, str]]:
    sft = next((r for r in results if r["name"] == "sft"), None)
    rows = []
    for r in results:
        rl = r["name"] in ("ppo", "ppo-ptx", "dpo")
        rows.append({"name": r["name"],
                     "win": win_text(r),
                     "oracle": fmt(r.get("oracle_win_rate")),
                     "held_in": fmt(r["held_in_mean"]), "held_out": fmt(r["held_out_mean"]),
                     "tax": fmt(_change(r["held_in_mean"], sft["held_in_mean"]), signed=True) if rl and sft else "–",
                     "kl": fmt(r.get("kl"), 2), "tokens": fmt(r["response_tokens"], 1),
                     "nll": fmt(r.get("pretrain_nll"), 3)})
    return rows


def _task_table(results: list[dict], summary: dict) -> list[list[str]]:
    rows = []
    for task, meta in sorted(summary.get("tasks", {}).items(), key=lambda kv: (kv[1]["held_out"], kv[1]["cluster"])):
        rows.append([task, meta["cluster"] + (" (held out)" if meta["held_out"] else ""), meta["metric"]]
                    + [fmt(r["scores"].get(task), 2) for r in results])
    return rows


def _cluster_table(results: list[dict], summary: dict) -> list[list[str]]:
    held = {m["cluster"]: m["held_out"] for m in summary.get("tasks", {}).values()}
    return [[c + (" (held out)" if held[c] else "")] + [fmt(r["clusters"].get(c), 2) for r in results]
            for c in sorted(held, key=lambda c: (held[c], c))]


def _samples(results: list[dict]) -> list[dict[str, Any]]:
    """The same few prompts (one per task, spread over tasks) with every model's response."""
    if not results:
        return []
    first = results[0]["samples"]
    picks = first[:: max(1, len(first) // SAMPLE_TASKS)][:SAMPLE_TASKS]
    out = []
    for pick in picks:
        answers = []
        for r in results:
            match = next((s for s in r["samples"] if s["task"] == pick["task"] and s["prompt"] == pick["prompt"]), None)
            answers.append((r["name"], match["response"] if match else "–"))
        out.append({"task": pick["task"], "prompt": pick["prompt"], "answers": answers})
    return out
