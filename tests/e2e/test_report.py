"""End-to-end (slow): `simsiam-tfx run` in a pseudo-terminal on tiny `shapes` data: the console it
shows, the run report it writes (opened in headless Chromium), `embed` / `predict` / `report` on its
output folder, and, last, that run as the first of three on one output folder (blessed and pushed;
unchanged data from the cache and not pushed; another augmentation re-running Transform on).

The output folder is named like a pattern (`run [1]`): TensorFlow, Beam and TFX read their
artifacts back through patterns, where `[1]` is a character class, so every command goes through a
link without glob characters (pipeline/flags.py `glob_safe_folder`) and writes into the folder."""
import glob
import html.parser
import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from simsiam_tfx import contract
from simsiam_tfx.components import preprocessing, shapes
from simsiam_tfx.features import SPLITS
from simsiam_tfx.pipeline.cli import main
from simsiam_tfx.pipeline.flags import glob_safe_folder
from simsiam_tfx.pipeline.local_runner import run_local
from simsiam_tfx.pipeline.summary import RunRecord
from simsiam_tfx.trainer import augment, data
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
    """One CLI run, as a user at a terminal starts it; returns (output folder, what the terminal showed).
    The link to the folder goes in a cache of the test's own, for this module's commands too."""
    output = tmp_path_factory.mktemp("run") / "run [1]"
    config = tmp_path_factory.mktemp("config") / "tiny.json"
    config.write_text(json.dumps(tiny_config(output).to_dict()))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cache")))
        shown = run_in_pty([os.path.join(os.path.dirname(sys.executable), "simsiam-tfx"), "run", "--config",
                            str(config), "--output", str(output)], columns=120, env=dict(os.environ))
        yield output, shown


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
    assert any(line.startswith(f"note: --output {output} holds glob characters") for line in lines), lines
    log = (output / "logs" / "run.log").read_text()
    assert "Component Transform is running" in log  # the libraries' lines are kept, in the log


def test_report_is_written_linked_and_complete(run):
    output, _ = run
    summary = json.loads((output / "run_summary.json").read_text())
    assert os.path.realpath(summary["report"]) == os.path.realpath(output / "report" / "index.html")
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
    encoder = next((output / "tfx" / contract.PRETRAIN / "model").glob("*/Format-Serving"))
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



@pytest.mark.fault  # the output folder named like a pattern
def test_pipeline_end_to_end_blesses_pushes_caches_and_gates(run):
    """Run 1 is the module's CLI run (the one the tests above read; this test goes last, as run 2
    rewrites the output folder): every component, a blessed and pushed model; then a second run on
    the same output folder, as run_local makes it."""
    output, _ = run
    config = tiny_config(glob_safe_folder(str(output)))  # as the CLI runs it: through the link
    first = json.loads((output / "run_summary.json").read_text())

    # Every component ran, a model was blessed and pushed, and the summary says so.
    assert set(first["components"]) == ALL_COMPONENTS
    assert set(first["components"].values()) == {"executed"}
    assert {k: first["examples"][k] for k in SPLITS} == {"pretrain": 128, "probe_train": 100, "eval": 100}
    assert first["examples"]["skipped"] == 0
    assert first["evaluator"]["blessed"] is True and first["pushed_model"]
    assert first["evaluator"]["baseline_version"] is None  # nothing was pushed before
    assert first["data"]["class_names"] == list(shapes.CLASS_NAMES) and first["data"]["fingerprint"]
    assert first["data"]["span"] == 1 and first["data"]["example_counts"]["eval"] == 100
    assert first["retraining"]["policy"] == "from_scratch"
    with open(config.summary_path) as f:
        on_disk = json.load(f)
    for key in ("dataset", "examples", "pretrain", "probe", "evaluator", "pushed_model", "seconds_total"):
        assert key in on_disk
    for key in ("epochs", "final_loss", "images_per_second", "seconds", "knn_accuracy", "z_std"):
        assert key in on_disk["pretrain"]
    assert 0.0 <= on_disk["probe"]["accuracy"] <= 1.0 and "random_init_accuracy" in on_disk["probe"]
    assert on_disk["evaluator"]["accuracy"] == pytest.approx(on_disk["probe"]["accuracy"], abs=1e-6)

    # The pushed SavedModel loads and predicts through both signatures.
    pushed = first["pushed_model"]
    assert pushed.startswith(config.serving_model_dir) and os.path.isdir(pushed)
    assert os.path.realpath(pushed) == os.path.realpath(output / "serving_model" / os.path.basename(pushed))
    model = tf.saved_model.load(pushed)
    image = data_factory.encode_array(np.random.default_rng(0).integers(0, 255, (45, 31, 3), dtype=np.uint8), "JPEG")
    by_bytes = model.signatures["serve_image_bytes"](image_bytes=tf.constant([image, image]))
    assert by_bytes["probabilities"].shape == (2, 10)
    assert by_bytes["class_name"].numpy()[0].decode() == shapes.CLASS_NAMES[int(by_bytes["class_id"][0])]
    np.testing.assert_allclose(by_bytes["probabilities"].numpy().sum(axis=1), 1.0, atol=1e-5)
    assert by_bytes["embedding"].shape == (2, 4 * 8)
    example = tf.train.Example(features=tf.train.Features(feature={
        "image": tf.train.Feature(bytes_list=tf.train.BytesList(value=[image]))})).SerializeToString()
    by_example = model.signatures["serving_default"](examples=tf.constant([example]))
    np.testing.assert_allclose(by_example["probabilities"].numpy()[0], by_bytes["probabilities"].numpy()[0],
                               atol=1e-5)

    assert first["gate"]["blessed"] is True

    # The augmentation policy is Transform's: recorded beside the graph and in MLMD, named in the summary.
    graph = RunRecord(config.metadata_path, config.pipeline_name).output(contract.TRANSFORM, "transform_graph")
    policy = json.loads(json.dumps({"name": "strong-colour", **augment.to_dict(preprocessing.policy_config("strong-colour"))}))
    assert data.read_policy(graph.uri) == policy == first["augment_policy"]
    assert graph.custom_properties[preprocessing.POLICY_NAME_PROPERTY].string_value == "strong-colour"
    assert json.loads(graph.custom_properties[preprocessing.POLICY_JSON_PROPERTY].string_value) == policy
    preview = tf.io.decode_png(tf.io.read_file(os.path.join(graph.uri, preprocessing.PREVIEW_FILE))).numpy()
    scale = 96 // config.data.image_size
    assert preview.shape == (preprocessing.PREVIEW_IMAGES * 32 * scale, 3 * 32 * scale, 3)

    # The served model's output depends on no seed: the same image twice, and with a seed in the
    # request (which serving never reads), give the same answer.
    def served(seed=None):
        feature = {"image": tf.train.Feature(bytes_list=tf.train.BytesList(value=[image]))}
        if seed is not None:
            feature[data.SEED_KEY] = tf.train.Feature(int64_list=tf.train.Int64List(value=seed))
        request = tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()
        return model.signatures["serving_default"](examples=tf.constant([request]))["probabilities"].numpy()
    np.testing.assert_array_equal(served(), served())
    np.testing.assert_array_equal(served(), served([7, 8]))

    # Second run, unchanged inputs but an unreachable floor and gain: data stages come from the
    # cache, the model is not blessed, nothing is pushed, and the earlier push stays in place.
    config.eval.min_accuracy, config.eval.min_gain = 1.0, 1.0
    second = run_local(config)
    for node in (contract.EXAMPLE_GEN, contract.STATISTICS_GEN, contract.SCHEMA_GEN, contract.TRANSFORM,
                 contract.PRETRAIN, contract.PROBE):
        assert second["components"][node] == "cached", node
    assert second["data"]["span"] == 1  # the same data version: no new span
    assert second["components"][contract.EVALUATOR] == "executed"
    assert second["evaluator"]["baseline_version"] == int(os.path.basename(pushed))  # compared with the pushed one
    assert second["evaluator"]["blessed"] is False
    assert any("below the floor" in reason for reason in second["evaluator"]["failures"])
    failed = {c["name"] for c in second["gate"]["checks"] if not c["passed"]}
    assert second["gate"]["blessed"] is False and {"evaluator", "gain over random init"} <= failed
    assert second["pushed_model"] is None
    assert glob.glob(os.path.join(config.serving_model_dir, "*")) == [pushed]
    assert tf.saved_model.load(pushed).signatures["serve_image_bytes"] is not None
    # (Another augmentation policy changes Transform's cache key and no data stage's:
    # tests/pipeline/test_pipeline.py. A run with new inputs re-runs what depends on them: the KFP
    # launcher test's run 3.)

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
