"""Label-smoothed teachers and KD students (with temperature sweeps) on torchvision models.

Teacher (cross-entropy with label smoothing α):
    torchrun --nproc_per_node 8 vision/distill.py --mode teacher --model resnet50 \\
        --dataset imagefolder --data /data/imagenet --label-smoothing 0.1 --output-dir runs/r50_ls

Students (KD from the frozen teacher; one student per temperature, ONE teacher forward a batch):
    torchrun --nproc_per_node 8 vision/distill.py --mode student --model resnet18 \\
        --teacher runs/r50_ls/checkpoint.pt --temperature 1 2 3 --dataset imagefolder \\
        --data /data/imagenet --output-dir runs/r18_kd --dump-features

    loss = (1-β)·CE(y) + β·T²·H(p_t(T), p_s(T))      (β = 1 by default, as in the paper)

``python vision/distill.py ...`` runs the same job in one process. A teacher run writes to
OUTPUT/, a student for temperature T to OUTPUT/T<T>/ (T1, T3, T1.5): checkpoint.pt (atomically,
each epoch), metrics.jsonl (one line an epoch), args.json and, with --dump-features,
features/{train,valid}/ in the feature-set layout of docs/design.md. --resume continues from those
checkpoints (to the --epochs given now). --batch-size is per process.

Paper defaults, all overridable: SGD, momentum 0.9, weight decay 1e-4, batch 256, lr 0.1
(0.01 with --recipe cub) decayed x0.1 every 30 of 90 epochs (teachers) or every 80 of 200
epochs (students).
"""

from __future__ import annotations

import os
import sys

if __package__ in (None, ""):  # run as a script (python/torchrun vision/distill.py)
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import argparse
import contextlib
import copy
import json
import math
import time
from types import SimpleNamespace

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from shared_metrics.errors import run_cli
from shared_metrics.locks import remove_stale_temporaries
from shared_metrics.naming import temperature_tag
from vision import checks, kd, utils
from vision import data as vdata
from vision.checks import check_teacher_inputs
from vision.dump_features import CREATED_BY, dump_all, feature_dtype
from vision.models import (
    build_model,
    check_checkpoint_classes,
    checkpoint_meta,
    find_head,
    load_checkpoint,
    load_pretrained,
    model_from_checkpoint,
    state_dict_of,
)
from vision.utils import VisionError

DEFAULTS = {  # (mode) -> epochs, lr_step
    "teacher": (90, 30),
    "student": (200, 80),
}


def get_args_parser(add_help=True):
    p = argparse.ArgumentParser(
        prog="distill.py",
        description=__doc__,
        add_help=add_help,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    g = p.add_argument_group("task")
    g.add_argument("--mode", choices=("teacher", "student"), default="teacher")
    g.add_argument(
        "--label-smoothing",
        type=float,
        default=0.0,
        metavar="α",
        help="label smoothing α in [0, 1) of the CE term (teacher: its LS; default 0)",
    )
    g.add_argument("--teacher", metavar="CKPT", help="student mode: the teacher's checkpoint")
    g.add_argument(
        "--teacher-model",
        metavar="NAME",
        help="the teacher's architecture (default: read from its checkpoint)",
    )
    g.add_argument(
        "--teacher-alpha",
        type=float,
        metavar="α",
        help="the teacher's α when its checkpoint does not record it",
    )
    g.add_argument(
        "--temperature",
        type=float,
        nargs="+",
        metavar="T",
        help="student mode: one or more temperatures T > 0 (one student each)",
    )
    g.add_argument(
        "--beta",
        type=float,
        default=1.0,
        metavar="β",
        help="weight of the KD term, in [0, 1] (default 1: pure KD, as in the paper)",
    )
    g = p.add_argument_group("model")
    g.add_argument("--model", default="resnet18", help="any torchvision classification model")
    g.add_argument(
        "--model-arg",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="keyword for the model builder, e.g. dropout=0.0 (repeatable)",
    )
    g.add_argument(
        "--pretrained",
        metavar="PATH",
        help="start from a local weights file "
        "(a state dict or checkpoint; a classifier of another size is left new)",
    )
    g.add_argument(
        "--small-input",
        action="store_true",
        help="stride-1 stem for tiny images (see vision/models.py:adapt_small_input)",
    )
    g = p.add_argument_group("data")
    g.add_argument("--dataset", choices=vdata.DATASETS, default="imagefolder")
    g.add_argument(
        "--data",
        metavar="PATH",
        help="imagefolder root (train/, val/) or the "
        "Fashion-MNIST directory (default /usr/share/datasets/fashion-mnist)",
    )
    g.add_argument(
        "--recipe",
        choices=("imagenet", "cub"),
        default="imagenet",
        help="imagefolder augmentations (cub adds rotation and colour jitter; lr 0.01)",
    )
    g.add_argument(
        "--backend",
        type=str.lower,
        choices=vdata.BACKENDS,
        default="pil",
        help="imagefolder decoding and augmentation: pil (PIL images) or tensor "
        "(torchvision.io.decode_image + transforms.v2 on uint8 tensors, the same "
        "random draws); case-insensitive, as torchvision's reference (default pil)",
    )
    g.add_argument(
        "--image-size",
        type=int,
        help="train crop / resize size (default 224 for imagefolder, 32 for the small grey sets)",
    )
    g.add_argument(
        "--limit-train",
        type=int,
        metavar="N",
        help="use N training images: the first N "
        "(grey sets), N spread evenly over the class folders (imagefolder)",
    )
    g.add_argument("--limit-val", type=int, metavar="N", help="use N validation images (as --limit-train)")
    g.add_argument(
        "--workers",
        type=int,
        default=min(8, os.cpu_count() or 1),
        help="data-loading processes per process (default: min(8, CPUs))",
    )
    g = p.add_argument_group("optimisation")
    g.add_argument("--epochs", type=int, help="default 90 (teacher) / 200 (student)")
    g.add_argument("--batch-size", type=int, default=256, help="images per process")
    g.add_argument("--lr", type=float, help="default 0.1 (0.01 with --recipe cub)")
    g.add_argument("--lr-step", type=int, help="decay every N epochs: default 30 / 80")
    g.add_argument("--lr-gamma", type=float, default=0.1)
    g.add_argument(
        "--lr-warmup-epochs",
        type=int,
        default=0,
        help="raise the lr linearly, iteration by iteration, from lr/iters to the scheduled lr "
        "over the first N epochs (Goyal et al., 2017); default 0, as the paper",
    )
    g.add_argument(
        "--clip-grad-norm",
        type=float,
        default=None,
        help="scale each model's gradient to at most this L2 norm (default: no clipping)",
    )
    g.add_argument("--momentum", type=float, default=0.9)
    g.add_argument("--weight-decay", type=float, default=1e-4)
    g.add_argument("--seed", type=int, default=0)
    g.add_argument(
        "--deterministic",
        action="store_true",
        help="deterministic algorithms where torch has them (others warn), cudnn.benchmark off",
    )
    g = p.add_argument_group("engineering")
    g.add_argument(
        "--device", choices=("cpu", "cuda"), default="cuda" if torch.cuda.is_available() else "cpu"
    )
    g.add_argument("--amp", action="store_true", help="bf16 autocast")
    g.add_argument("--channels-last", action="store_true")
    g.add_argument("--compile", action="store_true", help="torch.compile student(s) and teacher")
    g.add_argument("--sync-bn", action="store_true", help="SyncBatchNorm under DDP (CUDA only)")
    g.add_argument("--output-dir", default="runs/vision")
    g.add_argument("--resume", action="store_true", help="continue from the checkpoint(s) in --output-dir")
    g.add_argument(
        "--test-only",
        action="store_true",
        help="evaluate the checkpoint(s) in --output-dir (or --pretrained) and stop",
    )
    g.add_argument(
        "--dump-features",
        action="store_true",
        help="write features/train and features/valid for the final model(s)",
    )
    g.add_argument(
        "--feature-dtype",
        choices=("auto", "float16", "float32"),
        default="auto",
        help="features.npy dtype; auto: float32, float16 above 2**28 values",
    )
    g.add_argument("--print-freq", type=int, default=50)
    g.add_argument("--dist-timeout", type=int, default=120, help="process-group timeout, minutes")
    return p


# ----------------------------------------------------------------------------- arguments
def check_args(args) -> None:
    """Refuse bad input before any work (vision/checks.py), then fill in the mode's defaults."""
    checks.check_train_args(args)
    args.model_kwargs = checks.parse_model_args(args.model_arg)
    epochs, step = DEFAULTS[args.mode]
    args.epochs = args.epochs or epochs
    args.lr_step = args.lr_step or step
    args.lr = args.lr or (0.01 if args.recipe == "cub" else 0.1)


def plain_args(args) -> dict:
    """vars(args) as JSON-safe plain types (checkpoints load with weights_only=True)."""
    return json.loads(json.dumps(vars(args), default=str))


# ----------------------------------------------------------------------------- evaluation
@torch.no_grad()
def evaluate(
    model, loader, device, num_classes, autocast=contextlib.nullcontext, memory_format=torch.contiguous_format
) -> dict:
    """Top-1/top-5, per-class accuracy and mean CE over the whole split. Each process sees a
    disjoint unpadded shard (vdata.ShardSampler); sums are all-reduced, so nothing counts twice."""
    model.eval()
    K = num_classes
    sums = torch.zeros(2 * K + 2, dtype=torch.float64, device=device)  # hit1[K], n[K], hit5, loss
    for images, target in loader:
        images = images.to(device, non_blocking=True, memory_format=memory_format)
        target = target.to(device, non_blocking=True)
        with autocast():
            logits = model(images)
        logits = logits.float()
        top = logits.topk(min(5, K), dim=1).indices
        hit1 = top[:, 0] == target
        sums[:K] += torch.bincount(target[hit1], minlength=K)
        sums[K : 2 * K] += torch.bincount(target, minlength=K)
        sums[2 * K] += (top == target[:, None]).any(1).sum()
        sums[2 * K + 1] += F.cross_entropy(logits, target, reduction="sum").double()
    sums = utils.reduce_across_processes(sums).cpu()
    n = float(sums[K : 2 * K].sum())
    per_class = (sums[:K] / sums[K : 2 * K].clamp(min=1)).tolist()
    return {
        "val_acc1": 100.0 * float(sums[:K].sum()) / max(n, 1),
        "val_acc5": 100.0 * float(sums[2 * K]) / max(n, 1),
        "val_loss": float(sums[2 * K + 1]) / max(n, 1),
        "val_per_class_acc1": [100.0 * a for a in per_class],
        "val_samples": int(n),
    }


# ----------------------------------------------------------------------------- training
def train_one_epoch(runs, teacher, loader, epoch, args, device, autocast, memory_format):
    for r in runs:
        r.slot.model.train()
    slots = [r.slot for r in runs]
    logger = utils.MetricLogger()
    n_img = args.batch_size * args.world_size
    width = len(kd.TALLY)
    win = [torch.zeros(width, device=device) for _ in runs]  # kd.TALLY sums since the last print
    tot = np.zeros((len(runs), width))
    win_n = tot_n = 0
    t0 = time.time()
    warmup_iters = args.lr_warmup_epochs * len(loader)
    for i, (images, target) in enumerate(
        logger.log_every(loader, args.print_freq, f"Epoch: [{epoch}]", n_img)
    ):
        it = epoch * len(loader) + i
        if it < warmup_iters:  # the last warm-up iteration lands exactly on the scheduled lr
            lr = args.lr * args.lr_gamma ** (epoch // args.lr_step) * (it + 1) / warmup_iters
            for r in runs:
                for group in r.slot.optimizer.param_groups:
                    group["lr"] = lr
        images = images.to(device, non_blocking=True, memory_format=memory_format)
        target = target.to(device, non_blocking=True)
        outs = kd.train_step(
            slots,
            images,
            target,
            teacher=teacher,
            beta=args.beta,
            label_smoothing=args.label_smoothing,
            autocast=autocast,
            clip_grad_norm=args.clip_grad_norm,
        )
        kd.tally(win, outs, target)
        win_n += target.size(0)
        if logger.will_print(i):  # the only host sync of the loop
            vals = torch.stack(win).cpu().numpy()
            if teacher is not None and i == 0:  # the teacher's entropy H(p_t) on the first batch
                bad = utils.reduce_across_processes(float(not np.isfinite(vals[:, 3]).all()), device)
                if bad.item():
                    raise VisionError(
                        f"the teacher {args.teacher} gives NaN or inf logits on the first "
                        "batch: the teacher is at fault, not the student's settings; "
                        "nothing was trained or saved"
                        + (" (try without --amp: its logits may overflow bfloat16)" if args.amp else "")
                    )
            tot += vals
            tot_n += win_n
            for r, (ls, c, *_) in zip(runs, vals):
                logger.update(
                    n=win_n,
                    **{
                        f"lr{r.tag}": r.slot.optimizer.param_groups[0]["lr"],
                        f"loss{r.tag}": ls / win_n,
                        f"acc1{r.tag}": 100.0 * c / win_n,
                    },
                )
            for w in win:
                w.zero_()
            win_n = 0
    elapsed = time.time() - t0
    totals = utils.reduce_across_processes(
        torch.tensor(np.concatenate([tot.ravel(), [tot_n]]), dtype=torch.float64), device
    ).cpu()
    tot, n = totals[:-1].view(len(runs), width).numpy(), float(totals[-1])
    out = []
    for r, (ls, c, kl, ent) in zip(runs, tot):
        rec = {"train_loss": ls / max(n, 1), "train_acc1": 100.0 * c / max(n, 1)}
        if (
            r.slot.temperature is not None
        ):  # KD terms at the student's T, nats, without T² (ls_kd logs the same terms in bits)
            rec.update(
                train_kd_loss=(kl + ent) / max(n, 1),
                train_kl=kl / max(n, 1),
                train_teacher_entropy=ent / max(n, 1),
            )
        out.append({**rec, "train_samples": int(n), "img_s": n / elapsed, "epoch_time_s": elapsed})
    return out


# ----------------------------------------------------------------------------- set-up
def load_teacher(args, num_classes, classes, device):
    model, ckpt = model_from_checkpoint(
        args.teacher, args.teacher_model, num_classes=num_classes, flag="--teacher-model"
    )
    check_checkpoint_classes(f"teacher {args.teacher}", ckpt, classes, args.dataset, role="teacher")
    check_teacher_inputs(f"teacher {args.teacher}", ckpt["args"], args)
    alpha = checks.teacher_alpha(ckpt.get("alpha"), args.teacher_alpha)
    checks.check_finite_teacher(args.teacher, model)
    teacher = kd.FrozenTeacher(model.to(device))
    if args.channels_last:
        teacher.to(memory_format=torch.channels_last)
    if args.compile:
        teacher.forward_fn = torch.compile(teacher.model)
    return teacher, ckpt, alpha


def make_runs(args, num_classes, device):
    """One run (model, optimizer, schedule, output dir) per temperature (or the teacher).
    Every student starts from the same weights, built right after torch.manual_seed(seed)."""
    torch.manual_seed(args.seed)
    base = build_model(args.model, num_classes, args.small_input, args.model_kwargs)
    if args.pretrained:
        left = load_pretrained(base, args.pretrained)
        print(
            f"pretrained: {args.pretrained} ({len(left)} tensors left as initialised: "
            f"{', '.join(left[:4])}{' ...' if len(left) > 4 else ''})"
        )
    if args.dump_features:
        find_head(base, num_classes)  # fail now, not after training, if there is no Linear head
    temps = args.temperature if args.mode == "student" else [None]
    runs = []
    for t in temps:
        module = copy.deepcopy(base).to(device)
        if args.channels_last:
            module = module.to(memory_format=torch.channels_last)
        if args.distributed and args.sync_bn:
            module = nn.SyncBatchNorm.convert_sync_batchnorm(module)
        model = module
        if args.distributed:
            model = nn.parallel.DistributedDataParallel(
                module, device_ids=[args.gpu] if device.type == "cuda" else None
            )
        if args.compile:
            model = torch.compile(model)
        opt = torch.optim.SGD(
            module.parameters(), lr=args.lr, momentum=args.momentum, weight_decay=args.weight_decay
        )
        sched = torch.optim.lr_scheduler.StepLR(opt, step_size=args.lr_step, gamma=args.lr_gamma)
        out = args.output_dir if t is None else os.path.join(args.output_dir, temperature_tag(t))
        tag = "" if len(temps) == 1 else f"[{temperature_tag(t)}]"
        slot = kd.Slot(model, opt, temperature=t, seed=args.seed, cuda=device.type == "cuda")
        runs.append(
            SimpleNamespace(
                slot=slot, module=module, scheduler=sched, out_dir=out, temperature=t, tag=tag, start_epoch=0
            )
        )
    return runs


def checkpoint(run, args, epoch, classes, alpha) -> dict:
    return {
        "model": run.module.state_dict(),
        "optimizer": run.slot.optimizer.state_dict(),
        "lr_scheduler": run.scheduler.state_dict(),
        "epoch": epoch,
        "args": plain_args(args),
        "model_name": args.model,
        "num_classes": len(classes),
        "classes": list(classes),
        "mode": args.mode,
        "alpha": alpha,
        "temperature": run.temperature,
        "label_smoothing": args.label_smoothing,
        "teacher": args.teacher,
        "rng": dict(run.slot.rng),
        "created_by": CREATED_BY,
    }


def restore(runs, args, full: bool, alpha=None) -> int:
    """Load each run's checkpoint.pt and set ``r.start_epoch``; returns the earliest. Each run
    keeps the checkpoint's metadata in ``r.saved`` (what a --test-only dump records).

    The students of a sweep checkpoint one after the other, so a run killed in between leaves
    some an epoch ahead (or without any checkpoint yet, when killed in the first epoch): the
    loop then trains only the ones behind until all agree. The data
    order and augmentation depend on the epoch only and each student has its own RNG stream,
    so a student that catches up alone sees exactly what it would have seen in the sweep."""
    paths = [os.path.join(r.out_dir, "checkpoint.pt") for r in runs]
    missing = [p for p in paths if not os.path.isfile(p)]
    if missing and (not full or len(missing) == len(runs)):
        raise VisionError(f"no checkpoint to {'resume' if full else 'test'}: {missing[0]} not found")
    now = plain_args(args)
    for r, path in zip(runs, paths):
        if path in missing:  # killed before this student's first save: it starts from scratch
            r.start_epoch, r.saved = 0, None
            continue
        ck = checkpoint_meta(path, load_checkpoint(path))
        checks.check_restorable(path, ck, args, full)
        if full:
            checks.check_same_training(path, ck, now, r.temperature, alpha)
        try:
            r.module.load_state_dict(state_dict_of(ck, path))
        except RuntimeError as e:
            first = next((ln.strip() for ln in str(e).splitlines()[1:] if ln.strip()), str(e))
            raise VisionError(
                f"{path} does not fit the model built from these arguments "
                f"(--model-arg, --small-input, classes?): {first}"
            ) from None
        if full:
            r.slot.optimizer.load_state_dict(ck["optimizer"])
            r.scheduler.load_state_dict(ck["lr_scheduler"])
            r.slot.rng.update({k: v for k, v in ck["rng"].items() if k in r.slot.rng})
        r.start_epoch = int(ck["epoch"])
        r.saved = {k: v for k, v in ck.items() if k not in ("model", "optimizer", "lr_scheduler", "rng")}
    return min(r.start_epoch for r in runs)


def keep_metrics(path, epochs: int) -> None:
    """Keep the metrics.jsonl lines of the first ``epochs`` epochs (a resumed run redoes an
    epoch that was logged but not checkpointed); rewritten atomically."""
    lines = []
    if epochs and os.path.exists(path):
        with open(path) as f:
            lines = [ln for ln in f if ln.strip() and json.loads(ln).get("epoch", 0) < epochs]
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w") as f:
        f.writelines(lines)
    os.replace(tmp, path)


def main(args):
    check_args(args)
    utils.init_distributed_mode(args)
    device = torch.device("cuda", args.gpu) if args.device == "cuda" else torch.device("cpu")
    # one run per --output-dir (rank 0 holds the lock for all ranks); --test-only only reads it
    lock = (
        None
        if args.test_only and not args.dump_features
        else utils.lock_output(args.output_dir, "--output-dir", device)
    )
    try:
        run(args, device)
    finally:
        if lock is not None:
            lock.release()


def run(args, device):
    """The job of main(), --output-dir locked."""
    seed_and_determinism(args, device)
    ds = vdata.build_datasets(
        args.dataset,
        args.data,
        args.image_size,
        args.recipe,
        args.limit_train,
        args.limit_val,
        backend=args.backend,
    )
    args.image_size = ds.image_size
    K, classes = len(ds.classes), ds.classes
    teacher, alpha = None, args.label_smoothing
    if args.mode == "student":
        teacher, _, alpha = load_teacher(args, K, classes, device)
    runs = make_runs(args, K, device)
    if utils.is_main_process():  # what runs killed while saving left (a dead PID's NAME.tmp-PID)
        for r in runs:
            for name in ("checkpoint.pt", "metrics.jsonl"):
                remove_stale_temporaries(r.out_dir, name)

    amp = (lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if args.amp else contextlib.nullcontext
    mf = torch.channels_last if args.channels_last else torch.contiguous_format
    sampler, train_loader, val_loader = make_loaders(ds, args, device)
    start_epoch = prepare_outputs(runs, args, alpha)

    teacher_acc = None
    if teacher is not None:
        tm = evaluate(teacher.model, val_loader, device, K, amp, mf)
        teacher_acc = tm["val_acc1"]
        print(f"teacher: val acc1 {tm['val_acc1']:.2f}  acc5 {tm['val_acc5']:.2f}  α={alpha}")

    if args.test_only:
        for r in runs:
            m = evaluate(r.module, val_loader, device, K, amp, mf)
            print(
                f"test{r.tag}: acc1 {m['val_acc1']:.3f}  acc5 {m['val_acc5']:.3f}  "
                f"loss {m['val_loss']:.4f}  ({m['val_samples']} images)"
            )
    else:
        for epoch in range(start_epoch, args.epochs):
            sampler.set_epoch(epoch)
            torch.manual_seed(
                (args.seed * 1_000_003 + epoch) % 2**63
            )  # loader worker seeds (augmentation is per image)
            if hasattr(ds.train, "set_epoch"):  # the grey sets: per-image augmentation seeds
                ds.train.set_epoch(epoch, args.seed)
            active = [r for r in runs if r.start_epoch <= epoch]  # all, unless catching up
            train_stats = train_one_epoch(active, teacher, train_loader, epoch, args, device, amp, mf)
            check_finite_epoch(active, train_stats, args, epoch)  # before any save
            for r, st in zip(active, train_stats):
                lr = r.slot.optimizer.param_groups[0]["lr"]
                r.scheduler.step()
                utils.broadcast_buffers(r.module)  # every rank evaluates the checkpointed model
                m = evaluate(r.module, val_loader, device, K, amp, mf)
                log_epoch(r, args, epoch, lr, alpha, st, m, teacher_acc)
                utils.save_on_master(
                    checkpoint(r, args, epoch + 1, classes, alpha), os.path.join(r.out_dir, "checkpoint.pt")
                )
    if args.dump_features:
        dump_run_features(runs, ds, args, device, start_epoch, alpha, amp)
    if args.distributed:
        torch.distributed.destroy_process_group()


def seed_and_determinism(args, device) -> None:
    """Seed torch and numpy; --deterministic: deterministic kernels (else cuDNN's autotuner on CUDA)."""
    if args.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        # warn_only: on CUDA some layers of every torchvision classifier have no deterministic
        # kernel (adaptive average pooling's backward, bincount); they warn instead of failing.
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
    elif device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)


def make_loaders(ds, args, device):
    """(train sampler, train loader, validation loader): each rank its shard of both sets."""
    pin = device.type == "cuda"
    sampler = torch.utils.data.DistributedSampler(
        ds.train, num_replicas=args.world_size, rank=args.rank, shuffle=True, seed=args.seed
    )
    train_loader = torch.utils.data.DataLoader(
        ds.train, batch_size=args.batch_size, sampler=sampler, num_workers=args.workers, pin_memory=pin
    )
    val_loader = torch.utils.data.DataLoader(
        ds.val,
        batch_size=args.batch_size,
        num_workers=args.workers,
        pin_memory=pin,
        sampler=vdata.ShardSampler(len(ds.val), args.world_size, args.rank),
    )
    return sampler, train_loader, val_loader


def prepare_outputs(runs, args, alpha) -> int:
    """The epoch to start from: the checkpoints' with --resume or --test-only (restore), else 0,
    refusing to train over an existing checkpoint; then each run's folder, args.json and
    metrics.jsonl (cut to the epochs its checkpoint holds)."""
    start_epoch = 0
    have_ckpt = all(os.path.isfile(os.path.join(r.out_dir, "checkpoint.pt")) for r in runs)
    if args.test_only:
        if have_ckpt or not args.pretrained:  # else: test the --pretrained weights
            start_epoch = restore(runs, args, full=False)
    elif args.resume:
        start_epoch = restore(runs, args, full=True, alpha=alpha)
        print(f"resumed from epoch {start_epoch} ({args.output_dir})")
    else:
        for r in runs:
            path = os.path.join(r.out_dir, "checkpoint.pt")
            if os.path.exists(path):
                raise VisionError(
                    f"{path} exists: pass --resume to continue it, or choose another --output-dir"
                )
    for r in runs:
        os.makedirs(r.out_dir, exist_ok=True)
        if utils.is_main_process() and not args.test_only:
            with open(os.path.join(r.out_dir, "args.json"), "w") as f:
                json.dump(plain_args(args), f, indent=1)
            keep_metrics(os.path.join(r.out_dir, "metrics.jsonl"), r.start_epoch if args.resume else 0)
    return start_epoch


def check_finite_epoch(runs, train_stats, args, epoch) -> None:
    """Refuse an epoch whose teacher gave NaN or inf logits, or whose training loss is not
    finite: raised before any save, so the last good checkpoint stays."""
    for r, st in zip(runs, train_stats):
        if not math.isfinite(st.get("train_teacher_entropy", 0.0)):
            raise VisionError(
                f"the teacher {args.teacher} gave NaN or inf logits in epoch {epoch}: "
                "the teacher is at fault, not the student's settings; nothing of "
                "this epoch was saved"
            )
        if not math.isfinite(st["train_loss"]):
            raise VisionError(
                f"training{r.tag} diverged in epoch {epoch} (train loss "
                f"{st['train_loss']}); nothing of this epoch was saved: lower --lr"
            )


def log_epoch(r, args, epoch, lr, alpha, st: dict, m: dict, teacher_acc) -> None:
    """One line of the epoch on stdout and one record in the run's metrics.jsonl."""
    rec = {
        "epoch": epoch,
        "mode": args.mode,
        "model": args.model,
        "temperature": r.temperature,
        "alpha": alpha,
        "beta": args.beta,
        "lr": lr,
        **st,
        **m,
        "teacher_val_acc1": teacher_acc,
    }
    print(
        f"Epoch: [{epoch}]{r.tag} acc1 {m['val_acc1']:.3f}  acc5 "
        f"{m['val_acc5']:.3f}  val loss {m['val_loss']:.4f}  "
        f"train loss {st['train_loss']:.4f}  "
        + (f"kl {st['train_kl']:.4f}  H(p_t) {st['train_teacher_entropy']:.4f}  " if "train_kl" in st else "")
        + f"{st['img_s']:.1f} img/s"
    )
    utils.append_jsonl(os.path.join(r.out_dir, "metrics.jsonl"), rec)


def dump_run_features(runs, ds, args, device, start_epoch, alpha, amp) -> None:
    """--dump-features: every run's features/{train,valid}; each rank dumps a slice and all the
    students share one data pass."""
    done = start_epoch if args.test_only else max(start_epoch, args.epochs)
    metas = [
        r.saved
        if args.test_only and getattr(r, "saved", None)
        # what was trained
        else checkpoint(r, args, done, ds.classes, alpha)
        for r in runs
    ]
    dump_all(
        [r.module for r in runs],
        ds,
        [os.path.join(r.out_dir, "features") for r in runs],
        num_classes=len(ds.classes),
        ckpt_metas=metas,
        dataset_name=args.dataset,
        device=device,
        batch_size=args.batch_size,
        workers=args.workers,
        autocast=amp,
        channels_last=args.channels_last,
        dtype=feature_dtype(args.feature_dtype),
    )


def cli(argv=None):
    rc = run_cli("distill.py", main, get_args_parser().parse_args(argv))
    if rc:
        sys.exit(rc)


if __name__ == "__main__":
    cli()
