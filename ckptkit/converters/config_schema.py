"""Config schemas: each family declares, per side (TF config file, HF ``config.json``), a table
key -> :class:`Spec`; one validator checks a config against it before anything is written.

Every failure is a :class:`~ckptkit.errors.ConfigError` whose one line names the file, the key and
what is expected. Keys a schema does not list are ignored (they are not copied anywhere).

Example:
    >>> schema = ConfigSchema({"hidden_size": positive_int(required=True),
    ...                        "num_attention_heads": positive_int(required=True)},
    ...                       relations=(divisible("hidden_size", "num_attention_heads"),))
    >>> schema.validate({"hidden_size": 32, "num_attention_heads": 4}, path="bert_config.json")
    >>> schema.validate({"num_attention_heads": 4}, path="bert_config.json")
    Traceback (most recent call last):
    ...
    ckptkit.errors.ConfigError: bert_config.json: missing key 'hidden_size' (expected a positive integer)
    >>> schema.validate({"hidden_size": "32", "num_attention_heads": 4}, path="bert_config.json")
    Traceback (most recent call last):
    ...
    ckptkit.errors.ConfigError: bert_config.json: 'hidden_size' is '32' (a string), expected a positive integer
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from ckptkit.errors import ConfigError

__all__ = ["Spec", "Relation", "ConfigSchema", "positive_int", "count", "probability", "positive_float", "flag",
           "one_of", "text", "names", "section", "divisible", "HF_ACTIVATIONS", "HF_COMMON_SCHEMA",
           "validate_hf_config", "MAX_SIZE"]

MAX_SIZE = 2**31 - 1  # TF shapes and token ids are int32 in Google's code


@dataclass(frozen=True)
class Spec:
    """What one key may hold. ``kind``: int, float, bool, str, object (a nested :class:`ConfigSchema`)
    or names (a list of strings). ``nullable``: ``null`` means the key is absent."""

    kind: str
    required: bool = False
    minimum: float | None = None
    above: float | None = None        # exclusive lower bound
    maximum: float | None = None
    choices: tuple = ()
    nullable: bool = False
    fields: "ConfigSchema | None" = None

    def describe(self) -> str:
        """The expectation in words (``a positive integer``, ``a number in [0, 1]``, ...)."""
        if self.choices:
            return "one of " + ", ".join(repr(c) for c in self.choices)
        bounds = _BOUND_WORDS.get((self.kind, self.minimum, self.above, self.maximum))
        return bounds or _KINDS[self.kind][1]


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return (_is_int(value) or isinstance(value, float)) and math.isfinite(value)


# kind -> (accepts the value's type, the type in words)
_KINDS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "int": (_is_int, "an integer"),
    "float": (_is_number, "a finite number"),
    "real": (lambda v: isinstance(v, float) and math.isfinite(v), "a number with a decimal point"),
    "bool": (lambda v: isinstance(v, bool), "true or false"),
    "str": (lambda v: isinstance(v, str), "a string"),
    "object": (lambda v: isinstance(v, dict), "a JSON object"),
    "names": (lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v), "a list of strings"),
}
# (kind, minimum, above, maximum) -> the expectation in words, for the specs the constructors below make
_BOUND_WORDS = {
    ("int", 1, None, MAX_SIZE): "a positive integer",
    ("int", 0, None, MAX_SIZE): "an integer >= 0",
    ("float", 0, None, 1): "a number in [0, 1]",
    ("float", None, 0, None): "a positive number",
    ("float", None, 0, 1): "a number in (0, 1]",
    ("real", None, 0, None): "a positive number with a decimal point (transformers refuses an integer here)",
}
_JSON_TYPE = {bool: "true/false", int: "an integer", float: "a number", str: "a string", list: "a list",
              dict: "an object", type(None): "null"}


def positive_int(*, required: bool = False, nullable: bool = False) -> Spec:
    return Spec("int", required, minimum=1, maximum=MAX_SIZE, nullable=nullable)


def count(*, required: bool = False, nullable: bool = False) -> Spec:
    """An integer >= 0 (a number of blocks, a token id)."""
    return Spec("int", required, minimum=0, maximum=MAX_SIZE, nullable=nullable)


def probability(*, required: bool = False) -> Spec:
    return Spec("float", required, minimum=0, maximum=1)


def positive_float(*, required: bool = False, at_most_one: bool = False, real: bool = False) -> Spec:
    """A positive finite number; ``real``: a JSON number with a decimal point (a float field in transformers)."""
    return Spec("real" if real else "float", required, above=0, maximum=1 if at_most_one else None)


def flag(*, required: bool = False) -> Spec:
    return Spec("bool", required)


def one_of(*choices: str, required: bool = False, nullable: bool = False) -> Spec:
    return Spec("str", required, choices=tuple(choices), nullable=nullable)


def text(*, required: bool = False, nullable: bool = False) -> Spec:
    return Spec("str", required, nullable=nullable)


def names(*, required: bool = False) -> Spec:
    return Spec("names", required)


def section(fields: "ConfigSchema", *, required: bool = False) -> Spec:
    return Spec("object", required, fields=fields)


@dataclass(frozen=True)
class Relation:
    """A rule over several keys, checked when all of them are present and valid."""

    keys: tuple[str, ...]
    holds: Callable[..., bool]
    expected: str


def divisible(key: str, by: str) -> Relation:
    """``key`` must be a multiple of ``by`` (hidden size and attention heads)."""
    return Relation((key, by), lambda a, b: a % b == 0, f"a multiple of '{by}'")


def _repr(value: Any) -> str:
    shown = repr(value)
    return shown if len(shown) <= 40 else shown[:37] + "..."


@dataclass(frozen=True)
class ConfigSchema:
    """A family's config table: key -> :class:`Spec`, plus relations between keys."""

    keys: Mapping[str, Spec]
    relations: tuple[Relation, ...] = ()

    def validate(self, config: Any, *, path: str | None, prefix: str = "", hint: str | None = None) -> None:
        """Raise :class:`ConfigError` naming ``path`` and the first key that breaks the schema."""
        if not isinstance(config, dict):
            kind = _JSON_TYPE.get(type(config), type(config).__name__)
            raise ConfigError(f"'{prefix.rstrip('.')}' is {kind}, expected a JSON object" if prefix
                              else f"the config is {kind}, not a JSON object", path=path, hint=hint)
        present = {key: spec for key, spec in self.keys.items()
                   if key in config and not (config[key] is None and spec.nullable)}
        for key, spec in present.items():
            self._check(prefix + key, config[key], spec, path, hint)
        for key, spec in self.keys.items():
            if spec.required and key not in present:
                raise ConfigError(f"missing key '{prefix}{key}'", path=path,
                                  hint=f"expected {spec.describe()}" + (f"; {hint}" if hint else ""))
        for relation in self.relations:
            if all(k in config and config[k] is not None for k in relation.keys):
                values = [config[k] for k in relation.keys]
                if not relation.holds(*values):
                    first = relation.keys[0]
                    raise ConfigError(f"'{prefix}{first}' is {_repr(values[0])}, expected {relation.expected} "
                                      f"({', '.join(f'{k}={config[k]!r}' for k in relation.keys[1:])})",
                                      path=path, hint=hint)

    def _check(self, key: str, value: Any, spec: Spec, path: str | None, hint: str | None) -> None:
        accepts, _ = _KINDS[spec.kind]
        if not accepts(value) or (spec.choices and value not in spec.choices) or not _in_bounds(value, spec):
            kind = _JSON_TYPE.get(type(value), type(value).__name__)
            raise ConfigError(f"'{key}' is {_repr(value)} ({kind}), expected {spec.describe()}", path=path,
                              hint=hint)
        if spec.fields is not None:
            spec.fields.validate(value, path=path, prefix=f"{key}.", hint=hint)


def _in_bounds(value: Any, spec: Spec) -> bool:
    if spec.kind not in ("int", "float", "real"):
        return True
    return ((spec.minimum is None or value >= spec.minimum) and (spec.above is None or value > spec.above)
            and (spec.maximum is None or value <= spec.maximum))


# transformers' activation names (transformers.activations.ACT2CLS), as a config.json may hold them.
HF_ACTIVATIONS = ("gelu", "gelu_10", "gelu_accurate", "gelu_fast", "gelu_new", "gelu_python", "gelu_python_tanh",
                  "gelu_pytorch_tanh", "hardswish", "laplace", "leaky_relu", "linear", "mish", "prelu",
                  "quick_gelu", "relu", "relu2", "relu6", "sigmoid", "silu", "swish", "tanh")

# What every HF config.json is checked for before its family is known.
HF_COMMON_SCHEMA = ConfigSchema({"model_type": text(), "architectures": names()})


def validate_hf_config(config: Any, *, path: str | None, family: str | None = None) -> None:
    """Check an HF ``config.json``: the keys every config shares, then its family's schema.

    ``family`` defaults to the one its ``model_type`` names; configs of other model types get the common
    check only.

    Example:
        >>> validate_hf_config({"model_type": "bert", "hidden_size": 32.5}, path="config.json")
        Traceback (most recent call last):
        ...
        ckptkit.errors.ConfigError: config.json: 'hidden_size' is 32.5 (a number), expected a positive integer
    """
    from ckptkit.converters.families import family_of_model_type, get_family

    HF_COMMON_SCHEMA.validate(config, path=path)
    name = family or family_of_model_type(config.get("model_type"))
    schema = get_family(name).hf_schema if name else None
    if schema is not None:
        schema.validate(config, path=path)
