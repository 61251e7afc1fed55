"""Task heads: the GRU encoder, task-balanced head loss, a tiny multi-task run, save/load, classify()."""
import contextlib
import json
import math

import pytest
import torch

from instructgpt.config import ModelConfig, SFTConfig, UserError, load_config
from instructgpt.config.schema import HeadsConfig
from instructgpt.data.sft import TaskData, load_task_data
from instructgpt.inference import classify
from instructgpt.models.build import build_model
from instructgpt.models.gru import GRUEncoder
from instructgpt.models.heads import (MultiTaskClassifier, build_classifier, encode_texts, load_classifier, pad_batch,
                                      save_classifier)
from instructgpt.objectives.heads import classification_losses, weighted_classification_loss
from instructgpt.objectives.sft import STEP_WEIGHTS, Reduction
from instructgpt.stages import sft_heads
from instructgpt.utils.logging import read_metrics
from instructgpt.utils.prompt import render_instruction

TINY_TASKS = ("review_sentiment", "statement_sentiment", "food_category")


@contextlib.contextmanager
def one_thread():
    """Tiny models train faster on one thread, and far faster when other jobs share the cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("pooling", ["mean", "last"])
@pytest.mark.parametrize("bidirectional", [True, False])
def test_gru_shapes_and_padding_does_not_change_the_vector(pooling, bidirectional):
    torch.manual_seed(0)
    enc = GRUEncoder(vocab_size=50, embed_dim=8, hidden=6, layers=2, bidirectional=bidirectional,
                     pooling=pooling, dropout=0.0, pad_id=0).eval()
    a, b = [5, 7, 9, 11], [3, 4]
    ids, mask = pad_batch([a, b], pad_id=0)                                       # (2, 4)
    wide_ids, wide_mask = pad_batch([a + [0] * 6, b], pad_id=0)                    # padded to 10
    wide_mask[0, 4:] = 0
    out = enc(ids, mask)
    assert out.shape == (2, enc.output_size) == (2, 6 * (2 if bidirectional else 1))
    torch.testing.assert_close(enc(wide_ids, wide_mask), out)
    alone = enc(*pad_batch([b], pad_id=0))                                          # no batch-mate at all
    torch.testing.assert_close(alone[0], out[1])


def test_gru_last_pooling_is_the_final_state_of_each_direction():
    torch.manual_seed(0)
    enc = GRUEncoder(vocab_size=20, embed_dim=4, hidden=3, bidirectional=True, pooling="last", dropout=0.0).eval()
    ids = torch.tensor([[2, 3, 4]])
    outputs, _ = enc.gru(enc.embed(ids))                                            # (1, 3, 6) unpacked reference
    expected = torch.cat([outputs[0, -1, :3], outputs[0, 0, 3:]])                   # forward at end, backward at start
    torch.testing.assert_close(enc(ids, torch.ones_like(ids))[0], expected)


def test_task_balanced_head_loss_by_hand():
    # Tasks 0 (2 labels) x3 and 1 (3 labels) x1 in one step: N = 2, M = (3, 1)
    # w = 1/(N·M_i) = (1/6, 1/6, 1/6, 1/2). Zero logits: CE = ln 2 for task 0, ln 3 for task 1,
    # so L = 3·(1/6)·ln 2 + (1/2)·ln 3 = ln 6 / 2 = (mean over task 0 + mean over task 1) / 2.
    task_ids = torch.tensor([0, 0, 0, 1])
    weights = STEP_WEIGHTS[Reduction.task_balanced](task_ids, torch.ones_like(task_ids))
    torch.testing.assert_close(weights, torch.tensor([1 / 6, 1 / 6, 1 / 6, 1 / 2]))
    ninf = float("-inf")
    logits = torch.tensor([[0.0, 0.0, ninf], [0.0, 0.0, ninf], [0.0, 0.0, ninf], [0.0, 0.0, 0.0]])
    labels = torch.tensor([0, 1, 1, 2])
    torch.testing.assert_close(classification_losses(logits, labels),
                               torch.tensor([math.log(2)] * 3 + [math.log(3)]))
    whole = weighted_classification_loss(logits, labels, weights)
    assert whole.item() == pytest.approx(math.log(6) / 2)
    split = sum(weighted_classification_loss(logits[i:i + 1], labels[i:i + 1], weights[i:i + 1]) for i in range(4))
    assert split.item() == pytest.approx(whole.item())  # 1x4 == 4x1 micro-batches


def test_heads_mask_other_tasks_labels_and_gradients_reach_only_their_head():
    torch.manual_seed(0)
    enc = GRUEncoder(vocab_size=30, embed_dim=4, hidden=4, bidirectional=False, dropout=0.0)
    model = MultiTaskClassifier(enc, 4, {"a": ["x", "y"], "b": ["p", "q", "r"]}, dropout=0.0)
    ids, mask = pad_batch([[1, 2, 3], [4, 5]], pad_id=0)
    logits = model(ids, mask, torch.tensor([0, 0]))
    assert logits.shape == (2, 3) and torch.isinf(logits[:, 2]).all()
    weighted_classification_loss(logits, torch.tensor([0, 1]), torch.tensor([0.5, 0.5])).backward()
    assert model.heads[0].weight.grad.abs().sum() > 0 and model.heads[1].weight.grad is None


def test_record_tasks_get_labels_from_their_train_answers():
    def task(answers, kind="generation", labels=None):
        ex = [{"task": "t", "messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": a}],
               "references": [a]} for a in answers]
        return TaskData("t", "c", kind, "exact_match", labels, False, {"train": ex, "val": [], "test": []})
    assert sft_heads.inferred_labels(task(["yes", "no"] * 20)) == ("no", "yes")
    assert sft_heads.inferred_labels(task([f"answer {i}" for i in range(40)])) is None      # open answers
    assert sft_heads.inferred_labels(task(["3", "4"] * 20, kind="qa")) is None              # built-in, not labelled
    with pytest.raises(UserError, match="no classification task"):
        sft_heads.classification_tasks([task([f"answer {i}" for i in range(40)])])


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, tokenizer_dir):
    """A small GRU trained on three built-in classification tasks (about 10 s on 2 cores)."""
    root = tmp_path_factory.mktemp("heads")
    cfg = load_config(SFTConfig, None, [
        "mode=heads", f"out={root / 'gru'}", f"tokenizer={tokenizer_dir}", "tasks.builtin=true",
        "tasks.n_train=200", "tasks.n_val=20", "tasks.n_test=40", "heads.embed_dim=64", "heads.hidden=64",
        "train.max_steps=160", "train.batch_size=32", "train.eval_every=80", "train.save_every=80",
        "train.log_every=10", "train.progress=false", "optim.lr=5e-3", "optim.warmup_steps=5",
        "optim.weight_decay=0.0", "mix.strategy=balanced"])
    tasks = [t for t in load_task_data(cfg) if t.name in TINY_TASKS]
    with one_thread():
        return sft_heads.run(cfg, tasks), tasks


def test_tiny_gru_heads_learn_three_tasks(tiny_run):
    out, _ = tiny_run
    scores = json.loads((out / "scores.json").read_text())
    assert set(scores["tasks"]) == set(TINY_TASKS)
    for name, row in scores["tasks"].items():
        assert row["accuracy"] >= 0.9, (name, row)
        assert row["n"] == 40
    for name in ("model.safetensors", "heads.json", "tasks.json", "tokenizer.json", "run.yaml", "complete.json"):
        assert (out / name).is_file(), name
    assert (out / "checkpoints").is_dir()  # kept for --resume
    evals = [r for r in read_metrics(out.parent / "metrics" / "gru.jsonl") if "eval/mean_accuracy" in r]
    assert [r["step"] for r in evals] == [80, 160]
    assert all(f"eval/{name}/accuracy" in evals[-1] for name in TINY_TASKS)
    meta = json.loads((out / "tasks.json").read_text())
    assert meta["food_category"]["labels"] == ["fruit", "vegetable", "dairy"]
    assert meta["food_category"]["instructions"] and meta["food_category"]["cluster"] == "categorize"


def test_classify_a_heads_folder(tiny_run):
    out, tasks = tiny_run
    food = next(t for t in tasks if t.name == "food_category")
    texts = ["Mia put some bananas in the basket.", "On Monday, Leo bought some carrots at the market."]
    results = classify(out, texts, "food_category")
    assert [r["label"] for r in results] == ["fruit", "vegetable"]
    for r in results:
        assert set(r["probs"]) == set(food.labels) and sum(r["probs"].values()) == pytest.approx(1.0)
    two = classify(out, texts, "food_category", labels=["fruit", "dairy"])
    assert set(two[0]["probs"]) == {"fruit", "dairy"} and sum(two[0]["probs"].values()) == pytest.approx(1.0)
    with pytest.raises(UserError, match="known: food_category, review_sentiment, statement_sentiment"):
        classify(out, texts, "no_such_task")
    with pytest.raises(UserError, match="no head output for label"):
        classify(out, texts, "food_category", labels=["meat"])


def test_save_load_round_trip_gives_identical_logits(tmp_path, tokenizer, tokenizer_dir):
    torch.manual_seed(0)
    bert_dir = tmp_path / "mlm"
    build_model(ModelConfig(arch="bert", preset="tiny"), tokenizer).save_pretrained(bert_dir)
    tokenizer.save_pretrained(bert_dir)
    labels = {"a": ["x", "y"], "b": ["p", "q", "r"]}
    texts = ["The cat sat on the mat.", "A short one.", "Another sentence that is a little longer than those."]
    for cfg in (HeadsConfig(encoder="gru", embed_dim=16, hidden=8, pooling="last"),
                HeadsConfig(encoder="bert", path=str(bert_dir), pooling="mean", max_len=8)):
        model = build_classifier(cfg, tokenizer, labels).eval()
        ids, mask = pad_batch(encode_texts(tokenizer, texts, cfg.max_len), tokenizer.pad_token_id)
        task_ids = torch.tensor([0, 1, 1])
        folder = save_classifier(tmp_path / cfg.encoder, model, tokenizer, {"a": {"labels": ["x", "y"]}})
        loaded, loaded_tok = load_classifier(folder)
        assert loaded_tok.encode("The cat") == tokenizer.encode("The cat")
        with torch.no_grad():
            torch.testing.assert_close(loaded(ids, mask, task_ids), model(ids, mask, task_ids), rtol=0, atol=0)
        assert max(len(x) for x in encode_texts(tokenizer, texts, cfg.max_len)) <= cfg.max_len


def test_frozen_encoder_is_unchanged_by_training(tmp_path, tokenizer, tokenizer_dir):
    torch.manual_seed(0)
    bert_dir = tmp_path / "mlm"
    build_model(ModelConfig(arch="bert", preset="tiny"), tokenizer).save_pretrained(bert_dir)
    tokenizer.save_pretrained(bert_dir)
    cfg = load_config(SFTConfig, None, [
        "mode=heads", f"out={tmp_path / 'frozen'}", "tasks.builtin=true", "tasks.n_train=40", "tasks.n_val=8",
        "tasks.n_test=8", "heads.encoder=bert", f"heads.path={bert_dir}", "heads.freeze=true",
        "train.max_steps=5", "train.batch_size=8", "train.progress=false", "train.save_every=0"])
    with one_thread():
        out = sft_heads.run(cfg, [t for t in load_task_data(cfg) if t.name in TINY_TASKS[:2]])
    trained, _ = load_classifier(out)
    from transformers import AutoModel
    start = AutoModel.from_pretrained(bert_dir).state_dict()
    for name, value in trained.encoder.model.state_dict().items():
        torch.testing.assert_close(value, start[name], rtol=0, atol=0)


@pytest.fixture(scope="module")
def lm_dir(tmp_path_factory, tokenizer):
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("lm") / "sft"
    build_model(ModelConfig(arch="llama", preset="tiny"), tokenizer).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    (folder / "tasks.json").write_text(json.dumps({
        "mood": {"labels": ["positive", "negative", "not sure at all"], "instructions": ["How does this feel? {input}"]},
        "free": {"labels": None, "instructions": ["Say something."]}}))
    return folder


def reference_logprob(model, tokenizer, prompt: str, label: str) -> float:
    """log P(label <|im_end|> | ChatML prompt), one unpadded sequence at a time."""
    from instructgpt.tokenizer.chat import encode_chat
    ids, _ = encode_chat(tokenizer, [{"role": "user", "content": prompt}], add_generation_prompt=True)
    answer = tokenizer.encode(label, add_special_tokens=False) + [tokenizer.convert_tokens_to_ids("<|im_end|>")]
    seq = torch.tensor([ids + answer])
    with torch.no_grad():
        logprobs = model(input_ids=seq).logits[0].log_softmax(-1)
    return sum(logprobs[len(ids) + k - 1, tok].item() for k, tok in enumerate(answer))


def test_classify_a_causal_lm_folder_picks_the_most_likely_label(lm_dir, tokenizer):
    from transformers import AutoModelForCausalLM
    model = AutoModelForCausalLM.from_pretrained(lm_dir).eval()
    texts = ["I loved it.", "The soup was cold and the waiter rude, never again."]
    labels = ["positive", "negative", "not sure at all"]
    results = classify(lm_dir, texts, "mood", batch_size=4)  # 6 pairs in batches of 4: padding in play
    for text, r in zip(texts, results):
        ref = torch.tensor([reference_logprob(model, tokenizer, render_instruction("How does this feel? {input}", text),
                                              label) for label in labels])
        assert sum(r["probs"].values()) == pytest.approx(1.0)
        assert r["label"] == labels[int(ref.argmax())]
        torch.testing.assert_close(torch.tensor([r["probs"][lab] for lab in labels]), ref.softmax(0),
                                   rtol=1e-4, atol=1e-5)
    assert set(classify(lm_dir, texts[:1], "free", labels=["yes", "no"])[0]["probs"]) == {"yes", "no"}


def test_classify_errors_name_the_fix(lm_dir):
    with pytest.raises(UserError, match=r"unknown task 'weather' \(known: free, mood\)"):
        classify(lm_dir, ["x"], "weather")
    with pytest.raises(UserError, match="has no labels"):
        classify(lm_dir, ["x"], "free")
    with pytest.raises(UserError, match="neither a task-heads folder"):
        classify(lm_dir.parent, ["x"], "mood")
