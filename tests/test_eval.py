"""`instructgpt eval`: zero-shot scores on task files never trained on, few-shot prompts, KL, intervals."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from conftest import run_cli
from instructgpt.checkpoint import save_hf_folder
from instructgpt.config import ModelConfig
from instructgpt.data.preference import encode_prompt
from instructgpt.eval.evaluate import kl_to, prompt_messages, prompt_text, unseen_tasks
from instructgpt.eval.stats import bootstrap_interval, group_means
from instructgpt.generation import sample_many
from instructgpt.models.build import build_model, pad_id
from instructgpt.tokenizer.chat import stop_ids

TASKS = {
    "shout": {"name": "shout", "kind": "rewrite", "cluster": "loud", "metric": "exact_match",
              "instructions": ["Say it loudly: {input}"], "labels": None,
              "examples": [{"input": w, "output": w.upper() + "!"} for w in ["cat", "dog", "sun", "moon", "tree",
                                                                               "road", "lamp", "boat"]]},
    "parity": {"name": "parity", "kind": "classification", "cluster": "numbers", "metric": "accuracy",
               "instructions": ["Even or odd?"], "labels": ["even", "odd"],
               "examples": [{"input": str(n), "output": "even" if n % 2 == 0 else "odd"} for n in range(10)]},
}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, tokenizer):
    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("eval") / "tiny"
    save_hf_folder(out, build_model(ModelConfig(preset="tiny"), tokenizer), tokenizer, "")
    return out


@pytest.fixture()
def task_files(tmp_path):
    paths = []
    for name, task in TASKS.items():
        paths.append(tmp_path / f"{name}.json")
        paths[-1].write_text(json.dumps(task))
    return paths


def test_eval_scores_task_files_it_has_never_seen_zero_shot(tmp_path, model_dir, task_files):
    out = tmp_path / "results"
    result = run_cli("eval", f"mine={model_dir}", "--tasks", *map(str, task_files), "--out", str(out),
                     "max_new_tokens=4", "bootstrap=20")
    assert result.returncode == 0, result.stderr
    mine = json.loads((out / "mine.json").read_text())
    assert set(mine["scores"]) == {"shout", "parity"}
    assert all(0.0 <= v <= 1.0 for v in mine["scores"].values())
    assert set(mine["clusters"]) == {"loud", "numbers"}
    summary = json.loads((out / "summary.json").read_text())
    assert all(meta["held_out"] for meta in summary["tasks"].values())  # never trained on: zero-shot
    assert summary["prompts"] == 8 + 10 and "held-out" in result.stderr
    assert mine["win_rate"] == 0.5  # the baseline against itself


def test_a_models_win_rate_does_not_depend_on_the_other_models_judged(tmp_path, model_dir, task_files, tokenizer):
    """The judge's noise is set on the baseline's own samples, so adding a very different model
    to the eval changes neither the judge nor another model's win rate. (Set on the judged
    pairs, as before, the peaked model's pairs raised the noise for everyone.)"""
    others = {}
    for seed, name in ((1, "near"), (2, "peaked")):
        torch.manual_seed(seed)
        model = build_model(ModelConfig(preset="tiny"), tokenizer)
        if name == "peaked":
            with torch.no_grad():
                model.lm_head.weight.mul_(30)
        save_hf_folder(tmp_path / name, model, tokenizer, "")
        others[name] = f"{name}={tmp_path / name}"
    runs = {}
    for label, models in (("pair", [others["near"]]), ("all", [others["near"], others["peaked"]])):
        out = tmp_path / label
        result = run_cli("eval", f"base={model_dir}", *models, "--tasks", *map(str, task_files), "--out", str(out),
                         "max_new_tokens=6", "bootstrap=20")
        assert result.returncode == 0, result.stderr
        runs[label] = (json.loads((out / "summary.json").read_text()), json.loads((out / "near.json").read_text()))
    (pair, near_alone), (everyone, near_among) = runs["pair"], runs["all"]
    assert pair["labeler_noise"] == everyone["labeler_noise"] and "of base" in pair["labeler_calibration"]
    assert near_alone["win_rate"] == near_among["win_rate"]


def test_a_prompts_win_is_the_mean_of_its_kth_response_against_the_baselines_kth():
    from instructgpt.eval.evaluate import prompt_wins
    from instructgpt.tasks.labeler import ORACLE, Query
    q = Query("Add 2 and 3.", ("5",), "numeric", "arithmetic")
    rows = [["5", "7"], ["5", "5"]]
    base = [["5", "5"], ["Sure! 5", "9"]]
    # prompt 1: a tie (½) and a wrong answer against a right one (0); prompt 2: terse and right, twice (1, 1)
    assert prompt_wins(ORACLE, [q, q], rows, base) == [0.25, 1.0]


def test_eval_takes_its_models_from_a_config_unless_the_command_line_names_some(tmp_path, model_dir, task_files):
    """A YAML's `models` (with what only a config can say, e.g. a plain-text prompt format) are
    evaluated as listed; models on the command line replace them."""
    config = tmp_path / "eval.yaml"
    config.write_text(json.dumps({  # JSON is YAML
        "models": [{"name": "plain", "path": str(model_dir)},
                   {"name": "text", "path": str(model_dir), "few_shot": 2, "prompt_format": "text"}],
        "task_files": [str(p) for p in task_files], "out": str(tmp_path / "from_config"),
        "max_new_tokens": 4, "bootstrap": 20}))
    assert run_cli("eval", "--config", str(config)).returncode == 0
    text = json.loads((tmp_path / "from_config" / "text.json").read_text())
    assert (text["few_shot"], text["prompt_format"]) == (2, "text")
    assert (tmp_path / "from_config" / "plain.json").is_file()
    result = run_cli("eval", "--config", str(config), f"other={model_dir}", "--out", str(tmp_path / "cli"))
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (tmp_path / "cli").glob("*.json")) == ["other.json", "summary.json"]


def test_eval_without_judged_prompts_reports_no_win_rate_rather_than_nan(tmp_path, model_dir, task_files):
    """win_prompts_per_task: 0 skips the judging: the win rates are null, the log and the report say
    '–', and the report has no win-rate figure. Nothing is written as NaN (strict JSON): task files
    are all held out, so the held-in mean is null too."""
    out = tmp_path / "results"
    result = run_cli("eval", f"mine={model_dir}", "--tasks", *map(str, task_files), "--out", str(out),
                     "max_new_tokens=4", "win_prompts_per_task=0", "--report")
    assert result.returncode == 0, result.stderr
    def no_nan(name):
        raise AssertionError(f"{name} in a results file")
    mine = json.loads((out / "mine.json").read_text(), parse_constant=no_nan)
    json.loads((out / "summary.json").read_text(), parse_constant=no_nan)
    assert mine["held_in_mean"] is None and mine["held_out_mean"] is not None
    assert mine["win_rate"] is None and mine["win_interval"] is None and mine["oracle_win_rate"] is None
    assert "win rate –" in result.stderr
    report = (model_dir.parent / "report.md").read_text()
    assert "| mine | – | – |" in report and "win_rate.png" not in report


def test_eval_errors_name_the_problem(tmp_path, model_dir, capsys):
    from instructgpt.cli import main  # in-process: the same exit code and stderr as the command
    assert main(["eval", str(model_dir), "--out", str(tmp_path)]) != 0
    assert "no tasks" in capsys.readouterr().err
    assert main(["eval", str(tmp_path / "missing"), "--tasks", str(tmp_path / "x.json")]) != 0
    err = capsys.readouterr().err
    assert "error:" in err and "Traceback" not in err


def test_a_prompted_model_keeps_the_name_it_is_given():
    from instructgpt.cli import _model_spec
    assert _model_spec("base=/x/pretrain", 3) == {"name": "base", "path": "/x/pretrain", "few_shot": 3}
    assert _model_spec("/x/pretrain", 3)["name"] == "pretrain-prompted"
    assert _model_spec("/x/sft")["name"] == "sft"


def test_task_files_become_held_out_tasks_whose_every_example_is_a_test(task_files):
    tasks = {t.name: t for t in unseen_tasks([str(p) for p in task_files], seed=0)}
    assert len(tasks["shout"].splits["test"]) == 8 and tasks["shout"].held_out
    ex = tasks["shout"].splits["test"][0]
    assert ex["messages"][-1]["content"] == ex["references"][0]


def test_few_shot_prompts_put_other_examples_first(task_files):
    task = unseen_tasks([str(task_files[0])], seed=0)[0]
    ex = task.splits["test"][3]
    messages = prompt_messages(task, ex, "test", 2)
    assert [m["role"] for m in messages] == ["user", "assistant", "user", "assistant", "user"]
    assert messages[-1] == ex["messages"][-2] and ex["messages"][-2] not in messages[:-1]
    assert prompt_messages(task, ex, "test", 0) == ex["messages"][:-1]


def test_text_prompts_for_pretrained_models_are_plain_answer_blocks(task_files):
    task = unseen_tasks([str(task_files[0])], seed=0)[0]
    ex = task.splits["test"][3]
    shots = prompt_messages(task, ex, "test", 2)
    text = prompt_text(task, ex, "test", 2)
    assert "<|im_start|>" not in text and text.endswith(ex["messages"][-2]["content"] + "\nAnswer:")
    assert text.startswith(f"{shots[0]['content']}\nAnswer: {shots[1]['content']}\n\n{shots[2]['content']}")
    assert prompt_text(task, ex, "test", 0) == ex["messages"][-2]["content"] + "\nAnswer:"


def test_kl_of_a_model_to_itself_is_zero_and_to_another_is_positive(model_dir, tokenizer):
    from instructgpt.models.build import load_model
    model = load_model(model_dir)
    torch.manual_seed(1)
    other = build_model(ModelConfig(preset="tiny"), tokenizer)
    with torch.no_grad():  # a peaked distribution: the policy's samples are unlikely under it
        other.lm_head.weight.mul_(30)
    prompts = [encode_prompt(tokenizer, [{"role": "user", "content": f"say {w}"}]) for w in ("a", "bb", "ccc")]
    samples = [r[0] for r in sample_many(model, tokenizer, prompts, pad_id=pad_id(tokenizer),
                                         stop_ids=stop_ids(tokenizer), max_new_tokens=6, batch_size=2,
                                         temperature=1.0, seed=3)]
    assert abs(kl_to(model, model, prompts, samples)) < 1e-4
    assert kl_to(other, model, prompts, samples) > 0.1


def test_bootstrap_interval_covers_the_mean_and_narrows_with_more_prompts():
    rng = np.random.default_rng(0)
    few, many = rng.integers(0, 2, 40).astype(float), rng.integers(0, 2, 4000).astype(float)
    lo, hi = bootstrap_interval(few, 500, seed=1)
    assert lo < few.mean() < hi
    lo2, hi2 = bootstrap_interval(many, 500, seed=1)
    assert hi2 - lo2 < (hi - lo) / 5
    assert bootstrap_interval(few, 500, seed=1) == (lo, hi)  # deterministic in the seed
    assert bootstrap_interval([1.0] * 10, 100) == (1.0, 1.0)


def test_group_means_weigh_each_task_once():
    assert group_means({"a": 1.0, "b": 0.0, "c": 0.5}, {"a": "x", "b": "x", "c": "y"}) == {"x": 0.5, "y": 0.5}


def test_pretraining_nll_is_the_mean_token_loss_on_validation_windows(tmp_path, model_dir, tokenizer,
                                                                      tokenizer_dir, corpus_file):
    import math

    from instructgpt.data.shards import build_shards
    from instructgpt.eval.evaluate import pretrain_nll
    from instructgpt.models.build import load_model
    from instructgpt.objectives.lm import causal_lm_loss
    _, val, _ = build_shards([str(corpus_file)], tokenizer, str(tokenizer_dir), tmp_path / "shards", 0.05,
                             progress=False)
    model = load_model(model_dir)
    nll = pretrain_nll(model, str(tmp_path / "shards"), windows=4)
    ids = torch.from_numpy(val.sequential_windows(4, 128))
    with torch.no_grad():
        loss, n = causal_lm_loss(model(input_ids=ids).logits, ids)
    assert nll == pytest.approx(float(loss) / n, rel=1e-5)
    assert abs(nll - math.log(model.config.vocab_size)) < 1.0  # an untrained model is near uniform
    small = build_model(ModelConfig(preset="tiny"), tokenizer)
    small.config.vocab_size = 10  # a model of another, smaller vocabulary is not scored
    assert pretrain_nll(small, str(tmp_path / "shards"), windows=4) is None
