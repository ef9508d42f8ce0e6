"""Run the ``ckptkit`` command in this process, as tests do everywhere."""

from __future__ import annotations

from typing import Any


def run_cli(argv: list[Any], capsys) -> tuple[int, str, str]:
    """(exit status, stdout, stderr) of ``ckptkit ARGV`` run in-process through ``ckptkit.cli.main``.

    Arguments are turned into strings (paths welcome); output captured before the call is dropped.
    """
    from ckptkit.cli import main

    capsys.readouterr()
    try:
        main([str(a) for a in argv])
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    out, err = capsys.readouterr()
    return code, out, err
