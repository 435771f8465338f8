"""BERT / NEZHA layers in Keras 2: embeddings, post-LN encoder, pooler, MLM + NSP heads.

Follows Google's ``modeling.py``: truncated-normal init (initializer_range), LayerNorm epsilon
1e-12, additive -10000 attention mask, tanh-approximated GELU, masked-LM output tied to the
word embeddings. NEZHA (Huawei) replaces absolute position embeddings with functional relative
positions: fixed sinusoids of the clipped distance, added to keys and values in attention.
Every builder here runs inside a function (TensorFlow is imported lazily).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from plugins.bert.config import BertConfig

LAYER_NORM_EPSILON = 1e-12


def activation(name: str) -> Any:
    import math

    from harness.tfcompat import tf

    if name in ("gelu", "gelu_new"):  # Google BERT's gelu is the tanh approximation
        if hasattr(tf.nn, "gelu"):
            return lambda x: tf.nn.gelu(x, approximate=True)

        def gelu(x: Any) -> Any:  # TF 1.15: Google's modeling.py formula, as tf.nn.gelu's
            return 0.5 * x * (1.0 + tf.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x * x * x)))

        return gelu
    silu = getattr(tf.nn, "silu", None) or tf.nn.swish  # TF 1.15 names it swish
    return {"relu": tf.nn.relu, "tanh": tf.tanh, "swish": silu}[name]


def relative_positions_table(length: int, depth: int, max_relative_position: int) -> Any:
    """NEZHA's ``[length, length, depth]`` encoding of clip(j - i, -k, k) + k as sinusoids
    (``_generate_relative_positions_embeddings`` in NEZHA's modeling.py)."""
    import numpy as np

    from harness.tfcompat import tf

    size = 2 * max_relative_position + 1
    table = np.zeros([size, depth], dtype=np.float64)
    pos = np.arange(size, dtype=np.float64)[:, None]
    rates = np.power(10000.0, 2 * np.arange(depth // 2, dtype=np.float64) / depth)[None, :]
    table[:, 0:2 * (depth // 2):2] = np.sin(pos / rates)
    table[:, 1:2 * (depth // 2):2] = np.cos(pos / rates)
    rng = np.arange(length)
    distance = np.clip(rng[None, :] - rng[:, None], -max_relative_position,
                       max_relative_position) + max_relative_position
    return tf.constant(table[distance].astype(np.float32))


def build_model(config: BertConfig) -> Any:
    """A ``keras.Model`` mapping the four input features to ``masked_lm_logits``
    ``[batch, predictions, vocab]`` and ``next_sentence_logits`` ``[batch, 2]``."""
    from harness.tfcompat import keras, tf

    def init() -> Any:  # a fresh initializer per weight (Keras warns when one is reused)
        return keras.initializers.TruncatedNormal(stddev=config.initializer_range)

    act = activation(config.hidden_act)

    def dense(units: int, name: str, act_fn: Any = None) -> Any:
        return keras.layers.Dense(units, activation=act_fn, kernel_initializer=init(), name=name)

    def layer_norm(name: str = "LayerNorm") -> Any:
        return keras.layers.LayerNormalization(axis=-1, epsilon=LAYER_NORM_EPSILON, name=name)

    class Embeddings(keras.layers.Layer):
        """Word + token-type (+ absolute position) embeddings, LayerNorm, dropout."""

        def build(self, input_shape: Any) -> None:
            self.word_embeddings = self.add_weight(
                "word_embeddings", [config.vocab_size, config.hidden_size], initializer=init())
            self.token_type_embeddings = self.add_weight(
                "token_type_embeddings", [config.type_vocab_size, config.hidden_size],
                initializer=init())
            self.position_embeddings = None
            if not config.use_relative_position:
                self.position_embeddings = self.add_weight(
                    "position_embeddings",
                    [config.max_position_embeddings, config.hidden_size], initializer=init())
            self.norm = layer_norm()
            self.dropout = keras.layers.Dropout(config.hidden_dropout_prob)
            super().build(input_shape)

        def call(self, input_ids: Any, segment_ids: Any, training: Any = None) -> Any:
            x = tf.gather(self.word_embeddings, input_ids)
            # Google uses a one-hot matmul for the (tiny) token-type table.
            x += tf.matmul(tf.one_hot(segment_ids, config.type_vocab_size, dtype=x.dtype),
                           tf.cast(self.token_type_embeddings, x.dtype))
            if self.position_embeddings is not None:
                x += self.position_embeddings[: tf.shape(input_ids)[1]]
            return self.dropout(self.norm(x), training=training)

    class TransformerLayer(keras.layers.Layer):
        """Post-LN block: self-attention, add & norm, GELU feed-forward, add & norm."""

        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            h = config.hidden_size
            self.query = dense(h, "query")
            self.key = dense(h, "key")
            self.value = dense(h, "value")
            self.attention_output = dense(h, "attention_output")
            self.attention_norm = layer_norm("attention_output_LayerNorm")
            self.intermediate = dense(config.intermediate_size, "intermediate", act)
            self.output_dense = dense(h, "output")
            self.output_norm = layer_norm("output_LayerNorm")
            self.attention_dropout = keras.layers.Dropout(config.attention_probs_dropout_prob)
            self.hidden_dropout = keras.layers.Dropout(config.hidden_dropout_prob)

        def call(self, x: Any, mask_bias: Any, relative: Any = None,
                 training: Any = None) -> Any:
            heads, size = config.num_attention_heads, config.head_size
            batch, seq = tf.shape(x)[0], tf.shape(x)[1]

            def split(t: Any) -> Any:  # [B, S, H] -> [B, N, S, D]
                return tf.transpose(tf.reshape(t, [batch, seq, heads, size]), [0, 2, 1, 3])

            q = split(self.query(x) * tf.cast(1.0 / math.sqrt(size), x.dtype))
            k, v = split(self.key(x)), split(self.value(x))
            scores = tf.matmul(q, k, transpose_b=True)
            if relative is not None:
                scores += tf.einsum("bnfd,ftd->bnft", q, tf.cast(relative, q.dtype))
            probs = self.attention_dropout(tf.nn.softmax(scores + mask_bias), training=training)
            context = tf.matmul(probs, v)
            if relative is not None:
                context += tf.einsum("bnft,ftd->bnfd", probs, tf.cast(relative, q.dtype))
            context = tf.reshape(tf.transpose(context, [0, 2, 1, 3]), [batch, seq, heads * size])
            attended = self.hidden_dropout(self.attention_output(context), training=training)
            x = self.attention_norm(attended + x)
            out = self.hidden_dropout(self.output_dense(self.intermediate(x)), training=training)
            return self.output_norm(out + x)

    class BertPretrainingModel(keras.Model):
        """BERT (or NEZHA) with the masked-LM and next-sentence heads."""

        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.config = config
            self.embeddings = Embeddings(name="embeddings")
            self.encoder_layers = [TransformerLayer(name=f"layer_{i}")
                                   for i in range(config.num_hidden_layers)]
            self.pooler = dense(config.hidden_size, "pooler", "tanh")
            self.mlm_transform = dense(config.hidden_size, "transform", act)
            self.mlm_norm = layer_norm()
            self.mlm_bias = self.add_weight("output_bias", [config.vocab_size],
                                            initializer="zeros")
            self.nsp_weights = self.add_weight("nsp_output_weights", [2, config.hidden_size],
                                               initializer=init())
            self.nsp_bias = self.add_weight("nsp_output_bias", [2], initializer="zeros")

        def call(self, features: Any, training: Any = None) -> dict[str, Any]:
            x = encode(config, self.embeddings, self.encoder_layers, features, training)
            pooled = self.pooler(x[:, 0])
            # Only the masked positions go through the MLM head (Google's gather_indexes).
            positions = features["masked_lm_positions"]
            picked = tf.gather(x, positions, batch_dims=1)
            # 2-D [batch * predictions, hidden] operands: one plain MatMul, not a BatchMatMul
            picked = tf.reshape(picked, [-1, config.hidden_size])
            picked = self.mlm_norm(self.mlm_transform(picked))
            table = tf.cast(self.embeddings.word_embeddings, picked.dtype)
            mlm = tf.nn.bias_add(tf.matmul(picked, table, transpose_b=True),
                                 tf.cast(self.mlm_bias, picked.dtype))
            mlm = tf.reshape(mlm, [tf.shape(positions)[0], tf.shape(positions)[1],
                                   config.vocab_size])
            nsp = (tf.matmul(pooled, tf.cast(self.nsp_weights, pooled.dtype), transpose_b=True)
                   + tf.cast(self.nsp_bias, pooled.dtype))
            return {"masked_lm_logits": mlm, "next_sentence_logits": nsp}

    return BertPretrainingModel(name="bert")


def encode(config: BertConfig, embeddings: Any, layers: Any, features: dict[str, Any],
           training: Any = None) -> Any:
    """The encoder's sequence output ``[batch, seq, hidden]`` from ``input_ids``,
    ``input_mask`` and ``segment_ids``: embeddings, the additive -10000 attention mask,
    NEZHA's relative positions and the transformer layers (the pretraining model and the
    downstream heads share it)."""
    from harness.tfcompat import tf

    input_ids = features["input_ids"]
    x = embeddings(input_ids, features["segment_ids"], training=training)
    mask = tf.cast(features["input_mask"], x.dtype)[:, None, None, :]
    mask_bias = (1.0 - mask) * -10000.0
    relative = None
    if config.use_relative_position:
        seq = tf.shape(input_ids)[1]
        table = relative_positions_table(input_ids.shape[1] or config.max_position_embeddings,
                                         config.head_size, config.max_relative_position)
        relative = table[:seq, :seq]
    for block in layers:
        x = block(x, mask_bias, relative, training=training)
    return x


def dummy_features(batch: int, seq: int, predictions: int) -> dict[str, Any]:
    from harness.tfcompat import tf

    zeros = tf.zeros([batch, seq], tf.int32)
    return {"input_ids": zeros, "input_mask": tf.ones([batch, seq], tf.int32),
            "segment_ids": zeros, "masked_lm_positions": tf.zeros([batch, predictions], tf.int32)}


def google_variable_map(model: Any) -> dict[str, Any]:
    """Google checkpoint name -> this model's variable (built model)."""
    emb = model.embeddings
    names: dict[str, Any] = {
        "bert/embeddings/word_embeddings": emb.word_embeddings,
        "bert/embeddings/token_type_embeddings": emb.token_type_embeddings,
        "bert/embeddings/LayerNorm/gamma": emb.norm.gamma,
        "bert/embeddings/LayerNorm/beta": emb.norm.beta,
        "bert/pooler/dense/kernel": model.pooler.kernel,
        "bert/pooler/dense/bias": model.pooler.bias,
        "cls/predictions/transform/dense/kernel": model.mlm_transform.kernel,
        "cls/predictions/transform/dense/bias": model.mlm_transform.bias,
        "cls/predictions/transform/LayerNorm/gamma": model.mlm_norm.gamma,
        "cls/predictions/transform/LayerNorm/beta": model.mlm_norm.beta,
        "cls/predictions/output_bias": model.mlm_bias,
        "cls/seq_relationship/output_weights": model.nsp_weights,
        "cls/seq_relationship/output_bias": model.nsp_bias,
    }
    if emb.position_embeddings is not None:
        names["bert/embeddings/position_embeddings"] = emb.position_embeddings
    for i, block in enumerate(model.encoder_layers):
        prefix = f"bert/encoder/layer_{i}"
        parts = {
            "attention/self/query": block.query, "attention/self/key": block.key,
            "attention/self/value": block.value, "attention/output/dense": block.attention_output,
            "intermediate/dense": block.intermediate, "output/dense": block.output_dense,
        }
        for name, layer in parts.items():
            names[f"{prefix}/{name}/kernel"] = layer.kernel
            names[f"{prefix}/{name}/bias"] = layer.bias
        for name, norm in (("attention/output/LayerNorm", block.attention_norm),
                           ("output/LayerNorm", block.output_norm)):
            names[f"{prefix}/{name}/gamma"] = norm.gamma
            names[f"{prefix}/{name}/beta"] = norm.beta
    return names


def forward_flops(config: BertConfig, seq: int, predictions: int) -> float:
    """Matmul FLOPs of one sequence's forward pass (2 per multiply-add)."""
    h, inter = config.hidden_size, config.intermediate_size
    attention = 2 * 2 * seq * seq * h * (2 if config.use_relative_position else 1)
    per_layer = 2 * seq * (4 * h * h + 2 * h * inter) + attention
    heads = 2 * h * h + 2 * h * 2 + predictions * (2 * h * h + 2 * h * config.vocab_size)
    return float(config.num_hidden_layers * per_layer + heads)
