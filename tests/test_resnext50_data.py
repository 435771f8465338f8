"""ResNeXt-50 plugin data: `bench data images` TFRecords, preprocessing, record counting."""

from __future__ import annotations

import glob
import os

import pytest

from plugins.resnext50.shapes import SHAPES, write_shapes


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory):
    folder = str(tmp_path_factory.mktemp("images"))
    write_shapes(folder, per_class=5, size=24, seed=3)
    return folder


def read_records(pattern):
    from harness.tfcompat import tf

    out = []
    for raw in tf.data.TFRecordDataset(sorted(glob.glob(pattern))):
        example = tf.train.Example.FromString(raw.numpy())
        f = example.features.feature
        image = tf.io.decode_jpeg(f["image/encoded"].bytes_list.value[0])
        out.append((f["image/class/label"].int64_list.value[0],
                    f["image/class/synset"].bytes_list.value[0].decode(), tuple(image.shape),
                    f["image/height"].int64_list.value[0]))
    return out


def test_bench_data_images_writes_imagenet_format_tfrecords(bench_cli, image_folder, tmp_path):
    out = str(tmp_path / "tf")
    result = bench_cli("data", "images", image_folder, out, "--eval-fraction", "0.4",
                       "--shards", "2")
    assert result.exit_code == 0, result.stderr
    assert "train: 12 examples in 2 files" in result.stdout
    assert "validation: 8 examples in 2 files" in result.stdout
    assert sorted(os.listdir(out)) == [
        "labels.txt", "train-00000-of-00002", "train-00001-of-00002",
        "validation-00000-of-00002", "validation-00001-of-00002"]
    labels = open(os.path.join(out, "labels.txt")).read().split()
    assert labels == sorted(SHAPES)
    train = read_records(os.path.join(out, "train-*"))
    held = read_records(os.path.join(out, "validation-*"))
    assert len(train) == 12 and len(held) == 8
    for label, synset, shape, height in train + held:
        assert labels[label] == synset          # label = line of labels.txt
        assert shape == (24, 24, 3) and height == 24
    assert sorted({r[0] for r in held}) == [0, 1, 2, 3]  # every class held out

    again = bench_cli("data", "images", image_folder, out, "--eval-fraction", "0.5")
    assert again.exit_code == 2 and "train-00000-of-00002: already exists" in again.stderr

    # A later conversion into a folder with a labels.txt keeps that file's label order.
    out2 = tmp_path / "tf2"
    out2.mkdir()
    (out2 / "labels.txt").write_text("triangle\nsquare\ncross\ncircle\n")
    result = bench_cli("data", "images", image_folder, str(out2), "--split", "validation")
    assert result.exit_code == 0, result.stderr
    records = read_records(str(out2 / "validation-*"))
    assert len(records) == 20
    assert {synset: label for label, synset, _, _ in records} == {
        "triangle": 0, "square": 1, "cross": 2, "circle": 3}


def test_bench_data_images_bad_input_is_one_line_naming_the_file(bench_cli, tmp_path):
    src = tmp_path / "src"
    (src / "cat").mkdir(parents=True)
    (src / "cat" / "broken.jpg").write_bytes(b"not a jpeg")
    result = bench_cli("data", "images", str(src), str(tmp_path / "out"))
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1
    assert "broken.jpg: not a readable image" in result.stderr
    (src / "dog").mkdir()
    result = bench_cli("data", "images", str(src), str(tmp_path / "out2"))
    assert result.exit_code == 2 and f"{src / 'dog'}: no images" in result.stderr
    result = bench_cli("data", "images", str(tmp_path / "missing"), str(tmp_path / "out3"))
    assert result.exit_code == 2 and "missing: no such directory" in result.stderr


def test_preprocessing_crops_resizes_and_normalises(image_folder):
    from harness.tfcompat import tf
    from plugins.resnext50 import data

    encoded = tf.io.read_file(glob.glob(os.path.join(image_folder, "circle", "*.jpg"))[0])
    train = data.preprocess_train(encoded, 16, 0.64, "bfloat16")
    assert train.shape == (16, 16, 3) and train.dtype == tf.bfloat16
    ev = data.preprocess_eval(encoded, 20, 0.8, "float32")
    assert ev.shape == (20, 20, 3) and ev.dtype == tf.float32
    # (0 - mean) / std .. (255 - mean) / std with the seed's constants
    assert float(tf.reduce_min(ev)) >= -121.0 / 70.0 - 1e-6
    assert float(tf.reduce_max(ev)) <= 155.0 / 71.0 + 1e-6
    window = data.random_crop_window(encoded, 0.64)
    h, w = int(window[2]), int(window[3])
    assert h * w >= 0.64 * 24 * 24 - 24 and h <= 24 and w <= 24
