"""Analyses: occlusion by area and time window, single-area models, ablations, learned RFs."""

import json

import numpy as np
import pandas as pd
import pytest
import torch

from neuralsight.analysis import (
    OcclusionCondition,
    ablation_conditions,
    apply_condition,
    area_conditions,
    evaluate_occlusion,
    field_coverage,
    field_summary,
    field_table,
    fill_values,
    load_monkeysee,
    median_distance_sigmas,
    model_fields,
    occlude,
    occlude_areas,
    occlude_outside_window,
    painted_pixel_fraction,
    painted_pixels,
    prestimulus_baseline,
    restrict_to_area,
    training_settings,
    true_fields,
    window_conditions,
)
from neuralsight.analysis.occlusion import area_mask, window_mask
from neuralsight.cli import main
from neuralsight.lightning_cli import train_model
from neuralsight.models.decoders import MonkeySee
from neuralsight.models.decoders.monkeysee import unit_info
from neuralsight.simulate.cortex import simulate_cortex

SIZE = 32
ARRAYS = {"V1": 1, "V4": 1, "IT": 1}
TINY_MODEL = {
    "base_channels": 4,
    "discriminator_channels": 4,
    "feature_weight": 0.0,
    "vgg_input_size": None,
}
TINY_TRAINING = ["--max-steps", "2", "--batch-size", "8", "--accelerator", "cpu", "--seed", "0"]


def _images(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((n, 3, SIZE, SIZE), dtype=np.float32)


@pytest.fixture(scope="module")
def cortex():
    """12 units (4 per area), 10 ms bins from -100 to 200 ms, 16 train and 4 x 2 test trials."""
    images = _images(20)
    return simulate_cortex(
        images[:16],
        images[16:],
        repeats_test=2,
        arrays=ARRAYS,
        electrodes_per_array=4,
        bin_ms=10.0,
        progress=False,
    )


@pytest.fixture(scope="module")
def cortex_file(cortex, tmp_path_factory):
    return cortex.save(tmp_path_factory.mktemp("data") / "cortex.h5")


def _settings(**model):
    return training_settings(
        model_options=TINY_MODEL | model, max_steps=2, batch_size=8, accelerator="cpu"
    )


@pytest.fixture(scope="module")
def spatial_ckpt(cortex, tmp_path_factory):
    out = tmp_path_factory.mktemp("spatial")
    train_model(cortex, _settings(), out, name="spatial", progress=False)
    return out / "checkpoints" / "spatial.ckpt"


# ---------------------------------------------------------------------- occlusion


def test_area_occlusion_replaces_exactly_the_chosen_units(cortex):
    responses = np.asarray(cortex.responses)
    before = responses.copy()
    values = np.arange(cortex.n_units, dtype=np.float32) + 100
    out = occlude_areas(responses, cortex.units, ["V4"], values)
    v4 = (cortex.units["area"] == "V4").to_numpy()
    assert v4.sum() == 4
    np.testing.assert_array_equal(out[:, v4], np.broadcast_to(values[v4, None], out[:, v4].shape))
    np.testing.assert_array_equal(out[:, ~v4], responses[:, ~v4])
    np.testing.assert_array_equal(responses, before)


def test_window_occlusion_replaces_exactly_the_bins_outside_the_window(cortex):
    responses = np.asarray(cortex.responses)
    values = np.full(cortex.n_units, -7.0, np.float32)
    out = occlude_outside_window(responses, cortex.bin_edges_ms, (0, 100), values)
    centres = (cortex.bin_edges_ms[:-1] + cortex.bin_edges_ms[1:]) / 2
    kept = (centres >= 0) & (centres < 100)
    assert kept.sum() == 10
    np.testing.assert_array_equal(out[:, :, kept], responses[:, :, kept])
    assert np.all(out[:, :, ~kept] == -7.0)


def test_occlude_combines_unit_and_bin_masks():
    responses = np.random.default_rng(1).random((3, 4, 5)).astype(np.float32)
    units, bins = np.array([True, False, True, False]), np.array([False, True, True, False, False])
    out = occlude(responses, np.zeros(4, np.float32), units, bins)
    selected = units[:, None] & bins[None, :]
    assert np.all(out[:, selected] == 0)
    np.testing.assert_array_equal(out[:, ~selected], responses[:, ~selected])


def test_baseline_fill_is_the_prestimulus_mean_of_the_training_trials(cortex):
    before_onset = cortex.bin_edges_ms[1:] <= 0
    assert before_onset.sum() == 10
    train = np.asarray(cortex.responses)[cortex.trials("train")]
    expected = train[:, :, before_onset].mean(axis=(0, 2))
    np.testing.assert_allclose(prestimulus_baseline(cortex), expected, rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(fill_values(cortex, "baseline"), prestimulus_baseline(cortex))
    assert not np.allclose(expected, 0)
    assert np.all(fill_values(cortex, "zeros") == 0)


def test_mean_fill_is_each_units_training_mean_in_each_bin(cortex):
    train = np.asarray(cortex.responses)[cortex.trials("train")]
    values = fill_values(cortex, "mean")
    assert values.shape == (cortex.n_units, cortex.n_bins)
    np.testing.assert_allclose(values, train.mean(0), rtol=1e-5, atol=1e-6)
    responses = np.asarray(cortex.responses)
    without_it = OcclusionCondition("without IT", ("IT",))
    out = apply_condition(responses, without_it, cortex.units, cortex.bin_edges_ms, values)
    it = (cortex.units["area"] == "IT").to_numpy()
    np.testing.assert_array_equal(out[:, ~it], responses[:, ~it])
    np.testing.assert_array_equal(out[:, it], np.broadcast_to(values[it], out[:, it].shape))


def test_area_conditions_occlude_one_area_or_all_but_one(cortex):
    names = [c.name for c in area_conditions(["V1", "V4", "IT"])]
    assert names == [
        "intact",
        "V1 only",
        "V4 only",
        "IT only",
        "without V1",
        "without V4",
        "without IT",
    ]
    responses = np.asarray(cortex.responses)
    only_v1 = OcclusionCondition("V1 only", ("V4", "IT"))
    out = apply_condition(responses, only_v1, cortex.units, cortex.bin_edges_ms, np.zeros(12))
    v1 = (cortex.units["area"] == "V1").to_numpy()
    np.testing.assert_array_equal(out[:, v1], responses[:, v1])
    assert np.all(out[:, ~v1] == 0)
    names = [c.name for c in window_conditions(cortex.bin_edges_ms)]
    assert names == ["intact", "0-50 ms", "50-100 ms", "100-150 ms", "150-200 ms"]


def test_occlusion_rejects_bad_inputs(cortex):
    with pytest.raises(ValueError, match=r"unknown area\(s\) \['V2'\]"):
        area_mask(cortex.units, ["V2"])
    with pytest.raises(ValueError, match="outside the time bins"):
        window_mask(cortex.bin_edges_ms, (150, 250))
    with pytest.raises(ValueError, match="holds no time-bin centre"):
        window_mask(cortex.bin_edges_ms, (1, 4))
    with pytest.raises(ValueError, match="'area' column"):
        area_mask(cortex.units.drop(columns="area"), ["V1"])
    with pytest.raises(ValueError, match="fill must be one of"):
        fill_values(cortex, "median")
    with pytest.raises(ValueError, match=r"shape \(12,\) or \(12, 31\)"):
        occlude(np.asarray(cortex.responses), np.zeros((12, 2)))
    window_data = simulate_cortex(
        _images(4), arrays={"V1": 1}, electrodes_per_array=2, mode="window", progress=False
    )
    with pytest.raises(ValueError, match=r"no pre-stimulus baseline; use fill='mean' or 'zeros'"):
        prestimulus_baseline(window_data)


def test_evaluate_occlusion_scores_every_condition(cortex, spatial_ckpt):
    model = load_monkeysee(spatial_ckpt)
    results = evaluate_occlusion(model, cortex, by="window", fill="zeros")
    assert results.table.index.tolist()[0] == "intact" and len(results.table) == 5
    assert {"mse", "psnr", "ssim", "pixcorr", "colourfulness"} <= set(results.table.columns)
    intact = model.reconstruct(
        np.stack([np.asarray(cortex.responses)[cortex.stimulus_id == s].mean(0) for s in (16, 17)])
    )
    np.testing.assert_allclose(results.reconstructions["intact"][:2], intact, atol=1e-6)
    other = MonkeySee(
        12 * 31, (3, SIZE, SIZE), **TINY_MODEL, **(unit_info(cortex) | {"area": ["V1"] * 12})
    )
    with pytest.raises(ValueError, match="trained on other units"):
        evaluate_occlusion(other, cortex)


def test_cli_analyze_occlusion_writes_figure_table_and_report(cortex_file, spatial_ckpt, tmp_path):
    out = tmp_path / "occlusion"
    argv = ["analyze", "occlusion", "--ckpt", str(spatial_ckpt), "--dataset", str(cortex_file)]
    options = ["--out", str(out), "--weights", "random", "--feature-size", "64"]
    assert main(argv + options) == 0
    for name in ("reconstructions.png", "colourfulness.png", "alexnet_layers.png", "report.html"):
        assert (out / name).stat().st_size > 0, name
    table = pd.read_csv(out / "metrics.csv", index_col="condition")
    assert table.index.tolist()[:2] == ["intact", "V1 only"] and len(table) == 7
    assert {"ssim", "pixcorr", "corr_conv1", "corr_conv5", "twoway_conv5"} <= set(table.columns)
    assert set(table["alexnet_weights"]) == {"random"}
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics) == set(table.index)
    run = json.loads((out / "run.json").read_text())
    assert run["fill"] == "mean" and run["weights"] == "random"
    assert (
        "reconstructions.png" in (out / "report.html").read_text()
        or "data:image/png" in (out / "report.html").read_text()
    )


# ---------------------------------------------------------------------- single area, ablation


def test_restrict_to_area_keeps_only_that_areas_units(cortex, cortex_file, tmp_path):
    from neuralsight.data import NeuralDataset

    lazy = NeuralDataset.open(cortex_file)
    columns = np.flatnonzero((cortex.units["area"] == "IT").to_numpy())
    five_trials = 5 * 4 * cortex.n_units * cortex.n_bins
    in_memory = restrict_to_area(lazy, "IT", block_bytes=five_trials)
    on_disk = restrict_to_area(lazy, "IT", tmp_path / "it.h5", block_bytes=five_trials)
    assert on_disk.is_lazy and not in_memory.is_lazy
    for it in (in_memory, on_disk):
        np.testing.assert_array_equal(it.responses[:], np.asarray(cortex.responses)[:, columns])
        assert it.units["area"].tolist() == ["IT"] * 4 and it.meta["restricted_to_area"] == "IT"
        np.testing.assert_array_equal(it.split, cortex.split)
        np.testing.assert_array_equal(it.stimuli[:], cortex.stimuli)
    with pytest.raises(ValueError, match="unknown area"):
        restrict_to_area(cortex, "V2")


def test_cli_single_area_and_ablation_train_and_report(cortex_file, tmp_path):
    single = tmp_path / "single"
    common = ["--dataset", str(cortex_file), *TINY_TRAINING, "--no-features"]
    model = [f"-o{k}={v}" for k, v in TINY_MODEL.items() if k != "vgg_input_size"]
    assert (
        main(["analyze", "single-area", *common, "--out", str(single), "--areas", "IT", *model])
        == 0
    )
    table = pd.read_csv(single / "metrics.csv", index_col="condition")
    assert table.index.tolist() == ["IT"] and table.loc["IT", "n_units"] == 4
    assert (single / "checkpoints" / "IT.ckpt").is_file() and (single / "report.html").is_file()

    ablation = tmp_path / "ablation"
    argv = ["analyze", "ablation", *common, "--out", str(ablation), "--terms", "pixel", *model]
    assert main(argv) == 0
    table = pd.read_csv(ablation / "metrics.csv", index_col="condition")
    assert table.index.tolist() == ["full", "no pixel"]
    assert table["pixel_weight"].tolist() == [0.5, 0.0]
    assert (ablation / "reconstructions.png").is_file() and (ablation / "report.html").is_file()


def test_ablation_conditions_switch_off_one_term_at_a_time():
    conditions = ablation_conditions({"adversarial_weight": 0.0})
    assert list(conditions) == ["full", "no feature", "no pixel"]
    assert conditions["no feature"] == {
        "adversarial_weight": 0.0,
        "feature_weight": 0.0,
        "pixel_weight": 0.5,
        "ssim_weight": 0.0,
    }
    assert list(ablation_conditions({"adversarial_weight": 0, "feature_weight": 0})) == ["full"]
    with_ssim = ablation_conditions({"adversarial_weight": 0, "ssim_weight": 1.0})
    assert list(with_ssim) == ["full", "no feature", "no pixel", "no ssim"]
    with pytest.raises(ValueError, match="unknown loss term"):
        ablation_conditions({}, ["gan"])


def test_configs_load_for_the_training_analyses():
    from pathlib import Path

    path = Path(__file__).parents[1] / "configs" / "monkeysee_end_to_end.yaml"
    settings = training_settings(path)
    assert settings.model["mapping"] == "end_to_end" and "path" not in settings.data
    assert settings.trainer == {"max_epochs": 75, "accelerator": "auto", "precision": "32-true"}
    override = training_settings(path, {"lr": 1e-3}, max_steps=10, batch_size=2)
    assert override.trainer["max_steps"] == 10 and override.trainer["max_epochs"] == -1
    assert override.model["lr"] == 1e-3 and override.data["batch_size"] == 2


def _config(tmp_path, class_path: str, **init_args) -> str:
    path = tmp_path / "model.yaml"
    model = {"class_path": class_path, "init_args": init_args}
    path.write_text(json.dumps({"model": model, "trainer": {"max_epochs": 1}}))
    return str(path)


def test_single_area_trains_any_decoder_config(cortex_file, tmp_path):
    config = _config(tmp_path, "neuralsight.models.decoders.RidgeDecoder")
    argv = ["analyze", "single-area", "--config", config, "--dataset", str(cortex_file)]
    out = tmp_path / "ridge"
    assert main([*argv, "--out", str(out), "--areas", "V1", "all", "--no-features"]) == 0
    table = pd.read_csv(out / "metrics.csv", index_col="condition")
    assert table.index.tolist() == ["V1", "all"] and table["n_units"].tolist() == [4, 12]
    training = json.loads((out / "run.json").read_text())["training"]
    assert training["model_class"] == "neuralsight.models.decoders.RidgeDecoder"


@pytest.mark.parametrize(
    ("analysis", "class_path", "message"),
    [
        ("ablation", "neuralsight.models.decoders.RidgeDecoder", "RidgeDecoder has none"),
        ("single-area", "neuralsight.models.encoders.LNEncoder", "needs a decoder"),
        ("ablation", "neuralsight.models.decoders.NoSuchModel", "no attribute .NoSuchModel"),
    ],
)
def test_an_analysis_says_which_capability_a_config_lacks(
    cortex_file, tmp_path, analysis, class_path, message
):
    config = _config(tmp_path, class_path)
    argv = ["analyze", analysis, "--config", config, "--dataset", str(cortex_file)]
    with pytest.raises((SystemExit, ValueError), match=message):
        main([*argv, "--out", str(tmp_path / "out"), "--no-features"])


def test_a_config_with_a_wrong_field_is_refused_naming_file_and_field(tmp_path):
    config = _config(tmp_path, "neuralsight.models.decoders.MonkeySee", mappng="dense")
    with pytest.raises(ValueError, match=r"(?s)model\.yaml.*Option .mappng. is not accepted"):
        training_settings(config)
    with pytest.raises(FileNotFoundError, match="no such config file"):
        training_settings(tmp_path / "absent.yaml")


# ---------------------------------------------------------------------- learned fields


def test_field_distance_is_zero_when_learned_equals_true_and_counts_sigmas():
    true = pd.DataFrame(
        {"rf_x": [0.1, -0.3, 0.5], "rf_y": [0.2, 0.4, 0.0], "rf_sigma": [0.1, 0.2, 0.05]}
    )
    same = field_table(true.assign(area=["V1", "V1", "IT"]), true)
    assert median_distance_sigmas(same) == 0.0
    moved = true.assign(area="V1", rf_x=true["rf_x"] + 2 * true["rf_sigma"])
    assert median_distance_sigmas(field_table(moved, true)) == pytest.approx(2.0)
    unknown = true.assign(rf_sigma=[np.nan, 0.2, np.nan])
    summary = field_summary(field_table(moved, unknown))["all"]
    assert summary["n_with_true_field"] == 1 and summary["median_distance_sigmas"] == pytest.approx(
        2.0
    )


def test_field_coverage_counts_pixels_within_the_rfs_and_skips_unknown_ones():
    units = pd.DataFrame(
        {
            "area": ["V1", "V1", "IT"],
            "rf_x": [-0.75, np.nan, 0.0],
            "rf_y": [-0.75, 0.0, 0.0],
            "rf_sigma": [0.1, 0.1, 0.3],
        }
    )
    assert field_coverage(units, 4) == {"V1": 1 / 16, "IT": 4 / 16}
    with pytest.raises(ValueError, match="'area' column"):
        field_coverage(units.drop(columns="area"), 4)


def test_tvsd_v1_arrays_cover_a_small_part_of_the_image_and_it_all_of_it():
    cortex = simulate_cortex(_images(2), mode="window", progress=False)
    coverage = field_coverage(cortex.units, SIZE)
    assert coverage["V1"] < 0.25 < coverage["V4"] < coverage["IT"] == 1.0


def test_painted_pixel_fraction_counts_shared_pixels_per_array_and_skips_unknown_rfs():
    units = pd.DataFrame(
        {
            "area": ["V1", "V1", "V1", "V1", "IT"],
            "array": [0, 0, 1, 1, 2],
            "rf_x": [-0.9, -0.8, -0.9, np.nan, 0.0],
            "rf_y": [-0.9, -0.9, -0.9, 0.0, 0.0],
        }
    )
    assert painted_pixel_fraction(units, 4) == {"V1": 2 / 3, "IT": 1.0}
    assert painted_pixel_fraction(units, 32) == {"V1": 1.0, "IT": 1.0}
    with pytest.raises(ValueError, match="array"):
        painted_pixel_fraction(units.drop(columns="array"), 4)
    with pytest.raises(ValueError, match="1 of 4 units have no finite rf_x/rf_y"):
        painted_pixels(units[units["area"] == "V1"], 4)


def test_tvsd_v1_electrodes_share_pixels_at_32_and_mostly_not_at_96():
    units = simulate_cortex(_images(2), mode="window", progress=False).units
    small, large = painted_pixel_fraction(units, 32), painted_pixel_fraction(units, 96)
    assert small["V1"] < 0.35 < 0.6 < large["V1"]
    assert all(small[area] < large[area] for area in small)


def test_untrained_end_to_end_fields_equal_the_true_ones(cortex):
    model = MonkeySee(
        12 * 31, (3, SIZE, SIZE), mapping="end_to_end", **TINY_MODEL, **unit_info(cortex)
    )
    table = model_fields(model, cortex)
    assert median_distance_sigmas(table) == pytest.approx(0.0, abs=1e-6)  # float32 parameters
    assert table["area"].tolist() == cortex.units["area"].tolist()
    np.testing.assert_allclose(table["true_rf_sigma"], true_fields(cortex.units)["rf_sigma"])


def test_cli_analyze_fields_writes_the_map_and_the_median_distance(cortex, cortex_file, tmp_path):
    out = tmp_path / "e2e"
    frozen = _settings(mapping="end_to_end", lr=0.0)
    model = train_model(cortex, frozen, out, name="e2e", progress=False)
    assert torch.equal(
        model.input_map.mu_x.detach(),
        torch.tensor(cortex.units["rf_x"].to_numpy(), dtype=torch.float32),
    )
    argv = ["analyze", "fields", "--ckpt", str(out / "checkpoints" / "e2e.ckpt")]
    assert main([*argv, "--dataset", str(cortex_file), "--out", str(out / "fields")]) == 0
    summary = json.loads((out / "fields" / "fields.json").read_text())
    assert (
        summary["all"]["median_distance_sigmas"] == pytest.approx(0.0, abs=1e-6)
        and summary["IT"]["n_units"] == 4
    )
    assert (out / "fields" / "fields.png").stat().st_size > 0
    table = pd.read_csv(out / "fields" / "fields.csv")
    assert {"true_rf_x", "distance_sigmas", "eccentricity"} <= set(table.columns)
    assert (out / "fields" / "report.html").is_file()
