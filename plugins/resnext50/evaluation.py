"""Top-1 / top-5 accuracy over an eval dataset, and the ModelZoo training log line."""

from __future__ import annotations

from typing import Any


def top_k_accuracy(model: Any, dataset: Any, ctx: Any, k: int = 5) -> dict[str, float]:
    """Fraction of examples whose label is the arg-max (``top1``) or among the ``k`` largest
    logits (``top5``; k is capped at the class count)."""
    from harness.tfcompat import tf

    def counts(images: Any, labels: Any) -> Any:
        logits = tf.cast(model(images, training=False), tf.float32)
        labels = tf.reshape(tf.cast(labels, tf.int32), [-1])
        # by name: TF 1.15's in_top_k takes (predictions, targets), TF 2's (targets, predictions)
        top1 = tf.math.in_top_k(targets=labels, predictions=logits, k=1)
        topk = tf.math.in_top_k(targets=labels, predictions=logits,
                                k=min(k, int(logits.shape[-1])))
        return (tf.reduce_sum(tf.cast(top1, tf.int64)), tf.reduce_sum(tf.cast(topk, tf.int64)),
                tf.size(labels, out_type=tf.int64))

    hit1 = hitk = total = 0
    for a, b, n in ctx.map_batches(counts, dataset):
        hit1, hitk, total = hit1 + int(a), hitk + int(b), total + int(n)
    if not total:
        return {}
    return {"top1": hit1 / total, "top5": hitk / total}


def modelzoo_line(step: int, epoch: float | None, fps: float, loss: float, total_loss: float,
                  lr: float | None) -> str:
    """The seed's ``utils/logger.py`` line; FPS is the interval's global samples/s:
    ``step:  1000  epoch:  0.0  FPS:  741.5  loss: 6.797  total_loss: 8.258  lr:0.1000000``."""
    # The seed's format string: 'step:%6i  epoch:%5.1f  FPS:%7.1f  loss:%6.3f  ...  lr:%7.7f'.
    return (f"step:{step:6d}  epoch:{epoch or 0.0:5.1f}  FPS:{fps:7.1f}  loss:{loss:6.3f}  "
            f"total_loss:{total_loss:6.3f}  lr:{lr or 0.0:7.7f}")
