"""The feature-set contract: round trip, validation messages, atomic writes, streamed reads."""

import json

import numpy as np
import pytest

from shared_metrics.featureset import (
    FeatureSet,
    FeatureSetError,
    FeatureSetWriter,
    concatenate_feature_sets,
    write_feature_set,
)


def _write(tmp_path, name="fs", n=6, d=3, k=2, **kw):
    x = np.arange(n * d, dtype=np.float32).reshape(n, d)
    y = np.arange(n) % k
    return (
        write_feature_set(
            tmp_path / name,
            x,
            y,
            np.ones((k, d)),
            None,
            {"classes": [f"c{i}" for i in range(k)], "task": "vision"},
            **kw,
        ),
        x,
        y,
    )


def test_round_trip_and_memmap(tmp_path):
    path, x, y = _write(tmp_path, logits=np.zeros((6, 2), np.float16))
    fs = FeatureSet.open(path)
    assert (fs.num_samples, fs.dim, fs.num_classes, fs.has_logits) == (6, 3, 2, True)
    assert isinstance(fs.features, np.memmap)
    np.testing.assert_array_equal(fs.features, x)
    np.testing.assert_array_equal(fs.labels, y)
    np.testing.assert_array_equal(fs.head_bias, np.zeros(2))
    blocks = list(fs.iter_chunks(chunk_rows=4))
    assert [s for s, _, _ in blocks] == [0, 4]
    np.testing.assert_array_equal(np.vstack([b for _, _, b in blocks]), x)
    np.testing.assert_array_equal(np.concatenate([y for _, y, _ in blocks]), y)
    # only class 1's rows, still in file order
    kept = list(fs.iter_chunks(chunk_rows=4, classes=[1]))
    np.testing.assert_array_equal(np.vstack([b for _, _, b in kept]), x[y == 1])
    assert fs.class_index("c1") == 1 and fs.class_index("1") == 1
    with pytest.raises(FeatureSetError, match="unknown class 'c9'"):
        fs.class_index("c9")


def test_writer_is_atomic(tmp_path):
    target = tmp_path / "set"
    with pytest.raises(RuntimeError):
        with FeatureSetWriter(
            target, num_samples=4, dim=2, head_weight=np.ones((2, 2)), meta={"classes": ["a", "b"]}
        ) as w:
            w.append(np.zeros((2, 2)), [0, 1])
            raise RuntimeError("killed")
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []  # no temporary left behind either
    w = FeatureSetWriter(
        target, num_samples=4, dim=2, head_weight=np.ones((2, 2)), meta={"classes": ["a", "b"]}
    )
    w.append(np.zeros((2, 2)), [0, 1])
    with pytest.raises(FeatureSetError, match="2 of 4"):
        w.close()
    assert not target.exists()


def test_writer_refuses_nan_and_existing(tmp_path):
    with pytest.raises(FeatureSetError, match="non-finite"):
        write_feature_set(
            tmp_path / "n", np.array([[np.nan, 1.0]]), [0], np.ones((1, 2)), meta={"classes": ["a"]}
        )
    with pytest.raises(FeatureSetError, match="too large for float16"):  # 1e5 > 65504
        w = FeatureSetWriter(
            tmp_path / "big",
            num_samples=1,
            dim=2,
            head_weight=np.ones((1, 2)),
            meta={"classes": ["a"]},
            dtype=np.float16,
        )
        w.append(np.array([[1e5, 1.0]], np.float32), [0])
    w.abort()
    with pytest.raises(FeatureSetError, match="non-finite logit"):
        write_feature_set(
            tmp_path / "lg",
            np.zeros((1, 2), np.float32),
            [0],
            np.ones((1, 2)),
            meta={"classes": ["a"]},
            logits=np.array([[np.nan]], np.float32),
        )
    path, _, _ = _write(tmp_path)
    with pytest.raises(FeatureSetError, match="already exists"):
        _write(tmp_path)
    _write(tmp_path, overwrite=True)
    assert FeatureSet.open(path).num_samples == 6


def _corrupt(path, name, value):
    if name == "meta.json":
        (path / name).write_text(value)
    else:
        np.save(path / name, value)


@pytest.mark.parametrize(
    "name,value,message",
    [
        ("features.npy", np.array([[1.0, np.nan, 0]] * 6, np.float32), "non-finite value .* row 0"),
        ("features.npy", np.zeros((6, 3), np.float64), "float16 or float32"),
        ("features.npy", np.zeros((5, 3), np.float32), r"labels.npy: expected int64 \[5\]"),
        ("labels.npy", np.array([0, 1, 0, 1, 0, 7]), "label 7 outside the 2 classes"),
        ("labels.npy", np.zeros(6, np.int32), "expected int64"),
        ("head_weight.npy", np.ones((3, 3), np.float32), r"head_weight.npy: expected shape \[2, 3\]"),
        ("head_bias.npy", np.ones(3, np.float32), r"head_bias.npy: expected shape \[2\]"),
        ("logits.npy", np.zeros((6, 5), np.float16), r"logits.npy: expected shape \[6, 2\]"),
        ("meta.json", "{not json", "meta.json: not valid JSON"),
        ("meta.json", json.dumps({"classes": ["a", "a"]}), "appears more than once"),
        ("meta.json", json.dumps({"task": "vision"}), "'classes' must be"),
    ],
)
def test_validation_names_file_and_problem(tmp_path, name, value, message):
    path, _, _ = _write(tmp_path)
    _corrupt(path, name, value)
    with pytest.raises(FeatureSetError, match=message):
        fs = FeatureSet.open(path)
        list(fs.iter_chunks())  # finiteness is checked as features are streamed


def test_missing_and_truncated_files(tmp_path):
    with pytest.raises(FeatureSetError, match="directory not found"):
        FeatureSet.open(tmp_path / "nope")
    path, _, _ = _write(tmp_path)
    data = (path / "features.npy").read_bytes()
    (path / "features.npy").write_bytes(data[:-5])
    with pytest.raises(FeatureSetError, match="truncated"):
        FeatureSet.open(path)
    (path / "features.npy").write_bytes(data)
    (path / "labels.npy").unlink()
    with pytest.raises(FeatureSetError, match="labels.npy: file not found"):
        FeatureSet.open(path)


def test_rows_of_skipped_classes_are_still_checked(tmp_path):
    path, x, y = _write(tmp_path, n=6, d=3, k=2)
    x = x.copy()
    x[2, 0] = np.inf  # row 2 is class 0
    np.save(path / "features.npy", x.astype(np.float16))
    fs = FeatureSet.open(path)
    with pytest.raises(FeatureSetError, match="row 2"):
        list(fs.iter_chunks(classes=[1]))


def test_concatenate_keeps_rows_in_order_and_refuses_foreign_parts(tmp_path):
    meta = {"classes": ["c0", "c1"], "task": "vision", "split": "train"}
    x = np.arange(10 * 3, dtype=np.float16).reshape(10, 3) / 7
    y = np.array([0, 1, 1, 0, 1, 0, 0, 1, 1, 1])
    z = np.arange(10 * 2, dtype=np.float32).reshape(10, 2) - 5
    w = np.full((2, 3), 0.5)
    for name, sl in (("p0", slice(0, 4)), ("p1", slice(4, 5)), ("p2", slice(5, 10))):
        write_feature_set(tmp_path / name, x[sl], y[sl], w, None, dict(meta, part=name), logits=z[sl])
    out = concatenate_feature_sets(
        [tmp_path / p for p in ("p0", "p1", "p2")], tmp_path / "all", meta=meta, chunk_rows=3
    )
    fs = FeatureSet.open(out)
    assert fs.feature_dtype == np.float16 and fs.meta == meta
    np.testing.assert_array_equal(fs.features, x)  # exact: float16 in, float16 out
    np.testing.assert_array_equal(fs.labels, y)
    np.testing.assert_array_equal(fs.logits, z)
    np.testing.assert_array_equal(fs.head_weight, w)
    write_feature_set(tmp_path / "other", x[:2], y[:2], np.full((2, 3), 0.25), None, meta, logits=z[:2])
    with pytest.raises(FeatureSetError, match="not a part of the same feature set"):
        concatenate_feature_sets([tmp_path / "p0", tmp_path / "other"], tmp_path / "bad")
    assert not (tmp_path / "bad").exists()
