"""BertConfig: Google's ``bert_config.json`` keys (plus NEZHA's), checked and frozen."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, fields

from harness import BenchError, at, parse_json, read_user_text

ACTIVATIONS = ("gelu", "gelu_new", "relu", "tanh", "swish")
# Keys of published configs that change nothing here (Chinese BERT's pooler keys etc.).
IGNORED_KEYS = ("directionality", "pooler_fc_size", "pooler_num_attention_heads",
                "pooler_num_fc_layers", "pooler_size_per_head", "pooler_type", "model_type",
                "architectures", "layer_norm_eps")
REQUIRED = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
            "intermediate_size")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@dataclass(frozen=True)
class BertConfig:
    vocab_size: int
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    max_position_embeddings: int = 512
    type_vocab_size: int = 16  # Google's BertConfig default; released configs say 2
    initializer_range: float = 0.02
    # NEZHA: functional (sinusoidal) relative positions instead of absolute embeddings.
    use_relative_position: bool = False
    max_relative_position: int = 64

    @property
    def head_size(self) -> int:
        return self.hidden_size // self.num_attention_heads

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: object, where: str) -> BertConfig:
        if not isinstance(data, dict):
            raise BenchError(f"{where}: expected a JSON object")
        known = {f.name: f for f in fields(cls)}
        values = {}
        for key, value in data.items():
            if key in IGNORED_KEYS:
                continue
            if key not in known:
                raise at(where, key, f"unknown key; expected one of {', '.join(known)}")
            values[key] = _check(where, key, value, _TYPES[known[key].type])
        for key in REQUIRED:
            if key not in values:
                raise at(where, key, "missing")
        config = cls(**values)
        for key in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                    "intermediate_size", "max_position_embeddings", "type_vocab_size",
                    "max_relative_position"):
            if getattr(config, key) < 1:
                raise at(where, key, f"must be >= 1, got {getattr(config, key)}")
        if config.hidden_size % config.num_attention_heads:
            raise at(where, "num_attention_heads",
                     f"hidden_size {config.hidden_size} is not a multiple of "
                     f"{config.num_attention_heads} heads")
        if config.hidden_act not in ACTIVATIONS:
            raise at(where, "hidden_act", f"expected one of {', '.join(ACTIVATIONS)}, "
                                          f"got {config.hidden_act!r}")
        for key in ("hidden_dropout_prob", "attention_probs_dropout_prob"):
            if not 0.0 <= getattr(config, key) < 1.0:
                raise at(where, key, f"must be in [0, 1), got {getattr(config, key)}")
        return config

    @classmethod
    def from_json(cls, path: str) -> BertConfig:
        data = parse_json(read_user_text(path, "bert_config", 1 << 20), path)
        return cls.from_dict(data, path)


_TYPES = {"int": int, "float": float, "str": str, "bool": bool}


def _check(where: str, key: str, value: object, kind: type) -> object:
    if kind is bool:
        if not isinstance(value, bool):
            raise at(where, key, f"expected true or false, got {value!r}")
        return value
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise at(where, key, f"expected an integer, got {value!r}")
        return value
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise at(where, key, f"expected a number, got {value!r}")
        return float(value)
    if not isinstance(value, str):
        raise at(where, key, f"expected a string, got {value!r}")
    return value


def resolve_path(path: str) -> str:
    """A relative path is looked up from the working directory, then from the zoobench
    checkout (so ``configs/bert_base_config.json`` works from anywhere)."""
    if os.path.isabs(path) or os.path.exists(path):
        return path
    candidate = os.path.join(ROOT, path)
    return candidate if os.path.exists(candidate) else path


def load_config(path: str, where: str = "params.bert_config") -> BertConfig:
    if not path:
        raise BenchError(f"{where}: no bert_config.json given")
    resolved = resolve_path(path)
    if not os.path.isfile(resolved):
        raise BenchError(f"{path}: no such bert_config file ({where})")
    return BertConfig.from_json(resolved)
