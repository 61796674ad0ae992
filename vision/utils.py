"""Distributed helpers, progress logging and atomic checkpoints (after torchvision's
references/classification/utils.py, trimmed)."""

from __future__ import annotations

import datetime
import json
import os
import time
from collections import defaultdict, deque

import torch
import torch.distributed as dist

from shared_metrics.errors import UserError
from shared_metrics.locks import OutputLock


class VisionError(UserError):
    """Bad input or state that the CLIs report as one line (no traceback)."""


# ----------------------------------------------------------------------------- argument checks
def flag_name(dest: str) -> str:
    return "--" + dest.replace("_", "-")


def check_at_least(dest: str, value, minimum: int) -> None:
    """``--dest`` (None: not given) must be an integer >= minimum."""
    if value is not None and value < minimum:
        raise VisionError(f"{flag_name(dest)} must be >= {minimum}, got {value}")


#: the data and loader flags that vision/distill.py and vision/dump_features.py share, and the
#: least value each may take (None: not given)
DATA_FLAGS_MIN = {
    "image_size": 1,
    "limit_train": 1,
    "limit_val": 1,
    "batch_size": 1,
    "workers": 0,
    "dist_timeout": 1,
}


def check_data_args(args) -> None:
    """The checks both entry points make of their shared flags (one-line VisionErrors)."""
    for dest, minimum in DATA_FLAGS_MIN.items():
        check_at_least(dest, getattr(args, dest, None), minimum)
    if getattr(args, "device", None) == "cuda" and not torch.cuda.is_available():
        raise VisionError("--device cuda: no CUDA device is available (use --device cpu)")


# ----------------------------------------------------------------------------- distributed
def init_distributed_mode(args) -> None:
    """Read torchrun's environment; set args.distributed/rank/world_size/gpu. Under torchrun a
    process group is made even for one process (as torchvision's reference does: DDP, NCCL and the
    DistributedSampler are then exercised on a one-GPU machine too); a plain
    ``python vision/distill.py`` run is one process without a process group."""
    if "RANK" in os.environ and "WORLD_SIZE" in os.environ:
        args.rank = int(os.environ["RANK"])
        args.world_size = int(os.environ["WORLD_SIZE"])
        args.gpu = int(os.environ.get("LOCAL_RANK", 0))
    else:
        args.distributed, args.rank, args.world_size, args.gpu = False, 0, 1, 0
        return
    args.distributed = True
    backend = "nccl" if args.device == "cuda" else "gloo"
    if args.device == "cuda":
        torch.cuda.set_device(args.gpu)
    dist.init_process_group(backend=backend, timeout=datetime.timedelta(minutes=args.dist_timeout))
    dist.barrier(device_ids=[args.gpu] if backend == "nccl" else None)
    if args.rank == 0:
        print(f"| distributed: {backend}, world size {args.world_size}", flush=True)
    setup_for_distributed(args.rank == 0)


def setup_for_distributed(is_master: bool) -> None:
    """Silence print() on ranks other than 0 (``print(..., force=True)`` still prints)."""
    import builtins

    builtin_print = builtins.print

    def print(*a, **kw):
        force = kw.pop("force", False)
        if is_master or force:
            builtin_print(*a, **kw)

    builtins.print = print


def is_dist_avail_and_initialized() -> bool:
    return dist.is_available() and dist.is_initialized()


def get_world_size() -> int:
    return dist.get_world_size() if is_dist_avail_and_initialized() else 1


def get_rank() -> int:
    return dist.get_rank() if is_dist_avail_and_initialized() else 0


def is_main_process() -> bool:
    return get_rank() == 0


def barrier() -> None:
    if is_dist_avail_and_initialized():
        dist.barrier()


def broadcast_buffers(module, src: int = 0) -> None:
    """Give every rank rank ``src``'s buffers (BatchNorm running statistics). DDP broadcasts them
    only at the start of a training forward, so after an epoch's last step each rank holds its
    own; evaluation and feature dumps must all see the model rank 0 checkpoints."""
    if is_dist_avail_and_initialized() and get_world_size() > 1:
        for buf in module.buffers():
            dist.broadcast(buf, src)


def lock_output(path, flag: str, device=None):
    """One run per output folder: rank 0 takes ``path``'s lock (shared_metrics.locks: a
    ``.NAME.lock`` beside it, fcntl.flock), every rank learns whether it got it, and all refuse
    together when another run holds it (the error names that run's PID). The other ranks of this
    run never take the lock, so they never refuse because rank 0 holds it. Returns the lock
    (rank 0) or None; release it when done."""
    path = str(path)
    if os.path.exists(path) and not os.path.isdir(path):
        raise VisionError(f"{flag} {path} is a file, not a directory")
    lock, error = None, None
    if is_main_process():
        try:
            lock = OutputLock(path, flag, error=VisionError).acquire()
        except VisionError as e:
            error = e
    if (
        get_world_size() > 1
        and reduce_across_processes(float(error is not None), device).item()
        and error is None
    ):
        raise VisionError(
            f"{flag} {path} is being written by another run (rank 0 could not lock it; see its error)"
        )
    if error is not None:
        raise error
    return lock


def reduce_across_processes(val, device=None):
    """Sum a number or tensor over all processes; returns a tensor."""
    t = val.detach().clone() if torch.is_tensor(val) else torch.tensor(val, dtype=torch.float64)
    if device is not None:
        t = t.to(device)
    if is_dist_avail_and_initialized():
        dist.all_reduce(t)
    return t


# ----------------------------------------------------------------------------- checkpoints
def atomic_save(obj, path) -> None:
    """torch.save to a temporary sibling, then os.replace: a killed run never leaves a
    half-written checkpoint under the final name."""
    path = str(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp-{os.getpid()}"
    torch.save(obj, tmp)
    os.replace(tmp, path)


def save_on_master(obj, path) -> None:
    if is_main_process():
        atomic_save(obj, path)


def append_jsonl(path, record: dict) -> None:
    if is_main_process():
        with open(path, "a") as f:
            f.write(json.dumps(record) + "\n")


# ----------------------------------------------------------------------------- progress
class SmoothedValue:
    """A series of values: windowed median/avg and the global average."""

    def __init__(self, window_size: int = 20, fmt: str = "{median:.4f} ({global_avg:.4f})"):
        self.deque, self.total, self.count, self.fmt = deque(maxlen=window_size), 0.0, 0, fmt

    def update(self, value: float, n: int = 1) -> None:
        self.deque.append(value)
        self.count += n
        self.total += value * n

    @property
    def median(self) -> float:
        return float(torch.tensor(list(self.deque)).median().item()) if self.deque else 0.0

    @property
    def avg(self) -> float:
        return sum(self.deque) / len(self.deque) if self.deque else 0.0

    @property
    def global_avg(self) -> float:
        return self.total / max(self.count, 1)

    @property
    def value(self) -> float:
        return self.deque[-1] if self.deque else 0.0

    def __str__(self) -> str:
        return self.fmt.format(median=self.median, avg=self.avg, global_avg=self.global_avg, value=self.value)


class MetricLogger:
    """``for batch in logger.log_every(loader, 10, "Epoch: [0]", images_per_iter=256)`` prints
    every print_freq iterations: position, ETA, meters, images/s (global, all processes)."""

    def __init__(self, delimiter: str = "  "):
        self.meters = defaultdict(SmoothedValue)
        self.delimiter = delimiter
        self.print_freq, self.num_iters = 1, 0

    def update(self, n: int = 1, **kwargs) -> None:
        for k, v in kwargs.items():
            self.meters[k].update(float(v), n)

    def add_meter(self, name: str, meter: SmoothedValue) -> None:
        self.meters[name] = meter

    def will_print(self, i: int) -> bool:
        """Whether log_every prints after iteration i (sync device-side sums only then)."""
        return i % self.print_freq == 0 or i == self.num_iters - 1

    def __str__(self) -> str:
        return self.delimiter.join(f"{k}: {v}" for k, v in self.meters.items())

    def log_every(self, iterable, print_freq: int, header: str = "", images_per_iter: int = 0):
        self.print_freq, self.num_iters = max(1, print_freq), len(iterable)
        n = self.num_iters
        width = len(str(n))
        start = end = time.time()
        iter_time = SmoothedValue(fmt="{avg:.4f}")
        data_time = SmoothedValue(fmt="{avg:.4f}")
        for i, obj in enumerate(iterable):
            data_time.update(time.time() - end)
            yield obj
            iter_time.update(time.time() - end)
            if self.will_print(i):
                eta = datetime.timedelta(seconds=int(iter_time.global_avg * (n - i - 1)))
                rate = images_per_iter / iter_time.avg if iter_time.avg > 0 else 0.0
                print(
                    self.delimiter.join(
                        [
                            f"{header} [{i:>{width}}/{n}]",
                            f"eta: {eta}",
                            str(self),
                            f"img/s: {rate:.1f}",
                            f"time: {iter_time}",
                            f"data: {data_time}",
                        ]
                    ),
                    flush=True,
                )
            end = time.time()
        total = datetime.timedelta(seconds=int(time.time() - start))
        print(f"{header} Total time: {total}", flush=True)
