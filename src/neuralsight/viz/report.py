"""One self-contained HTML page for a run folder: what ran, on what, how well, and pictures.

`write_report` reads what a run left in its folder and writes ``report.html`` beside it:

- **run**: ``run.json`` (settings, seed, timing), and any YAML config (``*.yaml`` in the folder
  and the Lightning ``hparams.yaml`` of each logged model);
- **data set**: ``run.json["dataset"]``, or the summary of ``dataset.h5`` (opened lazily);
- **metrics**: ``metrics.json`` (``{model: {metric: value}}``) as a table with each model's
  difference from the ridge baseline, coloured green where better and red where worse;
- **training curves**: every Lightning CSV log (``**/logs/*/metrics.csv``) drawn with
  matplotlib;
- **figures**: every PNG, JPEG, GIF or SVG in the folder (reconstruction grids first);
- **files**: everything else, with sizes.

Every image is embedded as a base64 ``data:`` URI and the page has no scripts and no external
links, so the single file can be mailed, archived or opened offline. Only regular files
inside the run folder are read: a symbolic link (to a file or a folder) is never followed, so
a link placed in a run folder cannot put what it points to into the page. Missing parts are
skipped with a note; a folder with none of them is an error.
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
_MAX_CURVES = 6

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 70rem; color: #222; }
h1 { font-size: 1.6rem; } h2 { border-bottom: 1px solid #ccc; margin-top: 2rem; }
table { border-collapse: collapse; margin: 0.5rem 0; font-size: 0.9rem; }
th, td { border: 1px solid #ddd; padding: 0.25rem 0.6rem; text-align: right; }
th { background: #f3f3f3; } td.key, th.key { text-align: left; }
tr.baseline td { font-weight: bold; background: #f7f7ff; }
.better { color: #1a7f37; } .worse { color: #c62828; } .note { color: #666; }
pre { background: #f6f8fa; padding: 0.6rem; overflow-x: auto; font-size: 0.8rem; }
figure { margin: 1rem 0; } img { max-width: 100%; border: 1px solid #eee; }
figcaption { color: #555; font-size: 0.85rem; }
summary { cursor: pointer; margin: 0.3rem 0; font-weight: 600; }
"""


def _esc(value: Any) -> str:
    return html.escape(str(value))


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: is not valid JSON ({error})") from error


def _format(value: Any) -> str:
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.4g}"
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
    return f"<table><tr><th class='key'>field</th><th class='key'>value</th></tr>{rows}</table>"


def _data_uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def _figure(uri: str, caption: str) -> str:
    return (
        f"<figure><img src='{uri}' alt='{_esc(caption)}'>"
        f"<figcaption>{_esc(caption)}</figcaption></figure>"
    )


def _lower_is_better(metric: str) -> bool:
    return any(word in metric.lower() for word in LOWER_IS_BETTER)


def metrics_table(metrics: dict[str, Any], baseline: str = BASELINE) -> str:
    """HTML table of ``{model: {metric: value}}`` with differences from ``baseline``.

    Examples
    --------
    >>> table = metrics_table({"ridge": {"mse": 0.02}, "sid": {"mse": 0.01}})
    >>> "better" in table and table.count("<tr") == 3
    True
    """
    models = {name: values for name, values in metrics.items() if isinstance(values, dict)}
    columns = list(dict.fromkeys(k for values in models.values() for k in values))
    base = models.get(baseline, {})
    header = "".join(f"<th>{_esc(c)}</th>" for c in columns)
    if base:
        header += "".join(f"<th>{_esc(c)} vs {_esc(baseline)}</th>" for c in columns)
    rows = []
    for name, values in models.items():
        cells = "".join(f"<td>{_format(values.get(c, ''))}</td>" for c in columns)
        if base:
            cells += "".join(_difference_cell(values.get(c), base.get(c), c) for c in columns)
        css = " class='baseline'" if name == baseline else ""
        rows.append(f"<tr{css}><td class='key'>{_esc(name)}</td>{cells}</tr>")
    return f"<table><tr><th class='key'>model</th>{header}</tr>{''.join(rows)}</table>"


def _difference_cell(value: Any, base: Any, metric: str) -> str:
    numbers = (int, float)
    if not (isinstance(value, numbers) and isinstance(base, numbers)):
        return "<td></td>"
    difference = float(value) - float(base)
    if difference == 0 or math.isnan(difference):
        return f"<td>{difference:+.4g}</td>"
    better = (difference < 0) == _lower_is_better(metric)
    return f"<td class='{'better' if better else 'worse'}'>{difference:+.4g}</td>"


def training_curves(csv_path: Path) -> bytes | None:
    """PNG bytes of every logged metric against the step, or ``None`` for an empty log.

    Examples
    --------
    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "metrics.csv"
    >>> _ = path.write_text("epoch,step,train_loss\\n0,1,0.5\\n0,2,0.4\\n")
    >>> training_curves(path)[:4]
    b'\\x89PNG'
    """
    try:
        log = pd.read_csv(csv_path)
    except (pd.errors.EmptyDataError, pd.errors.ParserError):
        return None
    x = "step" if "step" in log else None
    columns = [
        c
        for c in log.columns
        if c not in ("epoch", "step")
        and pd.api.types.is_numeric_dtype(log[c])
        and log[c].notna().any()
    ][:_MAX_CURVES]
    if not columns:
        return None
    fig, axes = plt.subplots(1, len(columns), figsize=(3.2 * len(columns), 2.6), squeeze=False)
    for ax, column in zip(axes[0], columns, strict=True):
        points = log[[column] + ([x] if x else [])].dropna()
        xs = points[x] if x else points.index
        ax.plot(xs, points[column], marker="o" if len(points) < 20 else None, markersize=3)
        ax.set_title(column, fontsize=9)
        ax.set_xlabel(x or "row", fontsize=8)
        ax.tick_params(labelsize=7)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    return buffer.getvalue()


def _dataset_summary(run_dir: Path, run: dict[str, Any]) -> dict[str, Any] | None:
    if isinstance(run.get("dataset"), dict):
        return run["dataset"]
    path = run_dir / "dataset.h5"
    if not path.is_file():
        return None
    from neuralsight.data.dataset import NeuralDataset

    dataset = NeuralDataset.open(path, lazy=True)
    return dataset.summary()


def _section(title: str, body: str) -> str:
    return f"<section><h2>{_esc(title)}</h2>{body}</section>"


def _is_own_regular_file(path: Path, run_dir: Path) -> bool:
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
        if _is_own_regular_file(p, run_dir)
        and p.resolve() != out.resolve()
        and not any(part.startswith(".") for part in p.relative_to(run_dir).parts)
    )


def build_report(run_dir: str | Path, out: str | Path | None = None) -> str:
    """The report page of ``run_dir`` as an HTML string (see `write_report`)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"{run_dir}: run folder does not exist")
    out = Path(out) if out is not None else run_dir / REPORT_NAME
    files = _visible_files(run_dir, out)
    run = _read_json(run_dir / "run.json") if run_dir / "run.json" in files else {}
    metrics = _read_json(run_dir / "metrics.json") if run_dir / "metrics.json" in files else {}
    configs = [p for p in files if p.suffix in (".yaml", ".yml")]
    images = [p for p in files if p.suffix.lower() in IMAGE_TYPES]
    images.sort(key=lambda p: (not p.name.startswith("reconstruction"), str(p)))
    logs = [p for p in files if p.name == "metrics.csv"]
    if not (run or metrics or configs or images or logs):
        raise FileNotFoundError(
            f"{run_dir}: nothing to report; expected run.json, metrics.json, *.yaml, images "
            "or Lightning logs (logs/*/metrics.csv)"
        )
    sections = []
    run_fields = {k: v for k, v in run.items() if k != "dataset"} if isinstance(run, dict) else {}
    body = _key_value_table(run_fields) if run_fields else "<p class='note'>no run.json</p>"
    for config in configs:
        body += (
            f"<details><summary>{_esc(config.relative_to(run_dir))}</summary>"
            f"<pre>{_esc(config.read_text())}</pre></details>"
        )
    sections.append(_section("Run and configuration", body))
    summary = _dataset_summary(run_dir, run if isinstance(run, dict) else {})
    sections.append(
        _section(
            "Data set",
            _key_value_table(summary) if summary else "<p class='note'>no data set summary</p>",
        )
    )
    if metrics:
        note = (
            f"<p>Differences are each model minus the {BASELINE} baseline; green is better.</p>"
            if isinstance(metrics.get(BASELINE), dict)
            else f"<p class='note'>no {BASELINE} baseline in metrics.json</p>"
        )
        sections.append(_section("Metrics", note + metrics_table(metrics)))
    curves = []
    for log in logs:
        png = training_curves(log)
        if png is not None:
            curves.append(_figure(_data_uri(png, "image/png"), str(log.relative_to(run_dir))))
    if curves:
        sections.append(_section("Training curves", "".join(curves)))
    if images:
        figures = "".join(
            _figure(
                _data_uri(p.read_bytes(), IMAGE_TYPES[p.suffix.lower()]),
                str(p.relative_to(run_dir)),
            )
            for p in images
        )
        sections.append(_section("Figures", figures))
    listed = [p for p in files if p not in images]
    if listed:
        rows = "".join(
            f"<tr><td class='key'>{_esc(p.relative_to(run_dir))}</td>"
            f"<td>{p.stat().st_size / 1024:.1f} KiB</td></tr>"
            for p in listed
        )
        sections.append(
            _section(
                "Files", f"<table><tr><th class='key'>file</th><th>size</th></tr>{rows}</table>"
            )
        )
    stamp = dt.datetime.now().isoformat(timespec="seconds")
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>neuralsight report: {_esc(run_dir.name)}</title><style>{_STYLE}</style></head>"
        f"<body><h1>neuralsight report: {_esc(run_dir.name)}</h1>"
        f"<p class='note'>{_esc(run_dir.resolve())} &middot; written {stamp} by neuralsight "
        f"{_esc(__version__)}</p>{''.join(sections)}</body></html>"
    )


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
