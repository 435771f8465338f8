"""The eval loops: run the model over the eval dataset, then score with ``metrics``."""

from __future__ import annotations

from typing import Any

import numpy as np

from plugins.bert.downstream import metrics


def _outputs(model: Any, dataset: Any, ctx: Any, keys: tuple[str, ...]) -> Any:
    """Yields ``(labels as numpy, outputs as float32 numpy)`` per batch."""
    from harness.tfcompat import tf

    def forward(features: Any, labels: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        outputs = model(features, training=False)
        return labels, {k: tf.cast(outputs[k], tf.float32) for k in keys}

    yield from ctx.map_batches(forward, dataset)


def classification(model: Any, dataset: Any, ctx: Any) -> dict[str, float]:
    gold: list[int] = []
    predicted: list[int] = []
    for labels, out in _outputs(model, dataset, ctx, ("logits",)):
        gold += labels["label_ids"][:, 0].tolist()
        predicted += out["logits"].argmax(-1).tolist()
    return metrics.classification_metrics(gold, predicted)


def ner(model: Any, dataset: Any, ctx: Any, label_list: tuple[str, ...]) -> dict[str, float]:
    """Tags of each sentence's tokens (the first sub-token's prediction), windows joined back
    into sentences, scored entity by entity."""
    gold: dict[int, list[str]] = {}
    predicted: dict[int, list[str]] = {}
    for labels, out in _outputs(model, dataset, ctx, ("logits",)):
        best = out["logits"].argmax(-1)
        for row in range(len(best)):
            owner = int(labels["example_index"][row, 0])
            tagged = labels["label_mask"][row] > 0
            gold.setdefault(owner, []).extend(label_list[i] for i in labels["label_ids"][row][tagged])
            predicted.setdefault(owner, []).extend(label_list[i] for i in best[row][tagged])
    order = sorted(gold)
    return metrics.ner_metrics([gold[i] for i in order], [predicted[i] for i in order])


def reading(model: Any, dataset: Any, ctx: Any, meta: dict[str, Any], n_best: int,
            max_answer_length: int) -> dict[str, float]:
    from plugins.bert.downstream.answers import predict_answers

    results: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    for labels, out in _outputs(model, dataset, ctx, ("start_logits", "end_logits")):
        for row, index in enumerate(labels["unique_ids"][:, 0].tolist()):
            results[index] = (out["start_logits"][row], out["end_logits"][row])
    answers = predict_answers(meta, results, n_best, max_answer_length)
    gold = {e["id"]: e["answers"] for e in meta["examples"]}
    return metrics.reading_metrics(answers, gold, meta["style"])
