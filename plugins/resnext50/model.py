"""ResNeXt layers and network (NHWC): grouped bottlenecks, the 32x4d ResNeXt-50, FLOP count."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# Stage depths of ResNeXt-50 (Xie et al. 2017, table 1).
RESNEXT50_BLOCKS = (3, 4, 6, 3)
GROUPED_CONV = ("auto", "native", "split")
# The seed's README does not state its batch-norm settings; these are NVIDIA's TF ResNet
# defaults (decay 0.9, epsilon 1e-5), the lineage of the seed's preprocessing code.
BN_MOMENTUM = 0.9
BN_EPSILON = 1e-5


@dataclass(frozen=True)
class Architecture:
    """The shape of a ResNeXt: ``groups`` x ``width_per_group`` is the bottleneck width of the
    first stage (32 x 4 = 128 for 32x4d), doubled at each later stage; ``base_width`` is the
    stem's channels and a quarter of the first stage's output (64 -> 256 ... 2048)."""

    num_classes: int = 1001
    image_size: int = 224
    groups: int = 32
    width_per_group: int = 4
    base_width: int = 64
    blocks: tuple[int, ...] = RESNEXT50_BLOCKS
    weight_decay: float = 1e-4
    grouped_conv: str = "native"  # native | split (auto is resolved before building)

    @classmethod
    def from_params(cls, params: Any) -> Architecture:
        return cls(
            num_classes=int(params["num_classes"]),
            image_size=int(params["image_size"]),
            groups=int(params["groups"]),
            width_per_group=int(params["width_per_group"]),
            base_width=int(params["base_width"]),
            blocks=tuple(int(b) for b in params["blocks"]),
            weight_decay=float(params["weight_decay"]),
            grouped_conv=str(params.get("grouped_conv", "native")),
        )


def _layer_classes() -> dict[str, type]:
    """Keras layer classes, defined on first use so importing this module needs no TF."""
    if _LAYERS:
        return _LAYERS
    from harness.tfcompat import keras, tf

    class GroupedConv2D(keras.layers.Layer):
        """A convolution without bias, 'SAME' padding, NHWC. Grouped: ONE ``tf.nn.conv2d``
        with the grouped kernel ``[k, k, in / groups, filters]``; 1x1 stride 1: a matmul.

        Not ``Conv2D(groups=...)``: Keras sends grouped convolutions through XLA on CPU,
        whose backward pass is several hundred times slower (1290 ms against 2.8 ms for one
        128-channel layer, measured for the ResNeXt issue). ``tf.nn.conv2d`` infers the
        group count from the kernel's input depth, and oneDNN runs it natively. Where the
        native kernel has no gradient (TensorFlow's own CPU kernels: TF 2.6.5, or oneDNN off,
        as on CPUs without AVX-512), ``impl="split"`` computes the same convolution as one
        ``tf.nn.conv2d`` per group on channel slices, concatenated; the kernel variable is
        the same either way, so checkpoints do not depend on it. The kernel initializer is
        the seed's ``tf.variance_scaling_initializer()`` (fan_in, scale 1).
        """

        def __init__(self, filters: int, kernel_size: int, strides: int = 1, groups: int = 1,
                     kernel_regularizer: Any = None, impl: str = "native",
                     **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.filters = filters
            self.kernel_size = kernel_size
            self.strides = strides
            self.groups = groups
            self.impl = impl
            self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)

        def build(self, input_shape: Any) -> None:
            channels = int(input_shape[-1])
            if channels % self.groups or self.filters % self.groups:
                raise ValueError(f"{self.name}: {channels} input and {self.filters} output "
                                 f"channels do not split into {self.groups} groups")
            k = self.kernel_size
            self.kernel = self.add_weight(
                "kernel", shape=(k, k, channels // self.groups, self.filters),
                initializer=keras.initializers.VarianceScaling(1.0, "fan_in", "truncated_normal"),
                regularizer=self.kernel_regularizer, trainable=True)
            super().build(input_shape)

        def call(self, inputs: Any) -> Any:
            if self.kernel_size == 1 and self.groups == 1 and self.strides == 1:
                return self._pointwise(inputs)
            if self.groups > 1 and self.impl == "split":
                parts = zip(tf.split(inputs, self.groups, axis=-1),
                            tf.split(self.kernel, self.groups, axis=-1))
                return tf.concat([tf.nn.conv2d(x, k, strides=self.strides, padding="SAME")
                                  for x, k in parts], axis=-1)
            return tf.nn.conv2d(inputs, self.kernel, strides=self.strides, padding="SAME")

        def _pointwise(self, inputs: Any) -> Any:
            # A 1x1 convolution in NHWC is a [N*H*W, C_in] x [C_in, C_out] matmul. Its kernel
            # gradient as a matmul (x^T dy) runs 2-4x faster than oneDNN's 1x1
            # Conv2DBackpropFilter in bfloat16 on CPU (measured here) and no slower in float32.
            # Strided 1x1 convs stay convolutions: slicing first costs a StridedSliceGrad.
            cin, cout = self.kernel.shape[2], self.kernel.shape[3]
            shape = tf.shape(inputs)
            flat = tf.matmul(tf.reshape(inputs, [-1, cin]), tf.reshape(self.kernel, [cin, cout]))
            return tf.reshape(flat, tf.concat([shape[:3], [cout]], 0))

        def get_config(self) -> dict[str, Any]:
            return {**super().get_config(), "filters": self.filters,
                    "kernel_size": self.kernel_size, "strides": self.strides,
                    "groups": self.groups, "impl": self.impl,
                    "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer)
                    if self.kernel_regularizer else None}

    _LAYERS["GroupedConv2D"] = GroupedConv2D
    return _LAYERS


_LAYERS: dict[str, type] = {}


def grouped_conv2d_class() -> type:
    return _layer_classes()["GroupedConv2D"]


_NATIVE_GRADIENTS: dict[str, bool] = {}


def native_grouped_gradients() -> bool:
    """Whether this TensorFlow has gradients for a grouped ``tf.nn.conv2d`` on the current
    device: a tiny eager probe, once per process. TensorFlow's own CPU kernels refuse them
    (``Gradients for grouped convolutions are not supported on CPU`` on TF 2.21 with oneDNN
    off, ``filter_size does not have enough elements`` on TF 2.6.5); oneDNN and cuDNN have them."""
    if "ok" not in _NATIVE_GRADIENTS:
        from harness import tfcompat
        from harness.tfcompat import tf

        if not tfcompat.executes_eagerly():
            _NATIVE_GRADIENTS["ok"] = _graph_probe()
            return _NATIVE_GRADIENTS["ok"]
        x = tf.zeros([1, 4, 4, 4])
        kernel = tf.zeros([3, 3, 2, 4])  # 2 groups
        try:
            with tf.GradientTape() as tape:
                tape.watch([x, kernel])
                y = tf.nn.conv2d(x, kernel, strides=1, padding="SAME")
            tape.gradient(y, [x, kernel])
            _NATIVE_GRADIENTS["ok"] = True
        except (tf.errors.InvalidArgumentError, tf.errors.UnimplementedError):
            _NATIVE_GRADIENTS["ok"] = False
    return _NATIVE_GRADIENTS["ok"]


def _graph_probe() -> bool:
    """The probe in graph mode (the graph engine on TF 2): the same grouped convolution and
    its gradients, run in a session of their own graph."""
    from harness.tfcompat import tf

    graph = tf.Graph()
    with graph.as_default():
        x = tf.zeros([1, 4, 4, 4])
        kernel = tf.zeros([3, 3, 2, 4])  # 2 groups
        y = tf.nn.conv2d(x, kernel, strides=1, padding="SAME")
        grads = tf.gradients(y, [x, kernel])
    with tf.compat.v1.Session(graph=graph) as session:
        try:
            session.run(grads)
            return True
        except (tf.errors.InvalidArgumentError, tf.errors.UnimplementedError):
            return False


def resolve_grouped_conv(requested: str, device_type: str) -> str:
    """``auto``: the native grouped kernel where it trains (measured by the probe; it runs
    about 2x faster than the split form on this CPU with oneDNN on), else ``split``. On the
    NPU the adapter's graph engine compiles the graph, so no eager probe applies: native."""
    if requested != "auto":
        return requested
    if device_type == "npu":
        return "native"
    from harness import tfcompat

    if tfcompat.tf_version() < (2, 0):
        # TF 1.15's CPU kernels have no grouped convolution, forward included ("The Conv2D op
        # currently does not support grouped convolutions on the CPU"), and a tiny probe of
        # one crashed the process (glibc malloc assertion, measured here): no probe there.
        return "native" if device_type == "gpu" else "split"
    return "native" if native_grouped_gradients() else "split"


def build_resnext(arch: Architecture) -> Any:
    """The Keras functional ResNeXt (float32 logits whatever the precision policy).

    Layer names are fixed (``conv1``, ``stage2_block1_conv2``, ``dense``, ...) so checkpoints
    restore by variable name and ``restore_exclude`` prefixes are stable.
    """
    from harness.tfcompat import keras

    conv_cls = grouped_conv2d_class()
    l2_class = getattr(keras.regularizers, "L2", None) or keras.regularizers.l2  # TF 1.15: l2
    l2 = l2_class(arch.weight_decay / 2) if arch.weight_decay else None

    def conv(x: Any, filters: int, kernel: int, strides: int, name: str, groups: int = 1) -> Any:
        return conv_cls(filters, kernel, strides, groups, kernel_regularizer=l2,
                        impl=arch.grouped_conv, name=name)(x)

    def bn(x: Any, name: str) -> Any:
        return keras.layers.BatchNormalization(
            momentum=BN_MOMENTUM, epsilon=BN_EPSILON, fused=True, name=name)(x)

    inputs = keras.Input((arch.image_size, arch.image_size, 3), name="images")
    x = conv(inputs, arch.base_width, 7, 2, "conv1")
    x = keras.layers.ReLU(name="conv1_relu")(bn(x, "conv1_bn"))
    x = keras.layers.MaxPooling2D(3, 2, padding="same", name="pool1")(x)
    for stage, count in enumerate(arch.blocks):
        width = arch.groups * arch.width_per_group * 2**stage
        out = arch.base_width * 4 * 2**stage
        for block in range(count):
            name = f"stage{stage + 1}_block{block + 1}"
            strides = 2 if (block == 0 and stage > 0) else 1
            shortcut = x
            if block == 0:
                shortcut = bn(conv(x, out, 1, strides, f"{name}_proj"), f"{name}_proj_bn")
            y = keras.layers.ReLU(name=f"{name}_relu1")(bn(conv(x, width, 1, 1, f"{name}_conv1"),
                                                           f"{name}_bn1"))
            # ResNet v1.5 / torchvision placement: the stride sits on the grouped 3x3 conv.
            y = conv(y, width, 3, strides, f"{name}_conv2", groups=arch.groups)
            y = keras.layers.ReLU(name=f"{name}_relu2")(bn(y, f"{name}_bn2"))
            y = bn(conv(y, out, 1, 1, f"{name}_conv3"), f"{name}_bn3")
            x = keras.layers.ReLU(name=f"{name}_out")(keras.layers.Add(name=f"{name}_add")([y, shortcut]))
    x = keras.layers.GlobalAveragePooling2D(name="pool5")(x)
    dense_init = keras.initializers.RandomNormal(stddev=0.01)  # the seed's final dense init
    logits = keras.layers.Dense(arch.num_classes, kernel_initializer=dense_init,
                                kernel_regularizer=l2, name="dense")(x)
    # Softmax statistics in float32 under mixed precision.
    logits = keras.layers.Activation("linear", dtype="float32", name="logits")(logits)
    return keras.Model(inputs, logits, name="resnext")


def forward_flops(model: Any) -> float:
    """Forward FLOPs of one sample: 2 x multiply-adds of every convolution and dense layer
    (normalisation, activations and pooling are left out, the usual MFU convention)."""
    from harness.tfcompat import keras

    conv_cls = grouped_conv2d_class()
    total = 0.0
    for layer in model.layers:
        if isinstance(layer, conv_cls):
            k_h, k_w, cin, cout = layer.kernel.shape.as_list()  # ints, also on TF 1.15
            _, h, w, _ = layer.output_shape
            total += 2.0 * k_h * k_w * cin * cout * h * w
        elif isinstance(layer, keras.layers.Dense):
            cin, cout = layer.kernel.shape.as_list()
            total += 2.0 * cin * cout
    return total
