"""Test factories: random but realistic checkpoints and text, for the tests, benchmarks and examples.

Not part of the installed package. Tests import it as ``support`` (tests/conftest.py puts tests/ on
``sys.path``); benchmarks/ and examples/ put the repository's tests/ folder on ``sys.path`` first.

- ``support.bert``: Google-BERT TF variables and configs, Adam slots, a tiny WordPiece vocabulary.
- ``support.families``: BigBird and ELECTRA TF variables and configs.
- ``support.corpus``: a deterministic Korean corpus for comparing tokenizers.
"""
