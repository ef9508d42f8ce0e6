"""Moved to :mod:`ckptkit.output.card` (gathering and writing) and :mod:`ckptkit.output.card_sections`
(the generated sections). This module keeps the old import path working.

Example:
    >>> from ckptkit.hub.model_card import write_model_card
    >>> write_model_card.__module__
    'ckptkit.output.card'
"""

from __future__ import annotations

from ckptkit.output.card import MARKER, render_model_card, write_model_card
from ckptkit.output.card_sections import auto_class_for, usage_snippet
from ckptkit.output.names import CARD_FILE

__all__ = ["MARKER", "CARD_FILE", "write_model_card", "render_model_card", "usage_snippet", "auto_class_for"]
