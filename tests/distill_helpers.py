"""Tiny teachers and students for the distillation tests, built from text we generate ourselves.

The corpus is a small English/Korean grammar with agreement (an animal goes with its own verbs
and sounds, a colour with its objects), so a 2-4 layer BERT learns real structure in seconds.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import torch

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]

EN_SUBJECTS = {"cat": ("sleeps", "meows", "purrs"), "dog": ("barks", "runs", "digs"),
               "bird": ("sings", "flies", "nests"), "fish": ("swims", "dives", "floats"),
               "child": ("laughs", "reads", "plays"), "farmer": ("plants", "harvests", "works")}
EN_ADJECTIVES = {"small", "big", "old", "young", "happy", "quiet"}
EN_PLACES = {"cat": "house", "dog": "yard", "bird": "tree", "fish": "river", "child": "school", "farmer": "field"}
EN_COLOURS = {"red": "apple", "yellow": "banana", "green": "leaf", "blue": "sky", "white": "cloud"}
KO_SUBJECTS = {"고양이": ("잔다", "운다"), "강아지": ("짖는다", "뛴다"), "새": ("노래한다", "난다"),
               "물고기": ("헤엄친다", "잠수한다"), "아이": ("웃는다", "읽는다")}
KO_PLACES = {"고양이": "집", "강아지": "마당", "새": "나무", "물고기": "강", "아이": "학교"}
KO_PARTICLES = ["이", "가", "은", "는", "에서", "을", "를"]


def sentence(rng: random.Random) -> str:
    """One sentence of the toy grammar, English or Korean."""
    if rng.random() < 0.7:
        subject = rng.choice(sorted(EN_SUBJECTS))
        verb = rng.choice(EN_SUBJECTS[subject])
        colour = rng.choice(sorted(EN_COLOURS))
        parts = ["the", rng.choice(sorted(EN_ADJECTIVES)), subject, verb, "in", "the", EN_PLACES[subject]]
        if rng.random() < 0.5:
            parts += ["near", "a", colour, EN_COLOURS[colour]]
        return " ".join(parts) + " ."
    subject = rng.choice(sorted(KO_SUBJECTS))
    return f"{subject} 가 {KO_PLACES[subject]} 에서 {rng.choice(KO_SUBJECTS[subject])} ."


def write_corpus(path: Path, *, lines: int, seed: int) -> Path:
    rng = random.Random(seed)
    path.write_text("\n".join(" ".join(sentence(rng) for _ in range(rng.randint(1, 3))) for _ in range(lines)) + "\n",
                    encoding="utf-8")
    return path


def vocabulary() -> dict[str, int]:
    words = set("the in near a .".split()) | EN_ADJECTIVES | set(EN_PLACES.values()) | set(EN_COLOURS)
    words |= set(EN_COLOURS.values()) | set(EN_SUBJECTS) | {v for vs in EN_SUBJECTS.values() for v in vs}
    words |= set(KO_SUBJECTS) | set(KO_PLACES.values()) | {v for vs in KO_SUBJECTS.values() for v in vs}
    words |= set(KO_PARTICLES)
    return {token: i for i, token in enumerate(SPECIALS + sorted(words))}


def make_tokenizer(vocab: dict[str, int] | None = None):
    from transformers import BertTokenizer

    return BertTokenizer(vocab=vocab or vocabulary(), do_lower_case=True, strip_accents=False)


def tiny_config(vocab_size: int, *, layers: int = 4, hidden: int = 64):
    from transformers import BertConfig

    return BertConfig(vocab_size=vocab_size, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=4,
                      intermediate_size=2 * hidden, max_position_embeddings=64, hidden_dropout_prob=0.0,
                      attention_probs_dropout_prob=0.0)


def train_tiny_teacher(folder: Path, corpus: Path, *, steps: int = 300, layers: int = 4, seed: int = 0,
                       with_head: bool = True) -> Path:
    """Train a small BertForMaskedLM on ``corpus`` with a plain loop (test scaffolding) and save it."""
    from transformers import BertForMaskedLM

    from ckptkit.distill import data

    torch.manual_seed(seed)
    tokenizer = make_tokenizer()
    blocks = data.tokenize_and_pack(data.load_texts([corpus]), tokenizer, max_seq_length=32)
    collate = data.MaskingCollator(pad_id=0, mask_id=tokenizer.mask_token_id, special_ids=tokenizer.all_special_ids,
                                   vocab_size=len(tokenizer), seed=seed)
    model = BertForMaskedLM(tiny_config(len(tokenizer), layers=layers))
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    generator = torch.Generator().manual_seed(seed)
    for step in range(steps):
        collate.epoch = step
        rows = torch.randint(len(blocks), (32,), generator=generator).tolist()
        batch = collate([blocks[r] for r in rows])
        batch.pop("example_id")
        loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    folder.mkdir(parents=True, exist_ok=True)
    (model if with_head else model.bert).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def make_student(teacher: Path, folder: Path, layers: list[int], *, head: bool = True) -> Path:
    """Copy embeddings, the MLM head and teacher layers ``layers`` into a shallower student (+ student.json)."""
    from transformers import AutoModel, AutoModelForMaskedLM, AutoTokenizer

    auto = AutoModelForMaskedLM if head else AutoModel
    source = auto.from_pretrained(teacher)
    config = source.config.__class__.from_dict({**source.config.to_dict(), "num_hidden_layers": len(layers)})
    student = auto.from_config(config)
    prefix = "bert.encoder.layer." if head else "encoder.layer."
    teacher_state = source.state_dict()
    state = {}
    for name in student.state_dict():
        if name.startswith(prefix):
            index, rest = name[len(prefix):].split(".", 1)
            state[name] = teacher_state[f"{prefix}{layers[int(index)]}.{rest}"]
        else:
            state[name] = teacher_state[name]
    student.load_state_dict(state)
    folder.mkdir(parents=True, exist_ok=True)
    student.save_pretrained(folder)
    AutoTokenizer.from_pretrained(teacher).save_pretrained(folder)
    (folder / "student.json").write_text(json.dumps({"teacher": str(teacher), "layers": layers, "arch": "same"}))
    return folder


# ------------------------------------------------------------------ shared fixtures (import into test modules)
import pytest  # noqa: E402

TRAIN_ARGS = {"per_device_train_batch_size": 16, "learning_rate": 2e-3, "logging_steps": 10, "save_steps": 1000,
              "use_cpu": True, "seed": 0}


@pytest.fixture(scope="session")
def distill_world(tmp_path_factory) -> dict[str, Path]:
    """A trained 3-layer teacher, its corpus and held-out text, and a 1-layer student from layer 0."""
    root = tmp_path_factory.mktemp("distill")
    train = write_corpus(root / "train.txt", lines=1200, seed=1)
    held_out = write_corpus(root / "held_out.txt", lines=150, seed=2)
    torch.set_num_threads(1)
    teacher = train_tiny_teacher(root / "teacher", train, steps=300, layers=3)
    student = make_student(teacher, root / "student1", [0])
    return {"root": root, "train": train, "held_out": held_out, "teacher": teacher, "student": student}
