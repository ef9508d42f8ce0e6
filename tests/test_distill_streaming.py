"""Streaming training data: pieces, packing, jsonl/parquet, DDP x worker sharding, exact resume, token counts."""

from __future__ import annotations

import collections
import json
import random

import numpy as np
import pytest

from ckptkit.distill.data_files import list_data_files, plan_pieces, read_piece
from ckptkit.distill.streaming import ID_STRIDE, StreamingCorpus, StreamPosition, token_counts
from ckptkit.errors import CheckpointNotFoundError, CorruptCheckpointError, UsageError
from distill_helpers import make_tokenizer, sentence

pytestmark = pytest.mark.xdist_group("distill_streaming")


def corpus_lines(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(sentence(rng) for _ in range(rng.randint(1, 3))) for _ in range(n)]


@pytest.fixture(scope="module")
def tok():
    return make_tokenizer()


@pytest.fixture
def text_file(tmp_path):
    lines = corpus_lines(300)
    path = tmp_path / "corpus.txt"
    # blank lines, a CRLF line and no final newline: each line still lands in exactly one piece
    path.write_bytes(("\n".join(lines[:100]) + "\n\n  \n" + lines[100] + "\r\n" + "\n".join(lines[101:])).encode())
    return path, lines


@pytest.mark.parametrize("piece_bytes", [1, 7, 64, 1000, 1 << 20])
def test_pieces_hold_every_line_exactly_once(text_file, piece_bytes):
    path, lines = text_file
    pieces = plan_pieces(list_data_files([path]), piece_bytes=piece_bytes)
    read = [text for piece in pieces for text in read_piece(piece)]
    assert read == lines


def test_packed_blocks_equal_the_reference_packing(text_file, tok):
    path, lines = text_file
    corpus = StreamingCorpus([path], tok, max_seq_length=32, shuffle=False, piece_bytes=1 << 30)
    got = [(e["example_id"], e["input_ids"].tolist()) for e in corpus]
    # reference: the whole token stream cut into 30-token blocks between [CLS] and [SEP]
    stream = [t for line in lines for t in tok(line, add_special_tokens=False)["input_ids"]]
    blocks = [stream[i:i + 30] for i in range(0, len(stream), 30)]
    want = [[tok.cls_token_id, *b, tok.sep_token_id] for b in blocks if len(b) >= 30 // 4]
    assert [ids for _, ids in got] == want
    assert [i for i, _ in got] == list(range(len(want)))


def test_truncating_mode_gives_one_example_per_line(text_file, tok):
    path, lines = text_file
    corpus = StreamingCorpus([path], tok, max_seq_length=10, pack=False, shuffle=False, piece_bytes=500)
    got = [e["input_ids"].tolist() for e in corpus]
    assert got == tok(lines, truncation=True, max_length=10)["input_ids"]


def test_jsonl_field_and_parquet_give_the_same_examples_as_text(tmp_path, tok):
    import pyarrow as pa
    import pyarrow.parquet as pq

    lines = corpus_lines(200, seed=3)
    (tmp_path / "txt").mkdir(), (tmp_path / "mixed").mkdir()
    (tmp_path / "txt" / "a.txt").write_text("\n".join(lines) + "\n")
    with open(tmp_path / "mixed" / "a.jsonl", "w") as f:
        for line in lines[:120]:
            f.write(json.dumps({"id": 1, "body": line}, ensure_ascii=False) + "\n")
    pq.write_table(pa.table({"body": lines[120:]}), tmp_path / "mixed" / "b.parquet", row_group_size=30)
    options = dict(max_seq_length=24, pack=False, shuffle=False, text_field="body", piece_bytes=1 << 20)
    mixed = [e["input_ids"].tolist() for e in StreamingCorpus([tmp_path / "mixed"], tok, **options)]
    plain = [e["input_ids"].tolist() for e in StreamingCorpus([tmp_path / "txt"], tok, **options)]
    assert mixed == plain and len(mixed) == 200
    assert len(StreamingCorpus([tmp_path / "mixed"], tok, **options).pieces) == 1 + 3   # 80 rows in 30-row groups


def all_examples(corpus):
    return {e["example_id"]: e["input_ids"].tolist() for e in corpus.iter_shard(0, 1)}


def test_two_ranks_by_two_workers_see_each_example_once(text_file, tok):
    path, _ = text_file
    make = dict(max_seq_length=16, piece_bytes=600, seed=5)
    reference = all_examples(StreamingCorpus([path], tok, **make))
    seen = collections.Counter()
    for rank in range(2):
        corpus = StreamingCorpus([path], tok, rank=rank, world_size=2, **make)
        for worker in range(2):   # what get_worker_info() gives dataloader worker `worker` of 2
            for example in corpus.iter_shard(rank * 2 + worker, 4):
                seen[example["example_id"]] += 1
                assert example["input_ids"].tolist() == reference[example["example_id"]]
    assert set(seen) == set(reference) and set(seen.values()) == {1} and len(reference) > 20


def test_real_dataloader_workers_split_a_rank(text_file, tok):
    from torch.utils.data import DataLoader

    path, _ = text_file
    make = dict(max_seq_length=16, piece_bytes=600, seed=5)
    reference = all_examples(StreamingCorpus([path], tok, **make))
    ids = []
    for rank in range(2):
        loader = DataLoader(StreamingCorpus([path], tok, rank=rank, world_size=2, **make), batch_size=4,
                            num_workers=2, collate_fn=lambda rows: [r["example_id"] for r in rows])
        ids += [i for batch in loader for i in batch]
    assert sorted(ids) == sorted(reference)


def test_resume_yields_exactly_the_examples_not_yet_seen(text_file, tok):
    path, _ = text_file
    make = dict(max_seq_length=16, piece_bytes=600, seed=9, rank=1, world_size=2)
    corpus = StreamingCorpus([path], tok, **make)
    corpus.set_epoch(2)
    full = {shard: [e["example_id"] for e in corpus.iter_shard(shard, 4)] for shard in (2, 3)}
    # a dataloader with 2 workers hands out batches of 3 alternately; stop after 5 batches
    position = StreamPosition(epoch=2)
    streams = {shard: iter(ids) for shard, ids in full.items()}
    consumed = []
    for b in range(5):
        batch = [i for _, i in zip(range(3), streams[2 + b % 2])]
        position.consume(batch)
        consumed += batch
    state = json.loads(json.dumps(position.state_dict()))   # as stored in a checkpoint
    resumed = StreamingCorpus([path], tok, **make)
    resumed.resume(state)
    rest = {shard: [e["example_id"] for e in resumed.iter_shard(shard, 4)] for shard in (2, 3)}
    for shard in (2, 3):
        assert rest[shard] == [i for i in full[shard] if i not in consumed]
    assert sorted(consumed + rest[2] + rest[3]) == sorted(full[2] + full[3])
    assert len({i // ID_STRIDE for i in consumed}) >= 2   # resumed inside pieces, not at piece starts


def test_epochs_shuffle_pieces_but_keep_the_examples(text_file, tok):
    path, _ = text_file
    corpus = StreamingCorpus([path], tok, max_seq_length=16, piece_bytes=300, seed=1)
    first = [e["example_id"] for e in corpus.iter_shard(0, 1)]
    corpus.set_epoch(1)
    second = [e["example_id"] for e in corpus.iter_shard(0, 1)]
    assert first != second and sorted(first) == sorted(second)


def test_token_counts_equal_a_plain_count(text_file, tok):
    path, _ = text_file
    examples = list(StreamingCorpus([path], tok, max_seq_length=16, piece_bytes=500))
    reference = collections.Counter(t for e in examples for t in e["input_ids"].tolist())
    counts = token_counts(examples, vocab_size=len(tok), chunk_tokens=100)
    assert counts.tolist() == [reference.get(i, 0) for i in range(len(tok))]


def test_bad_data_is_one_line(tmp_path, tok):
    with pytest.raises(CheckpointNotFoundError, match="missing.txt: training data not found"):
        StreamingCorpus([tmp_path / "missing.txt"], tok, max_seq_length=16)
    (tmp_path / "bad.parquet").write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(CorruptCheckpointError, match="bad.parquet: not a readable parquet file"):
        StreamingCorpus([tmp_path / "bad.parquet"], tok, max_seq_length=16)
    (tmp_path / "a.jsonl").write_text('{"body": "x"}\n')
    with pytest.raises(UsageError, match=r"a.jsonl: line at byte 0 has no field 'text' \(it has \['body'\]\)"):
        list(StreamingCorpus([tmp_path / "a.jsonl"], tok, max_seq_length=16))
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError, match="holds no .txt"):
        StreamingCorpus([tmp_path / "empty"], tok, max_seq_length=16)


def test_packed_dataset_counts_come_from_the_arrow_column(text_file, tok, monkeypatch):
    from ckptkit.distill import data

    path, _ = text_file
    packed = data.tokenize_and_pack(data.load_texts([path]), tok, max_seq_length=16)
    reference = collections.Counter(t for row in packed["input_ids"] for t in row)
    # no Python loop over rows: iterating the dataset is not allowed while counting
    monkeypatch.setattr(type(packed), "__iter__", lambda self: pytest.fail("counted row by row"))
    counts = data.dataset_token_counts(packed, vocab_size=len(tok))
    assert counts.tolist() == [reference.get(i, 0) for i in range(len(tok))]
    weights = data.token_mask_weights(packed, vocab_size=len(tok), special_ids=[0, 2, 3], smoothing=0.5)
    assert weights[5] == pytest.approx(max(reference[5], 1) ** -0.5) and weights[2] == 0


def test_a_small_corpus_is_still_cut_into_pieces(text_file, tok):
    path, _ = text_file
    size = path.stat().st_size
    corpus = StreamingCorpus([path], tok, max_seq_length=16)
    assert size < 64 << 10 and len(corpus.pieces) == -(-size // (4 << 10)) >= 4   # 4 KiB pieces, not one
