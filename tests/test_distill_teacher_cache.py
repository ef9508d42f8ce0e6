"""Teacher cache: the bucketed top-k KL against an independent full-vocabulary KL, the stored outputs against
an independent teacher forward, resuming an interrupted build, reuse and refusal of a mismatched cache."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from ckptkit.distill.data import MaskingCollator
from ckptkit.distill.streaming import ID_STRIDE, StreamingCorpus
from ckptkit.distill.teacher_cache import TeacherCache, TeacherOutputs
from ckptkit.distill.teacher_cache_build import build_teacher_cache, cache_key
from ckptkit.distill.topk_kl import bucketed_kl, bucketed_topk
from ckptkit.distill.trainer import DistillOptions, _Step, compute_terms
from ckptkit.errors import UsageError
from distill_helpers import make_tokenizer, sentence, tiny_config

pytestmark = pytest.mark.xdist_group("distill_teacher_cache")


def numpy_kl(p_logits: np.ndarray, q_logits: np.ndarray, temperature: float) -> np.ndarray:
    """Full-vocabulary KL(p || q) per position, float64, from softmaxes written out here."""
    def log_softmax(x):
        x = x.astype(np.float64) / temperature
        x = x - x.max(-1, keepdims=True)
        return x - np.log(np.exp(x).sum(-1, keepdims=True))
    lp, lq = log_softmax(p_logits), log_softmax(q_logits)
    return (np.exp(lp) * (lp - lq)).sum(-1)


def numpy_bucketed_kl(p_logits, q_logits, k, temperature):
    """KL of the (top-k of p + rest) coarsening of both distributions, float64, written out here."""
    def softmax(x):
        x = x.astype(np.float64) / temperature
        e = np.exp(x - x.max(-1, keepdims=True))
        return e / e.sum(-1, keepdims=True)
    p, q = softmax(p_logits), softmax(q_logits)
    top = np.argsort(-p, axis=-1)[..., :k]
    pk, qk = np.take_along_axis(p, top, -1), np.take_along_axis(q, top, -1)
    pb = np.concatenate([pk, 1 - pk.sum(-1, keepdims=True)], -1)
    qb = np.concatenate([qk, 1 - qk.sum(-1, keepdims=True)], -1)
    return np.where(pb > 0, pb * np.log(np.where(pb > 0, pb, 1) / qb), 0).sum(-1)


def ce_term(student_logits, teacher: TeacherOutputs, temperature=2.0):
    """The trainer's soft-target term on every position (what distill train computes from a cache)."""
    mask = torch.ones(student_logits.shape[:2], dtype=torch.long)
    step = _Step(student=type("Out", (), {"logits": student_logits})(), teacher=teacher,
                 labels=torch.full(student_logits.shape[:2], -100), attention_mask=mask,
                 options=DistillOptions(weights=DistillOptions().weights.__class__(ce=1.0, mlm=0.0, cos=0.0),
                                        temperature=temperature))
    return compute_terms(step)["ce"]


def cached(logits, k, temperature=2.0):
    top = bucketed_topk(logits, k=k, temperature=temperature)
    return TeacherOutputs(logits=top.logprobs, indices=top.indices, rest=top.rest)


def test_identical_logits_give_zero_with_top_8():
    torch.manual_seed(0)
    logits = torch.randn(2, 6, 83) * 3
    # the old top-k KL (softmax over the top 8 only) gave 1.78 here instead of 0
    assert float(ce_term(logits, cached(logits, 8))) == 0.0


def test_k_covering_the_vocabulary_equals_the_full_kl():
    torch.manual_seed(1)
    s, t = torch.randn(3, 5, 40) * 2, torch.randn(3, 5, 40) * 2
    full = numpy_kl(t.numpy(), s.numpy(), 2.0).mean() * 4
    assert float(ce_term(s, cached(t, 40))) == pytest.approx(full, rel=1e-5)
    s.requires_grad_(True)
    ce_term(s, cached(t, 40)).backward()
    assert torch.isfinite(s.grad).all()


@pytest.mark.parametrize("k", [1, 4, 16])
def test_partial_k_is_the_kl_of_the_buckets_and_at_most_the_full_kl(k):
    torch.manual_seed(k)
    s, t = torch.randn(4, 7, 60) * 2, torch.randn(4, 7, 60) * 2
    got = bucketed_kl(s, *bucketed_topk(t, k=k, temperature=2.0), temperature=2.0)
    want = numpy_bucketed_kl(t.numpy(), s.numpy(), k, 2.0).mean() * 4
    assert float(got) == pytest.approx(want, rel=1e-4)
    assert 0 < float(got) <= numpy_kl(t.numpy(), s.numpy(), 2.0).mean() * 4


# ---------------------------------------------------------------------------------------------- build
@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from transformers import BertForMaskedLM

    root = tmp_path_factory.mktemp("cache_world")
    tok = make_tokenizer()
    torch.manual_seed(0)
    teacher = BertForMaskedLM(tiny_config(len(tok), layers=2, hidden=32)).eval()
    teacher.save_pretrained(root / "teacher")
    tok.save_pretrained(root / "teacher")
    rng = random.Random(0)
    (root / "corpus.txt").write_text("\n".join(sentence(rng) for _ in range(240)) + "\n")
    return {"root": root, "tok": tok, "teacher": teacher}


def setup_build(world, *, seed=42, piece_bytes=2000, value_dtype="float32", max_seq_length=24):
    tok = world["tok"]
    corpus = StreamingCorpus([world["root"] / "corpus.txt"], tok, max_seq_length=max_seq_length,
                             piece_bytes=piece_bytes)
    collator = MaskingCollator(pad_id=tok.pad_token_id, mask_id=tok.mask_token_id, special_ids=tok.all_special_ids,
                               vocab_size=len(tok), seed=seed, fixed=True)
    key = cache_key(teacher_dir=world["root"] / "teacher", corpus=corpus, collator=collator, top_k=8,
                    temperature=2.0, value_dtype=value_dtype)
    return dict(corpus=corpus, teacher=world["teacher"], collator=collator, key=key, top_k=8, temperature=2.0,
                hidden_indices=[2], batch_size=5, value_dtype=value_dtype)


def test_stored_outputs_are_the_teachers_on_the_masked_blocks(world, tmp_path):
    options = setup_build(world)
    stats = build_teacher_cache(tmp_path / "c", **options)
    assert stats.pieces_built == len(options["corpus"].pieces) > 2 and stats.examples > 10
    # f32 log-probs, u16 ids, f32 rest, f32 hidden per token, plus one int64 offset per block
    per_token = 8 * (4 + 2) + 4 + 32 * 4
    assert stats.bytes == stats.tokens * per_token + 8 * (stats.examples + stats.pieces_built)
    cache = TeacherCache.open(tmp_path / "c", key=options["key"], need_hidden=[2], need_top_k=True)
    rows = [e for e in options["corpus"].iter_shard(0, 1)][:6]
    batch = options["collator"](rows)
    with torch.no_grad():   # an independent forward of the same masked blocks
        out = world["teacher"](input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                               output_hidden_states=True)
    seq = batch["input_ids"].shape[1]
    stored = cache.lookup(batch["example_id"], seq_len=seq)
    valid = batch["attention_mask"].bool()
    want = torch.log_softmax(out.logits / 2.0, -1).topk(8, -1)
    torch.testing.assert_close(stored.logits[valid], want.values[valid], atol=1e-5, rtol=1e-5)
    assert torch.equal(stored.indices[valid], want.indices[valid])
    torch.testing.assert_close(stored.hidden[2][valid], out.hidden_states[2][valid], atol=1e-5, rtol=1e-5)
    # the rest bucket: the teacher's mass outside its top 8, and the cached KL of the teacher itself is 0
    rest = torch.log1p(-want.values.exp().sum(-1))
    torch.testing.assert_close(stored.rest[valid], rest[valid], atol=1e-4, rtol=1e-4)
    assert float(bucketed_kl(out.logits, stored.logits, stored.indices, stored.rest, mask=valid)) < 1e-6


def test_float16_storage_is_close_and_still_a_kl(world, tmp_path):
    options = setup_build(world, value_dtype="float16")
    build_teacher_cache(tmp_path / "c", **options)
    cache = TeacherCache.open(tmp_path / "c", key=options["key"])
    assert 8 * 4 + 2 + 32 * 2 <= cache.bytes_per_token < 8 * 4 + 2 + 32 * 2 + 1
    rows = list(options["corpus"].iter_shard(0, 1))[:4]
    batch = options["collator"](rows)
    stored = cache.lookup(batch["example_id"], seq_len=batch["input_ids"].shape[1])
    with torch.no_grad():
        logits = world["teacher"](input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    kl = bucketed_kl(logits, stored.logits, stored.indices, stored.rest, mask=batch["attention_mask"])
    assert 0 <= float(kl) < 1e-4


def tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name not in ("cache.json", "piece.json")}


def test_an_interrupted_build_resumes_to_the_same_cache(world, tmp_path, monkeypatch):
    options = setup_build(world)
    build_teacher_cache(tmp_path / "whole", **options)
    calls = {"n": 0}
    forward = type(world["teacher"]).forward

    def failing(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt
        return forward(self, *args, **kwargs)

    monkeypatch.setattr(type(world["teacher"]), "forward", failing)
    with pytest.raises(KeyboardInterrupt):
        build_teacher_cache(tmp_path / "cut", **options)
    done = sorted(p.name for p in (tmp_path / "cut" / "pieces").iterdir())
    assert done and not any(name.endswith(".tmp") for name in done) and len(done) < len(options["corpus"].pieces)
    with pytest.raises(UsageError, match="teacher cache is incomplete"):
        TeacherCache.open(tmp_path / "cut", key=options["key"])
    monkeypatch.setattr(type(world["teacher"]), "forward", forward)
    stats = build_teacher_cache(tmp_path / "cut", **options)
    assert stats.pieces_reused == len(done) and stats.pieces_built == len(options["corpus"].pieces) - len(done)
    assert tree(tmp_path / "cut") == tree(tmp_path / "whole")
    meta = json.loads((tmp_path / "cut" / "cache.json").read_text())
    assert meta["complete"] and meta["examples"] == json.loads((tmp_path / "whole" / "cache.json").read_text())[
        "examples"]


def test_a_built_cache_is_reused_and_a_mismatched_one_refused(world, tmp_path):
    options = setup_build(world)
    build_teacher_cache(tmp_path / "c", **options)
    again = build_teacher_cache(tmp_path / "c", **options)
    assert again.pieces_built == 0 and again.pieces_reused == len(options["corpus"].pieces)
    other = setup_build(world, seed=7, max_seq_length=20)
    with pytest.raises(UsageError) as refused:
        TeacherCache.open(tmp_path / "c", key=other["key"])
    message = str(refused.value)
    assert "teacher cache was built for other settings (max_seq_length: 24 in the cache, 20 now; seed: 42" in message
    assert "\n" not in message
    with pytest.raises(UsageError, match="max_seq_length: 24 in the cache, 20 now"):
        build_teacher_cache(tmp_path / "c", **other)
    rebuilt = build_teacher_cache(tmp_path / "c", **other, overwrite=True)
    assert rebuilt.pieces_built == len(other["corpus"].pieces)
    with pytest.raises(UsageError, match="holds no hidden states \\[1\\]"):
        TeacherCache.open(tmp_path / "c", key=other["key"], need_hidden=[1, 2])


def test_lookup_serves_examples_of_every_piece_in_any_order(world, tmp_path):
    options = setup_build(world)
    build_teacher_cache(tmp_path / "c", **options)
    cache = TeacherCache.open(tmp_path / "c")
    ids = [e["example_id"] for e in options["corpus"].iter_shard(0, 1)]
    assert len({i // ID_STRIDE for i in ids}) > 2
    shuffled = random.Random(0).sample(ids, len(ids))
    together = cache.lookup(shuffled[:9], seq_len=24)
    one_by_one = [cache.lookup([i], seq_len=24) for i in shuffled[:9]]
    assert torch.equal(together.indices, torch.cat([o.indices for o in one_by_one]))
    assert cache.rows_read == 18


def test_the_key_follows_the_teachers_content_not_its_path(world, tmp_path):
    import shutil

    from transformers import BertForMaskedLM

    options = setup_build(world)
    build_teacher_cache(tmp_path / "c", **options)
    copy = tmp_path / "teacher-copy"
    shutil.copytree(world["root"] / "teacher", copy)
    same = cache_key(teacher_dir=copy, corpus=options["corpus"], collator=options["collator"], top_k=8,
                     temperature=2.0, value_dtype="float32")
    TeacherCache.open(tmp_path / "c", key=same)   # a copy of the teacher is the same teacher
    torch.manual_seed(1)
    BertForMaskedLM(world["teacher"].config).save_pretrained(copy)   # other weights, same shapes
    other = cache_key(teacher_dir=copy, corpus=options["corpus"], collator=options["collator"], top_k=8,
                      temperature=2.0, value_dtype="float32")
    with pytest.raises(UsageError, match=r"other settings \(teacher: \w+ in the cache, \w+ now\)"):
        TeacherCache.open(tmp_path / "c", key=other)
