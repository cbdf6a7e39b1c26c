"""ExampleGen on every kind of source, through the real code paths: TFDS builders reading prepared
data sets, image folders full of awkward files, TFRecords with custom keys, separate sources."""
import glob
import json
import os

import pytest
import tensorflow as tf
from tfx.proto import example_gen_pb2
from tfx.types import standard_artifacts
from tfx.utils import proto_utils

from simsiam_tfx.components import beam_dependencies, example_gen, source_plan
from simsiam_tfx.config import ConfigError, DataConfig
from simsiam_tfx.features import SPLITS
from tests import data_factory

BEAM_ARGS = ["--runner=DirectRunner", "--direct_running_mode=in_memory", "--direct_num_workers=1"]


@pytest.fixture(scope="module", autouse=True)
def in_process_beam():
    """As the runners set it up: TFX packages nothing for the in-process DirectRunner."""
    beam_dependencies.skip_staging_for_direct_runner()


@pytest.fixture(scope="module")
def tfds_dir(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("tfds"))
    for name in data_factory.TFDS_LAYOUTS:
        data_factory.prepare_tfds(name, root)
    return root


def run_example_gen(data: DataConfig, work) -> tuple[source_plan.SourcePlan, dict, standard_artifacts.Examples]:
    """Plans, writes sources.json and runs ExampleGen's executor as TFX would; returns the plan,
    {split: [(image bytes, label)]} and the output artifact."""
    plan = source_plan.plan(data, str(work / "data"))
    input_base = source_plan.write_plan(plan, str(work / "data"))
    component = example_gen.create(input_base)
    examples = standard_artifacts.Examples()
    examples.uri = str(work / "examples")
    props = dict(component.exec_properties)
    for key in ("input_config", "output_config"):
        if not isinstance(props[key], str):
            props[key] = proto_utils.proto_to_json(props[key])
    props["output_file_format"] = example_gen_pb2.FORMAT_TFRECORDS_GZIP
    props["output_data_format"] = example_gen_pb2.FORMAT_TF_EXAMPLE
    executor = example_gen.Executor(example_gen.Executor.Context(beam_pipeline_args=BEAM_ARGS, tmp_dir=str(work)))
    executor.Do({}, {"examples": [examples]}, props)
    out = {}
    for split in SPLITS:
        files = glob.glob(os.path.join(examples.uri, f"Split-{split}", "*"))
        rows = []
        for record in tf.data.TFRecordDataset(files, compression_type="GZIP"):
            feature = tf.train.Example.FromString(record.numpy()).features.feature
            rows.append((feature["image"].bytes_list.value[0], feature["label"].int64_list.value[0]))
        out[split] = rows
    return plan, out, examples


def skipped_report(examples) -> list[dict]:
    with open(examples.get_string_custom_property("skipped_report")) as f:
        return [json.loads(line) for line in f if line.strip()]


def test_stl10_pretrains_on_unlabelled_plus_train_probes_on_train_evaluates_on_test(tfds_dir, tmp_path):
    plan, out, _ = run_example_gen(DataConfig(dataset="stl10", tfds_data_dir=tfds_dir), tmp_path)
    layout = data_factory.TFDS_LAYOUTS["stl10"]
    assert len(out["pretrain"]) == layout["unlabelled"] + layout["train"]
    assert {label for _, label in out["pretrain"]} == {-1}  # pre-training never sees labels
    assert len(out["probe_train"]) == layout["train"] and len(out["eval"]) == layout["test"]
    assert all(0 <= label < 10 for _, label in out["probe_train"] + out["eval"])
    assert plan.num_classes == 10
    assert tf.io.decode_image(out["eval"][0][0]).shape == (96, 96, 3)


def test_cifar10_uses_train_and_test(tfds_dir, tmp_path):
    _, out, examples = run_example_gen(DataConfig(dataset="cifar10", tfds_data_dir=tfds_dir), tmp_path)
    layout = data_factory.TFDS_LAYOUTS["cifar10"]
    assert [len(out[s]) for s in SPLITS] == [layout["train"], layout["train"], layout["test"]]
    assert examples.get_int_custom_property("skipped_count") == 0


def test_tf_flowers_single_split_is_cut_by_a_fixed_hash(tfds_dir, tmp_path):
    data = DataConfig(dataset="tf_flowers", tfds_data_dir=tfds_dir, eval_fraction=0.3)
    plan, out, _ = run_example_gen(data, tmp_path / "a")
    total = data_factory.TFDS_LAYOUTS["tf_flowers"]["train"]
    assert len(out["probe_train"]) + len(out["eval"]) == total
    assert 0 < len(out["eval"]) < total / 2
    assert len(out["pretrain"]) == len(out["probe_train"])  # pre-training = probe-training images
    assert not {img for img, _ in out["eval"]} & {img for img, _ in out["probe_train"]}  # no leakage
    assert plan.num_classes == 5
    _, again, _ = run_example_gen(data, tmp_path / "b")
    assert sorted(again["eval"]) == sorted(out["eval"])  # the split is fixed


def test_image_folder_with_every_awkward_file(tmp_path):
    root = tmp_path / "photos"
    expected = data_factory.write_awkward_folder(str(root))
    plan, out, examples = run_example_gen(DataConfig(images=str(root), eval_fraction=0.3), tmp_path)

    assert plan.class_names == ["café ☕", "sea lion"]  # sorted; spaces and non-ASCII kept
    usable = [p for p, outcome in expected.items() if not outcome.startswith("skip")]
    assert len(out["probe_train"]) + len(out["eval"]) == len(usable)  # nothing good is lost
    for image, label in out["probe_train"] + out["eval"]:
        assert label in (0, 1)
        assert tf.io.decode_image(image, channels=3, expand_animations=False).shape[2] == 3

    report = {row["item"]: row["reason"] for row in skipped_report(examples)}
    skipped = {p: o[len("skip:"):] for p, o in expected.items() if o.startswith("skip:")}
    assert set(report) == set(skipped)  # every skipped file named, nothing else
    for path, reason in skipped.items():
        assert report[path].startswith(reason), (path, report[path])
    assert examples.get_int_custom_property("skipped_count") == len(skipped)
    by_reason = json.loads(examples.get_string_custom_property("skipped_by_reason"))
    assert by_reason["truncated or corrupt image"] == 2 and by_reason["empty file"] == 1


def test_tfrecords_with_custom_keys_and_a_broken_record(tmp_path):
    path = str(tmp_path / "mine.tfrecord")
    with tf.io.TFRecordWriter(path) as writer:
        for i in range(30):
            feature = {"jpeg": tf.train.Feature(bytes_list=tf.train.BytesList(
                value=[data_factory.encoded((20, 20), i, "JPEG")])),
                "class_id": tf.train.Feature(int64_list=tf.train.Int64List(value=[i % 3]))}
            writer.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())
        writer.write(b"definitely not a protobuf")
        bad = {"jpeg": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"\xff\xd8\xff junk"])),
               "class_id": tf.train.Feature(int64_list=tf.train.Int64List(value=[1]))}
        writer.write(tf.train.Example(features=tf.train.Features(feature=bad)).SerializeToString())
    data = DataConfig(tfrecords=path, image_key="jpeg", label_key="class_id")
    plan, out, examples = run_example_gen(data, tmp_path)
    assert plan.num_classes == 3
    assert len(out["probe_train"]) + len(out["eval"]) == 30
    reasons = sorted(row["reason"].split(" (")[0] for row in skipped_report(examples))
    assert reasons == ["not a tf.train.Example", "truncated or corrupt image"]
    # What the run read, in MLMD: examples per split as written (Beam counters).
    assert json.loads(examples.get_string_custom_property("example_counts")) == {s: len(out[s]) for s in SPLITS}
    assert examples.get_int_custom_property("data_span") == 0  # a sources-<fingerprint> plan, not a span


@pytest.mark.fault
def test_data_that_yields_no_example_stops_before_training_with_one_line(tmp_path):
    root = tmp_path / "broken"
    for name in ("a", "b"):
        (root / name).mkdir(parents=True)
        (root / name / "x.png").write_bytes(b"\x89PNG cut short")
    with pytest.raises(ConfigError, match=r"gives no pretrain and no probe_train and no eval example: nothing to "
                                          r"train on; the served model is left as it is$"):
        run_example_gen(DataConfig(images=str(root)), tmp_path)


def test_a_manifest_naming_an_emptied_folder_stops_with_one_line(tmp_path):
    labelled, unlabelled = tmp_path / "imgs", tmp_path / "unlabelled"
    data_factory.write_image_folder(str(labelled), 6, classes=2)
    data_factory.write_image_folder(str(unlabelled), 3)
    plan = source_plan.plan(DataConfig(images=str(labelled), pretrain_images=str(unlabelled)), str(tmp_path / "d"))
    plan.source_files[str(unlabelled)] = 0  # what the plan step saw: nothing there
    folder = source_plan.write_plan(plan, str(tmp_path / "d"))
    executor = example_gen.Executor(example_gen.Executor.Context(beam_pipeline_args=BEAM_ARGS, tmp_dir=str(tmp_path)))
    with pytest.raises(ConfigError, match=rf"holds no images in {unlabelled}"):
        executor._plan({"input_base": folder})  # pylint: disable=protected-access


@pytest.mark.fault
@pytest.mark.parametrize("into_record", [5, 100])  # a cut in a record's length header, or in its data
def test_a_truncated_tfrecord_file_is_a_named_skip_and_its_good_records_are_kept(tmp_path, into_record):
    def write(path, first, count):
        with tf.io.TFRecordWriter(str(path)) as writer:
            for i in range(first, first + count):
                feature = {"image": tf.train.Feature(bytes_list=tf.train.BytesList(
                    value=[data_factory.encoded((20, 20), i, "PNG")])),
                    "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[i % 2]))}
                writer.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())
    (tmp_path / "records").mkdir()
    write(tmp_path / "records" / "whole.tfrecord", 0, 20)
    write(tmp_path / "records" / "cut.tfrecord", 100, 20)
    cut = tmp_path / "records" / "cut.tfrecord"
    record_size = cut.stat().st_size // 20  # the records are equally long
    cut.write_bytes(cut.read_bytes()[: 15 * record_size + into_record])  # a copy that stopped short
    data = DataConfig(tfrecords=str(tmp_path / "records" / "*.tfrecord"))
    _, out, examples = run_example_gen(data, tmp_path)
    kept = len(out["probe_train"]) + len(out["eval"])
    assert kept == 20 + 15  # every whole record of both files
    [row] = skipped_report(examples)
    assert row["item"].endswith("cut.tfrecord") and row["reason"].startswith("truncated or corrupt TFRecord file")


@pytest.mark.fault
def test_a_folder_named_with_glob_characters_is_read_whole(tmp_path):
    root = tmp_path / "photos [v1] *?"
    data_factory.write_image_folder(str(root), 20, classes=2)
    plan, out, examples = run_example_gen(DataConfig(images=str(root), eval_fraction=0.3), tmp_path)
    assert len(out["probe_train"]) + len(out["eval"]) == 20 and skipped_report(examples) == []
    before = source_plan.content_fingerprint(plan)
    (root / "class0" / "new.png").write_bytes(data_factory.encoded((24, 24), 999))
    again = source_plan.plan(DataConfig(images=str(root)), str(tmp_path / "d"))
    assert source_plan.content_fingerprint(again) != before


@pytest.mark.fault
def test_symlinked_class_folders_are_read_and_loops_and_undecodable_names_are_named_skips(tmp_path):
    root = tmp_path / "photos"
    data_factory.write_image_folder(str(root), 20, classes=2)
    data_factory.write_image_folder(str(tmp_path / "elsewhere"), 6, classes=1)
    os.symlink(tmp_path / "elsewhere" / "class0", root / "birds")  # a class kept elsewhere
    os.symlink(root, root / "loop")  # a link back up the tree
    os.symlink(root / "class1", root / "again")  # a second copy of a class
    with open(os.fsencode(str(root / "class0")) + b"/caf\xe9.png", "wb") as f:  # Latin-1, not UTF-8
        f.write(data_factory.encoded((20, 20), 99, "PNG"))
    os.mkdir(os.fsencode(str(root)) + b"/\xff-class")
    plan, out, examples = run_example_gen(DataConfig(images=str(root)), tmp_path)

    assert plan.class_names == ["birds", "class0", "class1"]
    assert sum(len(out[split]) for split in ("probe_train", "eval")) == 20 + 6
    assert {label for split in ("probe_train", "eval") for _, label in out[split]} == {0, 1, 2}
    planned = {row["item"].rsplit("/", 1)[-1]: row["reason"] for row in plan.skipped}
    assert planned["loop"].startswith("symlink into the data folder") and planned["again"].startswith("symlink")
    assert planned["\\xff-class"] == "class folder name is not valid UTF-8"
    [row] = [r for r in skipped_report(examples) if r["item"].endswith(".png")]  # the plan's skips are there too
    assert row["item"].endswith("caf\\xe9.png") and row["reason"] == "file name is not valid UTF-8"
