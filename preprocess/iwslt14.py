"""IWSLT14 (de-en, en-ru, ...) from local raw files -> fairseq data, like prepare-iwslt14.sh.

Nothing is downloaded. ``--raw`` is any of:
  * the extracted pair folder (``de-en/`` with ``train.tags.de-en.de``, ``IWSLT14.TED*.xml``);
  * a folder above it (it is searched), e.g. the extracted official ``2014-01`` archive;
  * the pair's ``.tgz`` (fairseq's ``de-en.tgz``) or the official ``2014-01.tgz``, which holds
    ``texts/<src>/<tgt>/<src>-<tgt>.tgz``: archives are read in place, nested ones too.

Steps (as in fairseq's ``examples/translation/prepare-iwslt14.sh``): training lines without
``<url>``, ``<talkid>``, ``<keywords>`` and with ``<title>``/``<description>`` tags removed;
Moses tokenisation; ``clean-corpus-n -ratio 1.5 .. 1 175``; lowercasing; valid = every 23rd
cleaned training line; test = the concatenated ``IWSLT14.TED*`` dev/test sets
(``<seg>`` text, ’ -> '); joint BPE (10k merges); ``fairseq-preprocess --joined-dictionary``.

    python -m preprocess.iwslt14 --raw ~/data/de-en.tgz --src de --tgt en --out runs/data/iwslt14.de-en
    python -m preprocess.iwslt14 --raw ~/data/2014-01.tgz --src en --tgt ru --out runs/data/iwslt14.en-ru
"""

from __future__ import annotations

import argparse
import io
import re
import sys
import tarfile
from pathlib import Path

from shared_metrics.errors import UserError, run_cli

from .nmt_data import log, run_pipeline

#: The order of prepare-iwslt14.sh for de-en; other pairs use whichever of these exist, then
#: any further IWSLT14.TED*.xml files in name order.
TEST_SETS = (
    "IWSLT14.TED.dev2010",
    "IWSLT14.TEDX.dev2012",
    "IWSLT14.TED.tst2010",
    "IWSLT14.TED.tst2011",
    "IWSLT14.TED.tst2012",
)


def _collect(raw: Path, pairs: tuple[str, str]) -> dict[str, bytes]:
    """{file name: content} of the pair's train.tags.* and IWSLT14.TED*.xml files."""
    alternatives = "|".join(pairs)
    wanted = re.compile(
        rf"(train\.tags\.({alternatives})\.[a-z]+|IWSLT14\.TEDX?\.[a-z0-9]+\.({alternatives})\.[a-z]+\.xml)$"
    )
    nested = re.compile(rf"(^|/)({alternatives})\.tgz$")
    files: dict[str, bytes] = {}

    def from_tar(tf: tarfile.TarFile):
        for m in tf.getmembers():
            if not m.isfile():
                continue
            name = m.name.rsplit("/", 1)[-1]
            if wanted.fullmatch(name) and name not in files:
                files[name] = tf.extractfile(m).read()
            elif nested.search(m.name):
                with tarfile.open(fileobj=io.BytesIO(tf.extractfile(m).read())) as inner:
                    from_tar(inner)

    if raw.is_file():
        try:
            with tarfile.open(raw) as tf:
                from_tar(tf)
        except tarfile.TarError as e:
            raise UserError(f"{raw}: not a readable .tgz archive ({e})") from None
    elif raw.is_dir():
        for p in sorted(raw.rglob("*")):
            if p.is_file() and wanted.fullmatch(p.name) and p.name not in files:
                files[p.name] = p.read_bytes()
            elif p.is_file() and nested.search(p.name):
                with tarfile.open(p) as tf:
                    from_tar(tf)
    else:
        raise UserError(f"--raw {raw}: no such file or directory")
    return files


def _lines(text: str) -> list[str]:
    """Lines as grep and sed see them: split at "\\n" only (str.splitlines also splits at
    U+2028, U+0085, form feeds, ..., which would shift every later sentence pair)."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]


def train_lines(text: str) -> list[str]:
    """prepare-iwslt14.sh's grep/sed filter of train.tags.*."""
    out = []
    for line in _lines(text):
        if "<url>" in line or "<talkid>" in line or "<keywords>" in line:
            continue
        for tag in ("<title>", "</title>", "<description>", "</description>"):
            line = line.replace(tag, "")
        out.append(line)
    return out


def xml_segments(text: str) -> list[str]:
    """The <seg id="N"> ... </seg> lines of an IWSLT xml file, ’ replaced by '."""
    out = []
    for line in _lines(text):
        if "<seg id" not in line:
            continue
        line = re.sub(r'<seg id="[0-9]*">\s*', "", line)
        line = re.sub(r"\s*</seg>\s*", "", line)
        out.append(line.replace("\u2019", "'"))
    return out


def load_iwslt(raw: Path, src: str, tgt: str):
    pairs = (f"{src}-{tgt}", f"{tgt}-{src}")
    files = _collect(raw, pairs)
    pair = next(
        (p for p in pairs if f"train.tags.{p}.{src}" in files and f"train.tags.{p}.{tgt}" in files), None
    )
    if pair is None:
        raise UserError(
            f"{raw}: no train.tags.{pairs[0]}.{{{src},{tgt}}} (or {pairs[1]}) found; give the "
            f"extracted IWSLT14 {pairs[0]} folder or its .tgz"
        )
    dec = lambda b: b.decode("utf-8", errors="replace")  # noqa: E731
    train_s = train_lines(dec(files[f"train.tags.{pair}.{src}"]))
    train_t = train_lines(dec(files[f"train.tags.{pair}.{tgt}"]))
    if len(train_s) != len(train_t):
        raise UserError(f"train.tags.{pair}: {len(train_s)} {src} lines but {len(train_t)} {tgt} lines")
    names = sorted({n.rsplit(".", 3)[0] for n in files if n.startswith("IWSLT14.") and f".{pair}." in n})
    ordered = [n for n in TEST_SETS if n in names] + [n for n in names if n not in TEST_SETS]
    test_s, test_t, used = [], [], []
    for n in ordered:
        fs, ft = files.get(f"{n}.{pair}.{src}.xml"), files.get(f"{n}.{pair}.{tgt}.xml")
        if fs is None or ft is None:
            continue
        s, t = xml_segments(dec(fs)), xml_segments(dec(ft))
        if len(s) != len(t):
            raise UserError(f"{n}.{pair}: {len(s)} {src} segments but {len(t)} {tgt} segments")
        test_s += s
        test_t += t
        used.append(n)
    if not used:
        raise UserError(f"{raw}: no IWSLT14.TED*.{pair}.{{{src},{tgt}}}.xml dev/test files found")
    return pair, (train_s, train_t), (test_s, test_t), used


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python -m preprocess.iwslt14",
        description="IWSLT14 from local raw files (official archive, fairseq's de-en.tgz, or the extracted "
        "text) -> fairseq data, reproducing fairseq's prepare-iwslt14.sh in Python. Nothing is "
        "downloaded. The binarised data is OUT/bin.",
    )
    ap.add_argument("--raw", required=True, type=Path, help="archive (.tgz) or folder with the IWSLT14 files")
    ap.add_argument("--src", default="de", help="source language (default de)")
    ap.add_argument("--tgt", default="en", help="target language (default en)")
    ap.add_argument("--out", required=True, type=Path, help="output directory")
    ap.add_argument("--bpe-merges", type=int, default=10000, help="joint BPE merges (default 10000)")
    ap.add_argument(
        "--valid-every", type=int, default=23, help="every Nth cleaned training line is valid (23)"
    )
    ap.add_argument("--workers", type=int, default=1, help="processes for tokenisation/binarisation")
    return ap


def run(args) -> int:
    if (
        args.src == args.tgt
        or not re.fullmatch(r"[a-z]{2}", args.src)
        or not re.fullmatch(r"[a-z]{2}", args.tgt)
    ):
        raise UserError("--src and --tgt must be two different two-letter language codes")
    if args.bpe_merges < 1 or args.valid_every < 2 or args.workers < 1:
        raise UserError("--bpe-merges and --workers must be >= 1, --valid-every >= 2")
    pair, train, test, used = load_iwslt(args.raw, args.src, args.tgt)
    log(f"IWSLT14 {pair}: {len(train[0])} training lines, test = {' + '.join(used)} ({len(test[0])} lines)")
    run_pipeline(
        {"train": train, "test": test},
        args.src,
        args.tgt,
        args.out,
        bpe_merges=args.bpe_merges,
        workers=args.workers,
        valid_from_train_every=args.valid_every,
        extra_manifest={"corpus": f"IWSLT14 {pair}", "raw": str(args.raw), "test_sets": used},
    )
    return 0


def main(argv=None) -> int:
    return run_cli("", run, build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
