"""The HTML run report: tables and embedded images, parsed and opened in headless Chromium."""

import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from neuralsight.cli import main
from neuralsight.metrics import save_reconstructions
from neuralsight.viz import figures, report
from neuralsight.viz.figures import reconstruction_grid
from neuralsight.viz.report import metrics_table, write_report

CHROMIUM = Path("/usr/bin/chromium")
CHECK_IMAGES = """<script>
window.addEventListener("load", () => {
  const images = Array.from(document.images);
  document.body.dataset.images = images.length;
  document.body.dataset.loaded = images.filter(i => i.complete && i.naturalWidth > 0).length;
  document.body.dataset.tables = document.querySelectorAll("table").length;
  const table = document.querySelector("table");
  if (table) document.body.dataset.tablebottom = Math.round(table.getBoundingClientRect().bottom);
  if (images.length) document.body.dataset.gridtop = Math.round(images[0].getBoundingClientRect().top);
  const root = document.documentElement;
  document.body.dataset.overflow = root.scrollWidth - root.clientWidth;
});
</script>"""


class PageParser(HTMLParser):
    """Collects image sources, table count, headings and external references."""

    def __init__(self) -> None:
        super().__init__()
        self.images: list[str] = []
        self.tables = 0
        self.headings: list[str] = []
        self.external: list[str] = []
        self._in_heading = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img":
            self.images.append(attrs.get("src", ""))
        if tag == "table":
            self.tables += 1
        if tag in ("script", "link") or (tag != "img" and "src" in attrs):
            self.external.append(tag)
        self._in_heading = tag == "h2"

    def handle_data(self, data):
        if self._in_heading:
            self.headings.append(data.strip())
            self._in_heading = False


def make_run_dir(root: Path) -> Path:
    run = root / "run"
    run.mkdir()
    metrics = {
        "ridge": {"mse": 0.03, "pixcorr": 0.6},
        "improved_sid": {"mse": 0.02, "pixcorr": 0.7},
        "shuffled": {"mse": 0.05, "pixcorr": 0.0},
    }
    (run / "metrics.json").write_text(json.dumps(metrics))
    dataset = {"n_trials": 10, "n_units": 4, "splits": {"train": 8, "test": 2}}
    (run / "run.json").write_text(json.dumps({"seed": 0, "seconds": 1.5, "dataset": dataset}))
    images = np.random.default_rng(0).random((3, 1, 8, 8))
    reconstruction_grid({"stimulus": images, "model": images}, run / "reconstructions.png")
    log = run / "checkpoints" / "logs" / "sid"
    log.mkdir(parents=True)
    steps = "".join(f"0,{step},{1 / (step + 1):.4f},\n" for step in range(30))
    (log / "metrics.csv").write_text(
        "epoch,step,train_loss,val_loss\n" + steps + "0,29,,0.04\n1,59,,0.035\n"
    )
    (log / "hparams.yaml").write_text("lr: 0.001\n")
    return run


def test_report_puts_the_answer_first_and_the_details_collapsed(tmp_path):
    path = write_report(make_run_dir(tmp_path))
    assert path == tmp_path / "run" / "report.html"
    page = PageParser()
    text = path.read_text()
    page.feed(text)
    assert page.headings == [
        "Results",
        "Reconstructions",
        "Training curves",
        "Run and configuration",
        "Data set",
        "Files",
    ]
    answer = text.index("class='answer'")
    assert answer < text.index("<table") < text.index("<img") < text.index("<details")
    assert "Decoded 2 held-out test trials" in text and "from 4 units" in text
    assert len(page.images) == 2, "the reconstruction grid and the training curves"
    assert all(src.startswith("data:image/png;base64,") for src in page.images)
    assert page.external == []


@pytest.mark.parametrize(
    ("metrics", "expected"),
    [
        ({"ridge": {"mse": 0.0003844}, "sid": {"mse": 0.001938}}, ["0.000384", "0.00194"]),
        (
            {"ridge": {"ssim": 0.44049}, "sid": {"ssim": 0.5}},
            ["0.44", "<td class='best'>0.5 <span"],
        ),
        ({"ridge": {"mse": 0.02}, "sid": {"mse": 0.01}}, ["<td class='best'>0.01 <span", "better"]),
    ],
)
def test_metrics_table_has_significant_digits_and_marks_the_best(metrics, expected):
    table = metrics_table(metrics)
    assert all(text in table for text in expected)
    assert "0.0003844" not in table and "0.001938" not in table


def test_controls_are_set_apart_and_never_best():
    table = metrics_table({"ridge": {"ssim": 0.3}, "sid": {"ssim": 0.4}, "shuffled": {"ssim": 0.9}})
    decoders, controls = table.split("controls (chance level)")
    assert "class='best'>0.4" in decoders and "shuffled" in controls
    assert "best" not in controls


def test_a_curve_needs_three_points_and_a_long_trace_is_smoothed(tmp_path, monkeypatch):
    drawn = []
    monkeypatch.setattr(report, "_draw_curve", lambda ax, xs, ys: drawn.append(len(ys)))
    log = tmp_path / "metrics.csv"
    rows = [f"0,{s},{0.5 - s / 100},," for s in range(25)] + ["0,24,,0.3,", "1,49,,0.2,1000"]
    log.write_text("epoch,step,train_loss,val_loss,val_alpha\n" + "\n".join(rows) + "\n")
    png, numbers = report.training_curves(log)
    assert png is not None and drawn == [25]
    assert numbers == {"val_loss": 0.2, "val_alpha": 1000.0}


def test_smoothed_trace_draws_raw_and_smoothed_lines():
    fig, ax = plt.subplots()
    report._draw_curve(ax, pd.Series(range(40)), pd.Series(np.linspace(1, 0, 40)))
    raw, smooth = ax.lines
    assert raw.get_alpha() < 0.5 and smooth.get_alpha() is None
    plt.close(fig)


def test_metric_bars_draw_controls_as_lines(tmp_path, monkeypatch):
    saved = {}
    monkeypatch.setattr(figures, "save_figure", lambda fig, path: saved.setdefault("fig", fig))
    rows = {"ridge": {"ssim": 0.3}, "sid": {"ssim": 0.4}, "shuffled": {"ssim": 0.1}}
    figures.metric_bars(rows, tmp_path / "bars.png", keys=("ssim",))
    (ax,) = saved["fig"].axes
    assert len(ax.patches) == 2 and [line.get_ydata()[0] for line in ax.lines] == [0.1]


def test_comparison_page_holds_both_runs_in_one_table_and_grid(tmp_path, capsys):
    first = make_run_dir(tmp_path)
    second = tmp_path / "second"
    shutil.copytree(first, second)
    images = np.random.default_rng(1).random((3, 1, 8, 8))
    for run in (first, second):
        save_reconstructions(run / "reconstructions_sid.npz", images, [4, 5, 6])
    out = tmp_path / "compare.html"
    assert main(["report", str(first), str(second), "--out", str(out)]) == 0
    text = out.read_text()
    page = PageParser()
    page.feed(text)
    assert page.tables == 1 and len(page.images) == 1
    assert "run/improved_sid" in text and "second/improved_sid" in text
    assert "stimulus ids [4, 5, 6]" in text


def test_report_command_and_empty_folder(tmp_path, capsys):
    run = make_run_dir(tmp_path)
    assert main(["report", str(run), "--out", str(tmp_path / "r.html")]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "r.html")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="nothing to report"):
        write_report(empty)


def render_in_chromium(html_file: Path, profile: Path, width: int = 1300) -> dict[str, int]:
    """The ``data-*`` numbers `CHECK_IMAGES` sets on the body, as Chromium lays the page out."""
    if not CHROMIUM.exists():
        pytest.skip(
            f"{CHROMIUM} not found; install it to run this test: apt-get install -y chromium"
        )
    page = html_file.with_name("checked.html")
    page.write_text(html_file.read_text().replace("</body>", CHECK_IMAGES + "</body>"))
    result = subprocess.run(
        [
            str(CHROMIUM),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            f"--user-data-dir={profile}",
            f"--window-size={width},900",
            "--virtual-time-budget=5000",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=90,
    )
    body = re.search(r"<body[^>]*>", result.stdout)
    assert body, f"chromium printed no DOM (rc {result.returncode}): {result.stderr[-2000:]}"
    return {k: int(v) for k, v in re.findall(r'data-(\w+)="(-?\d+)"', body.group(0))}


def test_report_in_headless_chromium(tmp_path):
    fields = render_in_chromium(write_report(make_run_dir(tmp_path)), tmp_path / "profile")
    assert fields["images"] == 2
    assert fields["loaded"] == fields["images"], "an embedded image failed to load"
    assert fields["tables"] >= 3


@pytest.mark.parametrize("width", [1300, 400])
def test_demo_report_shows_the_answer_in_the_first_screen(tmp_path, width):
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} not found")
    assert main(["demo", "--quick", "--out", str(tmp_path / "demo")]) == 0
    fields = render_in_chromium(tmp_path / "demo" / "report.html", tmp_path / "profile", width)
    assert fields["tablebottom"] <= 900, "the metrics table ends inside the first screen"
    if width == 1300:
        assert fields["gridtop"] < 900, "the reconstruction grid starts inside the first screen"
    assert fields["overflow"] == 0, "nothing wider than the window but scrolling tables"
