"""Smoke test of the benchmarks: they run on tiny settings and print one JSON document."""

import json
import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
TINY = ["--size", "16", "--repeats", "1", "--warmups", "0", "--batch-size", "8", "--frames", "2"]


def test_decode_speed_prints_one_json_document():
    run = subprocess.run(
        [sys.executable, str(BENCHMARKS / "decode_speed.py"), *TINY, "--threads", "1"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    doc = json.loads(run.stdout)
    assert {"machine", "settings", "decoders"} <= doc.keys()
    assert {"processor", "torch_num_threads", "torch", "device"} <= doc["machine"].keys()
    assert set(doc["decoders"]) == {"ridge", "sid", "improved_sid"}
    for result in doc["decoders"].values():
        for path in ("eager", "fast"):
            timings = result[path]
            assert set(timings) == {
                "batched_fps",
                "single_fps",
                "latency_ms_median",
                "latency_ms_p90",
            }
            assert all(value > 0 for value in timings.values())
        assert set(result["fast_over_eager"]) == {"batched_fps", "single_fps"}
        assert result["max_abs_diff"] < 1e-4
