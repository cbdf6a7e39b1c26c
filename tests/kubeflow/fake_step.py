"""A container command for tests/kubeflow/test_launchers.py: `write METADATA {{$}}` records one
output artifact with METADATA (JSON) in its ExecutorOutput; `read PATH {{$}}` saves the
ExecutorInput it was given to PATH."""
import json
import os
import sys


def main(role: str, payload: str, executor_input: str) -> None:
    invocation = json.loads(executor_input)
    outputs = invocation["outputs"]
    if role == "write":
        [artifact] = outputs["artifacts"]["out"]["artifacts"]
        os.makedirs(artifact["uri"], exist_ok=True)
        os.makedirs(os.path.dirname(outputs["outputFile"]), exist_ok=True)
        with open(outputs["outputFile"], "w") as f:
            json.dump({"artifacts": {"out": {"artifacts": [dict(artifact, metadata=json.loads(payload))]}}}, f)
        return
    with open(payload, "w") as f:
        json.dump(invocation, f)


if __name__ == "__main__":
    main(*sys.argv[1:4])
