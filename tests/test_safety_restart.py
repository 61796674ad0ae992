"""fairseq-train --task kd_translation restarted after a kill: a checkpoint_last.pt left empty or
truncated is named in one line and the newest whole checkpoint is resumed; a kill half-way
through fairseq's copy to checkpoint_last.pt (tests/fairseq_kill_at.py) leaves the previous
whole file there (the plugin's copy is atomic), and the restart ends with the very weights of a
clean stop-and-restart from the same checkpoint; the killed copy's temporary is removed."""

import os
import re

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("fairseq")

from nmt_toy import PY, REPO, TINY, json_logs, kd_args, run, toy  # noqa: E402
from safety_helpers import dead_pid  # noqa: E402

#: TINY with epoch checkpoints (checkpointN.pt) and without its --max-epoch
EPOCHS = [a for a in TINY if a != "--no-epoch-checkpoints"]
del EPOCHS[EPOCHS.index("--max-epoch") : EPOCHS.index("--max-epoch") + 2]


@pytest.fixture(scope="module")
def toyset(tmp_path_factory):
    return toy(tmp_path_factory)


def train(toyset, save, epochs, script=("-m", "fairseq_cli.train"), check=True):
    return run(
        [
            PY,
            *script,
            toyset["data"],
            *EPOCHS,
            "--max-epoch",
            str(epochs),
            *kd_args(toyset["teacher"]),
            "--kd-temperature",
            "2",
            "--save-dir",
            save,
        ],
        check=check,
    )


def updates(proc) -> int:
    """num_updates of the last epoch-end training record."""
    return int(
        [r for r in json_logs(proc.stdout + proc.stderr) if "train_num_updates" in r][-1]["train_num_updates"]
    )


def loaded(proc) -> tuple[str, int, int]:
    m = re.findall(r"Loaded checkpoint (\S+) \(epoch (\d+) @ (\d+) updates\)", proc.stdout + proc.stderr)
    assert len(m) == 1, (proc.stdout + proc.stderr)[-3000:]
    return m[0][0], int(m[0][1]), int(m[0][2])


def weights(path):
    from fairseq import checkpoint_utils

    import nmt_plugin  # noqa: F401  (fairseq's reads through the plugin's weights-only loader)

    return checkpoint_utils.load_checkpoint_to_cpu(str(path))["model"]


def test_truncated_or_empty_checkpoint_last_resumes_from_the_newest_whole_one(toyset, tmp_path):
    save = tmp_path / "s"
    first = train(toyset, save, 2)
    per_epoch = updates(first) // 2  # the same batches every epoch
    assert per_epoch >= 2 and updates(first) == 2 * per_epoch
    last = save / "checkpoint_last.pt"
    whole = last.read_bytes()
    last.write_bytes(whole[: len(whole) // 2])  # a kill during a non-atomic copy
    stale, live = (
        save / f"checkpoint_last.pt.tmp-{dead_pid()}",
        save / f"checkpoint_last.pt.tmp-{os.getpid()}",
    )
    stale.write_bytes(b"x")
    live.write_bytes(b"x")  # a running process's (this one): not ours to remove
    second = train(toyset, save, 3)
    out = second.stdout + second.stderr
    warned = [line for line in out.splitlines() if "checkpoint_last.pt is" in line]
    assert (
        len(warned) == 1
        and "is truncated or corrupted (a run killed while writing it?); resuming from" in warned[0]
    )
    path, epoch, n = loaded(second)
    # fairseq records the epoch to start next: 3 after two whole epochs, at 2 epochs' updates
    assert os.path.basename(path) in ("checkpoint2.pt", "checkpoint_best.pt") and (epoch, n) == (
        3,
        2 * per_epoch,
    )
    assert updates(second) == 3 * per_epoch and (save / "checkpoint3.pt").is_file()
    assert "Traceback" not in out
    assert not stale.exists() and live.exists()
    live.unlink()

    last.write_bytes(b"")  # empty: resumes from the newest whole one, now epoch 3's
    third = train(toyset, save, 4)
    out = third.stdout + third.stderr
    assert len([line for line in out.splitlines() if "checkpoint_last.pt is empty (0 bytes)" in line]) == 1
    assert loaded(third)[1:] == (4, 3 * per_epoch) and updates(third) == 4 * per_epoch

    # nothing whole to fall back on: one line, exit != 0
    lone = tmp_path / "lone"
    lone.mkdir()
    (lone / "checkpoint_last.pt").write_bytes(whole[:100])
    proc = train(toyset, lone, 1, check=False)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == (
        f"error: {lone}/checkpoint_last.pt is truncated or corrupted and --save-dir {lone} holds no other "
        f"whole checkpoint to resume from: remove {lone}/checkpoint_last.pt to start afresh"
    )


def test_kill_while_copying_to_checkpoint_last_resumes_as_a_clean_restart(toyset, tmp_path):
    """SIGKILL half-way through epoch 2's copy to checkpoint_last.pt: the file is still epoch 1's
    (whole), the restart resumes from it and ends with exactly the weights of a run stopped
    cleanly after epoch 1 and restarted (fairseq's restart itself is the reference: it is not
    bit-identical to an uninterrupted run)."""
    killed = tmp_path / "killed"
    proc = train(
        toyset, killed, 2, script=(str(REPO / "tests" / "fairseq_kill_at.py"), "copy-last", "2"), check=False
    )
    assert proc.returncode == -9
    temporaries = [n for n in os.listdir(killed) if ".tmp-" in n]
    assert len(temporaries) == 1 and temporaries[0].startswith("checkpoint_last.pt.tmp-")
    resumed = train(toyset, killed, 2)
    assert os.path.basename(loaded(resumed)[0]) == "checkpoint_last.pt" and loaded(resumed)[1] == 2
    assert not [n for n in os.listdir(killed) if ".tmp" in n]
    clean = tmp_path / "clean"
    train(toyset, clean, 1)
    train(toyset, clean, 2)
    got, want = weights(killed / "checkpoint_last.pt"), weights(clean / "checkpoint_last.pt")
    assert got.keys() == want.keys()
    for k in want:
        assert torch.equal(got[k], want[k]), k
