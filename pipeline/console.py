"""What a run prints: our lines, progress bars and one line per component; the libraries' noise
goes to a log file instead.

TensorFlow's C++ runtime, CUDA probing, gRPC/absl, Beam, TFX's own INFO lines, pip (run by TFX in
a subprocess) and Python warnings all write straight to file descriptors 1 and 2. `quiet()` points
those descriptors at `<output>/logs/run.log` and gives Python's `sys.stdout` / `sys.stderr` private
copies of the terminal, so only what this project prints on purpose reaches the user. `--verbose`
skips all of it.
"""
from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
import time
import warnings
from typing import Iterator, Optional

# TFX's LocalDagRunner and launcher log these (tfx/orchestration/local/local_dag_runner.py,
# tfx/orchestration/portable/launcher.py); the console turns them into one line per component.
_RUNNING, _FINISHED, _CACHED, _SKIPPED = ("Component %s is running.", "Component %s is finished.",
                                          "A cached execution %d is used.", "Skipping component %s.")

_active: Optional["ComponentLines"] = None


def expect_components(count: int) -> None:
    """Tells the quiet console (if one is active) how many components the pipeline has: `[i/n]`."""
    if _active is not None:
        _active.total = count


def running_component() -> Optional[str]:
    """The component that started and has not finished (the one that failed, after an error)."""
    return _active.node if _active is not None else None


class ComponentLines(logging.Handler):
    """Turns TFX's component events into `[i/n] Component ... 12.3 s` / `... cached` lines."""

    def __init__(self, stream, total: Optional[int] = None):
        super().__init__(logging.INFO)
        self.stream, self.total = stream, total
        self.count, self.node, self.started, self.cached = 0, None, 0.0, False

    def emit(self, record: logging.LogRecord) -> None:
        message = record.msg
        if message == _RUNNING:
            self.count += 1
            self.node, self.started, self.cached = record.args[0], time.perf_counter(), False
            self._print(f"{self._index()} {self.node} ...")
        elif message == _CACHED:
            self.cached = True
        elif message == _FINISHED and record.args[0] == self.node:
            how = "from the cache" if self.cached else "done"
            self._print(f"{self._index()} {self.node} {how} in {time.perf_counter() - self.started:.1f} s")
            self.node = None
        elif message == _SKIPPED:
            self.count += 1
            self._print(f"{self._index()} {record.args[0]} skipped")

    def _index(self) -> str:
        width = len(str(self.total or self.count))
        return f"[{self.count:>{width}}/{self.total}]" if self.total else f"[{self.count}]"

    def _print(self, line: str) -> None:
        print(line, file=self.stream, flush=True)


@contextlib.contextmanager
def quiet(log_path: str, total_components: Optional[int] = None) -> Iterator[str]:
    """Library output -> `log_path`; our prints, progress bars and component lines -> the terminal.

    Yields `log_path`. Restores the file descriptors, streams and logging set-up on exit.
    """
    os.makedirs(os.path.dirname(log_path) or ".", exist_ok=True)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow loads: its C++ INFO lines
    os.environ.setdefault("PIP_DISABLE_PIP_VERSION_CHECK", "1")  # pip run by TFX's packaging step
    sys.stdout.flush()
    sys.stderr.flush()
    saved_fds = os.dup(1), os.dup(2)
    saved_streams = sys.stdout, sys.stderr
    log = open(log_path, "a", buffering=1)
    os.dup2(log.fileno(), 1)
    os.dup2(log.fileno(), 2)
    sys.stdout = os.fdopen(os.dup(saved_fds[0]), "w", buffering=1, closefd=True)
    sys.stderr = os.fdopen(os.dup(saved_fds[1]), "w", buffering=1, closefd=True)
    global _active
    components = _active = ComponentLines(sys.stdout, total_components)
    undo = _route_logging(log, components)
    try:
        yield log_path
    finally:
        _active = None
        undo()
        sys.stdout.flush()
        sys.stderr.flush()
        new_streams = sys.stdout, sys.stderr
        sys.stdout, sys.stderr = saved_streams
        os.dup2(saved_fds[0], 1)
        os.dup2(saved_fds[1], 2)
        for stream in new_streams:
            stream.close()
        for fd in saved_fds:
            os.close(fd)
        log.close()


def import_tensorflow_quietly() -> None:
    """Imports TensorFlow with its C++ start-up lines (oneDNN, CUDA probing: written to descriptor
    2 before absl's logging is set up, whatever TF_CPP_MIN_LOG_LEVEL says) kept off the terminal,
    for the commands without a log of their own. An import that fails shows them."""
    if "tensorflow" in sys.modules:
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            import tensorflow  # noqa: F401
        except BaseException:
            os.dup2(saved, 2)
            capture.seek(0)
            os.write(2, capture.read())
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def _route_logging(log, components: ComponentLines):
    """Python logging (absl's included) and warnings -> the log; TFX's component events -> the
    console too. Returns a function that restores the previous set-up."""
    from absl import logging as absl_logging

    root = logging.getLogger()
    absl_logger = logging.getLogger("absl")
    before = (list(root.handlers), root.level, absl_logger.level, absl_logging.get_verbosity(),
              warnings.showwarning)
    file_handler = logging.StreamHandler(log)
    file_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.handlers = [file_handler]
    root.setLevel(logging.INFO)
    absl_logging.set_verbosity(absl_logging.INFO)
    absl_logger.addHandler(components)
    logging.captureWarnings(True)  # warnings -> the "py.warnings" logger -> the log file

    def undo():
        logging.captureWarnings(False)
        absl_logger.removeHandler(components)
        root.handlers, _ = before[0], root.setLevel(before[1])
        absl_logger.setLevel(before[2])
        absl_logging.set_verbosity(before[3])
        warnings.showwarning = before[4]
        file_handler.close()
    return undo

