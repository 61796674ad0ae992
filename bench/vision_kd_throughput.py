"""Throughput of the trainer's KD step (vision.kd.train_step + vision.kd.tally, exactly what
vision/distill.py runs each iteration) against a plain KD loop written here, in one run.

    python bench/vision_kd_throughput.py              # CUDA: bf16, channels_last, 256 x 224²
    python bench/vision_kd_throughput.py --compile    # + torch.compile (vs the eager loop)
    python bench/vision_kd_throughput.py --device cpu --batch-size 8 --image-size 64 --steps 3

Synthetic data already on the device, teacher resnet50 -> student resnet18 by default.
Ratios and their goals (the goals are for CUDA):
  ours / reference          images/s of one KD step           goal >= 0.95 (no trainer overhead)
  sweep / 4 single-T steps  student-images/s, 4 temperatures  goal >= 1.5  (one teacher forward)
  compiled ours / eager ref images/s, with --compile          goal >= 1.4
Each mode is timed in --rounds alternating rounds; the median round is reported.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch
import torch.nn.functional as F
import torchvision

from bench.speed_flags import add_speed_flags, resolve_speed_flags
from vision import kd


def reference_step(student, teacher, opt, x, y, T, autocast):
    """The plain loop: teacher forward, student forward/backward, SGD step."""
    with torch.no_grad(), autocast():
        t_logits = teacher(x)
    with autocast():
        s_logits = student(x)
    loss = F.kl_div(
        F.log_softmax(s_logits.float() / T, 1), F.softmax(t_logits.float() / T, 1), reduction="batchmean"
    ) * (T * T)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def sgd(model):
    return torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)


def timed(fn, steps, device):
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(steps):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--device", choices=("cuda", "cpu"), default="cuda" if torch.cuda.is_available() else "cpu"
    )
    p.add_argument("--teacher", default="resnet50")
    p.add_argument("--student", default="resnet18")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--image-size", type=int, default=224)
    p.add_argument("--num-classes", type=int, default=1000)
    p.add_argument("--temperatures", type=float, nargs="+", default=[1.0, 2.0, 3.0, 4.0])
    p.add_argument("--steps", type=int, default=30, help="timed steps per round and mode")
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--rounds", type=int, default=3)
    add_speed_flags(p)
    p.add_argument("--compile", action="store_true", help="also time torch.compile'd models")
    p.add_argument("--json", help="also write the results to this file")
    a = p.parse_args(argv)
    device = torch.device(a.device)
    amp, cl, autocast = resolve_speed_flags(a, device)
    mf = torch.channels_last if cl else torch.contiguous_format
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True

    torch.manual_seed(0)

    def model(name):
        net = torchvision.models.get_model(name, num_classes=a.num_classes)
        return net.to(device, memory_format=mf)

    teacher_net = model(a.teacher).eval().requires_grad_(False)
    base = model(a.student)
    x = torch.randn(a.batch_size, 3, a.image_size, a.image_size, device=device).to(memory_format=mf)
    y = torch.randint(0, a.num_classes, (a.batch_size,), device=device)
    T0, Ts = a.temperatures[0], a.temperatures

    # --- the contenders -------------------------------------------------------------------
    ref_student = copy.deepcopy(base)
    ref_opt = sgd(ref_student)
    teacher = kd.FrozenTeacher(teacher_net)

    def slot(T, compiled=False):
        m = copy.deepcopy(base)
        return kd.Slot(torch.compile(m) if compiled else m, sgd(m), T, cuda=device.type == "cuda")

    def ours_fn(slots, t):
        acc = [torch.zeros(len(kd.TALLY), device=device) for _ in slots]

        def step():
            outs = kd.train_step(slots, x, y, teacher=t, autocast=autocast)
            kd.tally(acc, outs, y)

        return step

    modes = {
        "reference": (lambda: reference_step(ref_student, teacher_net, ref_opt, x, y, T0, autocast), 1),
        "ours": (ours_fn([slot(T0)], teacher), 1),
    }
    if len(Ts) > 1:
        sweep_slots = [slot(T) for T in Ts]
        singles = [ours_fn([slot(T)], teacher) for T in Ts]
        modes["sweep"] = (ours_fn(sweep_slots, teacher), len(Ts))
        modes["singles"] = (lambda: [f() for f in singles], len(Ts))
    print(
        f"device {device} ({torch.cuda.get_device_name() if device.type == 'cuda' else 'cpu'}), "
        f"{a.teacher} -> {a.student}, batch {a.batch_size} x {a.image_size}², amp={amp}, "
        f"channels_last={cl}, torch {torch.__version__}",
        flush=True,
    )
    results = {
        "device": str(device),
        "batch_size": a.batch_size,
        "image_size": a.image_size,
        "teacher": a.teacher,
        "student": a.student,
        "amp": amp,
        "channels_last": cl,
        "images_per_s": {},
        "ratios": {},
    }

    def measure(modes: dict) -> dict:
        """Warm-up (and compilation) of each mode, then --rounds interleaved timed rounds: medians."""
        for name, (fn, _) in modes.items():
            t0 = time.perf_counter()
            timed(fn, a.warmup, device)
            print(f"  warm-up {name}: {time.perf_counter() - t0:.1f} s", flush=True)
        rates = {name: [] for name in modes}
        for _ in range(a.rounds):
            for name, (fn, per_step) in modes.items():
                secs = timed(fn, a.steps, device)
                rates[name].append(a.steps * a.batch_size * per_step / secs)
        med = {k: statistics.median(v) for k, v in rates.items()}
        print(f"\n{'mode':<16}{'student img/s':>15}  (median of {a.rounds} rounds x {a.steps} steps)")
        for k, v in med.items():
            print(f"{k:<16}{v:>15.1f}")
        return med

    def report(med: dict, checks) -> None:
        """Print the ratios against their goals; (re)write --json with everything so far."""
        print()
        for label, num, den, goal in checks:
            r = med[num] / med[den]
            results["ratios"][f"{num}/{den}"] = r
            verdict = ("meets" if r >= goal else "MISSES") + f" goal >= {goal}"
            if device.type != "cuda":
                verdict += " (goals are for CUDA)"
            print(f"{label:<34}{r:6.3f}  {verdict}", flush=True)
        if a.json:
            tmp = f"{a.json}.tmp"
            with open(tmp, "w") as f:
                json.dump(results, f, indent=1)
            os.replace(tmp, a.json)

    # eager first, written at once: a compile that runs long (minutes, cold) cannot cost these
    med = measure(modes)
    results["images_per_s"].update(med)
    checks = [("ours / reference", "ours", "reference", 0.95)]
    if "sweep" in med:
        checks.append((f"sweep / {len(Ts)} single-T steps", "sweep", "singles", 1.5))
    report(med, checks)
    if a.compile:  # then the compiled step, timed against the eager reference again
        cteacher = kd.FrozenTeacher(teacher_net)
        cteacher.forward_fn = torch.compile(teacher_net)
        med_c = measure(
            {
                "ours_compiled": (ours_fn([slot(T0, compiled=True)], cteacher), 1),
                "reference": modes["reference"],
            }
        )
        results["images_per_s"]["ours_compiled"] = med_c["ours_compiled"]
        report(med_c, [("compiled ours / eager reference", "ours_compiled", "reference", 1.4)])
    return results


if __name__ == "__main__":
    main()
