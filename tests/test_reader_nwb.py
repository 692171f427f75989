"""NWB reader and writer: binning, units, stimuli, splits, round trip and bad input files."""

from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image as PILImage
from pynwb import NWBHDF5IO, NWBFile, TimeSeries
from pynwb.base import ImageReferences, Images
from pynwb.epoch import TimeIntervals
from pynwb.file import Subject
from pynwb.image import GrayscaleImage, IndexSeries, OpticalSeries
from pynwb.misc import Units

from neuralsight.data.dataset import DatasetError, NeuralDataset
from neuralsight.data.readers import READERS
from neuralsight.data.readers.nwb import read, write_nwb
from neuralsight.data.readers.nwb.units import unit_mask

WINDOW = {"window_ms": (0.0, 30.0), "bin_ms": 10.0, "progress": False}

# Spike times (s) of units 10 (VISp), 11 (VISl), 12 (LGd); presentations at 1, 2, 3 s show
# frames 0, 1, 0 and one at 4 s is blank (frame -1). Bins are [0, 10), [10, 20), [20, 30) ms.
SPIKES = {
    10: [0.5, 1.005, 1.015, 1.019, 2.0, 2.025, 3.5],
    11: [3.001, 3.002, 3.003, 3.011, 9.9],
    12: [1.029, 2.011],
}
EXPECTED_COUNTS = np.array(
    [
        [[1, 2, 0], [0, 0, 0], [0, 0, 1]],  # 1 s, frame 0
        [[1, 0, 1], [0, 0, 0], [0, 1, 0]],  # 2 s, frame 1
        [[0, 0, 0], [3, 1, 0], [0, 0, 0]],  # 3 s, frame 0
    ],
    dtype=np.float32,
)
FRAMES = (np.arange(3 * 4 * 5).reshape(3, 4, 5) * 4).astype(np.uint8)


def _write_toy_nwb(
    path,
    spikes=SPIKES,
    frames=(0, 1, 0, -1),
    with_units=True,
    with_presentations=True,
    stimulus_pixels=FRAMES,
    trials_show_frames=False,
):
    nwb = NWBFile(
        session_description="toy session",
        identifier="toy",
        session_start_time=datetime(2024, 1, 1, tzinfo=timezone.utc),
        session_id="session-1",
        subject=Subject(subject_id="mouse-7", species="Mus musculus"),
    )
    nwb.add_acquisition(
        TimeSeries(name="running", data=np.zeros(101), unit="m/s", rate=10.0, starting_time=0.0)
    )
    device = nwb.create_device(name="probe")
    group = nwb.create_electrode_group(
        name="shank", description="toy shank", location="brain", device=device
    )
    for location in ("VISp", "VISl", "LGd"):
        nwb.add_electrode(location=location, group=group)
    if with_units and not spikes:
        nwb.units = Units(name="units", description="no unit passed curation")
    elif with_units:
        nwb.add_unit_column(name="quality", description="curation label")
        nwb.add_unit_column(name="snr", description="signal to noise")
        for row, (unit_id, times) in enumerate(spikes.items()):
            nwb.add_unit(
                id=unit_id,
                spike_times=times,
                electrodes=[row],
                quality=["good", "good", "noise"][row],
                snr=[3.0, 1.5, 4.0][row],
            )
    if stimulus_pixels is not None:
        nwb.add_stimulus_template(
            OpticalSeries(
                name="natural_images",
                data=stimulus_pixels,
                unit="grey level",
                rate=1.0,
                distance=0.1,
                field_of_view=[0.1, 0.1],
                orientation="up",
            )
        )
    table = TimeIntervals(name="stimulus_presentations", description="images shown")
    if with_presentations:
        table.add_column("frame", "frame of natural_images")
        for onset, frame in zip((1.0, 2.0, 3.0, 4.0), frames, strict=True):
            table.add_interval(start_time=onset, stop_time=onset + 0.25, frame=frame)
    else:
        table.add_column("frame", "frame of natural_images", data=np.zeros(0, dtype=np.int64))
    nwb.add_time_intervals(table)
    if trials_show_frames:
        nwb.add_trial_column(name="frame", description="frame of natural_images")
        for onset, frame in ((1.0, 0), (3.0, 0), (5.0, 2)):
            nwb.add_trial(start_time=onset, stop_time=onset + 0.25, frame=frame)
    else:
        nwb.add_trial_column(name="response", description="lick or not")
        nwb.add_trial(start_time=0.0, stop_time=5.0, response=1)
    with NWBHDF5IO(str(path), "w") as io:
        io.write(nwb)
    return path


@pytest.fixture(scope="module")
def toy_path(tmp_path_factory):
    return _write_toy_nwb(tmp_path_factory.mktemp("nwb") / "toy.nwb")


@pytest.fixture(scope="module")
def toy(toy_path):
    return read([str(toy_path)], **WINDOW)


def test_spike_counts_match_hand_binned_counts(toy):
    np.testing.assert_array_equal(toy.responses, EXPECTED_COUNTS)
    np.testing.assert_array_equal(toy.bin_edges_ms, [0.0, 10.0, 20.0, 30.0])
    np.testing.assert_array_equal(toy.stimulus_id, [0, 1, 0])
    assert toy.meta["blank_presentations_dropped"] == 1
    assert toy.meta["intervals"] == {"stimulus_presentations": "frame"}


def test_units_get_ids_electrode_areas_and_quality_columns(toy):
    assert toy.units["unit_id"].tolist() == [10, 11, 12]
    assert toy.units["area"].tolist() == ["VISp", "VISl", "LGd"]
    assert toy.units["quality"].tolist() == ["good", "good", "noise"]
    np.testing.assert_array_equal(toy.units["snr"], [3.0, 1.5, 4.0])


def test_stimulus_frames_become_float_channels_first(toy):
    assert toy.stimuli.shape == (3, 1, 4, 5)
    assert toy.stimuli.dtype == np.float32
    np.testing.assert_allclose(toy.stimuli[:, 0], FRAMES / 255.0, rtol=1e-6)
    assert toy.meta["stimulus_source"] == "stimulus_template/natural_images"


def test_default_split_holds_out_most_repeated_stimulus(toy):
    assert toy.split.tolist() == ["test", "train", "test"]


def test_explicit_test_stimuli_and_zero_fraction(toy_path):
    by_list = read([str(toy_path)], test_stimuli=[1], **WINDOW)
    assert by_list.split.tolist() == ["train", "test", "train"]
    all_train = read([str(toy_path)], test_fraction=0.0, **WINDOW)
    assert all_train.split.tolist() == ["train"] * 3


def test_meta_records_provenance(toy, toy_path):
    assert toy.meta["source_file"] == str(toy_path)
    assert toy.meta["session_id"] == "session-1"
    assert toy.meta["subject"] == {"species": "Mus musculus", "subject_id": "mouse-7"}
    assert toy.meta["window_ms"] == [0.0, 30.0]
    assert toy.meta["bin_ms"] == 10.0
    assert toy.meta["response_units"] == "spike counts"


def test_one_bin_window_sums_the_bins(toy_path):
    one = read([str(toy_path)], window_ms=(0.0, 30.0), bin_ms=30.0, progress=False)
    np.testing.assert_array_equal(one.responses[..., 0], EXPECTED_COUNTS.sum(axis=2))


def test_small_chunks_give_the_same_counts(toy_path):
    chunked = read([str(toy_path)], chunk_size=2, **WINDOW)
    np.testing.assert_array_equal(chunked.responses, EXPECTED_COUNTS)


def test_registry_finds_the_reader(toy_path):
    assert READERS.get("nwb") is read


@pytest.mark.parametrize(
    ("filters", "kept"),
    [
        ({"snr": ">=2", "quality": "good"}, [10]),
        ({"snr": "<2"}, [11]),
        ({"snr": 4.0}, [12]),
        ({"quality": "==noise"}, [12]),
        ({"area": ["VISl", "LGd"]}, [11, 12]),
    ],
)
def test_unit_filters_keep_matching_units(toy_path, filters, kept):
    ds = read([str(toy_path)], unit_filters=filters, **WINDOW)
    assert ds.units["unit_id"].tolist() == kept
    rows = [[10, 11, 12].index(k) for k in kept]
    np.testing.assert_array_equal(ds.responses, EXPECTED_COUNTS[:, rows])


def test_unit_filters_report_unknown_column_and_empty_result(toy_path):
    with pytest.raises(DatasetError, match=r"toy.nwb.*'isi'.*found columns.*snr"):
        read([str(toy_path)], unit_filters={"isi": "<0.5"}, **WINDOW)
    with pytest.raises(DatasetError, match="leave no unit of the 3"):
        read([str(toy_path)], unit_filters={"snr": ">10"}, **WINDOW)
    with pytest.raises(DatasetError, match="only equality"):
        read([str(toy_path)], unit_filters={"quality": ">good"}, **WINDOW)


def _rgb_dataset() -> NeuralDataset:
    rng = np.random.default_rng(3)
    return NeuralDataset.from_arrays(
        responses=rng.poisson(3.0, size=(7, 4, 3)).astype(np.float32),
        stimuli=rng.random((3, 3, 6, 5), dtype=np.float32),
        stimulus_id=[2, 0, 1, 2, 0, 2, 1],
        units={
            "unit_id": [3, 8, 21, 40],
            "area": ["V1", "V4", "IT", "unknown"],
            "rf_x": [-0.5, 0.0, 0.25, np.nan],
        },
        bin_edges_ms=[-50.0, 0.0, 20.0, 100.0],
        split=["train", "train", "test", "train", "test", "train", "test"],
        meta={"subject": {"subject_id": "monkey-N", "species": "Macaca mulatta"}},
    )


def test_round_trip_gives_back_the_dataset(tmp_path):
    original = _rgb_dataset()
    path = write_nwb(original, tmp_path / "export.nwb")
    back = read([str(path)], progress=False)
    np.testing.assert_array_equal(back.responses, original.responses)
    np.testing.assert_array_equal(back.stimuli, original.stimuli)
    np.testing.assert_array_equal(back.stimulus_id, original.stimulus_id)
    np.testing.assert_array_equal(back.split, original.split)
    np.testing.assert_array_equal(back.bin_edges_ms, original.bin_edges_ms)
    assert back.units["unit_id"].tolist() == [3, 8, 21, 40]
    assert back.units["area"].tolist() == ["V1", "V4", "IT", "unknown"]
    np.testing.assert_array_equal(back.units["rf_x"], original.units["rf_x"])
    assert back.meta["subject"] == {"species": "Macaca mulatta", "subject_id": "monkey-N"}
    assert [p.name for p in tmp_path.iterdir()] == ["export.nwb"]


def test_round_trip_of_grey_dataset_with_bin_width(tmp_path):
    original = NeuralDataset.from_arrays(
        np.array([[[0, 5]], [[2, 1]]], np.float32), np.full((2, 1, 3, 3), 0.5, np.float32)
    )
    back = read([str(write_nwb(original, tmp_path / "grey.nwb", bin_ms=25.0))], progress=False)
    np.testing.assert_array_equal(back.responses, original.responses)
    np.testing.assert_array_equal(back.bin_edges_ms, [0.0, 25.0, 50.0])
    assert back.stimuli.shape == (2, 1, 3, 3)


@pytest.mark.parametrize("bad", [0.5, -1.0, np.nan])
def test_write_rejects_responses_that_are_not_spike_counts(tmp_path, bad):
    responses = np.ones((2, 2, 1), np.float32)
    responses[1, 0, 0] = bad
    if np.isnan(bad):
        responses = responses.astype(np.float64)
    ds = NeuralDataset.from_arrays(np.ones((2, 2, 1), np.float32), np.zeros((2, 1, 2, 2)))
    ds.responses = responses
    with pytest.raises(DatasetError, match=r"'responses' must hold spike counts.*trial 1, unit 0"):
        write_nwb(ds, tmp_path / "bad.nwb")
    assert not any(tmp_path.iterdir())


def test_stimulus_from_image_folder(tmp_path):
    path = _write_toy_nwb(tmp_path / "no_pixels.nwb", stimulus_pixels=None)
    folder = tmp_path / "images"
    folder.mkdir()
    colours = np.random.default_rng(0).integers(0, 256, size=(3, 4, 5, 3), dtype=np.uint8)
    for i, colour in enumerate(colours):
        PILImage.fromarray(colour).save(folder / f"img_{i:02d}.png")
    ds = read([str(path)], stimulus_path=str(folder), **WINDOW)
    assert ds.stimuli.shape == (3, 3, 4, 5)
    np.testing.assert_allclose(ds.stimuli, colours.transpose(0, 3, 1, 2) / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(ds.responses, EXPECTED_COUNTS)


def test_stimulus_from_npy_rescales_out_of_range_floats(tmp_path, toy_path):
    stack = np.linspace(-1.0, 3.0, 3 * 2 * 2).reshape(3, 2, 2)
    np.save(tmp_path / "frames.npy", stack)
    ds = read([str(toy_path)], stimulus_path=str(tmp_path / "frames.npy"), **WINDOW)
    np.testing.assert_allclose(ds.stimuli[:, 0], (stack + 1.0) / 4.0, atol=1e-6)
    assert ds.meta["stimulus_scaling"].startswith("min-max")


def test_stimulus_from_images_and_index_series(tmp_path):
    path = _write_toy_nwb(tmp_path / "images.nwb", stimulus_pixels=None)
    with NWBHDF5IO(str(path), "a") as io:
        nwb = io.read()
        pictures = [GrayscaleImage(name=f"p{i}", data=FRAMES[i]) for i in (2, 0, 1)]
        order = ImageReferences(name="order_of_images", data=pictures)
        images = Images(name="pictures", images=pictures, order_of_images=order)
        nwb.add_stimulus_template(images)
        nwb.add_stimulus(
            IndexSeries(
                name="shown",
                data=np.array([0, 1], dtype=np.uint32),
                indexed_images=images,
                unit="N/A",
                timestamps=[1.0, 2.0],
            )
        )
        io.write(nwb)
    ds = read([str(path)], **WINDOW)
    np.testing.assert_allclose(ds.stimuli[:, 0], FRAMES[[2, 0, 1]] / 255.0, rtol=1e-6)


def test_error_no_units_table(tmp_path):
    path = _write_toy_nwb(tmp_path / "no_units.nwb", with_units=False)
    with pytest.raises(DatasetError, match=r"no_units.nwb: field 'units' is missing.*found none"):
        read([str(path)], **WINDOW)


def test_error_empty_units_table(tmp_path):
    path = _write_toy_nwb(tmp_path / "no_rows.nwb", spikes={})
    with pytest.raises(DatasetError, match=r"no_rows.nwb: field 'units/spike_times' is missing"):
        read([str(path)], **WINDOW)
    empty = pd.DataFrame({"spike_times": [], "quality": []})
    with pytest.raises(DatasetError, match=r"x.nwb: field 'units' .* found an empty units table"):
        unit_mask(empty, None, Path("x.nwb"))


def test_error_spike_before_session_start(tmp_path):
    spikes = {**SPIKES, 11: [-0.25, 3.001]}
    path = _write_toy_nwb(tmp_path / "early.nwb", spikes=spikes)
    with pytest.raises(DatasetError, match=r"early.nwb.*spike_times' of unit 11.*-0.25 s.*>= 0"):
        read([str(path)], **WINDOW)


def test_error_nan_spike_time_is_refused_even_beside_a_negative_one(tmp_path):
    spikes = {**SPIKES, 11: [float("nan"), -0.25, 3.001]}
    path = _write_toy_nwb(tmp_path / "nan.nwb", spikes=spikes)
    with pytest.raises(DatasetError, match=r"nan.nwb: field 'units/spike_times' of unit 11.*NaN"):
        read([str(path)], **WINDOW)


def test_error_spike_after_session_end(tmp_path):
    spikes = {**SPIKES, 12: [1.029, 2.011, 42.0]}
    path = _write_toy_nwb(tmp_path / "late.nwb", spikes=spikes)
    with pytest.raises(DatasetError, match=r"late.nwb.*unit 12.*42 s.*session end 10 s"):
        read([str(path)], **WINDOW)
    relaxed = read([str(path)], check_session_end=False, **WINDOW)
    np.testing.assert_array_equal(relaxed.responses, EXPECTED_COUNTS)


def test_error_empty_intervals_table(tmp_path):
    path = _write_toy_nwb(tmp_path / "empty.nwb", with_presentations=False)
    with pytest.raises(DatasetError, match=r"empty.nwb: intervals table 'stimulus_presentations'"):
        read([str(path)], **WINDOW)


def test_error_missing_index_column_lists_columns(toy_path):
    with pytest.raises(
        DatasetError,
        match=r"toy.nwb.*table\(s\) \['trials'\].*'frame', 'image_index'.*'response'",
    ):
        read([str(toy_path)], intervals=["trials"], **WINDOW)
    with pytest.raises(DatasetError, match=r"expected one of \['image_no'\]"):
        read([str(toy_path)], index_column="image_no", **WINDOW)


def test_error_index_beyond_stimulus_frames(tmp_path):
    path = _write_toy_nwb(tmp_path / "beyond.nwb", frames=(0, 1, 5, -1))
    with pytest.raises(
        DatasetError, match=r"beyond.nwb: stimulus index 5 .*'frame'.*\[0, 3\) for 3 frames"
    ):
        read([str(path)], **WINDOW)


def test_error_not_an_nwb_file(tmp_path):
    path = tmp_path / "text.nwb"
    path.write_text("not hdf5")
    with pytest.raises(DatasetError, match=r"text\.nwb: not a readable NWB file"):
        read([str(path)], **WINDOW)


def test_units_area_from_units_column_wins(tmp_path):
    ds = NeuralDataset.from_arrays(
        np.ones((2, 2), np.float32),
        np.zeros((2, 1, 2, 2), np.float32),
        units=pd.DataFrame({"unit_id": [0, 1], "area": ["V4", ""]}),
    )
    back = read([str(write_nwb(ds, tmp_path / "area.nwb"))], progress=False)
    assert back.units["area"].tolist() == ["V4", "unknown"]


def test_split_options_are_checked(toy_path):
    with pytest.raises(DatasetError, match=r"split column 'phase' is missing .*'stimulus_pres"):
        read([str(toy_path)], split_column="phase", **WINDOW)
    with pytest.raises(ValueError, match="either test_stimuli or split_column"):
        read([str(toy_path)], split_column="split", test_stimuli=[0], **WINDOW)
    with pytest.raises(ValueError, match=r"test_stimuli \[7\] are not in \[0, 3\)"):
        read([str(toy_path)], test_stimuli=[7], **WINDOW)


def test_default_tables_merge_and_drop_repeated_rows(tmp_path):
    path = _write_toy_nwb(tmp_path / "both.nwb", trials_show_frames=True)
    ds = read([str(path)], **WINDOW)
    assert ds.meta["intervals"] == {"stimulus_presentations": "frame", "trials": "frame"}
    assert ds.meta["duplicate_presentations_dropped"] == 2
    np.testing.assert_array_equal(ds.stimulus_id, [0, 1, 0, 2])
    np.testing.assert_array_equal(ds.responses[:3], EXPECTED_COUNTS)
    np.testing.assert_array_equal(ds.responses[3], 0)


def test_two_image_series_need_a_name(tmp_path):
    path = _write_toy_nwb(tmp_path / "two.nwb")
    with NWBHDF5IO(str(path), "a") as io:
        nwb = io.read()
        inverted = OpticalSeries(
            name="inverted",
            data=255 - FRAMES,
            unit="grey level",
            rate=1.0,
            distance=0.1,
            field_of_view=[0.1, 0.1],
            orientation="up",
        )
        nwb.add_stimulus_template(inverted)
        io.write(nwb)
    with pytest.raises(DatasetError, match=r"exactly one .*found 2 .*name one with stimulus"):
        read([str(path)], **WINDOW)
    ds = read([str(path)], stimulus="inverted", **WINDOW)
    np.testing.assert_allclose(ds.stimuli[:, 0], (255 - FRAMES) / 255.0, rtol=1e-6)
    with pytest.raises(DatasetError, match=r"stimulus 'movie' not found.*natural_images"):
        read([str(path)], stimulus="movie", **WINDOW)
