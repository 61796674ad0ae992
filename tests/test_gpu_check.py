"""scripts/gpu_check.py without a GPU: which commands it would run, the budget, the summary."""

import json
import types

import pytest
from vision_helpers import TINY_LOADER_BENCH

from scripts import gpu_check
from scripts.gpu_check import main

#: the steps gpu_check.py runs when none are named
DEFAULT_STEPS = ["env", "tests", "bench-vision", "bench-nmt", "bench-loader", "demo"]


def step_names(out):
    """The steps a --dry-run printed, in order (its '# STEP ...' heading lines)."""
    return [line.split()[1] for line in out.splitlines() if line.startswith("# ")]


def test_dry_run_lists_the_steps_and_takes_the_bundle_data(tmp_path, capsys):
    bundle = tmp_path / "bundle"
    (bundle / "fashion-mnist").mkdir(parents=True)
    (bundle / "bible-de-en").mkdir()
    assert (
        main(
            [
                "--dry-run",
                "--steps",
                "tests,bench-vision,bench-nmt,bench-loader,demo,bench-dump",
                "--bundle",
                str(bundle),
                "--out",
                str(tmp_path / "out"),
                "--demo-scale",
                "0.05",
                "--jobs",
                "3",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert step_names(out) == [*DEFAULT_STEPS, "bench-dump"]
    assert "-m cuda" in out and "tests/test_cuda.py" in out
    assert (
        f"bench/vision_kd_throughput.py --compile --rounds 2 --steps 20 --json "
        f"{tmp_path / 'out' / 'bench_vision.json'}"
    ) in out
    assert "bench/nmt_kd_throughput.py --fp16" in out
    assert (
        f"bench/vision_loader_throughput.py --images 2048 --workers 8 16 --json "
        f"{tmp_path / 'out' / 'bench_loader.json'}"
    ) in out
    assert f"bench/vision_dump_throughput.py --json {tmp_path / 'out' / 'bench_dump.json'}" in out
    assert "# demo (limit the rest of the budget)" in out
    demo = next(line for line in out.splitlines() if "scripts/demo.sh" in line)
    assert demo.startswith("LSKD_USE_CURRENT_PYTHON=1 LSKD_NO_APT=1 PYTHON=")
    assert "--full --scale-epochs 0.05" in demo and "--jobs 3" in demo
    assert (
        f"--fashion-mnist {bundle / 'fashion-mnist'}" in demo
        and f"--nmt-data {bundle / 'bible-de-en'}" in demo
    )
    assert not (tmp_path / "out").exists()


def test_defaults_are_plain_whatever_the_environment(monkeypatch, capsys, tmp_path):
    """The default steps and --out are plain defaults: an OUT variable in the environment changes nothing."""
    monkeypatch.setenv("OUT", str(tmp_path / "elsewhere"))
    assert main(["--dry-run"]) == 0
    out = capsys.readouterr().out
    assert step_names(out) == DEFAULT_STEPS
    assert f"--json {gpu_check.ROOT / 'runs' / 'gpu-check' / 'bench_vision.json'}" in out
    assert "elsewhere" not in out


@pytest.mark.parametrize(
    "share,demo_limit",
    [
        # every step uses its whole limit: 570 - (30 + 170 + 170 + 100 + 45) = 570 - 515 = 55 s left
        (1.0, 55.0),
        # every step ends after a tenth of its limit: 570 - 51.5 = 518.5 s left for the demo
        (0.1, 518.5),
    ],
)
def test_default_steps_fit_the_default_budget(tmp_path, monkeypatch, share, demo_limit):
    """The default steps under the default --budget (570 s), on a clock that advances only by
    what each step takes: the limits they run with, and the demo gets what is left."""
    clock = types.SimpleNamespace(now=0.0, strftime=gpu_check.time.strftime)
    clock.perf_counter = lambda: clock.now
    ran = []

    def fake_run_step(step, env, log_path, limit):
        ran.append((step.name, limit))
        clock.now += share * limit
        return "ok", share * limit, ""

    monkeypatch.setattr(gpu_check, "time", clock)
    monkeypatch.setattr(gpu_check, "run_step", fake_run_step)
    assert main(["--out", str(tmp_path / "out"), "--work", str(tmp_path / "work")]) == 0
    assert ran == [
        ("env", 30),
        ("tests", 170),
        ("bench-vision", 170),
        ("bench-nmt", 100),
        ("bench-loader", 45),
        ("demo", pytest.approx(demo_limit)),
    ]
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert [r["status"] for r in results] == ["ok"] * 6


def test_a_step_is_stopped_at_the_budget_and_later_ones_not_started(tmp_path, monkeypatch):
    """--budget 200: env (30 s) and tests (stopped at the 170 s left) use it all; the benches,
    which need 60 / 60 / 20 s, and the demo (30 s) are not started."""
    clock = types.SimpleNamespace(now=0.0, strftime=gpu_check.time.strftime)
    clock.perf_counter = lambda: clock.now
    ran = []

    def fake_run_step(step, env, log_path, limit):
        ran.append((step.name, limit))
        clock.now += limit
        return "ok", limit, ""

    monkeypatch.setattr(gpu_check, "time", clock)
    monkeypatch.setattr(gpu_check, "run_step", fake_run_step)
    assert main(["--budget", "200", "--out", str(tmp_path / "out"), "--work", str(tmp_path / "work")]) == 1
    assert ran == [("env", 30), ("tests", 170)]
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert [r["status"] for r in results[2:]] == ["not started (0 s of the budget left)"] * 4


def test_bad_budget_is_refused(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--budget", "0", "--dry-run"])
    assert e.value.code == 2 and "--budget must be > 0 seconds, got 0" in capsys.readouterr().err


def test_budget_too_small_starts_nothing_and_still_writes_the_summary(tmp_path):
    rc = main(
        [
            "--steps",
            "env,tests",
            "--budget",
            "1",
            "--out",
            str(tmp_path / "out"),
            "--work",
            str(tmp_path / "work"),
        ]
    )
    assert rc == 1  # not everything ran
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert [r["step"] for r in results] == ["env", "tests"]
    assert all(r["status"].startswith("not started") for r in results)
    summary = (tmp_path / "out" / "summary.md").read_text()
    assert "| env | not started" in summary and (tmp_path / "out" / "logs.tar.gz").exists()


def test_unknown_step_is_refused(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["--steps", "tests,benchmark", "--out", str(tmp_path)])
    assert "unknown step(s) benchmark" in capsys.readouterr().err


def test_a_step_past_its_limit_is_killed_with_its_children(tmp_path, capsys):
    import sys
    import time

    from scripts.gpu_check import Step, run_step

    # a shell that starts a child; both must go when the limit passes
    step = Step("slow", 60, 0, [["bash", "-c", "echo started; sleep 30 & wait"]])
    t0 = time.perf_counter()
    status, secs, output = run_step(step, {"PATH": "/usr/bin:/bin"}, tmp_path / "slow.log", limit=1.5)
    assert status == "timed out after 2 s" and time.perf_counter() - t0 < 10
    assert output == "started\n" and "started" in (tmp_path / "slow.log").read_text()
    assert "[slow] started" in capsys.readouterr().out
    ok = Step(
        "ok", 60, 0, [[sys.executable, "-c", "print('a')"], [sys.executable, "-c", "raise SystemExit(4)"]]
    )
    assert run_step(ok, {}, tmp_path / "ok.log", limit=60)[:1] == ("failed (exit 4)",)


def test_dump_bench_numbers_in_the_summary(tmp_path):
    """The bench's own JSON (written by a real CPU run of it) becomes the summary's line."""
    from bench.vision_dump_throughput import main as bench

    ratio = bench(
        [
            "--device",
            "cpu",
            "--students",
            "2",
            "--images",
            "12",
            "--image-size",
            "32",
            "--batch-size",
            "4",
            "--workers",
            "0",
            "--rounds",
            "1",
            "--work",
            str(tmp_path / "jpg"),
            "--json",
            str(tmp_path / "bench_dump.json"),
        ]
    )
    from scripts.gpu_check import key_numbers

    line = key_numbers("bench-dump", "", tmp_path)
    assert line.startswith(f"shared / per-student {ratio:.2f} (up to 2x); student-img/s shared ")
    assert len(list((tmp_path / "jpg" / "train").glob("c*/*.jpg"))) == 12


@pytest.mark.filterwarnings("ignore:The image decoding and encoding capabilities:DeprecationWarning")
def test_loader_bench_numbers_in_the_summary_beside_the_kd_step(tmp_path):
    """The loader bench's own JSON (a real CPU run) becomes the summary's line; with the vision
    bench's JSON beside it, the KD step's compiled img/s follows (the rate the loader must feed)."""
    from bench.vision_loader_throughput import main as bench

    r = bench([*TINY_LOADER_BENCH, "--json", str(tmp_path / "bench_loader.json")])
    from scripts.gpu_check import key_numbers

    ips = r["images_per_s"]
    pil, tensor = ips["pil"], ips["tensor"]
    want = (
        "img/s pil / tensor: "
        f"0 workers {pil['0']:.0f} / {tensor['0']:.0f} ({tensor['0'] / pil['0']:.2f}x), "
        f"1 workers {pil['1']:.0f} / {tensor['1']:.0f} ({tensor['1'] / pil['1']:.2f}x)"
    )
    assert key_numbers("bench-loader", "", tmp_path) == want
    (tmp_path / "bench_vision.json").write_text(
        json.dumps({"images_per_s": {"ours": 6180.4, "ours_compiled": 9087.2}})
    )
    assert key_numbers("bench-loader", "", tmp_path) == want + "; KD step (ours_compiled) 9087 img/s"
