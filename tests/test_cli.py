"""The neuralsight command on tiny inputs: simulate, fit/predict via LightningCLI, evaluate, convert."""

import json

import numpy as np
import pytest
import yaml

from neuralsight.cli import build_parser, main, parse_options
from neuralsight.data import NeuralDataset
from neuralsight.data.readers import READERS


@pytest.fixture
def tiny_dataset(tmp_path):
    path = tmp_path / "tiny.h5"
    main(
        [
            "simulate",
            "--source",
            "digits",
            "--n-train",
            "60",
            "--n-test",
            "12",
            "--size",
            "16",
            "--cells",
            "24",
            "--seed",
            "3",
            "--out",
            str(path),
        ]
    )
    return path


def test_simulate_writes_a_seeded_dataset(tiny_dataset, capsys):
    ds = NeuralDataset.open(tiny_dataset)
    assert (ds.n_trials, ds.n_units, ds.image_shape) == (72, 24, (1, 16, 16))
    assert ds.meta["seed"] == 3 and ds.meta["source"] == "digits"
    assert set(ds.units["area"]) == {"RGC-ON", "RGC-OFF"}


def _ridge_config(tmp_path, dataset, logger) -> str:
    config = {
        "seed_everything": 0,
        "model": {"class_path": "neuralsight.models.decoders.RidgeDecoder"},
        "data": {"path": str(dataset), "batch_size": 16},
        "trainer": {
            "max_epochs": 1,
            "accelerator": "cpu",
            "logger": logger,
            "enable_progress_bar": False,
            "default_root_dir": str(tmp_path / "run"),
        },
    }
    path = tmp_path / "ridge.yaml"
    path.write_text(yaml.safe_dump(config))
    return str(path)


def test_fit_predict_evaluate_round_trip(tiny_dataset, tmp_path):
    config_path = _ridge_config(tmp_path, tiny_dataset, logger=False)
    main(["fit", "--config", config_path])
    checkpoints = list((tmp_path / "run").rglob("epoch=*.ckpt"))
    assert len(checkpoints) == 1
    main(["test", "--config", config_path, "--ckpt_path", str(checkpoints[0])])
    recon = tmp_path / "recon.npz"
    main(
        [
            "predict",
            "--config",
            config_path,
            "--ckpt_path",
            str(checkpoints[0]),
            "--reconstructions",
            str(recon),
        ]
    )
    out = tmp_path / "metrics.json"
    main(
        [
            "evaluate",
            "--reconstructions",
            str(recon),
            "--dataset",
            str(tiny_dataset),
            "--out",
            str(out),
        ]
    )
    metrics = json.loads(out.read_text())
    assert 0 < metrics["image"]["ssim"] <= 1 and -1 <= metrics["image"]["pixcorr"] <= 1
    assert metrics["meta"]["model"] == "RidgeDecoder"


def test_fit_and_test_leave_a_report_in_the_run_folder(tiny_dataset, tmp_path):
    config = _ridge_config(tmp_path, tiny_dataset, logger=False)
    main(["fit", "--config", config])
    report = tmp_path / "run" / "report.html"
    page = report.read_text()
    assert "Run and configuration" in page and "config.yaml" in page
    (checkpoint,) = (tmp_path / "run").rglob("epoch=*.ckpt")
    report.unlink()
    main(["test", "--config", config, "--ckpt_path", str(checkpoint)])
    assert report.is_file()


def test_a_logged_fit_reports_in_its_log_folder(tiny_dataset, tmp_path):
    logger = {
        "class_path": "lightning.pytorch.loggers.CSVLogger",
        "init_args": {"save_dir": str(tmp_path / "run")},
    }
    main(["fit", "--config", _ridge_config(tmp_path, tiny_dataset, logger)])
    (report,) = tmp_path.rglob("report.html")
    assert (report.parent / "metrics.csv").is_file()
    assert "Training curves" in report.read_text()


def test_a_report_that_cannot_be_written_only_warns(tiny_dataset, tmp_path, monkeypatch):
    def refuse(run_dir):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("neuralsight.viz.report.write_report", refuse)
    with pytest.warns(UserWarning, match="no report written for .*No space left"):
        main(["fit", "--config", _ridge_config(tmp_path, tiny_dataset, logger=False)])
    assert len(list((tmp_path / "run").rglob("epoch=*.ckpt"))) == 1


def test_convert_npz(tmp_path):
    rng = np.random.default_rng(0)
    src = tmp_path / "rec.npz"
    np.savez(
        src,
        responses=rng.poisson(2, (10, 5)).astype(np.float32),
        stimuli=rng.integers(0, 255, (10, 8, 8), dtype=np.uint8),
    )
    out = tmp_path / "rec.h5"
    main(["convert", "npz", str(src), "--out", str(out)])
    ds = NeuralDataset.open(out)
    assert (ds.n_trials, ds.n_units) == (10, 5)


def test_convert_rejects_unknown_format(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["convert", "xls", "a.xls", "--out", str(tmp_path / "x.h5")])
    error = capsys.readouterr().err
    assert "argument format: invalid choice: 'xls'" in error
    assert all(name in error for name in READERS.names())


def test_parse_options_reads_yaml_values():
    assert parse_options(["window_ms=[0, 250]", "bin_ms=10"]) == {
        "window_ms": [0, 250],
        "bin_ms": 10,
    }
    with pytest.raises(SystemExit, match="not KEY=VALUE"):
        parse_options(["bin_ms"])


def test_quick_demo_writes_its_outputs(tmp_path):
    main(["demo", "--quick", "--out", str(tmp_path)])
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert set(metrics) == {"ridge", "sid", "improved_sid", "mean_image", "shuffled"}
    assert set(metrics["ridge"]) == {"mse", "psnr", "ssim", "pixcorr"}
    assert (tmp_path / "reconstructions.png").stat().st_size > 1000
    assert (tmp_path / "dataset.h5").exists()
    run = json.loads((tmp_path / "run.json").read_text())
    assert run["seed"] == 0 and run["settings"]["n_cells"] == 40


def test_the_demo_reproduces_its_metrics_from_its_seed(tmp_path):
    for name in ("a", "b"):
        main(["demo", "--quick", "--seed", "3", "--out", str(tmp_path / name)])
    a, b = (json.loads((tmp_path / n / "metrics.json").read_text()) for n in ("a", "b"))
    assert a == b


def test_convert_and_analyses_collect_repeated_key_value_options():
    parser = build_parser()
    convert = parser.parse_args(
        ["convert", "npz", "a.npz", "--out", "b.h5", "-o", "x=1", "-o", "y=[2]"]
    )
    assert parse_options(convert.option) == {"x": 1, "y": [2]}
    single = parser.parse_args(
        ["analyze", "single-area", "--dataset", "d.h5", "--out", "o", "--option", "mapping=dense"]
    )
    assert parse_options(single.option) == {"mapping": "dense"}


def test_evaluate_features_use_the_weights_folder_and_record_its_file(
    tiny_dataset, tmp_path, monkeypatch
):
    import torchvision

    from neuralsight.metrics import save_reconstructions
    from neuralsight.pretrained import file_sha256

    network = torchvision.models.alexnet(weights=None)
    convolutions = {k: v.numpy() for k, v in network.state_dict().items() if "features" in k}
    weights = tmp_path / "weights"
    weights.mkdir()
    np.savez(weights / "alexnet_features.npz", **convolutions)
    monkeypatch.setenv("NEURALSIGHT_WEIGHTS", str(weights))
    ds = NeuralDataset.open(tiny_dataset)
    test_ids = np.unique(ds.stimulus_id[ds.trials("test")])
    recon = save_reconstructions(tmp_path / "recon.npz", ds.stimuli[test_ids], test_ids)
    out = tmp_path / "metrics.json"
    inputs = ("--reconstructions", str(recon), "--dataset", str(tiny_dataset))
    main(["evaluate", *inputs, "--features", "--out", str(out)])
    metrics = json.loads(out.read_text())
    sha = file_sha256(weights / "alexnet_features.npz")[:12]
    assert metrics["weights"] == f"imagenet:alexnet_features.npz#{sha}"
    features = metrics["features"]
    assert features["unavailable"] == ["fc6", "fc7", "fc8"]
    assert not any(k.endswith(("fc6", "fc7", "fc8")) for k in features if k != "unavailable")
    assert features["corr_conv1"] == pytest.approx(1.0)
    assert features["twoway_conv2"] == features["twoway_conv5"] == 1.0
