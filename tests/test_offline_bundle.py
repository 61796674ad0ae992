"""scripts/offline_bundle.py without the network: part selection, the data parts, errors."""

import filecmp

import pytest

from scripts.offline_bundle import FASHION_MNIST_FILES, main

FASHION = "/usr/share/datasets/fashion-mnist"


def test_unknown_part_is_refused(tmp_path):
    with pytest.raises(
        SystemExit, match=r"--parts must name some of wheels, fashion-mnist, bible, got 'weights'"
    ):
        main(["--parts", "weights", "--out", str(tmp_path)])


def test_fashion_mnist_part_copies_the_four_files(tmp_path, capsys):
    import os

    if not all(os.path.isfile(f"{FASHION}/{f}") for f in FASHION_MNIST_FILES):
        pytest.skip("Debian's dataset-fashion-mnist is not installed")
    assert main(["--parts", "fashion-mnist", "--out", str(tmp_path / "b")]) == 0
    for f in FASHION_MNIST_FILES:
        assert filecmp.cmp(f"{FASHION}/{f}", tmp_path / "b" / "fashion-mnist" / f, shallow=False)
    assert f"{tmp_path / 'b' / 'fashion-mnist'}: " in capsys.readouterr().out  # its size, printed


def test_missing_fashion_mnist_names_the_files(tmp_path):
    with pytest.raises(SystemExit, match=r"Fashion-MNIST files missing in .*: train-images-idx3-ubyte.gz, "):
        main(["--parts", "fashion-mnist", "--out", str(tmp_path / "b"), "--fashion-mnist", str(tmp_path)])
