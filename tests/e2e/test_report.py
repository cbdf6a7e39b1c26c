"""End-to-end (slow): `simsiam-tfx run` in a pseudo-terminal on tiny `shapes` data: the console it
shows, the run report it writes (opened in headless Chromium), and `embed` / `predict` / `report`
on its output folder."""
import html.parser
import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

from simsiam_tfx.components import shapes
from simsiam_tfx.pipeline.cli import main
from tests import data_factory
from tests.e2e.test_local_run import ALL_COMPONENTS, tiny_config
from tests.pipeline.test_console import run_in_pty

pytestmark = pytest.mark.slow

NOISE = ("oneDNN", "cuda", "cuInit", "absl::InitializeLog", "property_predicate", "FutureWarning", "pip ",
         "WARNING:", "Traceback", "INFO:")
REPORT_IMAGES = {"curves.png", "augmentations.png", "neighbours.png", "embedding.png", "probe.png", "confusion.png",
                 "data.png"}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """One CLI run, as a user at a terminal starts it; returns (output folder, what the terminal showed)."""
    output = tmp_path_factory.mktemp("run")
    config = tmp_path_factory.mktemp("config") / "tiny.json"
    config.write_text(json.dumps(tiny_config(output).to_dict()))
    shown = run_in_pty([os.path.join(os.path.dirname(sys.executable), "simsiam-tfx"), "run", "--config", str(config),
                        "--output", str(output)], columns=120)
    return output, shown


def test_console_shows_one_line_per_component_a_progress_bar_and_no_noise(run):
    output, shown = run
    lines = [line.strip() for line in shown.replace("\r", "\n").splitlines() if line.strip()]
    noisy = [line for line in lines if any(word in line for word in NOISE)]
    assert not noisy, noisy
    finished = [re.match(rf"\[\s*\d+/{len(ALL_COMPONENTS)}\] (\S+) done in [\d.]+ s$", line) for line in lines]
    assert sorted(m.group(1) for m in finished if m) == sorted(ALL_COMPONENTS)
    assert any(line.startswith("pre-training:") and "step" in line and "img/s" in line for line in lines), lines
    assert any(line.startswith("SimSiam features, probe_train:") for line in lines), lines
    assert any(line.startswith("report: ") and line.endswith("index.html") for line in lines)
    log = (output / "logs" / "run.log").read_text()
    assert "Component Transform is running" in log  # the libraries' lines are kept, in the log


def test_report_is_written_linked_and_complete(run):
    output, _ = run
    summary = json.loads((output / "run_summary.json").read_text())
    assert summary["report"] == str(output / "report" / "index.html")
    page = (output / "report" / "index.html").read_text()
    sources = _image_sources(page)
    assert set(sources) == REPORT_IMAGES
    assert "http://" not in page and "https://" not in page  # opens offline
    for source in sources:
        assert (output / "report" / source).stat().st_size > 1000
    tensorboard = output / "report" / "tensorboard"
    assert list(tensorboard.glob("events.out.tfevents.*"))
    assert (tensorboard / "projector" / "projector_config.pbtxt").exists()
    assert len((tensorboard / "projector" / "metadata.tsv").read_text().splitlines()) == 100


def test_report_opens_in_headless_chromium_with_every_image(run, tmp_path):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        pytest.skip("no Chromium here (`apt-get install chromium`; ./simsiam test installs it where it can)")
    output, _ = run
    report = output / "report"
    # The page itself plus a script that lists every image as the browser loaded it.
    probe = report / "_image_check.html"
    probe.write_text((report / "index.html").read_text().replace("</body>", """<script>
      window.addEventListener("load", () => { const out = document.createElement("pre"); out.id = "image-check";
        out.textContent = JSON.stringify([...document.images].map(i => [i.getAttribute("src"), i.complete,
                                                                        i.naturalWidth, i.naturalHeight]));
        document.body.appendChild(out); });</script></body>"""))
    flags = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--allow-file-access-from-files",
             "--virtual-time-budget=10000"]
    dom = subprocess.run(flags + ["--dump-dom", probe.as_uri()], capture_output=True, text=True, timeout=120).stdout
    probe.unlink()
    start = dom.index('id="image-check">') + len('id="image-check">')
    loaded = json.loads(html.unescape(dom[start:dom.index("</pre>", start)]))
    assert {src for src, *_ in loaded} == REPORT_IMAGES
    assert all(complete and width > 100 and height > 100 for _, complete, width, height in loaded), loaded
    screenshot = tmp_path / "report.png"
    subprocess.run(flags + [f"--screenshot={screenshot}", "--window-size=1280,2400", (report / "index.html").as_uri()],
                   capture_output=True, timeout=120)
    assert screenshot.stat().st_size > 20_000


def test_embed_and_predict_with_the_pushed_model(run, tmp_path, capsys):
    output, _ = run
    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(1)
    for i in range(5):
        (folder / f"{i}.jpg").write_bytes(data_factory.encode_array(rng.integers(0, 255, (40, 50, 3), np.uint8), "JPEG"))
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)
    assert main(["embed", str(folder), "--output", str(output), "--to", str(tmp_path / "e.npy")]) == 0
    assert np.load(tmp_path / "e.npy").shape == (5, 4 * 8)
    assert main(["predict", str(folder), "--output", str(output), "--to", str(tmp_path / "p.jsonl")]) == 0
    rows = [json.loads(line) for line in (tmp_path / "p.jsonl").read_text().splitlines()]
    assert len(rows) == 5 and all(r["class_name"] == shapes.CLASS_NAMES[r["class_id"]] for r in rows)
    assert "skipped 1 (1 truncated or corrupt image" in capsys.readouterr().out
    encoder = next((output / "tfx" / "SimSiamPretrain" / "model").glob("*/Format-Serving"))
    assert main(["embed", str(folder), "--model", str(encoder), "--to", str(tmp_path / "enc.csv")]) == 0
    assert len((tmp_path / "enc.csv").read_text().splitlines()) == 1 + 5


def test_report_command_remakes_it_and_says_in_one_line_when_it_cannot(run, tmp_path, capsys):
    output, _ = run
    (output / "report" / "curves.png").unlink()
    assert main(["report", "--output", str(output)]) == 0
    assert (output / "report" / "curves.png").exists()
    assert main(["report", "--output", str(tmp_path)]) == 2
    assert "holds no run" in capsys.readouterr().err
    broken = tmp_path / "old"  # an output folder without run_summary.json
    broken.mkdir()
    shutil.copy(output / "metadata.sqlite", broken)
    assert main(["report", "--output", str(broken), "--verbose"]) == 1
    said = capsys.readouterr().out.strip().splitlines()
    assert len(said) == 1 and said[0].startswith("report: not written (")


def _image_sources(page: str) -> list[str]:
    class Images(html.parser.HTMLParser):
        sources: list = []

        def handle_starttag(self, tag, attrs):
            if tag == "img":
                self.sources.append(dict(attrs)["src"])
    parser = Images()
    parser.sources = []
    parser.feed(page)
    return parser.sources
