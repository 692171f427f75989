"""NWB (Neurodata Without Borders) sessions in and out of a `NeuralDataset`.

NWB is the format of DANDI and the Allen Brain Observatory. `read` translates one session
into a `NeuralDataset` of binned spike counts; `write_nwb` exports one so that `read` gives
it back. The options of `read` work as follows.

Spikes
    come from the ``units`` table (its ragged ``spike_times`` column). With
    ``check_session_end`` a spike after the session end (the latest time of the unit
    observation intervals, the ``epochs`` table and the time series in the file) is an
    error; the check is skipped when the file has none of these.
Presentations
    come from intervals tables: ``intervals`` names them; by default the table
    ``<stimulus>_presentations`` when ``stimulus`` names one that exists, else every table
    whose name ends in ``_presentations`` plus ``trials`` (default tables without an index
    column are skipped). Presentations of all tables are merged and sorted by onset; a
    presentation listed twice (same onset, same image) is kept once. A presentation's
    ``start_time`` is its onset and one integer column, ``index_column`` (default: the first
    of ``frame``, ``image_index``, ``stimulus_index``, ``image_id`` that the table has),
    names the image it showed; negative or NaN values (blank sweeps, as in the Allen Brain
    Observatory) are dropped.
Responses
    are spike counts per presentation, unit and time bin, counted with ``np.searchsorted``
    on each unit's sorted spike times, ``chunk_size`` presentations at a time (a progress
    bar with ``progress``). ``window_ms`` and ``bin_ms`` are the counting window relative to
    onset and the bin width, in ms; by default the bin edges stored by `write_nwb` when the
    file has them, else (0, 250) ms in 10 ms bins. Bins are half-open, ``[left, right)``;
    ``bin_ms`` equal to the window length gives one bin.
Units
    ``unit_filters`` keeps only units whose columns pass every condition, e.g.
    ``{"snr": ">=2", "quality": "good", "area": ["V1", "V4"]}``. A condition is a string
    starting with ``>=``, ``<=``, ``>``, ``<`` or ``==`` followed by a value, a plain value
    (equality) or a list of values (membership). Missing values (NaN) never pass.
Split
    The first rule that applies: ``test_stimuli`` (stimulus ids whose trials are ``test``);
    ``split_column`` (a ``train`` / ``test`` column of the intervals tables; a column named
    ``split`` is used without being named); otherwise the ``test_fraction`` of shown stimuli
    with the most presentations form the test split (repeated images are held out, as in
    many data sets), ties broken by a permutation seeded with ``split_seed``. All trials of
    one stimulus share its split.
Pixels
    come from the ``ImageSeries`` / ``OpticalSeries`` / ``Images`` / ``IndexSeries`` in
    ``nwb.stimulus`` or ``nwb.stimulus_template`` named ``stimulus`` (default: the single one
    found; an ``IndexSeries`` is followed to the images it indexes), or, given as
    ``stimulus_path``, from a folder of images read in sorted file-name order or a ``.npy``
    array ``[n, H, W]`` or ``[n, H, W, C]``. They become float32 ``[n, C, H, W]`` in [0, 1]:
    arrays are read as ``[n, H, W]`` or ``[n, H, W, C]`` (rows first; an alpha channel is
    dropped); ``uint8`` is divided by 255; other types are kept when already in [0, 1],
    divided by 255 when in [0, 255], and min-max rescaled over the whole stack otherwise
    (``meta["stimulus_scaling"]`` says which).

`write_nwb` writes the stimuli as an ``OpticalSeries`` template, the trials as a
``stimulus_presentations`` table with ``frame`` and ``split`` columns, and the counts as
spike times placed evenly inside their bins.

Layout: `reader` (`read`), `spikes`, `presentations`, `units`, `stimuli` (what `read`
gathers) and `writer` (`write_nwb`).

Examples
--------
>>> import numpy as np, os, tempfile
>>> from neuralsight.data import NeuralDataset
>>> toy = NeuralDataset.from_arrays(
...     np.ones((4, 2, 3), np.float32), np.zeros((4, 1, 8, 8), np.float32),
...     bin_edges_ms=[0, 10, 20, 30],
... )
>>> path = write_nwb(toy, os.path.join(tempfile.mkdtemp(), "toy.nwb"))
>>> back = read([str(path)], progress=False)
>>> back.responses.shape, back.bin_edges_ms.tolist()
((4, 2, 3), [0.0, 10.0, 20.0, 30.0])
"""

from neuralsight.data.readers.nwb.reader import read
from neuralsight.data.readers.nwb.writer import write_nwb

__all__ = ["read", "write_nwb"]
