"""Downstream models: the BERT encoder of ``modeling`` with Google's task heads.

Classifier (run_classifier): dropout on the pooled [CLS] vector, ``output_weights``
``[labels, hidden]`` + ``output_bias``. Tagger (the seed's run_ner): dropout on every position's
vector, the same output layer per token. Span (run_squad): ``cls/squad/output_weights``
``[2, hidden]`` giving start and end logits per position. The encoder's layers are the ones a
pretraining model builds, so ``checkpoint.load_google_checkpoint`` fills them by Google name;
the pretraining heads are left out of the downstream model (they get no gradients).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from plugins.bert.config import BertConfig

CLASSIFIER, NER, READING = "classifier", "ner", "reading"


def build(config: BertConfig, task: str, num_labels: int, seq: int) -> tuple[Any, Any]:
    """``(downstream model, the pretraining model whose encoder it shares)``; both built."""
    from harness.tfcompat import keras, tf
    from plugins.bert import modeling

    bert = modeling.build_model(config)
    bert(modeling.dummy_features(1, seq, 1), training=False)  # create the encoder's weights
    units = 2 if task == READING else num_labels

    class DownstreamModel(keras.Model):
        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.embeddings = bert.embeddings
            self.encoder_layers = bert.encoder_layers
            self.pooler = bert.pooler if task == CLASSIFIER else None
            self.dropout = keras.layers.Dropout(config.hidden_dropout_prob)
            init = keras.initializers.TruncatedNormal(stddev=config.initializer_range)
            self.output_weights = self.add_weight("output_weights", [units, config.hidden_size],
                                                  initializer=init)
            self.output_bias = self.add_weight("output_bias", [units], initializer="zeros")

        def call(self, features: Any, training: Any = None) -> dict[str, Any]:
            x = modeling.encode(config, self.embeddings, self.encoder_layers, features, training)
            if task == CLASSIFIER:
                x = self.dropout(self.pooler(x[:, 0]), training=training)
            elif task == NER:
                x = self.dropout(x, training=training)
            logits = (tf.matmul(x, tf.cast(self.output_weights, x.dtype), transpose_b=True)
                      + tf.cast(self.output_bias, x.dtype))
            if task == READING:
                return {"start_logits": logits[..., 0], "end_logits": logits[..., 1]}
            return {"logits": logits}

    model = DownstreamModel(name=f"bert_{task}")
    model(modeling.dummy_features(1, seq, 1), training=False)
    return model, bert


def flops(config: BertConfig, task: str, num_labels: int, seq: int) -> float:
    """Forward matmul FLOPs per example: the encoder (``modeling.forward_flops`` without
    masked-LM predictions; its pooler and 2-way NSP output, < 0.1% here, are counted too) and
    the task's output layer."""
    from plugins.bert import modeling

    head = {CLASSIFIER: 2 * config.hidden_size * num_labels,
            NER: 2 * seq * config.hidden_size * num_labels,
            READING: 2 * seq * config.hidden_size * 2}[task]
    return modeling.forward_flops(config, seq, 0) + head


def per_example_loss(task: str, labels: dict[str, Any], outputs: dict[str, Any]) -> Any:
    """One loss per example, float32: softmax cross-entropy of the label (classifier), the
    mean over the tagged first sub-tokens (NER), the mean of start and end (reading)."""
    from harness.tfcompat import tf

    xent = tf.nn.sparse_softmax_cross_entropy_with_logits
    if task == READING:
        start = xent(labels=labels["start_positions"][:, 0],
                     logits=tf.cast(outputs["start_logits"], tf.float32))
        end = xent(labels=labels["end_positions"][:, 0],
                   logits=tf.cast(outputs["end_logits"], tf.float32))
        return (start + end) / 2.0
    logits = tf.cast(outputs["logits"], tf.float32)
    if task == CLASSIFIER:
        return xent(labels=labels["label_ids"][:, 0], logits=logits)
    mask = tf.cast(labels["label_mask"], tf.float32)
    token = xent(labels=labels["label_ids"], logits=logits)
    return tf.reduce_sum(token * mask, axis=-1) / tf.maximum(tf.reduce_sum(mask, axis=-1), 1.0)
