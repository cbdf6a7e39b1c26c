"""Tests of simsiam_tfx.pipeline.console: noise to the log, our lines and progress bars to the
terminal, in a real pseudo-terminal (and silent bars when the output is not one)."""
import errno
import fcntl
import os
import pty
import struct
import subprocess
import sys
import termios

from simsiam_tfx import contract

# Writes what TensorFlow, absl, TFX, warnings and a pip subprocess write, then ours.
NOISY_PROGRAM = r"""
import os, subprocess, sys, time, warnings
from simsiam_tfx.pipeline import console
with console.quiet(sys.argv[1], total_components=2):
    from absl import logging
    from simsiam_tfx.trainer import monitors
    os.write(2, b"I0000 cudart_stub.cc:31] Could not find cuda drivers on your machine\n")
    os.write(1, b"oneDNN custom operations are on\n")
    subprocess.run([sys.executable, "-c", "import sys; print('[notice] A new release of pip is available'); "
                    "print('failed call to cuInit', file=sys.stderr)"])
    warnings.warn("aiplatform is deprecated", FutureWarning)
    logging.warning("ArtifactQuery.property_predicate is not supported")
    logging.info("Component %s is running.", "ExampleGen")
    print("[pretrain] epoch 1: ours")
    with monitors.progress_bar(total=3, desc="pre-training", unit="step") as bar:
        for _ in range(3):
            time.sleep(0.15)
            bar.update(1)
    logging.info("Component %s is finished.", "ExampleGen")
    logging.info("Component %s is running.", "Transform")
    logging.info("A cached execution %d is used.", 7)
    logging.info("Component %s is finished.", "Transform")
print("after: restored")
"""
NOISE = ("cuda", "oneDNN", "pip", "cuInit", "aiplatform", "property_predicate", "Component ExampleGen is running")


def run_in_pty(args, columns=100, env=None):
    """Runs `args` with stdout and stderr on a pseudo-terminal of `columns`; returns what it shows."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    process = subprocess.Popen(args, stdout=follower, stderr=follower, stdin=subprocess.DEVNULL, close_fds=True,
                               env=env)
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError as e:  # EIO: the other side closed
            if e.errno != errno.EIO:
                raise
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    assert process.wait() == 0
    return b"".join(chunks).decode("utf-8", "replace")


def test_quiet_console_in_a_terminal_shows_ours_and_logs_the_rest(tmp_path):
    log = tmp_path / "logs" / "run.log"
    shown = run_in_pty([sys.executable, "-c", NOISY_PROGRAM, str(log)])
    lines = [line.strip() for line in shown.replace("\r", "\n").splitlines() if line.strip()]
    assert not [line for line in lines if any(word in line for word in NOISE)], lines
    assert "[pretrain] epoch 1: ours" in lines
    assert "[1/2] ExampleGen ..." in lines
    assert any(line.startswith("[1/2] ExampleGen done in ") for line in lines)
    assert any(line.startswith("[2/2] Transform from the cache in ") for line in lines)
    assert any("pre-training: 100%" in line and "3/3" in line for line in lines), lines  # the tqdm bar
    assert "after: restored" in lines
    logged = log.read_text()
    for word in NOISE:
        assert word in logged, word


def test_progress_bars_are_silent_when_output_is_not_a_terminal(tmp_path):
    done = subprocess.run([sys.executable, "-c", NOISY_PROGRAM, str(tmp_path / "run.log")], capture_output=True,
                          text=True, check=True)
    assert "pre-training" not in done.stdout + done.stderr
    assert "[2/2] Transform from the cache in" in done.stdout
    assert not any(word in done.stdout + done.stderr for word in NOISE)


def test_a_failed_run_says_which_component_failed_in_one_line(tmp_path, capfd):
    from absl import logging as absl_logging

    from simsiam_tfx.pipeline import cli, console
    with console.quiet(str(tmp_path / "run.log")) as log:
        absl_logging.info("Component %s is running.", contract.TRANSFORM)
        try:
            raise RuntimeError("boom\nsecond line")
        except RuntimeError as e:
            message = cli._failure(e, log)
    assert message == f"Transform failed: RuntimeError: boom second line (traceback: {log})"
    assert capfd.readouterr().out.strip() == "[1] Transform ..."
    assert "Traceback" in (tmp_path / "run.log").read_text()


def test_commands_without_a_log_print_no_tensorflow_start_up_lines(tmp_path):
    # TensorFlow writes its start-up lines (oneDNN, CUDA probing) to descriptor 2 on import.
    result = subprocess.run([os.path.join(os.path.dirname(sys.executable), "simsiam-tfx"), "served", "--output",
                             str(tmp_path)], capture_output=True, text=True, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="0"))
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr == f"simsiam-tfx: error: no model has been pushed to {tmp_path}/serving_model\n"


def test_a_tensorflow_that_fails_to_import_shows_what_it_wrote(tmp_path):
    fake = tmp_path / "tensorflow"
    fake.mkdir()
    (fake / "__init__.py").write_text("import os\nos.write(2, b'libfoo.so: cannot open shared object file\\n')\n"
                                      "raise ImportError('broken install')\n")
    program = "from simsiam_tfx.pipeline import console\nconsole.import_tensorflow_quietly()\n"
    result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True,
                            env=dict(os.environ, PYTHONPATH=str(tmp_path)))
    assert result.returncode == 1
    assert "libfoo.so: cannot open shared object file" in result.stderr and "broken install" in result.stderr
