"""``fairseq-train`` that SIGKILLs itself at one point of epoch E (a test helper: fault injection).

    python tests/fairseq_kill_at.py POINT E <fairseq-train arguments>

POINT is where the kill lands (E is the epoch; fairseq saves the epoch's first checkpoint file
with torch.save, then copies it to checkpoint_best.pt and checkpoint_last.pt):

* ``update``: in the middle of epoch E's training (before its second update);
* ``save``: while the first checkpoint file of epoch E is being written (half of it written
  to fairseq's temporary ``NAME.tmp``);
* ``copy-best`` / ``copy-last``: half-way through copying it to checkpoint_best.pt /
  checkpoint_last.pt (whatever name the copy writes to: the plugin's ``NAME.tmp-PID``);
* ``after-save``: right after epoch E's checkpoints are all written.

Nothing else changes; a run whose point never comes (say, no new best) ends normally.
"""

import io
import os
import shutil
import signal
import sys

import fairseq_cli.train as fairseq_train
import torch
from fairseq import checkpoint_utils

POINTS = ("update", "save", "copy-best", "copy-last", "after-save")
state = {"epoch": None, "updates_in_epoch": 0}


def die() -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def write_half(data: bytes, path: str) -> None:
    with open(path, "wb") as f:
        f.write(data[: len(data) // 2])
        f.flush()
        os.fsync(f.fileno())


def install(point: str, epoch: int) -> None:
    train, save = fairseq_train.train, checkpoint_utils.save_checkpoint
    persistent_save, copyfile = checkpoint_utils.torch_persistent_save, shutil.copyfile

    def train_epoch(cfg, trainer, task, epoch_itr):
        # the epoch this call trains (epoch_itr.epoch is still the previous one until train() starts it)
        state["epoch"], state["updates_in_epoch"] = epoch_itr.next_epoch_idx, 0
        if point == "update" and state["epoch"] == epoch:
            step = trainer.train_step

            def train_step(*a, **kw):
                state["updates_in_epoch"] += 1
                if state["updates_in_epoch"] == 2:
                    die()
                return step(*a, **kw)

            trainer.train_step = train_step
        return train(cfg, trainer, task, epoch_itr)

    def save_checkpoint(*a, **kw):
        out = save(*a, **kw)
        if point == "after-save" and state["epoch"] == epoch:
            die()
        return out

    def torch_persistent_save(obj, filename, async_write=False):
        if point == "save" and state["epoch"] == epoch:
            buf = io.BytesIO()
            torch.save(obj, buf)
            write_half(buf.getvalue(), filename + ".tmp")
            die()
        return persistent_save(obj, filename, async_write)

    def copy(src, dst, *a, **kw):
        name = os.path.basename(dst)
        target = {"copy-best": "checkpoint_best", "copy-last": "checkpoint_last"}.get(point)
        if target and name.startswith(target) and state["epoch"] == epoch:
            with open(src, "rb") as f:
                write_half(f.read(), dst)
            die()
        return copyfile(src, dst, *a, **kw)

    fairseq_train.train = train_epoch
    checkpoint_utils.save_checkpoint = save_checkpoint
    checkpoint_utils.torch_persistent_save = torch_persistent_save
    shutil.copyfile = copy


if __name__ == "__main__":
    point, epoch = sys.argv[1], int(sys.argv[2])
    assert point in POINTS, point
    install(point, epoch)
    sys.argv = ["fairseq-train", *sys.argv[3:]]
    fairseq_train.cli_main()
