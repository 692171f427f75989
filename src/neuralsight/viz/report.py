"""One self-contained HTML page for a run folder, the answer first, and a page comparing runs.

`write_report` reads what a run left in its folder and writes ``report.html`` beside it. The
top of the page is the answer:

- **one sentence** saying what was decoded from what (``run.json["dataset"]``, or the summary
  of ``dataset.h5``): the data set, the units, the test split and its trials;
- **the metrics table** of ``metrics.json`` (``{model: {metric: value}}``) with three
  significant digits, the best model of each column marked, each model's difference from
  the ridge baseline (green where better, red where worse) and the controls (``shuffled``,
  ``mean_image``, any name with ``shuffle`` or ``control``) set apart as the chance level;
  the feature metrics' weights (``run.json["feature_weights"]``) named under it;
- **the reconstruction grid** (the first ``reconstruction*`` image).

Then, collapsed: training curves (every Lightning CSV log, ``**/logs/*/metrics.csv``; a
metric with fewer than `MIN_CURVE_POINTS` points is a number in a table, not a line, and a
per-step training loss is smoothed with the raw trace faint behind it), the other figures,
the run's settings and configs (``run.json``, ``*.yaml``, each logged model's
``hparams.yaml``), the data set and the file list.

`write_comparison` puts several runs in one page: one metrics table (a row per run and
model) and one reconstruction grid with the same test stimuli in every column (the
reconstructions are passed in; `neuralsight.analysis.compare` reads them from the runs).

Every image is embedded as a base64 ``data:`` URI and the page has no scripts and no external
links, so the single file can be mailed, archived or opened offline; it fits a phone-width
screen (wide tables scroll). Only regular files inside the run folder are read: a symbolic
link (to a file or a folder) is never followed, so a link placed in a run folder cannot put
what it points to into the page. Missing parts are skipped with a note; a folder with none
of them is an error.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import io
import json
import math
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd

from neuralsight import __version__
from neuralsight.files import atomic_path

REPORT_NAME = "report.html"
IMAGE_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}
IMAGE_TYPES |= {".gif": "image/gif", ".svg": "image/svg+xml"}
LOWER_IS_BETTER = ("mse", "mae", "l1", "loss", "lpips", "error")
BASELINE = "ridge"
CONTROLS = ("shuffled", "mean_image")
MIN_CURVE_POINTS = 3
SMOOTH_FROM_POINTS = 20
_MAX_CURVES = 6

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 1rem auto; padding: 0 1rem;
       max-width: 70rem; color: #222; }
h1 { font-size: 1.4rem; margin-bottom: 0.3rem; } h2 { font-size: 1.15rem; display: inline; }
section { margin-top: 1rem; } p.answer { font-size: 1.05rem; margin: 0.4rem 0 0.8rem; }
.scroll { overflow-x: auto; } p, li, figcaption, h1, code { overflow-wrap: anywhere; }
table { border-collapse: collapse; margin: 0.4rem 0; font-size: 0.85rem; }
th, td { border: 1px solid #ddd; padding: 0.2rem 0.5rem; text-align: right; }
th { background: #f3f3f3; } td.key, th.key { text-align: left; }
tr.baseline td { background: #f7f7ff; } tr.control td { color: #666; font-style: italic; }
tr.group td { background: #fafafa; color: #666; text-align: left; font-size: 0.8rem; }
td.best { font-weight: bold; } .star { color: #b8860b; }
td small { display: block; font-size: 0.72rem; } .better { color: #1a7f37; } .worse { color: #c62828; } .note { color: #666; font-size: 0.85rem; }
pre { background: #f6f8fa; padding: 0.6rem; overflow-x: auto; font-size: 0.8rem; }
figure { margin: 0.5rem 0; } img { max-width: 100%; border: 1px solid #eee; }
figcaption { color: #555; font-size: 0.85rem; }
details { margin: 0.6rem 0; border-top: 1px solid #ddd; padding-top: 0.4rem; }
summary { cursor: pointer; }
"""


def _esc(value: Any) -> str:
    return html.escape(str(value))


def read_json(path: Path) -> Any:
    """The JSON value in ``path``; invalid JSON is a `ValueError` naming the file.

    Examples
    --------
    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "run.json"
    >>> _ = path.write_text('{"seed": 0}')
    >>> read_json(path)
    {'seed': 0}
    """
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: is not valid JSON ({error})") from error


def significant(value: float, digits: int = 3) -> str:
    """``value`` with ``digits`` significant digits, never in a long raw form.

    Examples
    --------
    >>> significant(-0.0003844), significant(0.44049), significant(19.534), significant(1234.5)
    ('-0.000384', '0.44', '19.5', '1.23e+03')
    """
    if math.isnan(value):
        return "nan"
    return f"{value:.{digits}g}"


def _format(value: Any) -> str:
    if isinstance(value, float):
        return significant(value)
    if isinstance(value, dict) and value:
        return _key_value_table(value)
    if isinstance(value, dict | list):
        return f"<code>{_esc(json.dumps(value, default=str))}</code>"
    return _esc(value)


def _key_value_table(items: dict[str, Any]) -> str:
    rows = "".join(
        f"<tr><td class='key'>{_esc(k)}</td><td class='key'>{_format(v)}</td></tr>"
        for k, v in items.items()
    )
    return (
        "<div class='scroll'><table><tr><th class='key'>field</th><th class='key'>value</th></tr>"
        f"{rows}</table></div>"
    )


def _data_uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def _figure(uri: str, caption: str) -> str:
    return (
        f"<figure><img src='{uri}' alt='{_esc(caption)}'>"
        f"<figcaption>{_esc(caption)}</figcaption></figure>"
    )


def _lower_is_better(metric: str) -> bool:
    return any(word in metric.lower() for word in LOWER_IS_BETTER)


def is_control(model: str) -> bool:
    """Whether a metrics row is a control (chance level), not a decoder.

    Examples
    --------
    >>> [is_control(m) for m in ("ridge", "shuffled", "run1/mean_image", "sid (shuffle control)")]
    [False, True, True, True]
    """
    name = model.lower().rsplit("/", 1)[-1]
    return name in CONTROLS or "shuffle" in name or "control" in name


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _best_values(models: dict[str, dict[str, Any]], columns: list[str]) -> dict[str, float]:
    """The best value of each column among the decoders (controls never count)."""
    best = {}
    for column in columns:
        values = [
            float(v[column])
            for name, v in models.items()
            if not is_control(name) and _is_number(v.get(column)) and not math.isnan(v[column])
        ]
        if len(values) > 1:
            best[column] = min(values) if _lower_is_better(column) else max(values)
    return best


def metrics_table(metrics: dict[str, Any], baseline: str = BASELINE) -> str:
    """HTML table of ``{model: {metric: value}}``: decoders first, the best of each column
    marked, each value's difference from ``baseline`` under it, then the controls set apart.

    Examples
    --------
    >>> table = metrics_table({"ridge": {"mse": 0.02}, "sid": {"mse": 0.01}, "shuffled": {"mse": 0.05}})
    >>> "better" in table and "class='best'" in table and "class='control'" in table
    True
    """
    models = {name: values for name, values in metrics.items() if isinstance(values, dict)}
    columns = [
        c
        for c in dict.fromkeys(k for values in models.values() for k in values)
        if any(_is_number(values.get(c)) for values in models.values())
    ]
    base = models.get(baseline, {})
    best = _best_values(models, columns)
    header = "".join(f"<th>{_esc(c)}</th>" for c in columns)
    decoders = [name for name in models if not is_control(name)]
    controls = [name for name in models if is_control(name)]
    rows = [_metrics_row(name, models[name], columns, base, best, baseline) for name in decoders]
    if controls:
        span = 1 + len(columns)
        rows.append(f"<tr class='group'><td colspan='{span}'>controls (chance level)</td></tr>")
        rows += [_metrics_row(name, models[name], columns, base, {}, baseline) for name in controls]
    return (
        f"<div class='scroll'><table><tr><th class='key'>model</th>{header}</tr>"
        f"{''.join(rows)}</table></div>"
    )


def _metrics_row(
    name: str,
    values: dict[str, Any],
    columns: list[str],
    base: dict[str, Any],
    best: dict[str, float],
    baseline: str,
) -> str:
    cells = "".join(
        _value_cell(
            values.get(c),
            best.get(c),
            "" if name == baseline or not base else _difference(values.get(c), base.get(c), c),
        )
        for c in columns
    )
    css = (
        " class='baseline'" if name == baseline else " class='control'" if is_control(name) else ""
    )
    return f"<tr{css}><td class='key'>{_esc(name)}</td>{cells}</tr>"


def _value_cell(value: Any, best: float | None, difference: str) -> str:
    if not _is_number(value):
        return f"<td>{_format(value) if value is not None else ''}</td>"
    mark = " class='best'" if best is not None and float(value) == best else ""
    star = " <span class='star'>&#9733;</span>" if mark else ""
    return f"<td{mark}>{significant(float(value))}{star}{difference}</td>"


def _difference(value: Any, base: Any, metric: str) -> str:
    """``value - base`` as a small line under the value, green where better."""
    if not (_is_number(value) and _is_number(base)):
        return ""
    difference = float(value) - float(base)
    text = f"{'+' if difference >= 0 else ''}{significant(difference, 2)}"
    if difference == 0 or math.isnan(difference):
        return f"<small>{text}</small>"
    better = (difference < 0) == _lower_is_better(metric)
    return f"<small class='{'better' if better else 'worse'}'>{text}</small>"


def training_curves(csv_path: Path) -> tuple[bytes | None, dict[str, float]]:
    """A PNG of each logged metric with at least `MIN_CURVE_POINTS` points against the step,
    and the last value of each metric with fewer (a number, not a line).

    A metric logged at `SMOOTH_FROM_POINTS` or more steps is drawn smoothed (an exponential
    moving average) over its raw trace, drawn faint. The PNG is ``None`` where no metric has
    enough points.

    Examples
    --------
    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "metrics.csv"
    >>> _ = path.write_text("epoch,step,train_loss,val_alpha\\n0,1,0.5,\\n0,2,0.4,\\n0,3,0.3,10\\n")
    >>> png, numbers = training_curves(path)
    >>> png[:4], numbers
    (b'\\x89PNG', {'val_alpha': 10.0})
    """
    try:
        log = pd.read_csv(csv_path)
    except (pd.errors.EmptyDataError, pd.errors.ParserError):
        return None, {}
    x = "step" if "step" in log else None
    series = {
        c: log[[c] + ([x] if x else [])].dropna()
        for c in log.columns
        if c not in ("epoch", "step") and pd.api.types.is_numeric_dtype(log[c])
    }
    numbers = {c: float(p[c].iloc[-1]) for c, p in series.items() if 0 < len(p) < MIN_CURVE_POINTS}
    curves = {c: p for c, p in series.items() if len(p) >= MIN_CURVE_POINTS}
    curves = dict(list(curves.items())[:_MAX_CURVES])
    if not curves:
        return None, numbers
    fig, axes = plt.subplots(1, len(curves), figsize=(3.2 * len(curves), 2.6), squeeze=False)
    for ax, (column, points) in zip(axes[0], curves.items(), strict=True):
        _draw_curve(ax, points[x] if x else points.index, points[column])
        ax.set_title(column, fontsize=9)
        ax.set_xlabel(x or "row", fontsize=8)
        ax.tick_params(labelsize=7)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    return buffer.getvalue(), numbers


def _draw_curve(ax: plt.Axes, xs: pd.Series, ys: pd.Series) -> None:
    if len(ys) < SMOOTH_FROM_POINTS:
        ax.plot(xs, ys, marker="o", markersize=3)
        return
    ax.plot(xs, ys, color="C0", alpha=0.25, linewidth=0.8, label="raw")
    smooth = ys.ewm(span=max(5, len(ys) // 20)).mean()
    ax.plot(xs, smooth, color="C0", linewidth=1.6, label="smoothed")
    ax.legend(fontsize=6, frameon=False)


def _dataset_summary(run_dir: Path, run: dict[str, Any]) -> dict[str, Any] | None:
    if isinstance(run.get("dataset"), dict):
        return run["dataset"]
    path = run_dir / "dataset.h5"
    if not path.is_file():
        return None
    from neuralsight.data.dataset import NeuralDataset

    dataset = NeuralDataset.open(path, lazy=True)
    return dataset.summary()


def answer_sentence(summary: dict[str, Any] | None, run: dict[str, Any]) -> str:
    """One sentence: what was decoded, from what, on which split and how many trials.

    Examples
    --------
    >>> summary = {"n_units": 300, "areas": {"RGC-ON": 150, "RGC-OFF": 150},
    ...            "image_shape": [1, 32, 32], "n_stimuli": 1200, "splits": {"train": 1000,
    ...            "test": 200}, "meta": {"source": "natural", "simulator": "retina"}}
    >>> answer_sentence(summary, {"test_trials": 200})
    'Decoded 200 held-out test trials of 1x32x32 natural images from 300 units (RGC-ON 150, RGC-OFF 150) of a retina simulation; 1000 training trials, 1200 stimuli in all.'
    """
    if not summary:
        return "No data set summary in this run folder (run.json or dataset.h5)."
    meta = summary.get("meta") or {}
    splits = summary.get("splits") or {}
    trials = run.get("test_trials", splits.get("test", "?"))
    shape = "x".join(str(s) for s in summary.get("image_shape", []))
    areas = ", ".join(f"{k} {v}" for k, v in (summary.get("areas") or {}).items())
    origin = meta.get("simulator") or meta.get("reader") or meta.get("format")
    origin_text = (
        f" of a {origin} simulation"
        if meta.get("simulator")
        else (f" read by {origin}" if origin else "")
    )
    source = f" {meta['source']}" if meta.get("source") else ""
    return (
        f"Decoded {trials} held-out test trials of {shape}{source} images from "
        f"{summary.get('n_units', '?')} units ({areas}){origin_text}; "
        f"{splits.get('train', '?')} training trials, {summary.get('n_stimuli', '?')} "
        "stimuli in all."
    )


def _section(title: str, body: str) -> str:
    return f"<section><h2>{_esc(title)}</h2>{body}</section>"


def _collapsed(title: str, body: str) -> str:
    return f"<details><summary><h2>{_esc(title)}</h2></summary>{body}</details>"


def is_own_regular_file(path: Path, run_dir: Path) -> bool:
    """A regular file that is really inside ``run_dir``: no symbolic link on the way to it."""
    return (
        path.is_file()
        and not path.is_symlink()
        and path.resolve().is_relative_to(run_dir.resolve())
    )


def _visible_files(run_dir: Path, out: Path) -> list[Path]:
    """The files a report may embed: regular, inside the run folder, not hidden, not ``out``."""
    return sorted(
        p
        for p in run_dir.rglob("*")
        if is_own_regular_file(p, run_dir)
        and p.resolve() != out.resolve()
        and not any(part.startswith(".") for part in p.relative_to(run_dir).parts)
    )


def _results_section(metrics: dict[str, Any], run: dict[str, Any]) -> str:
    note = (
        f"<p class='note'>Three significant digits; &#9733; the best decoder of each column; "
        f"the small line under a value is its difference from the {BASELINE} baseline (green: better).</p>"
        if isinstance(metrics.get(BASELINE), dict)
        else f"<p class='note'>no {BASELINE} baseline in metrics.json</p>"
    )
    weights = run.get("feature_weights")
    if weights:
        note += f"<p class='note'>Feature metrics (AlexNet weights): {_format(weights)}</p>"
    return _section("Results", metrics_table(metrics) + note)


def _image_figure(path: Path, run_dir: Path) -> str:
    uri = _data_uri(path.read_bytes(), IMAGE_TYPES[path.suffix.lower()])
    return _figure(uri, str(path.relative_to(run_dir)))


def _curves_section(logs: list[Path], run_dir: Path) -> str:
    parts = []
    for log in logs:
        png, numbers = training_curves(log)
        name = str(log.relative_to(run_dir))
        if png is not None:
            parts.append(_figure(_data_uri(png, "image/png"), name))
        if numbers:
            values = {k: significant(v) for k, v in numbers.items()}
            parts.append(
                f"<p class='note'>{_esc(name)}: single values</p>{_key_value_table(values)}"
            )
    return _collapsed("Training curves", "".join(parts)) if parts else ""


def _files_section(listed: list[Path], run_dir: Path) -> str:
    rows = "".join(
        f"<tr><td class='key'>{_esc(p.relative_to(run_dir))}</td>"
        f"<td>{p.stat().st_size / 1024:.1f} KiB</td></tr>"
        for p in listed
    )
    return _collapsed(
        "Files",
        f"<div class='scroll'><table><tr><th class='key'>file</th><th>size</th></tr>{rows}"
        "</table></div>",
    )


def _page(title: str, subtitle: str, body: str) -> str:
    stamp = dt.datetime.now().isoformat(timespec="seconds")
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{_esc(title)}</title><style>{_STYLE}</style></head>"
        f"<body><h1>{_esc(title)}</h1>{body}"
        f"<p class='note'>{_esc(subtitle)} &middot; written {stamp} by neuralsight "
        f"{_esc(__version__)}</p></body></html>"
    )


def build_report(run_dir: str | Path, out: str | Path | None = None) -> str:
    """The report page of ``run_dir`` as an HTML string (see `write_report`)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"{run_dir}: run folder does not exist")
    out = Path(out) if out is not None else run_dir / REPORT_NAME
    files = _visible_files(run_dir, out)
    run = read_json(run_dir / "run.json") if run_dir / "run.json" in files else {}
    run = run if isinstance(run, dict) else {}
    metrics = read_json(run_dir / "metrics.json") if run_dir / "metrics.json" in files else {}
    configs = [p for p in files if p.suffix in (".yaml", ".yml")]
    images = [p for p in files if p.suffix.lower() in IMAGE_TYPES]
    grids = [p for p in images if p.name.startswith("reconstruction")]
    logs = [p for p in files if p.name == "metrics.csv"]
    if not (run or metrics or configs or images or logs):
        raise FileNotFoundError(
            f"{run_dir}: nothing to report; expected run.json, metrics.json, *.yaml, images "
            "or Lightning logs (logs/*/metrics.csv)"
        )
    summary = _dataset_summary(run_dir, run)
    parts = [f"<p class='answer'>{_esc(answer_sentence(summary, run))}</p>"]
    if metrics:
        parts.append(_results_section(metrics, run))
    if grids:
        parts.append(_section("Reconstructions", _image_figure(grids[0], run_dir)))
    parts.append(_curves_section(logs, run_dir))
    others = [p for p in images if p not in grids[:1]]
    if others:
        parts.append(
            _collapsed("Other figures", "".join(_image_figure(p, run_dir) for p in others))
        )
    run_fields = {k: v for k, v in run.items() if k != "dataset"}
    body = _key_value_table(run_fields) if run_fields else "<p class='note'>no run.json</p>"
    for config in configs:
        body += (
            f"<details><summary>{_esc(config.relative_to(run_dir))}</summary>"
            f"<pre>{_esc(config.read_text())}</pre></details>"
        )
    parts.append(_collapsed("Run and configuration", body))
    parts.append(
        _collapsed(
            "Data set",
            _key_value_table(summary) if summary else "<p class='note'>no data set summary</p>",
        )
    )
    listed = [p for p in files if p not in images]
    if listed:
        parts.append(_files_section(listed, run_dir))
    return _page(f"neuralsight report: {run_dir.name}", str(run_dir.resolve()), "".join(parts))


def write_report(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """Write the self-contained HTML report of a run folder; returns its path.

    Parameters
    ----------
    run_dir
        The run folder (as written by ``neuralsight demo``).
    out
        The HTML file; default ``run_dir/report.html``. Written to a temporary name and
        renamed.

    Examples
    --------
    >>> import json, tempfile
    >>> run_dir = Path(tempfile.mkdtemp())
    >>> _ = (run_dir / "metrics.json").write_text(json.dumps({"ridge": {"mse": 0.02}}))
    >>> write_report(run_dir).name
    'report.html'
    """
    run_dir = Path(run_dir)
    out = Path(out) if out is not None else run_dir / REPORT_NAME
    page = build_report(run_dir, out)
    with atomic_path(out) as tmp:
        tmp.write_text(page, encoding="utf-8")
    return out


def write_comparison(
    metrics: dict[str, dict[str, Any]],
    grid_png: bytes | None,
    out: str | Path,
    sentences: dict[str, str],
    grid_note: str = "",
) -> Path:
    """Write one page comparing runs: a metrics table and one reconstruction grid.

    Parameters
    ----------
    metrics
        ``{"<run>/<model>": {metric: value}}``, one row each (see `metrics_table`; a row whose
        model is ``ridge`` is not the baseline here, as runs differ).
    grid_png
        A reconstruction grid with the same test stimuli in every column, or ``None``.
    out
        The HTML file, written atomically.
    sentences
        ``{run: what it decoded}`` (`answer_sentence`), listed above the table.
    grid_note
        What the grid shows (its stimulus ids, runs left out), under it.

    Examples
    --------
    >>> import tempfile
    >>> out = Path(tempfile.mkdtemp()) / "compare.html"
    >>> rows = {"a/ridge": {"ssim": 0.4}, "b/ridge": {"ssim": 0.5}}
    >>> write_comparison(rows, None, out, {"a": "one", "b": "two"}).name
    'compare.html'
    """
    listed = "".join(
        f"<li><b>{_esc(run)}</b>: {_esc(text)}</li>" for run, text in sentences.items()
    )
    body = f"<ul class='answer'>{listed}</ul>"
    if grid_png is None and grid_note:
        body += f"<p class='note'>No reconstruction grid: {_esc(grid_note)}</p>"
    body += _section(
        "Results",
        metrics_table(metrics, baseline="")
        + ("<p class='note'>Three significant digits; &#9733; the best row of each column.</p>"),
    )
    if grid_png is not None:
        body += _section(
            "Reconstructions",
            _figure(
                _data_uri(grid_png, "image/png"),
                (f"the same test stimuli in every column, one row per run and model: {grid_note}"),
            ),
        )
    page = _page(f"neuralsight comparison of {len(sentences)} runs", str(Path(out).resolve()), body)
    with atomic_path(out) as tmp:
        tmp.write_text(page, encoding="utf-8")
    return Path(out)
