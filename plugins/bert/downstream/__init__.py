"""BERT downstream finetuning (``params.task``: classifier, ner, reading) for the bert plugin.

``processors`` (the public data formats), ``features`` (tokenized fixed-length features),
``records`` (their TFRecord cache and tf.data pipeline), ``heads`` (task heads on the shared
encoder), ``answers`` (spans back to text), ``metrics`` and ``evaluation`` (task metrics),
``tasks`` (what the bert plugin's hooks call). No TensorFlow is imported at module level.
"""

from __future__ import annotations

from plugins.bert.downstream.tasks import (
    DOWNSTREAM_SOURCES,
    PARAMS,
    build_dataset,
    build_model,
    evaluate,
    is_downstream,
    task_of,
    validate,
)

__all__ = ["DOWNSTREAM_SOURCES", "PARAMS", "build_dataset", "build_model", "evaluate",
           "is_downstream", "task_of", "validate"]
