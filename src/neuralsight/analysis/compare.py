"""Several runs side by side: one metrics table and one reconstruction grid on one page.

`compare_runs` reads each run folder's ``metrics.json`` (a row per run and model),
``run.json`` (what it decoded) and ``reconstructions_*.npz`` files, and writes the page with
`neuralsight.viz.report.write_comparison`. The grid shows the same test stimuli in every
column: the stimulus ids that every reconstructions file of the first run's data set holds
(files of another data set, by their recorded ``dataset_fingerprint``, are left out of the
grid and named in a note), with the true stimuli on top when the data set file is found.
It backs ``neuralsight report RUN_DIR RUN_DIR ... --out compare.html``.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from neuralsight.data.dataset import NeuralDataset
from neuralsight.metrics.results import load_reconstructions
from neuralsight.metrics.score import true_stimuli
from neuralsight.viz.figures import reconstruction_grid
from neuralsight.viz.report import (
    answer_sentence,
    is_own_regular_file,
    read_json,
    write_comparison,
)

GRID_COLUMNS = 8


def _read_object(path: Path, run_dir: Path, what: str) -> dict[str, Any]:
    if not is_own_regular_file(path, run_dir):
        raise FileNotFoundError(f"{path}: expected the run's {what} (a regular file)")
    value = read_json(path)
    if not isinstance(value, dict):
        raise ValueError(f"{path}: expected a JSON object, found {type(value).__name__}")
    return value


def _labels(run_dirs: Sequence[Path]) -> list[str]:
    """Each run's folder name, or its last two path parts where names repeat."""
    names = [p.name for p in run_dirs]
    return [f"{p.parent.name}/{p.name}" if names.count(p.name) > 1 else p.name for p in run_dirs]


def _reconstructions(run_dir: Path, label: str) -> dict[str, tuple]:
    found = {}
    for path in sorted(run_dir.glob("reconstructions_*.npz")):
        if is_own_regular_file(path, run_dir):
            images, ids, meta = load_reconstructions(path)
            found[f"{label}/{path.stem.removeprefix('reconstructions_')}"] = (images, ids, meta)
    return found


def _dataset_file(run_dir: Path, meta: dict[str, Any]) -> Path | None:
    recorded = Path(str(meta.get("dataset", "")))
    for candidate in (recorded, run_dir / recorded.name):
        if recorded.name and candidate.is_file():
            return candidate
    return None


def _grid(entries: dict[str, tuple], truth_file: Path | None) -> tuple[bytes | None, str]:
    """The grid's PNG over the stimulus ids every entry holds, and a note on what it shows."""
    if not entries:
        return None, "no reconstructions_*.npz files in these runs"
    first_meta = next(iter(entries.values()))[2]
    fingerprint = first_meta.get("dataset_fingerprint")
    same = {k: v for k, v in entries.items() if v[2].get("dataset_fingerprint") == fingerprint}
    left_out = sorted(set(entries) - set(same))
    common = sorted(set.intersection(*(set(v[1].tolist()) for v in same.values())))
    if not common:
        return None, "the runs' reconstructions share no test stimulus"
    ids = np.asarray(common[:: max(1, len(common) // GRID_COLUMNS)][:GRID_COLUMNS])
    rows = {}
    if truth_file is not None:
        rows["stimulus"] = true_stimuli(NeuralDataset.open(truth_file), ids)
    for label, (images, stimulus_id, _) in same.items():
        first = {int(s): i for i, s in reversed(list(enumerate(stimulus_id)))}
        rows[label] = images[[first[int(i)] for i in ids]]
    with tempfile.TemporaryDirectory() as folder:
        png = reconstruction_grid(rows, Path(folder) / "grid.png", n_columns=len(ids))
        data = png.read_bytes()
    note = f"stimulus ids {ids.tolist()}"
    if left_out:
        note += f"; left out (another data set): {', '.join(left_out)}"
    return data, note


def compare_runs(run_dirs: Sequence[str | Path], out: str | Path) -> Path:
    """Write one HTML page comparing the runs in ``run_dirs``; returns its path.

    Examples
    --------
    >>> import json, tempfile
    >>> root = Path(tempfile.mkdtemp())
    >>> for name, ssim in (("a", 0.4), ("b", 0.5)):
    ...     (root / name).mkdir()
    ...     _ = (root / name / "metrics.json").write_text(json.dumps({"ridge": {"ssim": ssim}}))
    >>> compare_runs([root / "a", root / "b"], root / "compare.html").name
    'compare.html'
    """
    folders = [Path(p) for p in run_dirs]
    for folder in folders:
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder}: run folder does not exist")
    metrics: dict[str, dict[str, Any]] = {}
    sentences: dict[str, str] = {}
    entries: dict[str, tuple] = {}
    truth_file = None
    for folder, label in zip(folders, _labels(folders), strict=True):
        for model, values in _read_object(folder / "metrics.json", folder, "metrics").items():
            metrics[f"{label}/{model}"] = values
        run_json = folder / "run.json"
        run = _read_object(run_json, folder, "settings") if run_json.exists() else {}
        sentences[label] = answer_sentence(run.get("dataset"), run)
        found = _reconstructions(folder, label)
        if found and truth_file is None and not entries:
            truth_file = _dataset_file(folder, next(iter(found.values()))[2])
        entries |= found
    grid, note = _grid(entries, truth_file)
    return write_comparison(metrics, grid, out, sentences, note)
