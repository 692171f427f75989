"""The shuffle control through the command line: fit, predict and evaluate with
``--data.control shuffle``; the metrics record the control and score at chance."""

import json

import pytest
import yaml

from neuralsight.cli import main


@pytest.fixture
def simulated(tmp_path):
    path = tmp_path / "retina.h5"
    main(
        [
            "simulate",
            "--source",
            "digits",
            "--n-train",
            "200",
            "--n-test",
            "30",
            "--size",
            "16",
            "--cells",
            "48",
            "--seed",
            "1",
            "--out",
            str(path),
        ]
    )
    return path


def _fit_predict_evaluate(dataset, tmp_path, control: str) -> dict:
    run = tmp_path / control
    config = {
        "seed_everything": 0,
        "model": {"class_path": "neuralsight.models.decoders.RidgeDecoder"},
        "data": {"path": str(dataset), "batch_size": 32},
        "trainer": {
            "max_epochs": 1,
            "accelerator": "cpu",
            "logger": False,
            "enable_progress_bar": False,
            "default_root_dir": str(run),
        },
    }
    config_path = tmp_path / "ridge.yaml"
    config_path.write_text(yaml.safe_dump(config))
    flags = ["--config", str(config_path), "--data.control", control]
    main(["fit", *flags])
    (checkpoint,) = run.rglob("epoch=*.ckpt")
    recon = run / "reconstructions.npz"
    main(["predict", *flags, "--ckpt_path", str(checkpoint), "--reconstructions", str(recon)])
    out = run / "metrics.json"
    main(
        ["evaluate", "--reconstructions", str(recon), "--dataset", str(dataset), "--out", str(out)]
    )
    return json.loads(out.read_text())


def test_shuffled_control_scores_worse_than_the_real_pairing(simulated, tmp_path):
    real = _fit_predict_evaluate(simulated, tmp_path, "none")
    shuffled = _fit_predict_evaluate(simulated, tmp_path, "shuffle")
    assert (real["control"], shuffled["control"]) == ("none", "shuffle")
    assert real["n_images"] == shuffled["n_images"] == 30
    # Chance is high in PixCorr (the mean digit correlates with every digit, about .7 here),
    # so the margin is modest; the real pairing scored about .9.
    assert real["image"]["pixcorr"] > 0.8
    assert shuffled["image"]["pixcorr"] < real["image"]["pixcorr"] - 0.1


def test_an_encoder_fits_predicts_and_is_scored_through_the_command_line(simulated, tmp_path):
    run = tmp_path / "encoder"
    config = {
        "seed_everything": 0,
        "model": {
            "class_path": "neuralsight.models.encoders.LNEncoder",
            "init_args": {"loss": "poisson", "lr": 0.01},
        },
        "data": {"path": str(simulated), "batch_size": 32},
        "trainer": {
            "max_epochs": 3,
            "accelerator": "cpu",
            "logger": False,
            "enable_progress_bar": False,
            "default_root_dir": str(run),
        },
    }
    config_path = tmp_path / "ln.yaml"
    config_path.write_text(yaml.safe_dump(config))
    main(["fit", "--config", str(config_path)])
    (checkpoint,) = run.rglob("epoch=*.ckpt")
    main(["predict", "--config", str(config_path), "--ckpt_path", str(checkpoint)])
    predictions = run / "predictions.npz"
    out = run / "metrics.json"
    main(
        [
            "evaluate",
            "--direction",
            "encode",
            "--predictions",
            str(predictions),
            "--dataset",
            str(simulated),
            "--out",
            str(out),
        ]
    )
    metrics = json.loads(out.read_text())
    assert metrics["n_stimuli"] == 30 and metrics["meta"]["model"] == "LNEncoder"
    assert metrics["mean_r"] > 0.3


def test_evaluate_encode_without_predictions_is_refused(simulated, tmp_path):
    with pytest.raises(SystemExit, match="--predictions"):
        main(
            [
                "evaluate",
                "--direction",
                "encode",
                "--dataset",
                str(simulated),
                "--out",
                str(tmp_path / "m.json"),
            ]
        )
