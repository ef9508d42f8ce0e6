"""Run many mutated inputs through a reader in a child process, under guard.

Each fuzz target is a function ``(workdir, rng) -> iterator of cases``; a case is a callable
that writes its input and reads it. In the child, each case may only return or raise
CkptkitError; anything else fails the run and names the case. A case that runs over
``CASE_LIMIT_S`` ends the child (faulthandler prints where it hung), and the child's address
space is capped (RLIMIT_AS) so a reader that allocates what a hostile header claims dies with
MemoryError instead of swapping.

The number of cases per target is ``CKPTKIT_FUZZ_CASES`` (2,000 in CI; ``make fuzz`` runs 50,000).

    python -m tests.fuzz_runner tests.test_tf1_fuzz:tf_index_cases 500 0    # by hand
"""

from __future__ import annotations

import faulthandler
import functools
import importlib
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import traceback

CASES = int(os.environ.get("CKPTKIT_FUZZ_CASES", "2000"))
CASE_LIMIT_S = 5.0
MEMORY_HEADROOM = 1 << 30  # bytes of address space a case may add to what the child holds after imports
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_fuzz(target: str, *, cases: int = CASES, seed: int = 0, case_limit_s: float = CASE_LIMIT_S) -> dict:
    """Run ``cases`` cases of ``target`` ("module:function") in a child; fail on any finding.

    Returns the child's summary: cases, accepted, rejected, slowest_s.
    """
    budget = 60 + cases * 0.05  # generous: a hung case ends the child after case_limit_s anyway
    proc = subprocess.run([sys.executable, "-m", "tests.fuzz_runner", target, str(cases), str(seed),
                           str(case_limit_s)], cwd=ROOT, capture_output=True, text=True, timeout=budget)
    if proc.returncode != 0:
        raise AssertionError(f"fuzzing {target} (seed {seed}) failed with exit {proc.returncode}:\n"
                             f"{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["cases"] == cases
    assert summary["slowest_s"] < case_limit_s, summary
    return summary


def _cap_memory() -> None:
    import resource

    with open("/proc/self/statm") as f:
        held = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    limit = held + MEMORY_HEADROOM
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def _child(target: str, cases: int, seed: int, limit_s: float) -> int:
    from ckptkit.errors import CkptkitError

    module, _, name = target.partition(":")
    make_cases = getattr(importlib.import_module(module), name)
    rng = random.Random(seed)
    accepted = rejected = 0
    slowest = 0.0
    with tempfile.TemporaryDirectory(prefix="ckptkit-fuzz-") as workdir:
        iterator = make_cases(workdir, rng)
        _cap_memory()
        signal.signal(signal.SIGALRM, functools.partial(_too_slow, limit_s))
        for index in range(cases):
            case = next(iterator)
            faulthandler.dump_traceback_later(2 * limit_s, exit=True)  # hung in C code: no TimeoutError
            signal.setitimer(signal.ITIMER_REAL, limit_s)
            start = time.perf_counter()
            try:
                case()
                accepted += 1
            except CkptkitError:
                rejected += 1
            except BaseException:
                signal.setitimer(signal.ITIMER_REAL, 0)
                faulthandler.cancel_dump_traceback_later()
                print(f"case {index} of {target} (seed {seed}): {getattr(case, 'description', '')}")
                traceback.print_exc(file=sys.stdout)
                return 1
            signal.setitimer(signal.ITIMER_REAL, 0)
            faulthandler.cancel_dump_traceback_later()
            slowest = max(slowest, time.perf_counter() - start)
    print(json.dumps({"cases": cases, "accepted": accepted, "rejected": rejected, "slowest_s": round(slowest, 3)}))
    return 0


class CaseTimeout(BaseException):
    """Raised in a case that runs too long; a BaseException so that no reader's ``except`` takes it."""


def _too_slow(limit_s: float, signum, frame):
    raise CaseTimeout(f"case ran over {limit_s} s")


class Case:
    """A callable case with a description for failure reports."""

    def __init__(self, run, description: str):
        self.run, self.description = run, description

    def __call__(self) -> None:
        self.run()


if __name__ == "__main__":
    sys.exit(_child(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]) if len(sys.argv) > 4
                    else CASE_LIMIT_S))


# ------------------------------------------------------------ shared mutations

_INTERESTING = (b"\x00", b"\xff", b"\x7f", b"\x80", b"\xff\xff\xff\xff", b"\x00\x00\x00\x00", b"\xff" * 8, b"\x01")


def mutate_bytes(data: bytes, rng: random.Random) -> bytes:
    """1-3 random byte-level edits: overwrite, interesting values, insert, delete, duplicate, cut."""
    raw = bytearray(data)
    for _ in range(rng.randint(1, 3)):
        pos = rng.randrange(len(raw) + 1)
        kind = rng.randrange(6)
        if kind == 0 and raw:
            for _ in range(rng.randint(1, 8)):
                raw[rng.randrange(len(raw))] = rng.randrange(256)
        elif kind == 1:
            value = rng.choice(_INTERESTING)
            raw[pos:pos + len(value)] = value
        elif kind == 2:
            raw[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
        elif kind == 3:
            del raw[pos:pos + rng.randint(1, 32)]
        elif kind == 4 and raw:
            start = rng.randrange(len(raw))
            raw[pos:pos] = raw[start:start + rng.randint(1, 64)]
        else:
            del raw[pos:]
    return bytes(raw)
