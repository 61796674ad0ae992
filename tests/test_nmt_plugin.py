"""kd_translation + ls_kd inside fairseq: a tiny Transformer on a toy corpus (CPU)."""

import os
import shutil
import subprocess

import pytest
import torch
from conftest import free_port
from nmt_toy import (
    PLUGIN,
    PY,
    REPO,
    TINY,
    env,
    fairseq,
    json_logs,
    kd_args,
    moved_checkpoint,
    swapped_dictionaries,
    toy,
)

import nmt_plugin
from nmt_plugin.errors import LskdConfigError


@pytest.fixture(scope="module")
def toyset(tmp_path_factory):
    return toy(tmp_path_factory)


def setup_kd(data, teacher, *extra):
    """task, criterion, cfg exactly as fairseq-train builds them from these arguments."""
    from fairseq import options, tasks, utils
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf

    parser = options.get_training_parser()
    # the folder of the nmt_plugin imported above: another copy's (the repository's, where an installed
    # copy was imported) would be refused by fairseq as "not globally unique"
    args = options.parse_args_and_arch(
        parser, [str(data), *TINY, *kd_args(str(teacher), user_dir=nmt_plugin.PLUGIN_DIR), *extra]
    )
    cfg = convert_namespace_to_omegaconf(args)
    utils.import_user_module(cfg.common)
    task = tasks.setup_task(cfg.task)
    return task, task.build_criterion(cfg.criterion), cfg


def batches(task, split="valid"):
    task.load_dataset(split)
    itr = task.get_batch_iterator(
        dataset=task.dataset(split), max_tokens=1000, required_batch_size_multiple=1, seed=1
    )
    return list(itr.next_epoch_itr(shuffle=False))


def test_student_initialised_from_teacher_has_zero_kl(toyset):
    from fairseq import checkpoint_utils

    for T in (1.0, 3.0):
        task, crit, _ = setup_kd(toyset["data"], toyset["teacher"], "--kd-temperature", str(T))
        assert not any(p.requires_grad for p in task.teacher.parameters()) and not task.teacher.training
        [student], _ = checkpoint_utils.load_model_ensemble([str(toyset["teacher"])], task=task)
        assert student is not task.teacher
        totals = {"kl": 0.0, "kd_loss": 0.0, "teacher_entropy": 0.0, "ntokens": 0}
        for sample in batches(task):
            loss, n, log = task.valid_step(sample, student, crit)
            for k in totals:
                totals[k] += float(log[k])
        assert totals["ntokens"] > 100
        assert abs(totals["kl"]) / totals["ntokens"] < 1e-5
        assert totals["kd_loss"] == pytest.approx(totals["teacher_entropy"], rel=1e-5)
        assert totals["teacher_entropy"] > 0


def test_train_step_logs_and_teacher_frozen(toyset):
    from fairseq import checkpoint_utils

    task, crit, _ = setup_kd(
        toyset["data"],
        toyset["teacher"],
        "--kd-temperature",
        "2",
        "--kd-beta",
        "0.5",
        "--label-smoothing",
        "0.1",
        "--dropout",
        "0",
    )
    [student], _ = checkpoint_utils.load_model_ensemble([str(toyset["teacher"])], task=task)
    for m in student.modules():  # train mode without dropout: the student computes what the teacher does
        if "Dropout" in type(m).__name__:
            m.p = 0.0
    before = {k: v.clone() for k, v in task.teacher.state_dict().items()}
    opt = torch.optim.SGD(student.parameters(), lr=0.1)

    class Opt:  # the bit of fairseq's optimizer interface train_step uses
        def backward(self, loss):
            loss.backward()

    sample = batches(task, "train")[0]
    loss, n, log = task.train_step(sample, student, crit, Opt(), update_num=0)
    opt.step()
    assert n == sample["ntokens"] and loss.item() > 0
    # p_s = p_t before the step, so kl = 0 and loss = 0.5 CE_LS + 0.5 T² H(p_t).
    assert float(log["kl"]) / n == pytest.approx(0.0, abs=1e-5)
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in student.parameters())
    assert all(p.grad is None for p in task.teacher.parameters())
    for k, v in task.teacher.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_teacher_follows_student_dtype(toyset):
    from fairseq import checkpoint_utils

    task, crit, _ = setup_kd(toyset["data"], toyset["teacher"])
    [student], _ = checkpoint_utils.load_model_ensemble([str(toyset["teacher"])], task=task)
    student = student.to(torch.bfloat16)
    out = task.teacher_outputs(batches(task)[0], student)
    assert next(task.teacher.parameters()).dtype == torch.bfloat16 and out["logits"].dtype == torch.bfloat16


def test_topk_option(toyset):
    from fairseq import checkpoint_utils

    task, crit, _ = setup_kd(
        toyset["data"], toyset["teacher"], "--teacher-topk", "5", "--kd-temperature", "2"
    )
    [student], _ = checkpoint_utils.load_model_ensemble([str(toyset["teacher"])], task=task)
    sample = batches(task)[0]
    out = task.teacher_outputs(sample, student)
    assert out["logits"] is None and out["topk_indices"].shape == (sample["ntokens"], 5)
    _, _, log = task.valid_step(sample, student, crit)
    # truncated teacher: lower entropy than the full one, kd_loss = kl + entropy still holds
    full_task, full_crit, _ = setup_kd(toyset["data"], toyset["teacher"], "--kd-temperature", "2")
    _, _, full = full_task.valid_step(sample, student, full_crit)
    assert float(log["teacher_entropy"]) < float(full["teacher_entropy"])
    assert float(log["kd_loss"]) == pytest.approx(float(log["kl"]) + float(log["teacher_entropy"]), rel=1e-5)


def test_fairseq_train_kd_end_to_end(toyset, tmp_path):
    proc = fairseq(
        "train",
        toyset["data"],
        *TINY,
        *kd_args(toyset["teacher"]),
        "--kd-temperature",
        "2",
        "--save-dir",
        tmp_path / "student",
    )
    logs = json_logs(proc.stdout + proc.stderr)
    train = [r for r in logs if "train_kd_loss" in r][-1]
    valid = [r for r in logs if "valid_kd_loss" in r][-1]
    for prefix, rec in (("train_", train), ("valid_", valid)):
        kd, kl, ent = (float(rec[prefix + k]) for k in ("kd_loss", "kl", "teacher_entropy"))
        assert kd == pytest.approx(kl + ent, abs=2e-3)
        assert float(rec[prefix + "loss"]) == pytest.approx(4 * kd, abs=1e-2)  # β = 1: T² kd
        assert prefix + "nll_loss" in rec and prefix + "ppl" in rec
    assert (tmp_path / "student" / "checkpoint_best.pt").exists()
    # the student loads back for inference without its teacher being set up (--task translation)
    gen = fairseq(
        "generate",
        toyset["data"],
        "--user-dir",
        PLUGIN,
        "--path",
        tmp_path / "student" / "checkpoint_best.pt",
        "--beam",
        "2",
        "--max-tokens",
        "1000",
        "--required-batch-size-multiple",
        "1",
        "--cpu",
        "--quiet",
    )
    assert "BLEU" in gen.stdout + gen.stderr


def test_half_precision_training_on_cpu(toyset, tmp_path):
    """fairseq's --memory-efficient-fp16 runs on CPU (its --fp16 optimizer needs CUDA), so the half
    path of --fp16 on a GPU is exercised here: the teacher is moved to float16 with the student,
    the criterion takes half logits, and its terms match an fp32 run's on the same first batch."""

    def first_update(*extra):
        proc = fairseq(
            "train",
            toyset["data"],
            *TINY,
            *kd_args(toyset["teacher"]),
            "--kd-temperature",
            "2",
            "--max-update",
            "1",
            "--save-dir",
            tmp_path / ("x" + "".join(extra)),
            *extra,
        )
        out = proc.stdout + proc.stderr
        return out, [r for r in json_logs(out) if "kd_loss" in r and "num_updates" in r][0]

    out16, half = first_update("--memory-efficient-fp16")
    _, full = first_update()
    assert "teacher placed on cpu as torch.float16" in out16
    assert "loss_scale" in half and "loss_scale" not in full
    for k in ("loss", "nll_loss", "kd_loss", "kl", "teacher_entropy"):
        assert float(half[k]) == pytest.approx(float(full[k]), rel=1e-2, abs=2e-3), k
    assert float(half["kd_loss"]) == pytest.approx(
        float(half["kl"]) + float(half["teacher_entropy"]), abs=2e-3
    )


def test_dictionary_mismatch_refused(toyset, tmp_path):
    with pytest.raises(LskdConfigError, match="dictionary"):
        setup_kd(toyset["other_data"], toyset["teacher"])
    # and fairseq-train ends with a one-line error naming what differs, no traceback
    proc = fairseq(
        "train",
        toyset["other_data"],
        *TINY,
        *kd_args(toyset["teacher"]),
        "--save-dir",
        tmp_path / "s",
        check=False,
    )
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert (
        last.startswith("error: teacher")
        and "target dictionary differs" in last
        and "source dictionary" in last
    )
    assert "Traceback" not in proc.stderr


def test_missing_or_unreadable_data_folder_refused(toyset, tmp_path):
    missing = tmp_path / "nonexistent"
    with pytest.raises(LskdConfigError, match=f"^data directory not found: {missing}$"):
        setup_kd(missing, toyset["teacher"])
    (tmp_path / "empty").mkdir()  # no binarised files: fairseq cannot even tell the language pair
    with pytest.raises(
        LskdConfigError,
        match=r"^cannot read the translation data in .*empty "
        r"\(Exception: Could not infer language pair",
    ):
        setup_kd(tmp_path / "empty", toyset["teacher"])
    proc = fairseq(
        "train", missing, *TINY, *kd_args(toyset["teacher"]), "--save-dir", tmp_path / "s", check=False
    )
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == f"error: data directory not found: {missing}"


def test_teacher_dictionary_checked_where_its_data_folder_moved(toyset, tmp_path):
    """A checkpoint naming a data folder that is gone cannot be checked: refused, unless
    --teacher-data gives the teacher's dictionaries; same-size dictionaries in another order are
    caught there (the weights' row counts alone would pass them)."""
    moved = moved_checkpoint(
        toyset["teacher"], tmp_path / "moved.pt", **{"task.data": str(tmp_path / "gone")}
    )
    with pytest.raises(LskdConfigError, match=r"cannot check its source dictionary.*--teacher-data DIR"):
        setup_kd(toyset["data"], moved)
    setup_kd(toyset["data"], moved, "--teacher-data", str(toyset["data"]))  # the right folder: accepted
    swapped = swapped_dictionaries(toyset["data"], tmp_path / "swapped")
    with pytest.raises(LskdConfigError, match="source dictionary differs.*target dictionary differs"):
        setup_kd(toyset["data"], moved, "--teacher-data", str(swapped))
    shutil.rmtree(swapped)
    with pytest.raises(LskdConfigError, match="--teacher-data .* has no dict.de.txt"):
        setup_kd(toyset["data"], moved, "--teacher-data", str(swapped))


def test_bad_teacher_checkpoints(toyset, tmp_path):
    with pytest.raises(LskdConfigError, match="not found"):
        setup_kd(toyset["data"], tmp_path / "missing.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(LskdConfigError, match="not a readable fairseq checkpoint"):
        setup_kd(toyset["data"], junk)
    # a checkpoint of another task (hand-edited copy of the teacher)
    lm = moved_checkpoint(toyset["teacher"], tmp_path / "lm.pt", **{"task._name": "language_modeling"})
    with pytest.raises(LskdConfigError, match="not a translation model"):
        setup_kd(toyset["data"], lm)
    with pytest.raises(LskdConfigError, match="teacher-path"):
        setup_kd(toyset["data"], "")


def _train_two_ranks(toyset, save, *extra, script=("-m", "fairseq_cli.train"), arch=TINY):
    """Two fairseq-train ranks on CPU (gloo, --distributed-world-size 2); returns rank 0's output."""
    port = free_port()
    common = [
        PY,
        *script,
        str(toyset["data"]),
        *arch,
        *kd_args(str(toyset["teacher"])),
        "--kd-temperature",
        "2",
        "--save-dir",
        str(save),
        "--distributed-world-size",
        "2",
        "--distributed-init-method",
        f"tcp://127.0.0.1:{port}",
        "--distributed-no-spawn",
        "--distributed-backend",
        "gloo",
        *extra,
    ]
    procs = [
        subprocess.Popen(
            common + ["--distributed-rank", str(r)],
            cwd=REPO,
            env=env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for r in (0, 1)
    ]
    outs = [p.communicate(timeout=180)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs[0][-2000:] + outs[1][-2000:]
    return outs[0]


def test_two_process_cpu_distributed(toyset, tmp_path):
    """fairseq's own DDP on CPU: two fairseq-train ranks, gloo, --distributed-world-size 2."""
    out = _train_two_ranks(toyset, tmp_path / "ddp", "--ddp-backend", "legacy_ddp")
    train = [r for r in json_logs(out) if "train_kd_loss" in r][-1]
    assert float(train["train_kd_loss"]) == pytest.approx(
        float(train["train_kl"]) + float(train["train_teacher_entropy"]), abs=2e-3
    )
    assert (tmp_path / "ddp" / "checkpoint_best.pt").exists()


def test_pytorch_ddp_matches_legacy_ddp(toyset, tmp_path):
    """torch's DDP reducer (--ddp-backend pytorch_ddp, run on CPU by tests/fairseq_cpu_ddp.py)
    averages the same gradients as fairseq's legacy_ddp, with ls_kd's output projection outside the
    DDP forward, and with --find-unused-parameters (where ls_kd must project inside it: an untied
    projection outside it is 'marked ready twice'). Untied output projection, so that it matters."""
    untied = [a for a in TINY if a != "--share-all-embeddings"]
    shim = (str(REPO / "tests" / "fairseq_cpu_ddp.py"),)
    runs = {
        "legacy": ("--ddp-backend", "legacy_ddp"),
        "torch": ("--ddp-backend", "pytorch_ddp"),
        "torch_unused": ("--ddp-backend", "pytorch_ddp", "--find-unused-parameters"),
    }
    outs, params = {}, {}
    for name, extra in runs.items():
        outs[name] = _train_two_ranks(toyset, tmp_path / name, *extra, script=shim, arch=untied)
        from fairseq import checkpoint_utils

        state = checkpoint_utils.load_checkpoint_to_cpu(str(tmp_path / name / "checkpoint_last.pt"))
        params[name] = state["model"]
    assert "decoder.output_projection.weight" in params["legacy"]
    assert "projecting every target position" in outs["torch_unused"]
    assert "projecting every target position" not in outs["torch"]
    for name in ("torch", "torch_unused"):
        assert params[name].keys() == params["legacy"].keys()
        for key, ref in params["legacy"].items():
            torch.testing.assert_close(params[name][key], ref, rtol=1e-4, atol=1e-5, msg=f"{name}: {key}")


def test_second_copy_of_the_plugin_imports_cleanly(tmp_path):
    """An installed copy beside the --user-dir one registers nothing twice and raises nothing."""
    import shutil

    shutil.copytree(
        REPO / "nmt_plugin", tmp_path / "nmt_plugin_copy", ignore=shutil.ignore_patterns("__pycache__")
    )
    code = (
        f"import sys; sys.path.insert(0, {str(tmp_path)!r}); import nmt_plugin, nmt_plugin_copy; "
        "from fairseq.criterions import CRITERION_REGISTRY; from fairseq.tasks import TASK_REGISTRY; "
        "assert CRITERION_REGISTRY['ls_kd'] is nmt_plugin.ls_kd.LsKdCriterion; "
        "assert TASK_REGISTRY['kd_translation'] is nmt_plugin.kd_translation.KdTranslationTask; print('ok')"
    )
    proc = subprocess.run([PY, "-c", code], cwd=REPO, env=env(), capture_output=True, text=True)
    assert proc.returncode == 0 and "ok" in proc.stdout, proc.stderr[-2000:]


def test_same_named_copy_of_the_plugin_ahead_on_the_path(toyset, tmp_path):
    """Another folder named nmt_plugin ahead of the repository on the path (an installed copy):
    fairseq-train --user-dir REPO/nmt_plugin trains; a process that imported the copy sets the task
    up (setup_kd above) with --user-dir nmt_plugin.PLUGIN_DIR, where the repository's folder is
    refused by fairseq as "not globally unique"; and dump_features / bleu load a checkpoint whose
    saved --user-dir is a folder that is gone (fairseq never reads it when loading a checkpoint)."""
    site = tmp_path / "site"
    shutil.copytree(REPO / "nmt_plugin", site / "nmt_plugin", ignore=shutil.ignore_patterns("__pycache__"))
    e = env()
    e["PYTHONPATH"] = str(site) + os.pathsep + e["PYTHONPATH"]

    def py(*args):
        return subprocess.run([PY, *map(str, args)], cwd=tmp_path, env=e, capture_output=True, text=True)

    repo_dir = str(REPO / "nmt_plugin")
    code = f"""
import argparse, sys
sys.path.insert(0, {str(REPO / "tests")!r})
import nmt_plugin
assert nmt_plugin.__file__.startswith({str(site)!r}), nmt_plugin.__file__
import test_nmt_plugin
task, crit, cfg = test_nmt_plugin.setup_kd({str(toyset["data"])!r}, {str(toyset["teacher"])!r})
assert type(task).__module__ == "nmt_plugin.kd_translation" and task.teacher is not None
from fairseq import utils
try:  # (after setup_kd: fairseq remembers a folder it tried, and then skips it silently)
    utils.import_user_module(argparse.Namespace(user_dir={repo_dir!r}))
    raise SystemExit("fairseq accepted a second folder named nmt_plugin")
except ImportError as e:
    assert "not globally unique" in str(e), e
print("ok")
"""
    proc = py("-c", code)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), proc.stderr[-2000:]
    proc = py(
        "-m",
        "fairseq_cli.train",
        toyset["data"],
        *TINY,
        *kd_args(toyset["teacher"], user_dir=repo_dir),
        "--max-update",
        "1",
        "--no-save",
        "--save-dir",
        tmp_path / "s",
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    moved = moved_checkpoint(
        toyset["teacher"],
        tmp_path / "moved.pt",
        **{"common.user_dir": str(tmp_path / "old_checkout" / "nmt_plugin")},
    )
    proc = py("-m", "nmt_plugin.dump_features", moved, "--out", tmp_path / "feats", "--cpu")
    assert proc.returncode == 0 and (tmp_path / "feats").is_dir(), proc.stderr[-2000:]
    proc = py("-m", "nmt_plugin.bleu", "score", moved, "--data", toyset["data"], "--cpu", "--beam", "1")
    assert proc.returncode == 0 and "BLEU = " in proc.stdout, proc.stderr[-2000:]


def test_import_leaves_the_excepthook_and_fairseq_calls_install_it():
    """Importing the plugin keeps the process's sys.excepthook; once fairseq calls into the plugin
    (here: the call it makes), an uncaught plugin error is one line and exit status 1, and any
    other exception keeps its traceback."""
    code = (
        "import sys; hook = sys.excepthook; import nmt_plugin, nmt_plugin.bleu, nmt_plugin.dump_features; "
        "assert sys.excepthook is hook, 'replaced at import'; "
        "from nmt_plugin.errors import LskdConfigError, report_errors_in_one_line; "
        "report_errors_in_one_line(); assert sys.excepthook is not hook; "
        "raise (LskdConfigError('bad\\n  thing') if sys.argv[1] == 'user' else KeyError('bug'))"
    )
    user = subprocess.run([PY, "-c", code, "user"], cwd=REPO, env=env(), capture_output=True, text=True)
    assert user.returncode == 1 and user.stderr.strip().splitlines()[-1] == "error: bad thing", user.stderr
    assert "Traceback" not in user.stderr
    bug = subprocess.run([PY, "-c", code, "bug"], cwd=REPO, env=env(), capture_output=True, text=True)
    assert bug.returncode == 1 and "Traceback" in bug.stderr and "KeyError: 'bug'" in bug.stderr
