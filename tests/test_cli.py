"""The command line: --help stays light; bad input is one line, exit code 2, no traceback."""
import json
import subprocess
import sys

from conftest import ROOT, run_cli


def assert_one_line_error(result, *needles):
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.strip().splitlines() if not line.startswith("[instructgpt]")]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_help_does_not_import_torch():
    code = ("import sys\nfrom instructgpt.cli import build_parser\n"
            "try:\n    build_parser().parse_args(['--help'])\nexcept SystemExit:\n    pass\n"
            "assert 'torch' not in sys.modules, 'torch imported'\nimport instructgpt.config\n"
            "assert 'torch' not in sys.modules")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env={"PYTHONPATH": str(ROOT / "src")})
    assert result.returncode == 0, result.stderr
    assert "pretrain" in result.stdout and "import" in result.stdout


def test_config_typo(tmp_path):
    f = tmp_path / "tiny.yaml"
    f.write_text("optim:\n  lrr: 0.1\n")
    assert_one_line_error(run_cli("pretrain", str(f)), "unknown key 'optim.lrr'", str(f), "'optim.lr'")


def test_unknown_model_preset(tmp_path):
    assert_one_line_error(run_cli("pretrain", "pretrain/tiny", "model.preset=huge"), "model.preset", "huge")


def test_missing_corpus_file(tmp_path, tokenizer_dir):
    missing = tmp_path / "nope.txt"
    result = run_cli("pretrain", "pretrain/tiny", f"out={tmp_path / 'o'}", f"tokenizer={tokenizer_dir}",
                     f"corpus=[{missing}]")
    assert_one_line_error(result, str(missing), "corpus")


def test_malformed_task_file(tmp_path):
    bad = tmp_path / "bad_task.json"
    bad.write_text(json.dumps({"name": "t", "kind": "poetry", "cluster": "c", "metric": "exact_match",
                               "instructions": ["Do it."], "examples": []}))
    result = run_cli("tasks", "list", "--config", "tasks/default", f"files=[{bad}]")
    assert_one_line_error(result, str(bad), "kind")
    broken = tmp_path / "broken.json"
    broken.write_text('{"name": "t",\n "kind": }')
    assert_one_line_error(run_cli("tasks", "list", f"files=[{broken}]"), f"{broken}:2", "invalid JSON")


def test_tasks_list_and_show():
    result = run_cli("tasks", "list")
    assert result.returncode == 0, result.stderr
    assert "held-out" in result.stdout and "tasks," in result.stdout
    name = result.stdout.splitlines()[1].split()[0]
    shown = run_cli("tasks", "show", name)
    assert shown.returncode == 0 and "--- prompt ---" in shown.stdout
    assert_one_line_error(run_cli("tasks", "show", name + "x"), "did you mean")


def test_overrides_may_follow_options(tmp_path, tokenizer_dir, corpus_file):
    result = run_cli("pretrain", "pretrain/tiny", "--resume", f"out={tmp_path / 'o'}", f"tokenizer={tokenizer_dir}",
                     f"corpus=[{corpus_file}]", "train.max_steps=2", "train.seq_len=16", "train.batch_size=2",
                     "train.progress=false")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "o" / "complete.json").is_file()
    assert run_cli("pretrain", "pretrain/tiny", "--bogus").returncode == 2


def test_run_help_lists_the_pipeline_stages():
    from instructgpt import cli, pipeline
    assert cli.STAGES == pipeline.STAGES
    assert set(pipeline.OUTPUTS) == set(pipeline.STAGES)
