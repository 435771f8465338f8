"""The seed's pretraining recipe: AdamW, warmup + polynomial decay, MLM + NSP loss, eval metrics.

Optimizer: Google BERT's ``AdamWeightDecayOptimizer`` (kept by NVIDIA's TF BERT, the seed's
reference): Adam moments without bias correction, decoupled weight decay on every weight but
LayerNorm parameters and biases, gradients clipped to global norm 1.0. The Adam update itself is
TensorFlow's fused ``ResourceApplyAdam`` kernel with the beta powers at 0, which turns its bias
correction off and leaves exactly Google's update.
"""

from __future__ import annotations

from typing import Any

# Google's create_optimizer: exclude_from_weight_decay=["LayerNorm", "layer_norm", "bias"].
NO_DECAY = ("LayerNorm", "layer_norm", "bias")


def learning_rate_schedule(init_lr: float, warmup_steps: int, decay_steps: int) -> Any:
    """Linear warmup from 0 over ``warmup_steps``, then ``init_lr * (1 - step / decay_steps)``
    (polynomial decay of power 1 to 0, counted from step 0, as Google's create_optimizer)."""
    from harness.tfcompat import keras, tf

    class WarmupPolynomialDecay(keras.optimizers.schedules.LearningRateSchedule):
        def __call__(self, step: Any) -> Any:
            step = tf.cast(step, tf.float32)
            decayed = init_lr * (1.0 - tf.minimum(step, float(decay_steps)) / float(decay_steps))
            if not warmup_steps:
                return decayed
            warm = init_lr * step / float(warmup_steps)
            return tf.where(step < float(warmup_steps), warm, decayed)

        def get_config(self) -> dict[str, Any]:
            return {"init_lr": init_lr, "warmup_steps": warmup_steps, "decay_steps": decay_steps}

    return WarmupPolynomialDecay()


def _optimizer_v2_base() -> Any:
    from harness.tfcompat import keras

    # OptimizerV2: keras.optimizers.legacy on TF >= 2.11 (tf_keras), keras.optimizers before;
    # it runs unchanged on the Ascend TF 2.6.5 stack and under every LossScaleOptimizer.
    legacy = getattr(keras.optimizers, "legacy", None)
    return legacy.Optimizer if legacy is not None else keras.optimizers.Optimizer


def adam_weight_decay(learning_rate: Any, weight_decay: float, epsilon: float,
                      clip_norm: float | None, beta_1: float = 0.9, beta_2: float = 0.999,
                      exclude: tuple[str, ...] = NO_DECAY) -> Any:
    from harness import tfcompat
    from harness.tfcompat import tf

    base = _optimizer_v2_base()
    # Keras' global_clipnorm came with TF 2.4; before (TF 1.15) the optimizer clips the
    # gradients itself, with the same tf.clip_by_global_norm Google's create_optimizer uses.
    own_clip = bool(clip_norm) and tfcompat.tf_version() < (2, 4)

    class AdamWeightDecay(base):
        _HAS_AGGREGATE_GRAD = True

        def __init__(self, **kwargs: Any) -> None:
            super().__init__("AdamWeightDecay", **kwargs)
            self._set_hyper("learning_rate", learning_rate)
            self._set_hyper("beta_1", beta_1)
            self._set_hyper("beta_2", beta_2)
            self.epsilon = epsilon
            self.weight_decay_rate = weight_decay
            self.exclude_from_weight_decay = tuple(exclude)

        def apply_gradients(self, grads_and_vars: Any, *args: Any, **kwargs: Any) -> Any:
            if own_clip:
                pairs = [(g, v) for g, v in grads_and_vars if g is not None]
                clipped, _ = tf.clip_by_global_norm([g for g, _ in pairs], clip_norm)
                grads_and_vars = list(zip(clipped, [v for _, v in pairs]))
            return super().apply_gradients(grads_and_vars, *args, **kwargs)

        def decays(self, var: Any) -> bool:
            return bool(self.weight_decay_rate) and not any(
                pattern in var.name for pattern in self.exclude_from_weight_decay)

        def _create_slots(self, var_list: Any) -> None:
            for var in var_list:
                self.add_slot(var, "m")
            for var in var_list:
                self.add_slot(var, "v")

        def _prepare_local(self, var_device: Any, var_dtype: Any, apply_state: Any) -> None:
            super()._prepare_local(var_device, var_dtype, apply_state)
            apply_state[(var_device, var_dtype)].update(
                beta_1_t=tf.identity(self._get_hyper("beta_1", var_dtype)),
                beta_2_t=tf.identity(self._get_hyper("beta_2", var_dtype)),
                epsilon=tf.convert_to_tensor(self.epsilon, var_dtype),
                zero=tf.zeros([], var_dtype))

        def _resource_apply_dense(self, grad: Any, var: Any, apply_state: Any = None) -> Any:
            key = (var.device, var.dtype.base_dtype)
            coef = (apply_state or {}).get(key) or self._fallback_apply_state(*key)
            decay = []
            if self.decays(var):
                # Decoupled decay: param -= lr * wd * param (Google adds wd * param to the update).
                decay.append(var.assign_sub(var * (coef["lr_t"] * self.weight_decay_rate),
                                            read_value=False))
            with tf.control_dependencies(decay):
                return tf.raw_ops.ResourceApplyAdam(
                    var=var.handle, m=self.get_slot(var, "m").handle,
                    v=self.get_slot(var, "v").handle, beta1_power=coef["zero"],
                    beta2_power=coef["zero"], lr=coef["lr_t"], beta1=coef["beta_1_t"],
                    beta2=coef["beta_2_t"], epsilon=coef["epsilon"], grad=grad,
                    use_locking=self._use_locking)

        def _resource_apply_sparse(self, grad: Any, var: Any, indices: Any,
                                   apply_state: Any = None) -> Any:
            dense = tf.math.unsorted_segment_sum(grad, indices, tf.shape(var)[0])
            return self._resource_apply_dense(dense, var, apply_state)

        def get_config(self) -> dict[str, Any]:
            config = super().get_config()
            config.update(learning_rate=self._serialize_hyperparameter("learning_rate"),
                          beta_1=beta_1, beta_2=beta_2, epsilon=self.epsilon,
                          weight_decay_rate=self.weight_decay_rate,
                          exclude_from_weight_decay=list(self.exclude_from_weight_decay))
            return config

    kwargs = {"global_clipnorm": clip_norm} if clip_norm and not own_clip else {}
    return AdamWeightDecay(**kwargs)


class LossTrackers:
    """Interval means of the masked-LM and next-sentence losses for the log line (Keras
    metrics: sync-on-read variables, so replicas update them inside the train step)."""

    def __init__(self) -> None:
        from harness.tfcompat import keras

        self.masked_lm = keras.metrics.Mean(name="masked_lm_loss")
        self.next_sentence = keras.metrics.Mean(name="next_sentence_loss")

    def read_and_reset(self, ctx: Any) -> tuple[float, float]:
        """The means since the last call (``ctx`` runs them on either engine)."""
        mlm, nsp = ctx.numpy([self.masked_lm.result(), self.next_sentence.result()])
        ctx.reset_metrics([self.masked_lm, self.next_sentence])
        return float(mlm), float(nsp)


def per_example_losses(labels: dict[str, Any], outputs: dict[str, Any]) -> tuple[Any, Any]:
    """(masked-LM loss, next-sentence loss), one value per sequence, in float32.

    The masked-LM loss of a sequence is the weighted mean cross-entropy over its predicted
    positions (Google normalises over the whole batch's weights; with a fixed number of
    predictions per sequence the two agree, and this one is a per-example loss the runner can
    average over the global batch).
    """
    from harness.tfcompat import tf

    logits = tf.cast(outputs["masked_lm_logits"], tf.float32)
    weights = tf.cast(labels["masked_lm_weights"], tf.float32)
    xent = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels["masked_lm_ids"],
                                                          logits=logits)
    mlm = tf.reduce_sum(xent * weights, axis=-1) / (tf.reduce_sum(weights, axis=-1) + 1e-5)
    nsp = tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=labels["next_sentence_labels"],
        logits=tf.cast(outputs["next_sentence_logits"], tf.float32))
    return mlm, nsp


def pretraining_loss(trackers: LossTrackers | None = None) -> Any:
    def loss(labels: dict[str, Any], outputs: dict[str, Any]) -> Any:
        mlm, nsp = per_example_losses(labels, outputs)
        if trackers is not None:
            trackers.masked_lm.update_state(mlm)
            trackers.next_sentence.update_state(nsp)
        return mlm + nsp

    return loss


def evaluate(model: Any, dataset: Any, ctx: Any) -> dict[str, float]:
    """Masked-LM accuracy and loss (weighted over predicted positions), next-sentence accuracy
    and loss (over sequences), as Google's run_pretraining metric_fn."""
    import numpy as np

    from harness.tfcompat import tf

    def sums(features: Any, labels: Any) -> Any:
        outputs = model(features, training=False)
        _, nsp = per_example_losses(labels, outputs)
        weights = tf.cast(labels["masked_lm_weights"], tf.float32)
        logits = tf.cast(outputs["masked_lm_logits"], tf.float32)
        xent = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels["masked_lm_ids"],
                                                              logits=logits)
        hit = tf.cast(tf.equal(tf.argmax(logits, -1, output_type=tf.int32),
                               labels["masked_lm_ids"]), tf.float32)
        nsp_hit = tf.cast(tf.equal(tf.argmax(outputs["next_sentence_logits"], -1,
                                             output_type=tf.int32),
                                   labels["next_sentence_labels"]), tf.float32)
        return tf.stack([tf.reduce_sum(hit * weights), tf.reduce_sum(xent * weights),
                         tf.reduce_sum(weights), tf.reduce_sum(nsp_hit), tf.reduce_sum(nsp),
                         tf.cast(tf.size(nsp), tf.float32)])

    total = np.zeros(6, dtype=np.float64)
    for batch in ctx.map_batches(sums, dataset):
        total += batch
    mlm_hits, mlm_xent, weight, nsp_hits, nsp_xent, count = total
    if not count:
        return {}
    return {"masked_lm_accuracy": mlm_hits / max(weight, 1e-9),
            "masked_lm_loss": mlm_xent / max(weight, 1e-9),
            "next_sentence_accuracy": nsp_hits / count,
            "next_sentence_loss": nsp_xent / count}
