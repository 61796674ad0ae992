"""The --amp and --channels-last flags of the vision benches: each on by default for CUDA, off on the
CPU, and what they resolve to for a device."""

from __future__ import annotations

import argparse
import contextlib


def add_speed_flags(p: argparse.ArgumentParser) -> None:
    """--amp / --no-amp (bf16 autocast) and --channels-last / --no-channels-last, default: on for CUDA."""
    p.add_argument(
        "--amp",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="bf16 autocast (default: on for CUDA)",
    )
    p.add_argument(
        "--channels-last", action=argparse.BooleanOptionalAction, default=None, help="(default: on for CUDA)"
    )


def resolve_speed_flags(args, device):
    """(amp, channels_last, autocast) for ``device``: the flags, each defaulting to whether it is CUDA,
    and a factory of the bf16 autocast context (a no-op context without --amp)."""
    import torch

    cuda = device.type == "cuda"
    amp = cuda if args.amp is None else args.amp
    channels_last = cuda if args.channels_last is None else args.channels_last
    autocast = (lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if amp else contextlib.nullcontext
    return amp, channels_last, autocast
