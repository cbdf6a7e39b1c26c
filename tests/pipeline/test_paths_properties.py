"""Paths are paths, never patterns (Hypothesis): folder and file names with `[ ] * ? { } ! ,`,
spaces, leading dashes, non-ASCII and non-UTF-8 bytes, given to --images, --pretrain-images,
--probe-images, --tfrecords and --output, are planned and then matched by the same Beam matcher
ExampleGen reads with, finding exactly the files written there."""
import os
import shutil

import pytest
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st

from simsiam_tfx.components import source_plan, sources
from simsiam_tfx.config import ConfigError, DataConfig, PipelineConfig
from simsiam_tfx.pipeline.flags import glob_safe_folder
from tests import data_factory

NON_UTF8 = os.fsdecode(b"\xff")  # a byte that is not UTF-8 (a surrogate-escaped character)
awkward_names = st.text(alphabet=st.sampled_from(list("[]*?{}!, -._aZé日") + [NON_UTF8]), min_size=1, max_size=10) \
    .filter(lambda n: n not in (".", ".."))

pytestmark = pytest.mark.fault


def matched(plan, split) -> int:
    """Files ExampleGen would read for `split`: the plan's patterns through Beam's matcher."""
    return len({line for read in plan.splits[split] for pattern in read.patterns()
                for line in sources._file_lines(pattern)})  # pylint: disable=protected-access


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("paths")


@pytest.fixture(scope="module")
def cache(workdir):
    """The links glob_safe_folder makes go to a cache of the test's own."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CACHE_HOME", str(workdir / "cache"))
        yield


def fresh(workdir, name) -> str:
    path = os.path.join(str(workdir), name)
    shutil.rmtree(path, ignore_errors=True)
    return path


def refused_unless_utf8(name: str, **data) -> bool:
    """Whether the settings are refused, as they must be exactly when a name is not UTF-8 (which
    TensorFlow cannot open): in one line naming the setting."""
    try:
        PipelineConfig(data=DataConfig(image_size=16, **data)).validate()
    except ConfigError as e:
        assert NON_UTF8 in name and "is not valid UTF-8" in str(e) and "\n" not in str(e), str(e)
        return True
    assert NON_UTF8 not in name
    return False


@settings(max_examples=12)
@given(name=awkward_names)
def test_image_folders_with_any_name_are_read_as_paths(workdir, name):
    labelled, unlabelled = fresh(workdir, "L" + name), fresh(workdir, "-U" + name)
    if refused_unless_utf8(name, images=labelled) | refused_unless_utf8(name, pretrain_images=unlabelled):
        return
    data_factory.write_image_folder(labelled, 6, classes=2, size=16)
    data_factory.write_image_folder(unlabelled, 5, size=16)
    plan = source_plan.plan(DataConfig(images=labelled, image_size=16), str(workdir / "data"))
    assert plan.class_names == ["class0", "class1"]
    assert matched(plan, "eval") == 6  # one source, hash-split later: every file is matched
    separate = source_plan.plan(DataConfig(pretrain_images=unlabelled, probe_images=labelled, image_size=16),
                            str(workdir / "data"))
    assert matched(separate, "pretrain") == 5 and matched(separate, "probe_train") == 6


@settings(max_examples=12)
@given(name=awkward_names)
def test_a_tfrecords_file_or_folder_that_exists_is_that_path(workdir, name):
    folder = fresh(workdir, "T" + name)
    if refused_unless_utf8(name, tfrecords=folder):
        return
    os.makedirs(folder)
    path = os.path.join(folder, name + ".tfrecord")
    with tf.io.TFRecordWriter(path) as writer:
        for label in (0, 1, 1):
            writer.write(tf.train.Example(features=tf.train.Features(feature={
                "image": tf.train.Feature(bytes_list=tf.train.BytesList(value=[data_factory.encoded((16, 16))])),
                "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[label]))})).SerializeToString())
    for given_path in (path, folder):
        plan = source_plan.plan(DataConfig(tfrecords=given_path, image_size=16), str(workdir / "data"))
        assert plan.class_names == ["0", "1"] and matched(plan, "eval") == 1


def test_a_tfrecords_pattern_is_still_a_pattern(workdir):
    folder = fresh(workdir, "pattern")
    os.makedirs(folder)
    for i in range(2):
        with tf.io.TFRecordWriter(os.path.join(folder, f"part-{i}.tfrecord")) as writer:
            writer.write(tf.train.Example(features=tf.train.Features(feature={
                "image": tf.train.Feature(bytes_list=tf.train.BytesList(value=[data_factory.encoded((16, 16))])),
                "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[i]))})).SerializeToString())
    plan = source_plan.plan(DataConfig(tfrecords=os.path.join(folder, "part-*.tfrecord"), image_size=16),
                        str(workdir / "data"))
    assert plan.class_names == ["0", "1"] and matched(plan, "eval") == 2


@settings(max_examples=8)
@given(name=awkward_names)
def test_an_output_folder_with_any_name_holds_the_embedded_data_and_a_glob_free_path(workdir, cache, name):
    output = fresh(workdir, "O" + name)
    try:
        PipelineConfig(output_dir=output).validate()
    except ConfigError as e:
        assert NON_UTF8 in name and "is not valid UTF-8" in str(e)
        return
    usable = glob_safe_folder(output)
    assert not any(c in usable for c in "[]*?") and os.path.realpath(usable) == os.path.realpath(output)
    assert glob_safe_folder(output) == usable  # the same folder, the same link
    plan = source_plan.plan(DataConfig(shapes_per_split=(10, 10, 10), image_size=16), os.path.join(output, "data"))
    assert matched(plan, "pretrain") >= 1
    # Read back through the link too (what the run does): the same files.
    through_link = source_plan.plan(DataConfig(shapes_per_split=(10, 10, 10), image_size=16),
                                    os.path.join(usable, "data"))
    assert matched(through_link, "eval") == matched(plan, "eval") >= 1
