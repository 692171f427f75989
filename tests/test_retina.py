"""Tests of the retina simulator: mosaic, rates, polarity, Poisson spiking, subunits, video."""

import json

import numpy as np
import pytest

from neuralsight import __version__
from neuralsight.simulate.retina import (
    PRESETS,
    RetinaSimulator,
    biphasic_kernel,
    hex_mosaic,
    simulate_retina,
)


def pixel_grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    centres = -1.0 + (2.0 * np.arange(size) + 1.0) / size
    return np.meshgrid(centres, centres)


def spot_per_cell(sim: RetinaSimulator, value: float, radius_sigmas: float = 1.0) -> np.ndarray:
    """One grey image per cell with a disk of ``value`` over that cell's centre."""
    size = sim.image_size[0]
    x, y = pixel_grid(size)
    images = np.full((sim.n_cells, 1, size, size), 0.5, dtype=np.float32)
    for i, row in sim.units.iterrows():
        disk = (x - row.rf_x) ** 2 + (y - row.rf_y) ** 2 <= (radius_sigmas * row.rf_sigma) ** 2
        images[i, 0][disk] = value
    return images


def natural_like_images(n: int, size: int, seed: int = 0) -> np.ndarray:
    """Smooth random images with natural-image-like contrast."""
    rng = np.random.default_rng(seed)
    noise = rng.normal(size=(n, size, size))
    spectrum = np.fft.fft2(noise)
    f = np.hypot(*np.meshgrid(np.fft.fftfreq(size), np.fft.fftfreq(size)))
    images = np.real(np.fft.ifft2(spectrum / np.maximum(f, 1.0 / size)))
    images = (images - images.min()) / (images.max() - images.min())
    return images[:, None].astype(np.float32)


def test_same_seed_gives_identical_output_and_different_seed_differs():
    images = natural_like_images(4, 24)
    a = RetinaSimulator(24, n_cells=30, seed=5)
    b = RetinaSimulator(24, n_cells=30, seed=5)
    c = RetinaSimulator(24, n_cells=30, seed=6)
    assert a.units.equals(b.units)
    np.testing.assert_array_equal(a.responses(images, repeats=3), b.responses(images, repeats=3))
    np.testing.assert_array_equal(a.responses(images, seed=11), b.responses(images, seed=11))
    assert not np.allclose(a.units[["rf_x", "rf_y"]], c.units[["rf_x", "rf_y"]])
    assert not np.array_equal(a.responses(images, seed=11), a.responses(images, seed=12))


def test_cell_models_share_the_mosaic_for_one_seed():
    ln = RetinaSimulator(24, n_cells=30, cell_model="ln", seed=2)
    subunit = RetinaSimulator(24, n_cells=30, cell_model="subunit", seed=2)
    columns = ["rf_x", "rf_y", "rf_sigma", "surround_sigma", "baseline_hz", "gain"]
    assert ln.units[columns].equals(subunit.units[columns])


def test_units_table_describes_a_tiling_on_off_population():
    sim = RetinaSimulator(32, n_cells=101, on_fraction=0.5, seed=0)
    units = sim.units
    expected = {"unit_id", "area", "polarity", "rf_x", "rf_y", "rf_sigma", "surround_sigma"}
    assert expected <= set(units.columns)
    assert units["unit_id"].tolist() == list(range(101))
    assert units["area"].value_counts().to_dict() == {"RGC-OFF": 51, "RGC-ON": 50}
    assert units[["rf_x", "rf_y"]].abs().to_numpy().max() <= 1.0
    ratio = units["surround_sigma"] / units["rf_sigma"]
    assert ratio.between(2.0, 3.0).all()
    assert units["baseline_hz"].between(2.0, 10.0).all()
    for area in ("RGC-ON", "RGC-OFF"):
        cells = units[units["area"] == area][["rf_x", "rf_y"]].to_numpy()
        nearest = np.sort(np.linalg.norm(cells[:, None] - cells[None], axis=2), axis=1)[:, 1]
        assert nearest.min() > 0.3 * np.median(nearest), "mosaic cells must not pile up"
        assert abs(cells.mean(axis=0)).max() < 0.2, "the mosaic must cover the whole image"


def test_hex_mosaic_has_requested_count_and_stays_in_bounds():
    for n in (1, 7, 150):
        points, spacing = hex_mosaic(n, np.random.default_rng(n))
        assert points.shape == (n, 2)
        assert np.abs(points).max() <= 1.0
        assert spacing > 0


def test_receptive_fields_peak_at_the_cell_with_its_polarity():
    for model in ("ln", "subunit"):
        sim = RetinaSimulator(32, n_cells=40, cell_model=model, seed=1)
        maps = sim.receptive_fields()
        assert maps.shape == (40, 32, 32)
        x, y = pixel_grid(32)
        polarity = sim.units["polarity"].to_numpy()
        signed = maps * polarity[:, None, None]
        peak = signed.reshape(40, -1).argmax(axis=1)
        distance = np.hypot(
            x.ravel()[peak] - sim.units["rf_x"], y.ravel()[peak] - sim.units["rf_y"]
        )
        assert (distance < sim.units["rf_sigma"]).all()
        assert (signed.reshape(40, -1).min(axis=1) < 0).all(), "surround must be antagonistic"


def test_grey_image_gives_baseline_and_rates_stay_below_max():
    sim = RetinaSimulator(32, n_cells=60, max_rate_hz=100.0, seed=0)
    for level in (0.2, 0.7):
        rates = sim.rates(np.full((1, 1, 32, 32), level))
        np.testing.assert_allclose(rates[0], sim.units["baseline_hz"], rtol=1e-3)
    extreme = np.random.default_rng(0).integers(0, 2, size=(20, 1, 32, 32)).astype(np.float32)
    rates = sim.rates(extreme)
    assert rates.min() >= 0.0 and rates.max() <= 100.0


def test_strong_spots_reach_tens_of_hz():
    sim = RetinaSimulator(48, n_cells=60, seed=3)
    on = (sim.units["polarity"] > 0).to_numpy()
    bright = np.diag(sim.rates(spot_per_cell(sim, 1.0, radius_sigmas=1.5)))
    dark = np.diag(sim.rates(spot_per_cell(sim, 0.0, radius_sigmas=1.5)))
    assert np.median(bright[on]) > 20.0
    assert np.median(dark[~on]) > 20.0


@pytest.mark.parametrize("model", ["ln", "subunit"])
def test_on_and_off_cells_have_opposite_polarity(model):
    sim = RetinaSimulator(48, n_cells=60, cell_model=model, seed=3)
    units = sim.units
    inner = ((units["rf_x"].abs() < 0.7) & (units["rf_y"].abs() < 0.7)).to_numpy()
    on = (units["polarity"] > 0).to_numpy()
    baseline = units["baseline_hz"].to_numpy()
    bright = np.diag(sim.rates(spot_per_cell(sim, 1.0))) - baseline
    dark = np.diag(sim.rates(spot_per_cell(sim, 0.0))) - baseline
    assert inner.sum() >= 10
    assert (bright[inner & on] > 10.0).all() and (dark[inner & on] < 0.0).all()
    assert (dark[inner & ~on] > 10.0).all() and (bright[inner & ~on] < 0.0).all()


def test_subunit_cells_respond_to_both_phases_of_a_fine_reversing_grating():
    size, period = 64, 24 * 2 / 64
    x, y = pixel_grid(size)
    responses = {}
    for model in ("ln", "subunit"):
        sim = RetinaSimulator(size, n_cells=20, cell_model=model, seed=0)
        units = sim.units
        centrality = np.hypot(units["rf_x"], units["rf_y"]).to_numpy()
        cells = [int(np.argmin(centrality + 9 * (units["polarity"] != p))) for p in (1, -1)]
        for cell in cells:
            cx, cy, sigma = units.loc[cell, ["rf_x", "rf_y", "rf_sigma"]]
            inside = (x - cx) ** 2 + (y - cy) ** 2 <= (2 * sigma) ** 2
            bars = np.sign(np.sin(2 * np.pi * (x - cx) / period))
            images = np.full((2, 1, size, size), 0.5, dtype=np.float32)
            for phase, sign in enumerate((1, -1)):
                images[phase, 0][inside] = (0.5 + 0.5 * sign * bars)[inside]
            gain = sim.rates(images)[:, cell] - units.loc[cell, "baseline_hz"]
            responses[model, cell] = gain
    for (model, _), gain in responses.items():
        if model == "ln":
            assert np.abs(gain).max() < 1.0, "a linear centre must cancel a balanced grating"
        else:
            assert gain.min() > 5.0, "subunit cells must respond to both grating phases"


def test_counts_are_poisson_with_fano_factor_one():
    sim = RetinaSimulator(24, n_cells=40, window_ms=200.0, n_bins=2, seed=4)
    image = natural_like_images(1, 24, seed=1)
    counts = sim.responses(image, repeats=3000, seed=0)
    assert counts.shape == (3000, 40, 2)
    assert counts.dtype == np.float32
    expected = sim.rates(image)[0] * 0.1
    mean, var = counts.mean(axis=0), counts.var(axis=0)
    np.testing.assert_allclose(mean, np.repeat(expected[:, None], 2, axis=1), rtol=0.1, atol=0.05)
    active = mean > 0.5
    fano = var[active] / mean[active]
    assert active.sum() >= 20
    assert 0.95 < fano.mean() < 1.05
    assert fano.min() > 0.8 and fano.max() < 1.2


def test_counts_are_stimulus_major_and_repeats_are_independent():
    sim = RetinaSimulator(16, n_cells=30, seed=0)
    images = np.stack([np.full((1, 16, 16), 0.5), np.eye(16)[None]]).astype(np.float32)
    counts = sim.responses(images, repeats=200, seed=3)
    per_image = counts.reshape(2, 200, 30, 1).mean(axis=1)[..., 0]
    np.testing.assert_allclose(per_image, sim.rates(images) * 0.2, rtol=0.35, atol=0.2)
    assert not np.array_equal(counts[0], counts[1])


def test_biphasic_kernel_is_causal_transient_and_normalised():
    kernel = biphasic_kernel(10.0)
    step = np.cumsum(kernel)
    assert kernel[0] > 0 and kernel.min() < 0
    assert step.max() == pytest.approx(1.0, abs=1e-6)
    assert 0.1 < step[-1] < 0.5, "the sustained response must be well below the peak"
    assert kernel.sum() == pytest.approx(step[-1])


def test_streaming_matches_batch_video_and_is_causal():
    sim = RetinaSimulator(24, n_cells=30, seed=0)
    frames = natural_like_images(40, 24, seed=2)
    batch = sim.simulate_video(frames, frame_ms=20.0, seed=9)
    stream = sim.stream(frame_ms=20.0, seed=9)
    pushed = np.stack([stream.push(frame) for frame in frames])
    assert batch.shape == (40, 30)
    np.testing.assert_array_equal(pushed, batch)
    changed = frames.copy()
    changed[25:] = 1.0 - changed[25:]
    other = sim.simulate_video(changed, frame_ms=20.0, seed=9)
    np.testing.assert_array_equal(other[:25], batch[:25])
    assert not np.array_equal(other[25:], batch[25:])


def test_video_response_to_a_step_is_transient():
    sim = RetinaSimulator(48, n_cells=60, seed=3)
    spots = spot_per_cell(sim, 1.0, radius_sigmas=1.5)
    on_cell = int(np.flatnonzero(sim.units["polarity"] > 0)[0])
    frames = np.concatenate(
        [np.full((5, 1, 48, 48), 0.5), np.repeat(spots[on_cell : on_cell + 1], 30, 0)]
    )
    stream = sim.stream(frame_ms=10.0)
    rates = np.array([(stream.push(frame), stream.rates[0, on_cell])[1] for frame in frames])
    baseline = sim.units.loc[on_cell, "baseline_hz"]
    np.testing.assert_allclose(rates[:5], baseline, rtol=1e-3)
    assert rates[5:15].max() > 1.5 * rates[-1]
    assert rates[-1] > baseline


def test_colour_images_use_luminance():
    sim = RetinaSimulator(16, n_cells=20, seed=0)
    grey = natural_like_images(2, 16)
    colour = np.repeat(grey, 3, axis=1)
    np.testing.assert_allclose(sim.rates(colour), sim.rates(grey), rtol=1e-4, atol=1e-4)


def test_bad_inputs_are_rejected_with_clear_messages():
    sim = RetinaSimulator(16, n_cells=10)
    good = np.zeros((2, 1, 16, 16), np.float32)
    with pytest.raises(ValueError, match=r"'images' must have shape \[N, C, H, W\]"):
        sim.rates(good[0])
    with pytest.raises(ValueError, match="1 or 3 channels"):
        sim.rates(np.zeros((2, 2, 16, 16)))
    with pytest.raises(ValueError, match=r"16x16 pixels.*found 8x8"):
        sim.rates(np.zeros((2, 1, 8, 8)))
    with pytest.raises(ValueError, match=r"in \[0, 1\], found \[0, 255\]"):
        sim.rates(
            good + np.array(255.0).reshape(1, 1, 1, 1) * (np.arange(2) == 1)[:, None, None, None]
        )
    with pytest.raises(ValueError, match="NaN"):
        sim.rates(np.full((1, 1, 16, 16), np.nan))
    with pytest.raises(ValueError, match="'repeats'"):
        sim.responses(good, repeats=0)
    with pytest.raises(ValueError, match=r"'frame' must have shape \[C, H, W\]"):
        sim.stream().push(good)
    with pytest.raises(ValueError, match="'cell_model'"):
        RetinaSimulator(16, cell_model="glm")
    with pytest.raises(ValueError, match="'on_fraction'"):
        RetinaSimulator(16, on_fraction=1.5)
    with pytest.raises(ValueError, match="'baseline_hz'"):
        RetinaSimulator(16, baseline_hz=(2.0, 80.0))
    with pytest.raises(ValueError, match="'preset'"):
        simulate_retina(good, good, preset="unknown")
    with pytest.raises(ValueError, match="'test_images' must match"):
        simulate_retina(good, np.zeros((1, 1, 8, 8)))


def test_simulate_retina_builds_a_documented_dataset(tmp_path):
    images = natural_like_images(7, 20)
    ds = simulate_retina(
        images[:5], images[5:], n_cells=25, repeats_train=2, repeats_test=3, seed=4, n_bins=4
    )
    assert ds.responses.shape == (16, 25, 4)
    assert ds.split.tolist() == ["train"] * 10 + ["test"] * 6
    assert ds.stimulus_id.tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 5, 6, 6, 6]
    np.testing.assert_array_equal(ds.stimuli, images)
    np.testing.assert_allclose(ds.bin_edges_ms, [0, 50, 100, 150, 200])
    assert set(ds.units["area"]) == {"RGC-ON", "RGC-OFF"}
    meta = ds.meta
    assert meta["simulator"] == "retina" and meta["preset"] == "realistic"
    assert meta["cell_model"] == "subunit" and meta["seed"] == 4
    assert meta["neuralsight_version"] == __version__
    assert meta["rf_units"] == "normalised [-1, 1] image coordinates"
    assert meta["response_units"] == "spike counts"
    assert meta["parameters"]["n_bins"] == 4
    json.dumps(meta)
    again = simulate_retina(
        images[:5], images[5:], n_cells=25, repeats_train=2, repeats_test=3, seed=4, n_bins=4
    )
    np.testing.assert_array_equal(again.responses, ds.responses)
    assert not np.array_equal(ds.responses[0], ds.responses[1])
    reopened = type(ds).open(ds.save(tmp_path / "retina.h5"), lazy=False)
    assert reopened.meta == meta


def test_presets_choose_the_cell_model():
    images = natural_like_images(3, 16)
    assert PRESETS["realistic"]["cell_model"] == "subunit"
    ds = simulate_retina(images[:2], images[2:], preset="ln", n_cells=10)
    assert ds.meta["cell_model"] == "ln"
