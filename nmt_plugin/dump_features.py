"""Penultimate decoder features of a translation checkpoint, as a lskd feature set.

Runs CKPT with teacher forcing over a split of the binarised data and writes, for each non-pad
target token (optionally at most N per token type), the decoder output right before the
vocabulary projection (after the final layer norm, as fed to ``output_projection``).
labels = target token ids, classes = the target dictionary's symbols, head weight = the output
projection (bias zeros: fairseq's projection has none). ``lskd-metrics`` then computes η over
target tokens.

    python -m nmt_plugin.dump_features CKPT --data DATA_BIN --split valid --out feats/T2 \\
        [--max-per-type 200] [--logits] [--cpu]
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
import time
from pathlib import Path

PLUGIN_VERSION = "0.1.0"


def _meta_from_cfg(cfg, args) -> dict:
    from .checks import cfg_get as _get
    from .checks import teacher_alpha

    task, crit, model = _get(cfg, "task"), _get(cfg, "criterion"), _get(cfg, "model")
    crit_name = _get(crit, "_name")
    if crit_name == "ls_kd":
        role = "student"
        temperature = float(_get(task, "kd_temperature"))
        alpha = args.alpha if args.alpha is not None else teacher_alpha(_get(task, "teacher_path"))
    else:
        role = "teacher"
        temperature = None
        eps = _get(crit, "label_smoothing")
        alpha = float(eps) if eps is not None else (0.0 if crit_name == "cross_entropy" else None)
    meta = {
        "task": "nmt",
        "role": role,
        "model": str(_get(model, "arch") or _get(model, "_name")),
        "alpha": alpha,
        "temperature": temperature,
        "kd_beta": _get(crit, "kd_beta"),
        "seed": _get(_get(cfg, "common"), "seed"),
    }
    if args.alpha is not None:
        meta["alpha"] = args.alpha
    if args.temperature is not None:
        meta["temperature"] = args.temperature
    return meta


def dataset_name(data: str) -> str:
    """'runs/data/bible.de-en/bin' -> 'bible.de-en' (the folder above a generic 'bin')."""
    from fairseq import utils

    path = Path(utils.split_paths(data)[0]).resolve()
    return path.parent.name if path.name in ("bin", "data-bin") else path.name


def select_positions(dataset, indices, max_per_type: int, skip: set[int]) -> tuple[dict, int]:
    """{dataset index: bool array over its target positions} and the total kept, choosing the
    first max_per_type occurrences of each type in index order (0 = keep all)."""
    import numpy as np

    counts: dict[int, int] = {}
    keep: dict[int, np.ndarray] = {}
    total = 0
    for i in sorted(int(j) for j in indices):
        tgt = dataset.tgt[i].numpy()
        m = np.ones(len(tgt), dtype=bool)
        for j, tok in enumerate(tgt):
            tok = int(tok)
            if tok in skip or (max_per_type and counts.get(tok, 0) >= max_per_type):
                m[j] = False
            else:
                counts[tok] = counts.get(tok, 0) + 1
        keep[i] = m
        total += int(m.sum())
    return keep, total


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m nmt_plugin.dump_features",
        description="Write the decoder's penultimate features of CKPT over a data split as a lskd "
        "feature set (features, labels = target token ids, head = output projection).",
    )
    ap.add_argument("checkpoint", help="fairseq checkpoint (teacher or ls_kd student)")
    ap.add_argument("--data", default=None, help="binarised data dir (default: the one in the checkpoint)")
    ap.add_argument(
        "--checkpoint-data",
        default=None,
        help="folder with the dict.*.txt the checkpoint was trained with, to check --data's "
        "against (default: the data folder its config names)",
    )
    ap.add_argument("--split", default="valid", help="train, valid or test (default valid)")
    ap.add_argument("--out", required=True, type=Path, help="output feature-set directory")
    ap.add_argument(
        "--max-per-type",
        type=int,
        default=0,
        help="keep at most N tokens of each target type (first N in corpus order); 0 = all",
    )
    ap.add_argument("--skip-special", action="store_true", help="leave out </s> and <unk> targets")
    ap.add_argument("--max-tokens", type=int, default=4096, help="tokens per batch (default 4096)")
    ap.add_argument("--dtype", choices=("float16", "float32"), default="float16", help="feature dtype")
    ap.add_argument("--logits", action="store_true", help="also store logits.npy [N, V] (float16)")
    ap.add_argument("--cpu", action="store_true", help="run on CPU even if CUDA is available")
    ap.add_argument("--fp16", action="store_true", help="run the model in half precision (CUDA)")
    ap.add_argument("--alpha", type=float, default=None, help="override meta alpha (teacher label smoothing)")
    ap.add_argument("--temperature", type=float, default=None, help="override meta temperature")
    ap.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    args = ap.parse_args(argv)
    from shared_metrics.errors import run_cli

    return run_cli("", run, args)


def run(args) -> int:
    from shared_metrics.locks import OutputLock

    from . import kd_translation  # noqa: F401  (registers the task; the weights-only checkpoint reads)
    from .errors import LskdConfigError

    if args.max_per_type < 0 or args.max_tokens < 1:
        raise LskdConfigError("--max-per-type must be >= 0 and --max-tokens >= 1")
    if args.out.exists() and not args.out.is_dir():
        raise LskdConfigError(f"--out {args.out} is a file, not a feature-set directory")
    # one writer per --out: a second dump into it fails now, naming this one's PID
    with OutputLock(args.out, "--out", error=LskdConfigError):
        return _dump(args)


def _dump(args) -> int:
    from .errors import LskdConfigError

    if args.out.exists() and not args.overwrite:
        raise LskdConfigError(f"{args.out} already exists (pass --overwrite to replace it)")
    state, cfg, task, data = open_on_data(args.checkpoint, args.data, args.checkpoint_data)
    load_split(task, args.split, data)
    model, device = load_model(args, task, state, data)
    W = output_projection(model, task.target_dictionary)
    batches, keep, total = select_tokens(args, task, model)
    meta = _meta_from_cfg(cfg, args)
    meta.update(
        classes=list(task.target_dictionary.symbols),
        split=args.split,
        dataset=dataset_name(data),
        checkpoint=os.path.abspath(args.checkpoint),
        source_lang=task.cfg.source_lang,
        target_lang=task.cfg.target_lang,
        max_per_type=args.max_per_type,
        feature="decoder output before the vocabulary projection",
        created_by=f"lskd nmt_plugin.dump_features {PLUGIN_VERSION}",
    )
    write_features(args, model, device, batches, keep, total, W, meta, task.target_dictionary.pad())
    print(
        f"\n[dump_features] wrote {args.out}: {total} tokens x {W.shape[1]} dims, {len(W)} classes "
        f"(role {meta['role']}, alpha {meta['alpha']}, T {meta['temperature']})",
        file=sys.stderr,
    )
    return 0


def open_on_data(checkpoint: str, data: str | None, checkpoint_data: str | None):
    """(state, cfg, task, data) of ``checkpoint`` on the data folder ``data`` (default: the one
    its config names): a plain translation task, no teacher loaded, whose dictionaries are checked
    against the checkpoint's (``checkpoint_data``: --checkpoint-data)."""
    from omegaconf import open_dict

    from .checks import cfg_get, check_checkpoint_dictionaries, load_checkpoint_state, setup_translation_data
    from .errors import LskdConfigError

    state, cfg = load_checkpoint_state(checkpoint)
    # a copy: cfg.task keeps what the checkpoint was trained on (its data folder, its languages)
    task_cfg = copy.deepcopy(cfg.task)
    data = data or cfg_get(task_cfg, "data")
    if not data:
        raise LskdConfigError(f"{checkpoint} names no data folder (pass --data DATA_BIN)")
    with open_dict(task_cfg):
        task_cfg.data = data
    task = setup_translation_data(task_cfg)
    check_checkpoint_dictionaries(task, checkpoint, cfg, state["model"], checkpoint_data)
    return state, cfg, task, data


def load_split(task, split: str, data: str) -> None:
    """``task.load_dataset(split)``, or a one-line LskdConfigError naming the split and folder."""
    from .checks import first_line
    from .errors import LskdConfigError

    try:
        task.load_dataset(split)
    except FileNotFoundError as e:
        raise LskdConfigError(f"split {split!r} not found in {data} ({e})") from None
    except Exception as e:
        raise LskdConfigError(f"cannot read split {split!r} of {data} ({first_line(e)})") from None


def load_model(args, task, state, data: str):
    """(model, device): the checkpoint's model in eval mode on CUDA (unless --cpu; half with --fp16)."""
    import torch
    from fairseq import checkpoint_utils

    from .checks import first_line
    from .errors import LskdConfigError

    try:
        models, _ = checkpoint_utils.load_model_ensemble([args.checkpoint], task=task, state=state)
    except Exception as e:
        raise LskdConfigError(
            f"checkpoint {args.checkpoint}: cannot build its model on {data} ({first_line(e)})"
        ) from None
    model = models[0]
    device = torch.device("cuda" if torch.cuda.is_available() and not args.cpu else "cpu")
    model.eval().to(device)
    if args.fp16 and device.type == "cuda":
        model.half()
    return model, device


def output_projection(model, tgt_dict):
    """The decoder's vocabulary projection as a float32 array [V, D], one row per target symbol."""
    from .errors import LskdConfigError

    proj = getattr(model.decoder, "output_projection", None)
    if proj is None:
        raise LskdConfigError(
            "the model's decoder has no output_projection (adaptive softmax is not supported)"
        )
    W = proj.weight.detach().float().cpu().numpy()
    if W.shape[0] != len(tgt_dict):
        raise LskdConfigError(
            f"output projection has {W.shape[0]} rows but the target dictionary {len(tgt_dict)} symbols"
        )
    return W


def select_tokens(args, task, model):
    """(batch iterator, keep, total): the split's batches in a fixed order and the target
    positions to dump (:func:`select_positions`; pad always out, </s> and <unk> with --skip-special)."""
    from fairseq import utils

    from .errors import LskdConfigError

    dataset = task.dataset(args.split)
    tgt_dict = task.target_dictionary
    batches = task.get_batch_iterator(
        dataset=dataset,
        max_tokens=args.max_tokens,
        max_positions=utils.resolve_max_positions(task.max_positions(), model.max_positions()),
        ignore_invalid_inputs=True,
        required_batch_size_multiple=1,
        seed=1,
    )
    batch_indices = [i for b in batches.frozen_batches for i in b]
    skip = {tgt_dict.eos(), tgt_dict.unk()} if args.skip_special else set()
    skip.add(tgt_dict.pad())
    keep, total = select_positions(dataset, batch_indices, args.max_per_type, skip)
    if total == 0:
        raise LskdConfigError(f"no target tokens selected in split {args.split!r}")
    return batches, keep, total


def write_features(args, model, device, batches, keep: dict, total: int, W, meta: dict, pad: int) -> None:
    """Run the model over ``batches`` with teacher forcing and write the kept positions' decoder
    features (and logits with --logits) to the feature set ``args.out``, atomically; ``pad`` is
    the target dictionary's padding index, never kept."""
    import numpy as np
    import torch
    from fairseq import utils

    from shared_metrics.featureset import FeatureSetWriter

    t0, done = time.time(), 0
    with (
        FeatureSetWriter(
            args.out,
            num_samples=total,
            dim=W.shape[1],
            head_weight=W,
            head_bias=np.zeros(len(W), np.float32),
            meta=meta,
            dtype=np.dtype(args.dtype),
            logits=args.logits,
            overwrite=args.overwrite,
        ) as writer,
        torch.no_grad(),
    ):
        for sample in batches.next_epoch_itr(shuffle=False):
            sample = utils.move_to_cuda(sample) if device.type == "cuda" else sample
            feats, _ = model(**sample["net_input"], features_only=True)  # [B, L, D]
            target = sample["target"]
            sel = torch.zeros_like(target, dtype=torch.bool)
            for r, idx in enumerate(sample["id"].tolist()):
                m = torch.from_numpy(keep[idx])
                sel[r, : len(m)] = m.to(sel.device)
            sel &= target.ne(pad)
            x = feats[sel]
            logits = (
                model.decoder.output_layer(x).float().cpu().numpy().astype(np.float16)
                if args.logits
                else None
            )
            writer.append(x.float().cpu().numpy(), target[sel].cpu().numpy(), logits)
            done += int(sel.sum())
            el = time.time() - t0
            print(
                f"\r[dump_features] {done}/{total} tokens, {done / max(el, 1e-9):.0f} tok/s",
                end="",
                file=sys.stderr,
                flush=True,
            )


if __name__ == "__main__":
    sys.exit(main())
