"""ResNeXt-50 plugin: layers, architecture size, LR schedule, weight decay, the log line."""

from __future__ import annotations

import math

import numpy as np
import pytest

from plugins.resnext50.evaluation import modelzoo_line
from plugins.resnext50.model import Architecture
from plugins.resnext50.recipe import cosine_value, make_schedule

TINY = Architecture(num_classes=10, image_size=32, groups=4, width_per_group=2, base_width=8,
                    blocks=(1, 1, 1, 1))


def test_full_size_model_matches_resnext50_32x4d():
    from harness.tfcompat import keras
    from plugins.resnext50.model import build_resnext, forward_flops

    model = build_resnext(Architecture())
    trainable = sum(int(np.prod(v.shape)) for v in model.trainable_variables)
    # torchvision resnext50_32x4d has 25,028,904 parameters at 1000 classes; one more class
    # adds 2048 weights and a bias. The PyTorch reference script counts the same.
    assert trainable == 25_028_904 + 2049
    # 4.23 G multiply-adds at 224 px (XLA-free 'SAME' padding; the paper quotes 4.2 GFLOPs).
    assert forward_flops(model) == pytest.approx(8.461e9, rel=1e-3)
    assert model.output_shape == (None, 1001) and model.input_shape == (None, 224, 224, 3)
    # The XLA trap: no grouped Keras Conv2D anywhere.
    assert not any(isinstance(layer, keras.layers.Conv2D) for layer in model.layers)
    grouped = [layer for layer in model.layers if getattr(layer, "groups", 1) == 32]
    assert len(grouped) == 16 and grouped[0].kernel.shape == (3, 3, 4, 128)


@pytest.mark.parametrize("impl", ["native", "split"])
def test_grouped_conv_equals_per_group_convolutions(impl):
    from harness.tfcompat import tf
    from plugins.resnext50.model import grouped_conv2d_class, native_grouped_gradients

    layer = grouped_conv2d_class()(12, 3, strides=2, groups=4, impl=impl)
    x = tf.random.stateless_normal([2, 9, 9, 8], seed=[1, 2])
    y = layer(x)
    kernel = layer.kernel  # [3, 3, 2, 12]: each group maps 2 input to 3 output channels

    def reference(x, kernel):
        return tf.concat([tf.nn.conv2d(x[..., 2 * g:2 * g + 2], kernel[..., 3 * g:3 * g + 3], 2,
                                       "SAME") for g in range(4)], -1)

    np.testing.assert_allclose(y.numpy(), reference(x, kernel).numpy(), rtol=1e-5, atol=1e-5)
    if impl == "native" and not native_grouped_gradients():
        pytest.skip("this TensorFlow has no grouped conv gradients on this CPU (oneDNN off); "
                    "grouped_conv: auto picks split here")
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        ours = tf.reduce_sum(layer(x) ** 2)
        theirs = tf.reduce_sum(reference(x, layer.kernel) ** 2)
    for wrt in (x, layer.kernel):
        np.testing.assert_allclose(tape.gradient(ours, wrt).numpy(),
                                   tape.gradient(theirs, wrt).numpy(), rtol=1e-4, atol=1e-4)


def test_auto_grouped_conv_follows_the_gradient_probe(monkeypatch):
    from plugins.resnext50 import model

    for works, expected in ((True, "native"), (False, "split")):
        monkeypatch.setitem(model._NATIVE_GRADIENTS, "ok", works)
        assert model.resolve_grouped_conv("auto", "cpu") == expected
        assert model.resolve_grouped_conv("auto", "npu") == "native"
        assert model.resolve_grouped_conv("split", "gpu") == "split"


def test_the_gradient_probe_matches_what_a_grouped_conv_does_here():
    from harness.tfcompat import tf
    from plugins.resnext50.model import native_grouped_gradients

    x, kernel = tf.ones([1, 6, 6, 8]), tf.ones([3, 3, 2, 8])
    try:
        with tf.GradientTape() as tape:
            tape.watch(kernel)
            y = tf.nn.conv2d(x, kernel, 1, "SAME")
        tape.gradient(y, kernel).numpy()
        trains = True
    except tf.errors.InvalidArgumentError:
        trains = False
    assert native_grouped_gradients() is trains


def test_pointwise_conv_as_matmul_equals_conv2d_with_gradients():
    from harness.tfcompat import tf
    from plugins.resnext50.model import grouped_conv2d_class

    layer = grouped_conv2d_class()(6, 1)
    x = tf.random.stateless_normal([2, 5, 7, 4], seed=[3, 4])
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        ours = layer(x)
        reference = tf.nn.conv2d(x, layer.kernel, 1, "SAME")
    np.testing.assert_allclose(ours.numpy(), reference.numpy(), rtol=1e-5, atol=1e-5)
    for wrt in (x, layer.kernel):
        np.testing.assert_allclose(tape.gradient(ours, wrt).numpy(),
                                   tape.gradient(reference, wrt).numpy(), rtol=1e-5, atol=1e-5)


def test_weight_decay_is_l2_on_kernels_only():
    from harness.tfcompat import tf
    from plugins.resnext50.model import build_resnext

    model = build_resnext(TINY)
    kernels = [v for v in model.trainable_variables if v.name.split("/")[-1].startswith("kernel")]
    expected = 1e-4 * sum(float(tf.nn.l2_loss(v)) for v in kernels)  # the seed's wd * l2_loss
    assert float(tf.add_n(model.losses)) == pytest.approx(expected, rel=1e-4)
    assert len(model.losses) == len(kernels)  # no decay on BN gamma/beta or the dense bias


def test_warmup_cosine_schedule():
    schedule = make_schedule(0.1, 1e-6, warmup=10, total=110)
    values = {step: float(schedule(step)) for step in (0, 4, 9, 10, 60, 110, 500)}
    assert values[0] == pytest.approx(0.01)          # first step already trains
    assert values[9] == pytest.approx(0.1)
    assert values[10] == pytest.approx(0.1)          # cosine starts at the peak
    assert values[60] == pytest.approx((0.1 + 1e-6) / 2)
    assert values[110] == pytest.approx(1e-6) and values[500] == pytest.approx(1e-6)
    for step, value in values.items():
        assert value == pytest.approx(cosine_value(step, 0.1, 1e-6, 10, 110))
    no_warmup = make_schedule(0.1, 0.0, warmup=0, total=100)
    assert float(no_warmup(0)) == pytest.approx(0.1)
    assert float(no_warmup(25)) == pytest.approx(0.05 * (1 + math.cos(math.pi / 4)))


def test_modelzoo_log_line_is_the_seeds_format():
    # The seed's own line (ModelZoo README, res50_32bs_1p log).
    assert (modelzoo_line(2000, 0.04, 741.5, 6.766, 7.980, 0.1)
            == "step:  2000  epoch:  0.0  FPS:  741.5  loss: 6.766  total_loss: 7.980  "
               "lr:0.1000000")
