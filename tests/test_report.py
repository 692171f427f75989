"""The HTML run report: tables and embedded images, parsed and opened in headless Chromium."""

import json
import re
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from neuralsight.cli import main
from neuralsight.viz.figures import reconstruction_grid
from neuralsight.viz.report import write_report

CHROMIUM = Path("/usr/bin/chromium")
CHECK_IMAGES = """<script>
window.addEventListener("load", () => {
  const images = Array.from(document.images);
  document.body.dataset.images = images.length;
  document.body.dataset.loaded = images.filter(i => i.complete && i.naturalWidth > 0).length;
  document.body.dataset.tables = document.querySelectorAll("table").length;
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
    (log / "metrics.csv").write_text(
        "epoch,step,train_loss,val_loss\n0,9,0.05,\n0,9,,0.04\n1,19,0.03,\n1,19,,0.035\n"
    )
    (log / "hparams.yaml").write_text("lr: 0.001\n")
    return run


def test_report_is_self_contained_with_tables_and_images(tmp_path):
    path = write_report(make_run_dir(tmp_path))
    assert path == tmp_path / "run" / "report.html"
    page = PageParser()
    page.feed(path.read_text())
    assert page.headings == [
        "Run and configuration",
        "Data set",
        "Metrics",
        "Training curves",
        "Figures",
        "Files",
    ]
    assert page.tables >= 3
    assert len(page.images) == 2, "training curves and the reconstruction grid"
    assert all(src.startswith("data:image/png;base64,") for src in page.images)
    assert page.external == []
    text = path.read_text()
    assert "improved_sid" in text and "class='better'" in text and "class='worse'" in text


def test_report_command_and_empty_folder(tmp_path, capsys):
    run = make_run_dir(tmp_path)
    assert main(["report", str(run), "--out", str(tmp_path / "r.html")]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "r.html")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="nothing to report"):
        write_report(empty)


def test_report_in_headless_chromium(tmp_path):
    if not CHROMIUM.exists():
        pytest.skip(
            f"{CHROMIUM} not found; install it to run this test: apt-get install -y chromium"
        )
    report = write_report(make_run_dir(tmp_path))
    page = tmp_path / "checked.html"
    page.write_text(report.read_text().replace("</body>", CHECK_IMAGES + "</body>"))
    result = subprocess.run(
        [
            str(CHROMIUM),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            f"--user-data-dir={tmp_path / 'profile'}",
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
    fields = dict(re.findall(r'data-(\w+)="(\d+)"', body.group(0)))
    assert fields.get("images") == "2", body.group(0)
    assert fields["loaded"] == fields["images"], "an embedded image failed to load"
    assert int(fields["tables"]) >= 3
