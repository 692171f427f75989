"""Smoke test of the benchmarks: they run on tiny settings and print one JSON document."""

import json
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import imageio.v3 as imageio
import numpy as np
import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
TINY = ["--size", "16", "--repeats", "1", "--warmups", "0", "--batch-size", "8", "--frames", "2"]


def test_decode_speed_prints_one_json_document():
    run = subprocess.run(
        [
            *(sys.executable, str(BENCHMARKS / "decode_speed.py"), *TINY),
            *("--threads", "1", "--peak-size", "128"),
        ],
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
        assert result["flop_per_sample"] > 0
        for path in ("eager", "fast"):
            for mode, fps in (("batched", "batched_fps"), ("single", "single_fps")):
                speed = result["achieved"][path][mode]
                assert speed["peak_gflops"] == doc["peak"]["gflops"] > 0
                assert speed["gflops"] == pytest.approx(
                    result["flop_per_sample"] * result[path][fps] / 1e9
                )
                assert speed["fraction_of_peak"] == pytest.approx(
                    speed["gflops"] / speed["peak_gflops"]
                )


def _run_json(script: str, *args: str) -> dict:
    run = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    return json.loads(run.stdout)


def test_train_speed_times_each_model_and_precision():
    doc = _run_json(
        "train_speed.py",
        *("--models", "sid", "--size", "16", "--batch-size", "4", "--steps", "1"),
        *("--repeats", "2", "--warmups", "1", "--threads", "1"),
        *("--precisions", "32-true", "bf16-mixed", "--peak-size", "128"),
    )
    assert {"machine", "settings", "models", "wall_s", "peak"} <= doc.keys()
    assert {"device", "device_name", "load_average_1_5_15_min"} <= doc["machine"].keys()
    peak = doc["peak"]["gflops"]
    assert peak > 0
    sid = doc["models"]["sid"]
    for variant in ("32-true", "bf16-mixed"):
        result = sid["variants"][variant]
        assert result["samples_per_s"] > 0 and len(result["windows_samples_per_s"]) == 2
        assert result["precision_used"] == variant
    assert sid["ratios"]["bf16-mixed_over_32-true"] > 0
    for result in (*sid["variants"].values(), sid["plain_loop"]):
        assert result["flop_per_sample"] > 0 and result["peak_gflops"] == peak
        assert result["gflops"] == pytest.approx(
            result["flop_per_sample"] * result["samples_per_s"] / 1e9
        )
        assert result["fraction_of_peak"] == pytest.approx(result["gflops"] / peak)
    assert len(sid["plain_loop"]["windows_samples_per_s"]) == 2
    assert sid["ratios"]["32-true_over_plain_loop"] == pytest.approx(
        sid["variants"]["32-true"]["samples_per_s"] / sid["plain_loop"]["samples_per_s"]
    )


def test_precision_compile_sweeps_batch_sizes_and_records_failures():
    doc = _run_json(
        "precision_compile.py",
        *("--decoders", "sid", "monkeysee", "--variants", "fp32", "bf16", "compiled"),
        *("--batch-sizes", "1", "4", "--size", "32", "--samples", "4", "--repeats", "1"),
        *("--warmups", "0", "--threads", "1", "--compile-timeout", "0.01"),
        *("--peak-size", "128"),
    )
    assert set(doc["decoders"]) == {"sid", "monkeysee"}
    for result in doc["decoders"].values():
        assert set(result["batch_sizes"]) == {"1", "4"}
        for timings in result["batch_sizes"].values():
            assert set(timings) == {"fp32", "bf16"}
            assert all(t["samples_per_s"] > 0 for t in timings.values())
            for t in timings.values():
                assert t["peak_gflops"] == doc["peak"]["gflops"] > 0
                assert t["gflops"] == pytest.approx(
                    result["flop_per_sample"] * t["samples_per_s"] / 1e9
                )
                assert t["fraction_of_peak"] == pytest.approx(t["gflops"] / t["peak_gflops"])
        assert set(result["ratios"]["4"]) == {"bf16_over_fp32"}
        bf16 = result["difference_vs_fp32"]["bf16"]
        assert 0 < bf16["max_abs_diff"] < 0.1 and bf16["psnr_vs_fp32_db"] > 30
        assert 0.9 < bf16["ssim_vs_fp32"] <= 1
        assert "TimeoutError" in result["errors"]["compiled"]


def test_run_all_collects_the_documents_in_one_file_per_machine(tmp_path):
    args = ["--quick", "--only", "decode_speed", "--out-dir", str(tmp_path)]
    run = subprocess.run(
        [sys.executable, str(BENCHMARKS / "run_all.py"), *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    path = Path(run.stdout.strip().splitlines()[-1])
    assert path.parent == tmp_path and path.stem.startswith("cpu-")
    doc = json.loads(path.read_text())
    assert doc["machine_name"] == path.stem and doc["quick"]
    assert doc["commands"]["decode_speed"][0] == "benchmarks/decode_speed.py"
    assert set(doc["results"]["decode_speed"]["decoders"]) == {"ridge"}


def test_monkeysee_painting_reads_out_raw_and_painted_responses():
    doc = _run_json(
        "monkeysee_painting.py",
        *("--n-train", "300", "--n-test", "8", "--repeats-test", "1", "--electrodes", "16"),
        *("--grids", "8", "96", "--threads", "1"),
    )
    results = doc["results"]
    assert set(results) == {"raw", "painted_8", "painted_96"}
    assert results["raw"]["features"] == 15 * 16
    coarse, fine = results["painted_8"], results["painted_96"]
    assert coarse["features"] < fine["features"] <= 15 * 16
    assert all(coarse["pixel_fraction"][a] < fine["pixel_fraction"][a] for a in ("V1", "V4"))
    assert all(0 < r["ssim"] < 1 and r["mse"] > 0 for r in results.values())
    assert doc["machine"]["total_seconds"] > 0


def test_monkeysee_cpu_scores_every_model_and_lists_the_failed_checks(tmp_path):
    doc = _run_json(
        "monkeysee_cpu.py",
        *("--source", "deadleaves", "--n-train", "64", "--n-test", "4", "--repeats-test", "2"),
        *("--electrodes", "4", "--epochs", "1", "--base-channels", "4", "--feature-size", "64"),
        *("--threads", "1", "--out", str(tmp_path)),
    )
    assert (tmp_path / "reconstructions.png").is_file()
    assert doc["settings"]["source"] == "deadleaves"
    results = doc["results"]
    assert set(results["models"]) == {"spatial", "end_to_end", "dense", "ridge"}
    assert all(
        scores["mse"] > 0 and -1 <= scores["pixcorr"] <= 1 for scores in results["models"].values()
    )
    checks = results["model_checks_failed_metrics"]
    assert set(checks) == {
        f"{m} > {r}" for m in ("spatial", "end_to_end") for r in ("dense", "ridge")
    }
    assert all(
        set(failed) <= {"ssim", "pixcorr", *(f"corr_conv{i}" for i in range(1, 6))}
        for failed in checks.values()
    )
    assert results["learned_fields"]["all"]["n_units"] == 15 * 4
    assert "without V1" in results["occlusion_spatial"]["drops"]
    assert (tmp_path / "fields" / "fields.png").is_file()
    assert doc["machine"]["device"] == "cpu"


def test_monkeysee_cpu_occludes_time_windows_and_trains_single_area_and_ablated_models(tmp_path):
    doc = _run_json(
        "monkeysee_cpu.py",
        *("--source", "deadleaves", "--n-train", "48", "--n-test", "4", "--repeats-test", "2"),
        *("--electrodes", "4", "--epochs", "1", "--base-channels", "4", "--feature-size", "64"),
        *("--mode", "timecourse", "--models", "spatiotemporal", "--single-area", "V1", "IT"),
        *("--ablation-model", "dense", "--adversarial-weight", "0.01"),
        *("--threads", "1", "--out", str(tmp_path)),
    )
    results = doc["results"]
    assert doc["settings"]["dataset"]["n_bins"] == 68
    assert set(results["model_checks_failed_metrics"]) == set()
    window = results["occlusion_spatiotemporal_window"]
    assert set(window["drops"]) == {"0-50 ms", "50-100 ms", "100-150 ms", "150-200 ms"}
    assert window["best_window"] in window["drops"]
    single = results["single_area"]
    assert {a: s["n_units"] for a, s in single["areas"].items()} == {"V1": 28, "IT": 16}
    assert single["colourfulness_falls_v1_v4_it"] is None
    assert set(single["best_area_per_layer"].values()) <= {"V1", "IT"}
    for figure in ("colourfulness.png", "alexnet_layers.png", "report.html"):
        assert (tmp_path / "single_area" / figure).is_file()
    assert (tmp_path / "occlusion_spatiotemporal_window" / "report.html").is_file()
    ablation = results["ablation"]
    assert ablation["model"] == "dense"
    assert set(ablation["conditions"]) == {"full", "no adversarial", "no pixel"}
    assert all(0 < row["mse"] for row in ablation["conditions"].values())
    assert (tmp_path / "ablation" / "report.html").is_file()


def test_monkeysee_cpu_refuses_ridge_on_time_bins():
    completed = subprocess.run(
        [sys.executable, str(BENCHMARKS / "monkeysee_cpu.py"), "--mode", "timecourse"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 2
    assert "ridge needs --mode window" in completed.stderr


def test_deadline_reports_an_error_raised_after_it_expired_as_a_timeout(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    from precision_compile import deadline

    with pytest.raises(TimeoutError) as caught:
        with deadline(0.05):
            try:
                time.sleep(0.5)
            except TimeoutError:
                raise ModuleNotFoundError("the alarm interrupted an import") from None
    assert isinstance(caught.value.__cause__, ModuleNotFoundError)
    with pytest.raises(ValueError, match="before the deadline"):
        with deadline(5):
            raise ValueError("before the deadline")


def test_sid_generalisation_scores_every_cell_and_resumes_from_its_checkpoint(tmp_path):
    checkpoint = tmp_path / "partial.json"
    args = (
        *("--set", "mnist=digits", "--set", "cifar10=natural", "--set", "caltech101=deadleaves"),
        *("--n-train", "48", "--n-test", "6", "--cells", "12", "--size", "16"),
        *("--minutes", "0.01", "--weights", "random", "--feature-size", "64"),
        *("--checkpoint", str(checkpoint)),
    )
    doc = _run_json("sid_generalisation.py", *args)
    models = ("ridge", "ridge_shuffled", "mean_image", "sid", "improved_sid")
    assert set(doc["cells"]) == {
        f"{s}/{m}" for s in ("mnist", "cifar10", "caltech101") for m in models
    }
    assert set(doc["cells"]["caltech101/sid"]["test"]) == {"mnist", "cifar10", "caltech101"}
    assert set(doc["cells"]["mnist/sid"]["test"]) == {"mnist"}
    scores = doc["cells"]["cifar10/ridge"]["test"]["cifar10"]
    assert {"ssim", "pixcorr", "corr_conv1", "corr_conv5", "twoway_conv2", "twoway_conv5"} <= set(
        scores
    )
    assert 0 <= scores["twoway_conv5"] <= 1
    assert doc["feature_weights"] == "random"
    assert isinstance(doc["cells"]["mnist/improved_sid"]["train"]["converged"], bool)
    resumed = _run_json("sid_generalisation.py", *args, "--resume")
    assert resumed["cells"] == json.loads(checkpoint.read_text())["cells"] == doc["cells"]


def _fake_cowley_v4(root: Path, n_images: int = 30, n_units: int = 3) -> None:
    """Two tiny Cowley V4 sessions: one repeat-averaged, one with per-repeat responses."""
    rng = np.random.default_rng(0)
    v4 = root / "cowley_v4"
    for folder in ("images", "responses_repeat_averaged", "responses_raw"):
        (v4 / folder).mkdir(parents=True)
    for session, repeats in (("000001", None), ("000002", 3)):
        with zipfile.ZipFile(v4 / "images" / f"images_{session}.zip", "w") as archive:
            for i in range(n_images):
                image = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
                archive.writestr(
                    f"image{i + 1:04d}.png", imageio.imwrite("<bytes>", image, extension=".png")
                )
        rates = rng.poisson(3.0, (n_units, n_images, repeats or 1)).astype(np.float64)
        folder = "responses_raw" if repeats else "responses_repeat_averaged"
        np.save(v4 / folder / f"responses_{session}.npy", rates if repeats else rates[..., 0])


def test_real_encoding_trains_three_encoders_per_session_and_compares_them(tmp_path):
    _fake_cowley_v4(tmp_path)
    doc = _run_json(
        "real_encoding.py",
        *("--root", str(tmp_path), "--size", "16", "--feature-size", "64"),
        *("--layers", "conv1", "conv2", "--weights", "random", "--epochs", "1"),
        *("--core-epochs", "1", "--batch-size", "8", "--val-fraction", "0.2"),
    )
    assert set(doc["sessions"]) == {"cowley_v4_000001", "cowley_v4_000002"}
    assert doc["weights"] == ["random"] and "machine" in doc
    for session in doc["sessions"].values():
        assert set(session["encoders"]) == {"ln", "cnn", "pretrained_core"}
        assert len(session["encoders"]["ln"]["per_unit_r"]) == 3
        core = session["encoders"]["pretrained_core"]
        assert core["layer"] == max(core["val_r"], key=core["val_r"].get)
    assert "with_repeats" in doc["sessions"]["cowley_v4_000002"]["encoders"]["cnn"]
    assert doc["paired_tests"]["best_other"] in ("ln", "cnn")
    assert set(doc["paired_tests"]["pretrained_core vs ln"]) == {"sessions", "units"}


def test_real_encoding_scores_flig_alone_when_asked(tmp_path):
    _fake_cowley_v4(tmp_path, n_images=20)
    doc = _run_json(
        "real_encoding.py",
        *("--root", str(tmp_path), "--size", "16", "--encoders", "flig", "--batch-size", "8"),
    )
    for session in doc["sessions"].values():
        assert set(session["encoders"]) == {"flig"}
        assert -1 <= session["encoders"]["flig"]["median_r"] <= 1
    assert set(doc["summary"]) == {"flig"} and doc["paired_tests"] == {}
    assert doc["weights"] == []


def test_real_encoding_skips_cleanly_without_data(tmp_path):
    doc = _run_json("real_encoding.py", "--root", str(tmp_path))
    assert doc["sessions"] == {} and "skipped" in doc


def test_real_data_runs_ridge_and_the_feature_decoder_on_validation_images(tmp_path):
    """--validation scores 20% of the training images instead of the test images,
    --feature-option reaches the feature decoder, --inversion-option the inversion
    decoder and --mei-option the MEI decoder, which run with their shuffle controls."""
    _fake_cowley_v4(tmp_path, n_images=40)
    common = ("--root", str(tmp_path), "--size", "16", "--weights", "random")
    prior = (
        *("--prior-root", str(tmp_path / "prior"), "--prior-images", "18"),
        *("--prior-epochs", "1", "--prior-low-res", "4"),
    )
    (tmp_path / "prior").mkdir()
    for i in range(20):
        image = np.full((16, 16, 3), 12 * i, dtype=np.uint8)
        imageio.imwrite(tmp_path / "prior" / f"{i}.png", image)
    runs = {
        flag: _run_json(
            "real_data.py",
            *common,
            *prior,
            *("--sessions", "000001", "--models", "ridge", "feature", "--no-control"),
            *("--feature-option", "thumbnail_strength=own", *flag),
        )
        for flag in ((), ("--validation",))
    }
    inversion = _run_json(
        "real_data.py",
        *common,
        *prior,
        *("--sessions", "000001", "--models", "inversion", "--validation"),
        *("--inversion-option", "steps=2"),
    )["cowley_v4_000001"]["inversion"]
    mei = _run_json(
        "real_data.py",
        *common,
        *("--sessions", "000001", "--models", "mei", "--validation", "--mei-epochs", "1"),
        *("--mei-option", "depth=4", "--mei-option", "base_channels=4"),
        *("--mei-option", "adversarial_weight=0", "--mei-option", "mei_steps=2"),
    )["cowley_v4_000001"]["mei"]
    assert mei["setup"]["mei_options"]["mapping"] == "mei"
    assert set(mei) == {"real", "shuffled", "separation", "setup"}
    assert mei["setup"]["shuffled_fit"]["encoder_seconds"] > 0
    assert inversion["setup"]["inversion_options"] == {"steps": 2}
    assert set(inversion) == {"real", "shuffled", "separation", "setup"}
    assert inversion["setup"]["real_fit"]["encoder_seconds"] > 0
    for flag, doc in runs.items():
        entry = doc["cowley_v4_000001"]["feature"]
        assert set(entry) == {"real", "setup"} and 0 <= entry["real"]["twoway_pixel"] <= 1
        assert entry["setup"]["feature_options"] == {"thumbnail_strength": "own"}
        assert entry["setup"]["scored_on"] == ("validation images" if flag else "test images")
        assert doc["feature_prior"]["low_res"] == 4
    test_images = runs[()]["cowley_v4_000001"]["ridge"]["setup"]["real_fit"]["test_images"]
    scored = runs[("--validation",)]["cowley_v4_000001"]["ridge"]["setup"]["real_fit"]
    assert (test_images, scored["test_images"]) == (8, 6)


def test_image_overlap_finds_images_shared_between_sessions_and_with_the_prior(tmp_path):
    _fake_cowley_v4(tmp_path, n_images=20)
    images = tmp_path / "cowley_v4" / "images"
    with zipfile.ZipFile(images / "images_000001.zip") as first:
        shown = {name: first.read(name) for name in first.namelist()}
    with zipfile.ZipFile(images / "images_000002.zip") as second:
        own = {name: second.read(name) for name in second.namelist()}
    with zipfile.ZipFile(images / "images_000002.zip", "w") as second:
        for index, (name, data) in enumerate(sorted(own.items())):
            second.writestr(name, shown[name] if index < 5 else data)
    prior = tmp_path / "prior"
    prior.mkdir()
    (prior / "copy.png").write_bytes(shown["image0010.png"])
    for i in range(5):
        imageio.imwrite(prior / f"{i}.png", np.full((16, 16, 3), 40 * i, np.uint8))
    doc = _run_json(
        "image_overlap.py",
        *("--root", str(tmp_path), "--prior-root", str(prior)),
        *("--prior-images", "6"),
    )
    first, second = doc["sessions"]["000001"], doc["sessions"]["000002"]
    assert first["shared_with"]["000002"]["images"] == 5
    assert second["shared_with"]["000001"]["images"] == 5
    assert doc["summary"]["images_shared_with_another_session"] == 10
    assert doc["summary"]["distinct_images_over_sessions"] == 35
    assert first["test_images_with_a_training_copy"] == 0
    assert first["caltech_near_duplicates"] == 1 and second["caltech_near_duplicates"] == 0
    assert first["caltech_largest_r"] > 0.99
