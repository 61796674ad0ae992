"""scripts/gpu_check.py without a GPU: which commands it would run, the budget, the summary."""
import json

import pytest

from scripts.gpu_check import main


def test_dry_run_lists_the_steps_and_takes_the_bundle_data(tmp_path, capsys):
    bundle = tmp_path / "bundle"
    (bundle / "fashion-mnist").mkdir(parents=True)
    (bundle / "bible-de-en").mkdir()
    assert main(["--dry-run", "--steps", "tests,bench-vision,bench-nmt,bench-dump,demo", "--bundle", str(bundle),
                 "--out", str(tmp_path / "out"), "--demo-scale", "0.05", "--jobs", "3"]) == 0
    out = capsys.readouterr().out
    assert [line.split()[1] for line in out.splitlines() if line.startswith("# ")] == \
        ["env", "tests", "bench-vision", "bench-nmt", "bench-dump", "demo"]
    assert "-m cuda" in out and "tests/test_cuda.py" in out
    assert f"bench/vision_kd_throughput.py --compile --json {tmp_path / 'out' / 'bench_vision.json'}" in out
    assert "bench/nmt_kd_throughput.py --fp16" in out
    assert f"bench/vision_dump_throughput.py --json {tmp_path / 'out' / 'bench_dump.json'}" in out
    demo = next(line for line in out.splitlines() if "scripts/demo.sh" in line)
    assert demo.startswith("LSKD_USE_CURRENT_PYTHON=1 LSKD_NO_APT=1 PYTHON=")
    assert "--full --scale-epochs 0.05" in demo and "--jobs 3" in demo
    assert f"--fashion-mnist {bundle / 'fashion-mnist'}" in demo and f"--nmt-data {bundle / 'bible-de-en'}" in demo
    assert not (tmp_path / "out").exists()


def test_budget_too_small_starts_nothing_and_still_writes_the_summary(tmp_path):
    rc = main(["--steps", "env,tests", "--budget", "1", "--out", str(tmp_path / "out"),
               "--work", str(tmp_path / "work")])
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
    ok = Step("ok", 60, 0, [[sys.executable, "-c", "print('a')"], [sys.executable, "-c", "raise SystemExit(4)"]])
    assert run_step(ok, {}, tmp_path / "ok.log", limit=60)[:1] == ("failed (exit 4)",)


def test_dump_bench_numbers_in_the_summary(tmp_path):
    """The bench's own JSON (written by a real CPU run of it) becomes the summary's line."""
    from bench.vision_dump_throughput import main as bench
    ratio = bench(["--device", "cpu", "--students", "2", "--images", "12", "--image-size", "32",
                   "--batch-size", "4", "--workers", "0", "--rounds", "1", "--work", str(tmp_path / "jpg"),
                   "--json", str(tmp_path / "bench_dump.json")])
    from scripts.gpu_check import key_numbers
    line = key_numbers("bench-dump", "", tmp_path)
    assert line.startswith(f"shared / per-student {ratio:.2f} (up to 2x); student-img/s shared ")
    assert len(list((tmp_path / "jpg" / "train").glob("c*/*.jpg"))) == 12
