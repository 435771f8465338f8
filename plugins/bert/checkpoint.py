"""``params.init_checkpoint``: load a Google-format BERT TF checkpoint by variable name."""

from __future__ import annotations

import os
from typing import Any, Callable

from harness import BenchError


def find_checkpoint(path: str) -> str:
    """A checkpoint prefix (``model.ckpt-1000``) or a folder holding a ``checkpoint`` file."""
    from harness.tfcompat import tf

    if os.path.isdir(path):
        latest = tf.train.latest_checkpoint(path)
        if not latest:
            raise BenchError(f"{path}: params.init_checkpoint: no checkpoint in this folder")
        return latest
    if not (os.path.exists(path + ".index") or os.path.exists(path)):
        raise BenchError(f"{path}: params.init_checkpoint: no such checkpoint "
                         f"(expected {path}.index)")
    return path


def load_google_checkpoint(model: Any, path: str,
                           assign: Callable[[Any, Any], None] | None = None) -> dict[str, list[str]]:
    """Assign every variable of ``model`` found in the checkpoint (Google names such as
    ``bert/encoder/layer_0/attention/self/query/kernel``). A shape mismatch is an error;
    returns ``{"loaded": [...], "missing": [...]}`` (missing: left at their initial values,
    as Google's init_from_checkpoint does, e.g. the ``cls/`` heads of a fine-tuned model).
    ``assign(variable, value)`` sets a value (``ctx.assign``: deferred under the graph engine)."""
    from harness.tfcompat import tf
    from plugins.bert.modeling import google_variable_map

    prefix = find_checkpoint(path)
    try:
        reader = tf.train.load_checkpoint(prefix)
    except (tf.errors.OpError, ValueError) as exc:
        raise BenchError(f"{prefix}: params.init_checkpoint: cannot read checkpoint "
                         f"({str(exc).splitlines()[0]})") from None
    shapes = reader.get_variable_to_shape_map()
    loaded, missing = [], []
    for name, variable in google_variable_map(model).items():
        if name not in shapes:
            missing.append(name)
            continue
        if list(shapes[name]) != variable.shape.as_list():
            raise BenchError(f"{prefix}: {name}: shape {list(shapes[name])} in the checkpoint, "
                             f"{variable.shape.as_list()} in the model (check bert_config)")
        value = reader.get_tensor(name).astype(variable.dtype.as_numpy_dtype)
        if assign is None:
            variable.assign(value)
        else:
            assign(variable, value)
        loaded.append(name)
    if not any(name.startswith("bert/") for name in loaded):
        raise BenchError(f"{prefix}: params.init_checkpoint: no BERT variables "
                         f"(bert/embeddings/word_embeddings, ...) in this checkpoint")
    return {"loaded": loaded, "missing": missing}
