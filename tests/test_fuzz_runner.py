"""The fuzz harness itself: a case that blows memory or hangs fails the run and is named."""

from __future__ import annotations

import time

import numpy as np
import pytest

from ckptkit.errors import CorruptCheckpointError
from tests.fuzz_runner import Case, mutate_bytes, run_fuzz


def memory_hog_cases(workdir, rng):
    yield Case(lambda: None, "fine")
    yield Case(lambda: np.ones(3 << 30, np.uint8), "allocates 3 GiB")


def hanging_cases(workdir, rng):
    def spin():  # swallows OSError (TimeoutError is one): the harness must still see the hang
        while True:
            try:
                time.sleep(0.01)
            except OSError:
                pass
    yield Case(spin, "never returns")


def clean_cases(workdir, rng):
    while True:
        def refuse():
            raise CorruptCheckpointError("refused")
        yield Case(refuse, "refused")


@pytest.mark.parametrize("target,finding", [("memory_hog_cases", "case 1 of .*MemoryError"),
                                            ("hanging_cases", "case 0 of .*CaseTimeout: case ran over 0.3 s")])
def test_findings_fail_the_run_and_name_the_case(target, finding):
    with pytest.raises(AssertionError, match=f"(?s){finding}"):
        run_fuzz(f"tests.test_fuzz_runner:{target}", cases=2, case_limit_s=0.3)


def test_our_errors_are_counted_as_rejections():
    assert run_fuzz("tests.test_fuzz_runner:clean_cases", cases=3) == {
        "cases": 3, "accepted": 0, "rejected": 3, "slowest_s": pytest.approx(0, abs=0.5)}


def test_mutations_are_reproducible_and_varied():
    import random

    data = bytes(range(64))
    first = [mutate_bytes(data, random.Random(seed)) for seed in range(50)]
    assert first == [mutate_bytes(data, random.Random(seed)) for seed in range(50)]
    assert len(set(first)) > 40 and data not in first
