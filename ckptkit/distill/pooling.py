"""The sentence embedding a teacher's sentence-transformers stack makes, for the pooled losses and scores.

A sentence-transformers folder names its modules in ``modules.json``; the Pooling module's
``config.json`` (usually ``1_Pooling/config.json``) chooses the modes, either as the
``pooling_mode_*`` booleans or as ``pooling_mode`` (a name or a list of names). Several modes are
concatenated: the booleans in the fixed order of :data:`POOLING_MODES`, a ``pooling_mode`` list in
its own order, as sentence-transformers does. A ``Normalize`` module after it L2-normalises the
result. A teacher without that stack is mean-pooled. ``include_prompt`` has nothing to exclude
here: distillation and evaluation prepend no prompt.

Each mode reads the last hidden states ``[batch, seq, hidden]`` and the attention mask
``[batch, seq]`` (padding may be on either side):

- ``cls``: the first non-padding token;
- ``max``: the element-wise maximum over the non-padding tokens;
- ``mean``: the mean over the non-padding tokens;
- ``mean_sqrt_len_tokens``: their sum divided by the square root of their count;
- ``weightedmean``: the mean weighted by position (1 for the first non-padding token, 2 for the next...);
- ``lasttoken``: the last non-padding token (zeros for a row without one).

Example:
    >>> import torch
    >>> pool = Pooling(modes=("cls", "mean"))
    >>> pool(torch.tensor([[[1.0], [3.0], [9.0]]]), torch.tensor([[1, 1, 0]]))
    tensor([[1., 2.]])
    >>> pool.label
    'CLS+mean-pooled'
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from ckptkit.errors import ConfigError

__all__ = ["POOLING_MODES", "LEGACY_KEYS", "Pooling", "read_pooling", "pool_tokens"]


def _first_token(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    first = mask.int().argmax(1)
    return hidden[torch.arange(hidden.shape[0], device=hidden.device), first]


def _last_token(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    seq = hidden.shape[1]
    last = seq - 1 - mask.int().flip(1).argmax(1)
    rows = torch.arange(hidden.shape[0], device=hidden.device)
    return hidden[rows, last] * mask.any(1, keepdim=True).to(hidden.dtype)


def _max(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return hidden.masked_fill(~mask.bool().unsqueeze(-1), float("-inf")).amax(1)


def _sum_and_count(hidden: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    weights = mask.to(hidden.dtype).unsqueeze(-1)
    return (hidden * weights).sum(1), weights.sum(1).clamp_min(1e-9)


def _mean(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    total, count = _sum_and_count(hidden, mask)
    return total / count


def _mean_sqrt_len(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    total, count = _sum_and_count(hidden, mask)
    return total / count.sqrt()


def _weighted_mean(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    # position weights count from the first non-padding token (left padding shifts them)
    positions = torch.arange(1, hidden.shape[1] + 1, device=hidden.device, dtype=hidden.dtype)[None, :]
    weights = (positions - mask.int().argmax(1, keepdim=True).to(hidden.dtype)) * mask.to(hidden.dtype)
    return (hidden * weights.unsqueeze(-1)).sum(1) / weights.sum(1, keepdim=True).clamp_min(1e-9)


# mode -> (how it is named in the report, pooling of [b, s, h] under [b, s]); in sentence-transformers' order
POOLING_MODES: dict[str, tuple[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]]] = {
    "cls": ("CLS", _first_token),
    "max": ("max", _max),
    "mean": ("mean", _mean),
    "mean_sqrt_len_tokens": ("mean-sqrt-len", _mean_sqrt_len),
    "weightedmean": ("position-weighted-mean", _weighted_mean),
    "lasttoken": ("last-token", _last_token),
}
# the boolean keys of a Pooling config.json -> mode
LEGACY_KEYS: dict[str, str] = {
    "pooling_mode_cls_token": "cls", "pooling_mode_max_tokens": "max", "pooling_mode_mean_tokens": "mean",
    "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len_tokens",
    "pooling_mode_weightedmean_tokens": "weightedmean", "pooling_mode_lasttoken": "lasttoken",
}
_FIX = ("use one of the modes sentence-transformers knows (" + ", ".join(POOLING_MODES) + ") in this file, or "
        "remove modules.json from the teacher folder to distil with mean pooling")


def pool_tokens(hidden: torch.Tensor, mask: torch.Tensor, modes: tuple[str, ...] = ("mean",)) -> torch.Tensor:
    """``modes`` applied to ``hidden`` under ``mask``, concatenated along the last dimension."""
    return torch.cat([POOLING_MODES[mode][1](hidden, mask) for mode in modes], dim=-1)


@dataclass(frozen=True)
class Pooling:
    """How sentence embeddings are made from last hidden states: modes, then L2 normalisation or not.

    ``source`` is the teacher's Pooling config file relative to the teacher folder (None: no
    sentence-transformers stack, mean pooling); ``not_applied`` the modules after pooling that
    ckptkit does not run (a ``Dense`` projection: it is copied to the student unchanged).
    """

    modes: tuple[str, ...] = ("mean",)
    normalize: bool = False
    source: str | None = None
    not_applied: tuple[str, ...] = ()

    def __call__(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        pooled = pool_tokens(hidden, mask, self.modes)
        return torch.nn.functional.normalize(pooled, dim=-1) if self.normalize else pooled

    @property
    def label(self) -> str:
        """``"mean-pooled"``, ``"CLS-pooled"``, ``"CLS+max-pooled"``..."""
        return "+".join(POOLING_MODES[mode][0] for mode in self.modes) + "-pooled"

    def describe(self) -> str:
        """One phrase for reports: the modes, normalisation and where they come from."""
        text = self.label + (", L2-normalised" if self.normalize else "")
        if self.source is None:
            return text + " (no sentence-transformers stack)"
        text += f" (the teacher's sentence-transformers {self.source}"
        if self.not_applied:
            text += "; not applied: " + ", ".join(self.not_applied)
        return text + ")"

    def as_dict(self) -> dict[str, Any]:
        return {"modes": list(self.modes), "normalize": self.normalize, "source": self.source,
                "not_applied": list(self.not_applied), "description": self.describe()}


def _kind(module: dict) -> str:
    return str(module["type"]).rsplit(".", 1)[-1]


def _modes(config: dict, path: Path) -> tuple[str, ...]:
    if "pooling_mode" in config:
        value = config["pooling_mode"]
        modes = (value,) if isinstance(value, str) else tuple(value) if isinstance(value, list) else (repr(value),)
    else:
        unknown = [k for k, v in config.items() if k.startswith("pooling_mode_") and k not in LEGACY_KEYS and v]
        if unknown:
            raise ConfigError(f"unknown pooling mode key {unknown[0]!r} in the teacher's Pooling config", path=path,
                              hint=_FIX)
        modes = tuple(mode for key, mode in LEGACY_KEYS.items() if config.get(key)) or ("mean",)
    unknown = [m for m in modes if m not in POOLING_MODES]
    if unknown or not modes:
        raise ConfigError(f"unknown pooling mode {unknown[0] if unknown else modes!r} in the teacher's Pooling "
                          "config: ckptkit cannot pool its sentence embeddings the same way", path=path, hint=_FIX)
    return modes


def read_pooling(folder: str | os.PathLike) -> Pooling:
    """The pooling of ``folder``'s sentence-transformers stack; mean pooling for a folder without one.

    Raises :class:`ConfigError` (one line naming the file) for a Pooling config with a mode ckptkit
    cannot honour, an unreadable one, or a module between the Transformer and the Pooling module.
    """
    from ckptkit.distill.st_modules import is_sentence_transformer, read_modules

    folder = Path(folder)
    if not folder.is_dir() or not is_sentence_transformer(folder):
        return Pooling()
    modules = read_modules(folder)
    kinds = [_kind(m) for m in modules]
    if "Pooling" not in kinds:
        return Pooling()
    at = kinds.index("Pooling")
    between = [k for k in kinds[:at] if k != "Transformer"]
    if between:
        raise ConfigError(f"modules.json runs {', '.join(between)} before its Pooling module: ckptkit pools the "
                          "Transformer's last hidden states and cannot apply it", path=folder / "modules.json",
                          hint="remove modules.json from the teacher folder to distil with mean pooling")
    relative = f"{modules[at].get('path') or ''}/config.json".lstrip("/")
    path = folder / relative
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise ConfigError(f"cannot read the teacher's Pooling config ({e})", path=path,
                          hint="restore the sentence-transformers Pooling folder, or remove modules.json") from e
    if not isinstance(config, dict):
        raise ConfigError("the teacher's Pooling config is not a JSON object", path=path, hint=_FIX)
    after = kinds[at + 1:]
    return Pooling(modes=_modes(config, path), normalize="Normalize" in after, source=relative,
                   not_applied=tuple(k for k in after if k != "Normalize"))
