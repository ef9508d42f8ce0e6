"""Each distillation loss against a hand computation in NumPy, plus the masking collator's rules."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ckptkit.distill import losses
from ckptkit.distill.data import MaskingCollator, token_mask_weights

RNG = np.random.default_rng(0)


def np_log_softmax(x: np.ndarray) -> np.ndarray:
    x = x - x.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


def test_defaults_are_distilberts():
    w = losses.LossWeights()
    assert (w.ce, w.mlm, w.cos, w.mse, w.attn) == (5.0, 2.0, 1.0, 0.0, 0.0)


@pytest.mark.parametrize("temperature", [1.0, 2.0, 4.0])
def test_soft_target_kl_matches_numpy(temperature):
    s, t = RNG.normal(size=(2, 5, 11)), RNG.normal(size=(2, 5, 11)) * 2
    mask = np.array([[1, 1, 0, 1, 0], [1, 0, 0, 1, 1]], dtype=bool)
    ps, pt = np_log_softmax(s[mask] / temperature), np_log_softmax(t[mask] / temperature)
    expected = (np.exp(pt) * (pt - ps)).sum(-1).mean() * temperature**2
    got = losses.soft_target_kl(torch.tensor(s), torch.tensor(t), temperature=temperature, mask=torch.tensor(mask))
    assert float(got) == pytest.approx(expected, rel=1e-5)
    unmasked = (np.exp(np_log_softmax(t / temperature)) * (np_log_softmax(t / temperature)
                - np_log_softmax(s / temperature))).sum(-1).mean() * temperature**2
    assert float(losses.soft_target_kl(torch.tensor(s), torch.tensor(t), temperature=temperature)) == \
        pytest.approx(unmasked, rel=1e-5)


def test_mlm_loss_matches_numpy():
    s = RNG.normal(size=(2, 4, 7))
    labels = np.array([[3, -100, 0, -100], [-100, 6, -100, -100]])
    keep = labels != -100
    logp = np_log_softmax(s[keep])
    expected = -logp[np.arange(keep.sum()), labels[keep]].mean()
    assert float(losses.mlm_loss(torch.tensor(s), torch.tensor(labels))) == pytest.approx(expected, rel=1e-6)


def test_hidden_cosine_excludes_padding():
    s, t = RNG.normal(size=(2, 3, 6)), RNG.normal(size=(2, 3, 6))
    mask = np.array([[1, 1, 0], [1, 0, 0]], dtype=bool)
    a, b = s[mask], t[mask]
    expected = (1 - (a * b).sum(-1) / np.linalg.norm(a, axis=-1) / np.linalg.norm(b, axis=-1)).mean()
    got = losses.hidden_cosine_loss(torch.tensor(s), torch.tensor(t), torch.tensor(mask))
    assert float(got) == pytest.approx(expected, rel=1e-6)
    t[~mask] = 1e6  # padding never counts
    assert float(losses.hidden_cosine_loss(torch.tensor(s), torch.tensor(t), torch.tensor(mask))) == \
        pytest.approx(expected, rel=1e-6)


def test_mapped_hidden_mse_pairs_student_layer_with_its_teacher_layer():
    student = [RNG.normal(size=(1, 4, 3)) for _ in range(3)]   # embeddings + 2 layers
    teacher = [RNG.normal(size=(1, 4, 3)) for _ in range(7)]   # embeddings + 6 layers
    mask = np.array([[1, 1, 1, 0]], dtype=bool)
    layer_map = [1, 5]
    expected = np.mean([((student[i + 1][mask] - teacher[j + 1][mask]) ** 2).mean() for i, j in enumerate(layer_map)])
    got = losses.mapped_hidden_mse([torch.tensor(x) for x in student], [torch.tensor(x) for x in teacher],
                                   layer_map, torch.tensor(mask))
    assert float(got) == pytest.approx(expected, rel=1e-6)


def test_attention_kl_matches_numpy():
    def probs(shape):
        return np.exp(np_log_softmax(RNG.normal(size=shape)))
    student = [probs((2, 2, 3, 3))]
    teacher = [probs((2, 2, 3, 3)), probs((2, 2, 3, 3))]
    mask = np.array([[1, 1, 0], [1, 1, 1]])
    per_query = (teacher[1] * (np.log(teacher[1]) - np.log(student[0]))).sum(-1)  # [b, h, q]
    weights = np.broadcast_to(mask[:, None, :], per_query.shape)
    expected = (per_query * weights).sum() / weights.sum()
    got = losses.attention_kl([torch.tensor(x) for x in student], [torch.tensor(x) for x in teacher], [1],
                              torch.tensor(mask))
    assert float(got) == pytest.approx(expected, rel=1e-5)


def test_pooled_cosine_matches_numpy():
    s, t = RNG.normal(size=(2, 4, 5)), RNG.normal(size=(2, 4, 5))
    mask = np.array([[1, 1, 1, 0], [1, 1, 0, 0]])
    ms = (s * mask[..., None]).sum(1) / mask.sum(1, keepdims=True)
    mt = (t * mask[..., None]).sum(1) / mask.sum(1, keepdims=True)
    expected = (1 - (ms * mt).sum(-1) / np.linalg.norm(ms, axis=-1) / np.linalg.norm(mt, axis=-1)).mean()
    got = losses.pooled_cosine_loss(torch.tensor(s), torch.tensor(t), torch.tensor(mask))
    assert float(got) == pytest.approx(expected, rel=1e-6)


def test_top1_agreement():
    s, t = RNG.normal(size=(3, 5, 4)), RNG.normal(size=(3, 5, 4))
    assert float(losses.top1_agreement(torch.tensor(s), torch.tensor(t))) == \
        pytest.approx((s.argmax(-1) == t.argmax(-1)).mean())


# ------------------------------------------------------------------ masking
SPECIAL = (0, 1, 2, 3, 4)


def make_collator(**kw):
    return MaskingCollator(pad_id=0, mask_id=4, special_ids=SPECIAL, vocab_size=50, **kw)


def test_masking_rate_80_10_10_and_specials_never_masked():
    collate = make_collator(seed=3)
    ids = [2, *range(5, 45), 3]
    counts = {"mask": 0, "random": 0, "kept": 0}
    targets = 0
    for example in range(400):
        masked, labels = collate.mask_row(np.array(ids), example)
        chosen = labels != -100
        assert not chosen[0] and not chosen[-1]            # [CLS]/[SEP] never targets
        assert chosen.sum() == 6                            # round(0.15 * 40)
        targets += chosen.sum()
        counts["mask"] += (masked[chosen] == 4).sum()
        counts["kept"] += (masked[chosen] == labels[chosen]).sum()
        counts["random"] += ((masked[chosen] != 4) & (masked[chosen] != labels[chosen])).sum()
        assert (masked[~chosen] == np.array(ids)[~chosen]).all()
    assert counts["mask"] / targets == pytest.approx(0.8, abs=0.03)
    assert (counts["random"] + counts["kept"]) / targets == pytest.approx(0.2, abs=0.03)
    assert counts["kept"] / targets > 0.07  # 10% kept plus random draws of the same token


def test_masking_is_deterministic_per_example_and_epoch():
    a, b = make_collator(seed=1), make_collator(seed=1)
    row = [{"input_ids": [2, *range(5, 30), 3], "example_id": 7}]
    assert torch.equal(a(row)["input_ids"], b(row)["input_ids"])
    b.epoch = 1
    assert not torch.equal(a(row)["labels"], b(row)["labels"])
    fixed = make_collator(seed=1, fixed=True)
    first = fixed(row)["labels"]
    fixed.epoch = 5
    assert torch.equal(first, fixed(row)["labels"])


def test_smoothing_masks_rare_tokens_more():
    data = [{"input_ids": [2] + [5] * 90 + [6] * 10 + [3]}]
    weights = token_mask_weights(data, vocab_size=50, special_ids=SPECIAL, smoothing=0.7)
    assert weights[0] == 0 and weights[6] == pytest.approx(10 ** -0.7) and weights[5] == pytest.approx(90 ** -0.7)
    collate = make_collator(seed=0, mask_weights=weights)
    rare = sum(int((collate.mask_row(np.array(data[0]["input_ids"]), i)[1] == 6).sum()) for i in range(200))
    plain = make_collator(seed=0)
    rare_plain = sum(int((plain.mask_row(np.array(data[0]["input_ids"]), i)[1] == 6).sum()) for i in range(200))
    assert rare > 2 * rare_plain
