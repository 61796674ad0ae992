"""preprocess.bible on a few real chapters, preprocess.iwslt14 on a tiny archive in the official
layout, and the pieces of the prepare-iwslt14.sh pipeline."""

import io
import json
import sqlite3
import tarfile

from nmt_toy import PY, run

from preprocess import bible, iwslt14
from preprocess.nmt_data import clean_corpus, moses_tokenize, whole_word_types


def test_clean_corpus_like_moses():
    src = ["a b c", "a", "a b c d e f g h", "x | y", "  ", "p q"]
    tgt = ["a b", "a b c", "a b", "x y", "z", "p q r"]
    s, t = clean_corpus(src, tgt, ratio=1.5, min_len=1, max_len=6)
    # kept: 3/2 = 1.5 (not > 1.5); "x | y" -> "x y"; "p q"/"p q r" 1.5; dropped: 1 vs 3 (ratio 3),
    # 8 words (> max), empty source
    assert s == ["a b c", "x y", "p q"] and t == ["a b", "x y", "p q r"]


def test_moses_tokenisation_escapes_like_tokenizer_perl():
    assert moses_tokenize(['He said "it\'s 5 & more".'], "en") == [
        "He said &quot; it &apos;s 5 &amp; more &quot; ."
    ]


def test_bible_few_chapters_chapter_disjoint(tmp_path):
    out = tmp_path / "bible"
    run(
        [
            PY,
            "-m",
            "preprocess.bible",
            "--pair",
            "ru-en",
            "--out",
            out,
            "--books",
            "40",
            "--max-chapters",
            "9",
            "--bpe-merges",
            "300",
            "--seed",
            "3",
        ]
    )
    man = json.loads((out / "manifest.json").read_text())
    ch = {s: {tuple(c) for c in man["chapters"][s]} for s in ("train", "valid", "test")}
    assert sum(len(v) for v in ch.values()) == 9
    assert (
        not (ch["train"] & ch["valid"]) and not (ch["train"] & ch["test"]) and not (ch["valid"] & ch["test"])
    )
    assert all(b == 40 for v in ch.values() for b, _ in v)
    # each split has exactly the verses of its chapters (from the real database)
    con = sqlite3.connect(bible.default_db())
    for split in ("valid", "test"):
        n = sum(
            con.execute(
                "SELECT count(*) FROM bible WHERE bbName='r' AND bNumber=? AND cNumber=?", c
            ).fetchone()[0]
            for c in ch[split]
        )
        lines = (out / "tok" / f"{split}.ru").read_text().splitlines()
        assert len(lines) == n == man["sentences"][split]["kept"]
        assert lines == [line.lower() for line in lines]
    # joint BPE and a joined dictionary; fairseq's binarised splits
    assert (out / "text" / "code").exists()
    assert (out / "bin" / "dict.ru.txt").read_text() == (out / "bin" / "dict.en.txt").read_text()
    for split in ("train", "valid", "test"):
        for lang in ("ru", "en"):
            assert (out / "bin" / f"{split}.ru-en.{lang}.bin").stat().st_size > 0
    # same seed, same split
    again = bible.split_chapters(sorted(ch["train"] | ch["valid"] | ch["test"]), 3, 0.03, 0.03)
    assert {s: set(v) for s, v in again.items()} == ch


def test_bible_bad_input_one_line_error(tmp_path):
    proc = run([PY, "-m", "preprocess.bible", "--pair", "fr-en", "--out", tmp_path / "x"], check=False)
    assert (
        proc.returncode != 0 and proc.stderr.strip().startswith("error:") and "Traceback" not in proc.stderr
    )
    proc = run(
        [PY, "-m", "preprocess.bible", "--out", tmp_path / "x", "--db", tmp_path / "no.db"], check=False
    )
    assert proc.returncode != 0 and "not found" in proc.stderr


def _fake_iwslt_archive(path, n=60):
    """The official layout: 2014-01/texts/de/en/de-en.tgz holding de-en/train.tags.* and xml sets."""
    words_de = "haus katze hund baum wasser feuer erde licht".split()
    words_en = "house cat dog tree water fire earth light".split()
    tr_de, tr_en = (
        ["<url>http://x</url>", "<keywords>k</keywords>", "<talkid>1</talkid>"],
        ["<url>http://x</url>", "<keywords>k</keywords>", "<talkid>1</talkid>"],
    )
    tr_de.append("<title>Das Haus</title>")
    tr_en.append("<title>The house</title>")
    for i in range(n):
        k = [(i + j) % 8 for j in range(2 + i % 4)]
        tr_de.append("Die " + " ".join(words_de[x] for x in k) + ".")
        tr_en.append("The " + " ".join(words_en[x] for x in k) + ".")

    def xml(lines, lang):
        segs = "\n".join(f'<seg id="{i + 1}"> {line} </seg>' for i, line in enumerate(lines))
        return f'<refset setid="x" srclang="de" trglang="en"><doc docid="1">\n{segs}\n</doc></refset>\n'

    inner = io.BytesIO()
    with tarfile.open(fileobj=inner, mode="w:gz") as tf:

        def add(name, text):
            data = text.encode()
            info = tarfile.TarInfo(f"de-en/{name}")
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))

        add("train.tags.de-en.de", "\n".join(tr_de) + "\n")
        add("train.tags.de-en.en", "\n".join(tr_en) + "\n")
        add("IWSLT14.TED.tst2010.de-en.de.xml", xml(["Der Hund.", "Das Wasser\u2019s."], "de"))
        add("IWSLT14.TED.tst2010.de-en.en.xml", xml(["The dog.", "The water\u2019s."], "en"))
        add("IWSLT14.TED.dev2010.de-en.de.xml", xml(["Die Katze."], "de"))
        add("IWSLT14.TED.dev2010.de-en.en.xml", xml(["The cat."], "en"))
    with tarfile.open(path, "w:gz") as outer:
        data = inner.getvalue()
        info = tarfile.TarInfo("2014-01/texts/de/en/de-en.tgz")
        info.size = len(data)
        outer.addfile(info, io.BytesIO(data))


def test_iwslt14_from_official_archive_layout(tmp_path):
    arch = tmp_path / "2014-01.tgz"
    _fake_iwslt_archive(arch)
    pair, train, test, used = iwslt14.load_iwslt(arch, "de", "en")
    assert pair == "de-en" and used == ["IWSLT14.TED.dev2010", "IWSLT14.TED.tst2010"]
    assert train[0][0] == "Das Haus" and len(train[0]) == 61  # tags filtered, title kept as text
    assert test[1] == ["The cat.", "The dog.", "The water's."]  # dev2010 first, ’ -> '
    out = tmp_path / "iw"
    run(
        [
            PY,
            "-m",
            "preprocess.iwslt14",
            "--raw",
            arch,
            "--src",
            "de",
            "--tgt",
            "en",
            "--out",
            out,
            "--bpe-merges",
            "50",
        ]
    )
    man = json.loads((out / "manifest.json").read_text())
    assert (
        man["sentences"]["valid"]["kept"] == 61 // 23 and man["sentences"]["train"]["kept"] == 61 - 61 // 23
    )
    assert (out / "tok" / "test.en").read_text().splitlines() == [
        "the cat .",
        "the dog .",
        "the water &apos;s .",
    ]
    assert (out / "bin" / "test.de-en.de.idx").exists()


def test_iwslt14_missing_files(tmp_path):
    proc = run([PY, "-m", "preprocess.iwslt14", "--raw", tmp_path, "--out", tmp_path / "o"], check=False)
    assert proc.returncode != 0 and "train.tags.de-en" in proc.stderr and "Traceback" not in proc.stderr


def test_iwslt_lines_split_at_newlines_only():
    """grep/sed split at "\\n" only: a U+2028, U+0085 or form feed inside a line stays in it
    (str.splitlines would split there and shift every later sentence pair)."""
    text = "<url>u</url>\nich sehe\u2028den hund .\r\ndas\x0cist gut .\nwir\x85gehen .\n"
    assert iwslt14.train_lines(text) == ["ich sehe\u2028den hund .", "das\x0cist gut .", "wir\x85gehen ."]
    xml = '<seg id="1"> a\u2028b </seg>\n<seg id="2"> c </seg>'
    assert iwslt14.xml_segments(xml) == ["a\u2028b", "c"]


def test_clean_verse_drops_synodal_numbering_markers():
    assert bible.clean_verse("(14:55) и об опухоли, и о пятнах,") == "и об опухоли, и о пятнах,"
    assert bible.clean_verse("в свой город. (24:36) И стали") == "в свой город. И стали"
    assert bible.clean_verse("the [LORD] (see 3) said `yes`") == "the LORD (see 3) said 'yes'"


def test_whole_word_types_leave_out_word_final_bpe_pieces():
    lines = [
        "go@@ ing home , go@@ ing out",  # 'ing' only ever finishes a word
        "the sing@@ er is sing@@ ing",  # 'ing' again; 'sing@@' is a piece
        "ing ing home er",
    ]  # 'ing' twice alone: 2 of 5 whole; 'er' 1 of 2
    got = whole_word_types(lines)
    assert got == {"home", ",", "out", "the", "is", "er"}
    assert whole_word_types(lines, min_share=0.4) == got | {"ing"}
