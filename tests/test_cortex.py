"""Cortical MUA simulator: layout, receptive fields, tuning, time course, noise, datasets."""

import numpy as np
import pytest

from neuralsight.data import NeuralDataset
from neuralsight.simulate.cortex import CortexSimulator, reference_images, simulate_cortex

SIZE = 64
SMALL = {"image_size": SIZE, "arrays": {"V1": 2, "V4": 1, "IT": 1}, "electrodes_per_array": 16}


@pytest.fixture(scope="module")
def sim() -> CortexSimulator:
    return CortexSimulator(seed=1, **SMALL)


@pytest.fixture(scope="module")
def window_sim() -> CortexSimulator:
    return CortexSimulator(seed=1, mode="window", **SMALL)


def to_pixel(coordinate: float) -> float:
    return (coordinate + 1) / 2 * (SIZE - 1)


def patch(x: float, y: float, half_width: int = 4) -> np.ndarray:
    """A white square on grey centred at normalised image coordinates (x, y)."""
    rows, columns = np.mgrid[0:SIZE, 0:SIZE]
    image = np.full((1, SIZE, SIZE), 0.5, np.float32)
    inside = (abs(columns - to_pixel(x)) <= half_width) & (abs(rows - to_pixel(y)) <= half_width)
    image[0][inside] = 1.0
    return image


def grating(orientation_deg: float, wavelength_px: float) -> np.ndarray:
    """Full-field grating whose bars have the given orientation (clockwise from horizontal)."""
    rows, columns = np.mgrid[0:SIZE, 0:SIZE]
    theta = np.radians(orientation_deg)
    across = -columns * np.sin(theta) + rows * np.cos(theta)
    return (0.5 + 0.5 * np.cos(2 * np.pi * across / wavelength_px))[None].astype(np.float32)


def half_peak_onsets(mean_response: np.ndarray, times: np.ndarray) -> np.ndarray:
    """Time at which each row first reaches half its peak."""
    peak = mean_response.max(1, keepdims=True)
    return times[np.argmax(mean_response >= peak / 2, axis=1)]


def test_default_layout_is_the_tvsd_layout():
    sim = CortexSimulator(image_size=32)
    units = sim.units
    assert sim.n_units == 960
    assert units["area"].value_counts().to_dict() == {"V1": 448, "V4": 256, "IT": 256}
    assert units["array"].nunique() == 15
    assert units["unit_id"].tolist() == list(range(960))
    for column in ("rf_x", "rf_y", "rf_sigma", "latency_ms", "snr", "reliability"):
        assert np.all(np.isfinite(units[column])), column
    assert units[["rf_x", "rf_y"]].abs().to_numpy().max() < 1
    early = units[units["area"].isin(["V1", "V4"])]
    assert (early["rf_y"] > 0).mean() > 0.9, "V1/V4 arrays sit in the lower visual field"
    assert (early["rf_x"] < 0).any() and (early["rf_x"] > 0).any(), "both lower quadrants"


def test_same_seed_is_deterministic_and_seeds_differ():
    images = reference_images(32, 3, seed=7)
    kwargs = {"image_size": 32, "arrays": {"V1": 1, "IT": 1}, "electrodes_per_array": 8}
    a, b = CortexSimulator(seed=4, **kwargs), CortexSimulator(seed=4, **kwargs)
    np.testing.assert_array_equal(a.units["rf_x"], b.units["rf_x"])
    np.testing.assert_array_equal(a.responses(images, 2, seed=9), b.responses(images, 2, seed=9))
    np.testing.assert_array_equal(a.responses(images), b.responses(images))
    other = CortexSimulator(seed=5, **kwargs)
    assert not np.allclose(a.units["rf_x"], other.units["rf_x"])
    assert not np.allclose(a.responses(images, seed=9), a.responses(images, seed=10))


def test_shapes_and_bin_edges(sim):
    responses = sim.responses(reference_images(SIZE, 2), repeats=3)
    assert responses.shape == (6, 64, 301) and responses.dtype == np.float32
    edges = sim.bin_edges_ms
    assert edges.shape == (302,)
    np.testing.assert_allclose(np.diff(edges), 1.0)
    np.testing.assert_allclose((edges[:-1] + edges[1:])[[0, -1]] / 2, [-100, 200])
    coarse = CortexSimulator(seed=1, bin_ms=10, **SMALL)
    assert coarse.n_bins == 31
    np.testing.assert_allclose(coarse.bin_edges_ms[[0, -1]], [-105, 205])


def test_window_mode_is_the_mean_of_the_time_course_over_each_area_window():
    kwargs = {**SMALL, "seed": 1, "noise": 0.0}
    images = reference_images(SIZE, 3, seed=2)
    full = CortexSimulator(**kwargs).responses(images)
    window = CortexSimulator(mode="window", **kwargs).responses(images)
    assert window.shape == (3, 64, 1)
    area = CortexSimulator(**kwargs).units["area"].to_numpy()
    times = np.arange(-100, 201)
    for name, (start, stop) in {"V1": (25, 125), "V4": (50, 150), "IT": (75, 175)}.items():
        inside = (times >= start) & (times < stop)
        expected = full[:, area == name][:, :, inside].mean(2)
        np.testing.assert_allclose(window[:, area == name, 0], expected, rtol=0.02, atol=1e-3)


def test_latencies_are_ordered_v1_v4_it_and_in_range(sim):
    units = sim.units
    responses = sim.responses(reference_images(SIZE, 4, seed=3), repeats=8, seed=2)
    times = np.arange(-100, 201)
    onsets = {}
    for area, (low, high) in {"V1": (30, 50), "V4": (50, 70), "IT": (80, 100)}.items():
        population = responses[:, units["area"] == area].mean((0, 1))
        onsets[area] = half_peak_onsets(population[None], times)[0]
        assert low - 2 <= onsets[area] <= high + 2, (area, onsets[area])
        true = units.loc[units["area"] == area, "latency_ms"]
        assert true.between(low, high).all()
    assert onsets["V1"] < onsets["V4"] < onsets["IT"]


def test_noiseless_half_peak_time_is_the_reported_latency():
    sim = CortexSimulator(seed=1, noise=0.0, **SMALL)
    responses = sim.responses(reference_images(SIZE, 1, seed=3))[0]
    measured = half_peak_onsets(responses, np.arange(-100, 201))
    np.testing.assert_allclose(measured, sim.units["latency_ms"], atol=1.0)


def test_rf_size_grows_along_the_hierarchy_and_with_eccentricity():
    units = CortexSimulator(image_size=32).units
    sigma = units.groupby("area")["rf_sigma"].median()
    assert sigma["V1"] < sigma["V4"] < sigma["IT"]
    assert sigma["IT"] > 5 * sigma["V1"]
    v1 = units[units["area"] == "V1"]
    eccentricity = np.hypot(v1["rf_x"], v1["rf_y"])
    assert np.corrcoef(eccentricity, v1["rf_sigma"])[0, 1] > 0.5


def test_receptive_field_maps_peak_at_the_rf_centre_and_sum_to_one(sim):
    maps = sim.receptive_field_maps()
    assert maps.shape == (64, SIZE, SIZE)
    np.testing.assert_allclose(maps.sum((1, 2)), 1, atol=1e-4)
    v1 = np.flatnonzero(sim.units["area"] == "V1")
    rows, columns = np.unravel_index(maps[v1].reshape(len(v1), -1).argmax(1), (SIZE, SIZE))
    np.testing.assert_allclose(columns, sim.units["rf_x"].iloc[v1].map(to_pixel), atol=1)
    np.testing.assert_allclose(rows, sim.units["rf_y"].iloc[v1].map(to_pixel), atol=1)


def test_v1_is_position_selective_and_it_nearly_position_invariant(sim):
    units = sim.units
    v1 = np.flatnonzero(units["area"] == "V1")
    x, y = units["rf_x"].to_numpy(), units["rf_y"].to_numpy()
    at_centre = sim.rates(np.stack([patch(x[i], y[i]) for i in v1]))[np.arange(len(v1)), v1]
    far_away = sim.rates(np.stack([patch(-x[i], -y[i]) for i in v1]))[np.arange(len(v1)), v1]
    assert np.all(at_centre > far_away + 0.1)

    positions = [(px, py) for px in (-0.4, 0.0, 0.4) for py in (-0.4, 0.0, 0.4)]
    drive = sim.rates(np.stack([patch(px, py) for px, py in positions])) + 1e-3
    invariance = 1 - (drive.max(0) - drive.min(0)) / (drive.max(0) + drive.min(0))
    by_area = {a: np.median(invariance[units["area"] == a]) for a in ("V1", "V4", "IT")}
    assert by_area["V1"] < 0.2
    assert by_area["IT"] > 0.55
    assert by_area["IT"] > by_area["V4"] + 0.3


def test_v1_prefers_its_orientation_over_the_orthogonal_one(sim):
    units = sim.units
    v1 = np.flatnonzero(units["area"] == "V1")
    preferred = units["pref_orientation_deg"].to_numpy()[v1]
    wavelength = units["pref_wavelength_px"].to_numpy()[v1]
    assert units.loc[units["area"] != "V1", "pref_orientation_deg"].isna().all()
    best = sim.rates(np.stack([grating(o, w) for o, w in zip(preferred, wavelength, strict=True)]))
    orthogonal = sim.rates(
        np.stack([grating(o + 90, w) for o, w in zip(preferred, wavelength, strict=True)])
    )
    ratio = best[np.arange(len(v1)), v1] / (orthogonal[np.arange(len(v1)), v1] + 1e-6)
    assert np.all(ratio > 1.2)
    assert np.median(ratio) > 2


def test_colour_opponent_v1_electrodes_respond_to_isoluminant_colour():
    sim = CortexSimulator(seed=2, **SMALL)
    reddish = np.ones((3, SIZE, SIZE), np.float32) * np.array([0.6, 0.4, 0.5])[:, None, None]
    greenish = reddish[[1, 0, 2]]
    drive = sim.rates(np.stack([reddish, greenish]).astype(np.float32))
    v1 = sim.units["area"].to_numpy() == "V1"
    assert drive[:, v1].max() > 0.05, "some V1 electrodes see uniform colour"
    grey = sim.rates(np.full((1, 3, SIZE, SIZE), 0.5, np.float32))
    assert grey.max() < 1e-3, "a uniform grey field drives nothing"


def test_repeats_differ_and_trial_mean_converges_to_the_noiseless_response(sim):
    image = reference_images(SIZE, 1, seed=4)
    clean = sim.rates(image)[0][:, None] * sim.time_course()
    trials = sim.responses(image, repeats=64, seed=3)
    assert not np.allclose(trials[0], trials[1])
    errors = [np.abs(trials[:n].mean(0) - clean).mean() for n in (4, 64)]
    assert errors[1] < 0.5 * errors[0]
    pre_stimulus = trials[:, :, :100]
    assert abs(pre_stimulus.mean()) < 0.02, "baseline-subtracted"


def test_noise_zero_is_exactly_drive_times_time_course():
    sim = CortexSimulator(seed=1, noise=0.0, **SMALL)
    images = reference_images(SIZE, 2, seed=5)
    expected = sim.rates(images)[:, :, None] * sim.time_course()[None]
    np.testing.assert_allclose(sim.responses(images, repeats=1), expected, rtol=1e-6)


def test_reliability_across_repeats_is_higher_for_driven_electrodes():
    sim = CortexSimulator(image_size=SIZE, mode="window", seed=3)
    images = reference_images(SIZE, 40, seed=6)
    images[:, :, :, SIZE // 2 :] = 0.5
    trials = sim.responses(images, repeats=2, seed=1).reshape(40, 2, -1)
    first, second = trials[:, 0] - trials[:, 0].mean(0), trials[:, 1] - trials[:, 1].mean(0)
    correlation = (first * second).sum(0) / np.sqrt((first**2).sum(0) * (second**2).sum(0))
    units = sim.units
    v1 = units["area"].to_numpy() == "V1"
    driven = v1 & (units["rf_x"].to_numpy() < -0.2)
    undriven = v1 & (units["rf_x"].to_numpy() > 0.2)
    assert driven.sum() > 20 and undriven.sum() > 20
    assert np.median(correlation[driven]) > 0.5
    assert np.median(correlation[undriven]) < 0.2
    assert units["reliability"].between(0, 1).all()


def test_chunked_generator_matches_responses(sim):
    images = reference_images(SIZE, 3, seed=8)
    whole = sim.responses(images, repeats=2, seed=4)
    chunks = list(sim.iter_responses(images, repeats=2, seed=4, chunk_size=2))
    assert [len(index) for index, _ in chunks] == [4, 2]
    np.testing.assert_array_equal(np.concatenate([i for i, _ in chunks]), [0, 0, 1, 1, 2, 2])
    np.testing.assert_allclose(np.concatenate([r for _, r in chunks]), whole, atol=1e-5)


def test_simulate_cortex_in_memory_and_streamed_to_file_agree(tmp_path):
    train, test = reference_images(SIZE, 5, seed=1), reference_images(SIZE, 2, seed=2)
    kwargs = {**SMALL, "mode": "window", "seed": 3}
    in_memory = simulate_cortex(train, test, repeats_test=3, **kwargs)
    assert in_memory.n_trials == 11 and in_memory.n_units == 64 and in_memory.n_bins == 1
    assert in_memory.split.tolist() == ["train"] * 5 + ["test"] * 6
    assert in_memory.stimulus_id.tolist() == [0, 1, 2, 3, 4, 5, 5, 5, 6, 6, 6]
    meta = in_memory.meta
    assert meta["simulator"] == "cortex" and meta["seed"] == 3
    assert "normalised [-1, 1]" in meta["rf_units"] and "neuralsight_version" in meta
    assert {"rf_x", "rf_y", "rf_sigma", "array", "latency_ms", "reliability"} <= set(
        in_memory.units.columns
    )
    on_disk = simulate_cortex(
        train, test, repeats_test=3, path=tmp_path / "cortex.h5", progress=False, **kwargs
    )
    assert on_disk.is_lazy
    np.testing.assert_allclose(on_disk.responses[:], in_memory.responses, atol=1e-5)
    reopened = NeuralDataset.open(tmp_path / "cortex.h5", lazy=False)
    assert reopened.meta["noise_seed"] == 3
    np.testing.assert_array_equal(reopened.units["area"], in_memory.units["area"])


def test_streaming_blocks_that_split_a_stimulus_repeats_give_the_same_trials(tmp_path):
    train, test = reference_images(SIZE, 19, seed=1), reference_images(SIZE, 5, seed=2)
    kwargs = {**SMALL, "mode": "window", "seed": 3, "repeats_test": 3}
    in_memory = simulate_cortex(train, test, **kwargs)
    path = tmp_path / "blocks.h5"
    on_disk = simulate_cortex(train, test, path=path, chunk_trials=1, progress=False, **kwargs)
    assert on_disk.n_trials == 34, "blocks of 16 trials split the repeats of stimulus 23"
    np.testing.assert_allclose(on_disk.responses[:], in_memory.responses, atol=1e-5)


def test_spread_layout_covers_every_quadrant():
    units = CortexSimulator(image_size=32, layout="spread").units
    v1 = units[units["area"] == "V1"]
    quadrants = set(zip(np.sign(v1["rf_x"]), np.sign(v1["rf_y"]), strict=True))
    assert quadrants == {(-1, -1), (-1, 1), (1, -1), (1, 1)}


def test_degrees_are_added_given_a_field_of_view():
    units = CortexSimulator(image_size=32, field_of_view_deg=8.0, arrays={"V1": 1}).units
    np.testing.assert_allclose(units["rf_sigma_deg"], units["rf_sigma"] * 4)


@pytest.mark.parametrize(
    ("images", "message"),
    [
        (np.zeros((2, 3, 32, 32), np.float32), "shape"),
        (np.zeros((2, 2, SIZE, SIZE), np.float32), "shape"),
        (np.zeros((SIZE, SIZE), np.float32), "shape"),
        (np.full((1, 1, SIZE, SIZE), 2.0, np.float32), r"\[0, 1\]"),
        (np.full((1, 1, SIZE, SIZE), np.nan, np.float32), "NaN"),
    ],
)
def test_bad_images_are_rejected(sim, images, message):
    with pytest.raises(ValueError, match=message):
        sim.rates(images)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"arrays": {"V2": 1}}, "unknown area"),
        ({"arrays": {"V1": 0}}, "at least one array"),
        ({"image_size": 50}, "image_size"),
        ({"bin_ms": 7}, "whole number"),
        ({"mode": "spikes"}, "mode"),
        ({"layout": "random"}, "layout"),
        ({"noise": -1}, "noise"),
        ({"window_ms": {"IT": (100, 50)}}, "window_ms"),
        ({"electrodes_per_array": 0}, "electrodes_per_array"),
    ],
)
def test_bad_parameters_are_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        CortexSimulator(**{"image_size": 32, **kwargs})


def test_simulate_cortex_rejects_bad_images_before_writing(tmp_path):
    bad = np.full((2, 3, SIZE, SIZE), 1.5, np.float32)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        simulate_cortex(bad, path=tmp_path / "bad.h5", progress=False, **SMALL)
    assert not list(tmp_path.iterdir())
    with pytest.raises(ValueError, match="test_images"):
        simulate_cortex(reference_images(SIZE, 2), reference_images(32, 1), **SMALL)


def test_bad_repeats_are_rejected(sim):
    with pytest.raises(ValueError, match="repeats"):
        sim.responses(reference_images(SIZE, 1), repeats=0)
