"""Run `run_classification.py` in child processes without paying for its imports each time.

A forkserver imports run_classification (torch, transformers, datasets) once; every run is then a fresh
forked process that sets `sys.argv` and calls `run_classification.cli()`, exactly what
`python run_classification.py ...` does after its imports: a real exit status, its own stdout/stderr
(an uncaught exception prints its traceback there, as the interpreter would), and it can be SIGKILLed.
"""

import multiprocessing
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

_context = None


def context():
    global _context
    if _context is None:
        _context = multiprocessing.get_context("forkserver")
        _context.set_forkserver_preload(["run_classification"])
    return _context


def _child(argv, stdout_path, stderr_path):
    for fd, path in ((1, stdout_path), (2, stderr_path)):
        handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        os.dup2(handle, fd)
        os.close(handle)
    import torch

    torch.set_num_threads(1)  # 2 threads on 2 busy cores were 16x slower; and results depend on the thread count
    import run_classification

    sys.argv = ["run_classification.py", *map(str, argv)]
    run_classification.cli()


@dataclass
class Run:
    process: multiprocessing.Process
    stdout_path: Path
    stderr_path: Path

    def wait(self, timeout=300):
        self.process.join(timeout)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
            raise TimeoutError(f"run_classification did not finish in {timeout} s")
        return self

    @property
    def returncode(self):
        return self.process.exitcode

    @property
    def stdout(self):
        return self.stdout_path.read_text(errors="replace")

    @property
    def stderr(self):
        return self.stderr_path.read_text(errors="replace")


def start(argv, log_dir):
    """Start one run; its stdout/stderr go to files in `log_dir`."""
    log_dir = Path(log_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    stamp = f"{time.monotonic_ns()}"
    run = Run(None, log_dir / f"{stamp}.stdout", log_dir / f"{stamp}.stderr")
    run.process = context().Process(target=_child, args=(list(map(str, argv)), run.stdout_path, run.stderr_path))
    run.process.start()
    return run


def run(argv, log_dir, timeout=300):
    return start(argv, log_dir).wait(timeout)
