"""The report: Figure 1 and tables from eval results; failed, skipped and stale stages are named,
never shown with old numbers; report.html renders in headless Chromium."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from conftest import chromium_driver, needs_chromium
from instructgpt.eval import report
from instructgpt.eval.evaluate import fingerprint

MODELS = ("pretrained", "pretrained-prompted", "sft", "ppo", "ppo-ptx", "dpo")
WIN = {"pretrained": 0.1, "pretrained-prompted": 0.3, "sft": 0.5, "ppo": 0.7, "ppo-ptx": 0.68, "dpo": 0.6}


def fake_run(root: Path, statuses: dict[str, str] | None = None) -> Path:
    """A run folder with model folders, eval results, stage record and metrics, as the pipeline writes them."""
    run = root / "demo"
    (run / "eval").mkdir(parents=True)
    (run / "metrics").mkdir()
    tasks = {"addition": {"cluster": "arithmetic", "held_out": False, "metric": "numeric"},
             "capital_of_country": {"cluster": "world_facts", "held_out": True, "metric": "exact_match"}}
    for name in MODELS:
        folder = run / ("pretrain" if name.startswith("pretrained") else name)
        folder.mkdir(exist_ok=True)
        (folder / "complete.json").write_text(json.dumps({"step": 1}))
        held_in = {"pretrained": 0.0, "pretrained-prompted": 0.1, "sft": 0.6, "ppo": 0.55, "ppo-ptx": 0.59,
                   "dpo": 0.6}[name]
        result = {"name": name, "path": str(folder), "fingerprint": fingerprint(folder), "few_shot": 0,
                  "scores": {"addition": held_in, "capital_of_country": 0.25},
                  "clusters": {"arithmetic": held_in, "world_facts": 0.25},
                  "held_in_mean": held_in, "held_out_mean": 0.25, "response_tokens": 6.0,
                  "kl": 1.5 if name in ("ppo", "ppo-ptx", "dpo") else None,
                  "samples": [{"task": "addition", "prompt": "Add 2 and 3.", "response": f"<{name} says 5>"}],
                  "win_rate": WIN[name], "win_interval": [WIN[name] - 0.05, WIN[name] + 0.05],
                  "oracle_win_rate": WIN[name], "baseline": "sft"}
        (run / "eval" / f"{name}.json").write_text(json.dumps(result))
    (run / "eval" / "summary.json").write_text(json.dumps({
        "baseline": "sft", "models": list(MODELS), "prompts": 40, "labeler_noise": 0.3, "agreement": 0.75,
        "labeler_calibration": "4 samples of sft a prompt", "temperature": 1.0, "tasks": tasks, "rm_accuracy": {"comparisons-heldout": 0.61}}))
    stages = {s: {"status": "done", "seconds": 1.0} for s in
              ("tasks", "tokenizer", "pretrain", "sft", "comparisons", "reward", "ppo", "ppo-ptx", "dpo", "eval")}
    for stage, status in (statuses or {}).items():
        stages[stage] = {"status": status, "seconds": 0.5, "error": "RuntimeError: boom"}
    (run / "stages.json").write_text(json.dumps({"total_seconds": 10.0, "stages": stages}))
    (run / "metrics" / "sft.jsonl").write_text("".join(json.dumps({"step": i, "train/loss": 3.0 / i}) + "\n"
                                                       for i in range(1, 20)))
    (run / "metrics" / "ppo.jsonl").write_text("".join(json.dumps({"step": i, "ppo/reward": i / 10, "ppo/kl": i / 5})
                                                       + "\n" for i in range(1, 20)) + '{"step": 20, "ppo/sc')
    (run / "run.yaml").write_text("name: demo\n")
    return run


def test_report_has_the_figure_tables_curves_samples_and_stage_times(tmp_path):
    run = fake_run(tmp_path)
    html = report.write(run, run / "eval")
    md = (run / "report.md").read_text()
    assert "![Win rate against sft](plots/win_rate.png)" in md and (run / "plots" / "win_rate.png").stat().st_size
    assert (run / "plots" / "training_curves.png").is_file()
    assert "| ppo | 0.700 [0.650, 0.750] |" in md
    assert "agreement with the oracle 0.75 on 4 samples of sft a prompt" in md and "1 a prompt" in md
    assert "| ppo-ptx |" in md and "| -0.010 |" in md  # alignment tax: held-in change against SFT
    assert "| world_facts (held out) |" in md and "| comparisons-heldout | 0.610 |" in md
    assert "<ppo-ptx says 5>" in md and "| total | | 10 |" in md and "Not every stage" not in md
    page = html.read_text()
    assert page.count("data:image/png;base64,") == 2 and "plots/" not in page  # self-contained
    assert "&lt;ppo says 5&gt;" in page  # escaped
    table = report.headline(run / "eval")
    assert table.splitlines()[0].startswith("model") and "ppo-ptx" in table


def test_a_failed_stage_is_named_and_its_numbers_are_not_shown(tmp_path):
    run = fake_run(tmp_path, {"ppo": "failed", "ppo-ptx": "not run"})
    report.write(run, run / "eval")
    md = (run / "report.md").read_text()
    assert "stage ppo: failed (RuntimeError: boom)" in md and "stage ppo-ptx: not run" in md
    assert "| ppo | 0." not in md and "| ppo-ptx | 0." not in md and "| dpo | 0.600" in md
    assert "**ppo**: no numbers (its stage ppo failed in the latest run)" in md


def test_a_model_redone_after_its_evaluation_shows_no_stale_numbers(tmp_path):
    run = fake_run(tmp_path)
    (run / "dpo" / "complete.json").write_text(json.dumps({"step": 2}))  # trained again since
    report.write(run, run / "eval")
    md = (run / "report.md").read_text()
    assert "| dpo | 0." not in md and "**dpo**: no numbers (the model changed after it was evaluated" in md


def test_no_results_says_so(tmp_path):
    run = fake_run(tmp_path, {"eval": "failed"})
    shutil.rmtree(run / "eval")
    report.write(run, run / "eval")
    assert "No evaluation results." in (run / "report.md").read_text()


@needs_chromium
def test_report_html_renders_in_headless_chromium(tmp_path):
    from selenium.webdriver.common.by import By

    run = fake_run(tmp_path)
    html = report.write(run, run / "eval")
    driver = chromium_driver(tmp_path / "profile")
    try:
        driver.get(html.as_uri())
        assert "instructgpt report" in driver.title
        figures = driver.find_elements(By.CSS_SELECTOR, "img.figure")
        assert len(figures) == 2
        assert all(driver.execute_script("return arguments[0].complete && arguments[0].naturalWidth", img) > 100
                   for img in figures)  # decoded, not a broken image
        rows = driver.find_elements(By.CSS_SELECTOR, "#headline tr")
        assert [r.find_elements(By.TAG_NAME, "td")[0].text for r in rows[1:]] == list(MODELS)
        assert driver.find_elements(By.CSS_SELECTOR, "#tasks tr") and driver.find_elements(By.CSS_SELECTOR, "#stages tr")
        shot = tmp_path / "report.png"
        assert driver.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
    finally:
        driver.quit()
