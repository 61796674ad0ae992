"""Helpers of the vision trainer tests (tests/test_vision_train.py, tests/test_cuda.py): a
checkpoint's weights, the records of a metrics.jsonl, a feature dump of vision/dump_features.py,
and the check that dumped features are the classifier's input."""

import json

import numpy as np

#: distill.py on the built-in digits, as small as it trains: one epoch on 16 images
TINY_DIGITS = "--dataset digits --limit-train 16 --limit-val 8 --workers 0 --device cpu --epochs 1".split()

#: bench/vision_loader_throughput.py as small as it runs: 6 JPEGs, 0 and 1 workers, one round on the CPU
TINY_LOADER_BENCH = "--images 6 --workers 0 1 --batch-size 4 --image-size 32 --rounds 1 --device cpu".split()


def weights(path):
    """The model state dict of a distill.py checkpoint, on the CPU."""
    import torch

    return torch.load(path, map_location="cpu", weights_only=True)["model"]


def metrics(path, drop=("img_s", "epoch_time_s")):
    """The records of a metrics.jsonl, less the timing fields (they differ from run to run)."""
    with open(path) as f:
        return [{k: v for k, v in json.loads(line).items() if k not in drop} for line in f]


def dump(*argv):
    """vision/dump_features.py in this process, with these arguments."""
    from vision import dump_features

    dump_features.main(dump_features.get_args_parser().parse_args(list(argv)))


def assert_features_give_the_logits(fs, rtol, atol):
    """A dumped feature set holds the head's input f: W f + b reproduces its logits (float64)."""
    logits = np.asarray(fs.features, np.float64) @ fs.head_weight.T.astype(np.float64) + fs.head_bias
    np.testing.assert_allclose(logits, np.asarray(fs.logits, np.float64), rtol=rtol, atol=atol)
