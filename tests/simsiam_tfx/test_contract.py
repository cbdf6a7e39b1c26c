"""Tests of simsiam_tfx.contract: its names are spelled nowhere else in the package, and the one
reader of ExampleGen's record reads what ExampleGen writes."""
import ast
import json
import pathlib
import re

from ml_metadata.proto import metadata_store_pb2

from simsiam_tfx import contract

ROOT = pathlib.Path(__file__).resolve().parents[2]
PACKAGE_FOLDERS = ("simsiam_tfx", "trainer", "components", "pipeline", "kubeflow")
CONTRACT = ROOT / "simsiam_tfx" / "contract.py"


def _names(section: str) -> dict[str, str]:
    """{constant: value} of one '# ---- section' of contract.py."""
    source = CONTRACT.read_text()
    part = source.split("# ---- " + section, 1)[1].split("\n", 1)[1].split("# ---- ", 1)[0]
    return {node.targets[0].id: node.value.value for node in ast.parse(part).body
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)}


def _package_sources():
    for folder in PACKAGE_FOLDERS:
        for path in sorted((ROOT / folder).rglob("*.py")):
            if path != CONTRACT:
                yield path, path.read_text()


def test_node_ids_and_file_names_are_spelled_only_in_the_contract():
    # (not "tensorboard": the word names other folders and summary keys too)
    spelled = {**_names("node ids"), **_names("files"), "SERVING_DIR": contract.SERVING_DIR}
    assert len(spelled) > 20
    found = [f"{path.relative_to(ROOT)}:{number}: {value}"
             for path, text in _package_sources()
             for number, line in enumerate(text.splitlines(), 1)
             for value in spelled.values() if re.search(rf"([\"']){re.escape(value)}\1", line)]
    assert not found, "spell these through simsiam_tfx.contract:\n" + "\n".join(found)


def test_mlmd_property_names_are_spelled_only_in_the_contract():
    # A property name is a literal given to a custom-property accessor, or tested against the map.
    accessor = re.compile(r"""custom_propert(y|ies)\s*[(\[.]\s*(get\()?\s*["']|["'][\w]+["']\s+(not\s+)?in\s+\S*custom_properties""")
    found = [f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
             for path, text in _package_sources()
             for number, line in enumerate(text.splitlines(), 1) if accessor.search(line)]
    assert not found, "spell MLMD property names through simsiam_tfx.contract:\n" + "\n".join(found)


def test_examples_record_reads_what_example_gen_writes():
    examples = metadata_store_pb2.Artifact(uri="/runs/ExampleGen/examples/1")
    props = examples.custom_properties
    props[contract.CLASS_NAMES].string_value = json.dumps(["circle", "square"])
    props[contract.IMAGE_SIZE].int_value = 32
    props[contract.DATA_FINGERPRINT].string_value = "abc"
    props[contract.DATA_SPAN].int_value = 2
    props[contract.EXAMPLE_COUNTS].string_value = json.dumps({"eval": 3})
    assert contract.examples_record(examples) == {
        "class_names": ["circle", "square"], "image_size": 32, "examples_uri": "/runs/ExampleGen/examples/1",
        "data_fingerprint": "abc", "span": 2, "example_counts": {"eval": 3}}
    assert contract.examples_record(metadata_store_pb2.Artifact()) is None


def test_examples_record_reads_properties_as_the_kfp_driver_passes_them():
    # backend/src/v2: the driver hands a step its inputs' custom properties as struct_value
    # {"__value__": ...}; a reader of raw string_value/int_value would see "" and 0.
    from ml_metadata.proto import metadata_store_pb2
    wrapped = metadata_store_pb2.Artifact(uri="gs://b/examples")
    props = wrapped.custom_properties
    props[contract.CLASS_NAMES].struct_value.fields["__value__"].string_value = '["circle", "square"]'
    props[contract.IMAGE_SIZE].struct_value.fields["__value__"].number_value = 32
    props[contract.DATA_SPAN].struct_value.fields["__value__"].number_value = 2
    props[contract.EXAMPLE_COUNTS].struct_value.fields["__value__"].string_value = '{"eval": 5}'
    record = contract.examples_record(wrapped)
    assert record[contract.CLASS_NAMES] == ["circle", "square"] and record[contract.IMAGE_SIZE] == 32
    assert record["span"] == 2 and record[contract.EXAMPLE_COUNTS] == {"eval": 5}
