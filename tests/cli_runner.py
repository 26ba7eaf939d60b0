"""Child processes of the tests: `run_command` runs any command with a time limit; `run`/`start` run
`run_classification.py` without paying for its imports each time.

A forkserver imports run_classification (torch, transformers, datasets) once; every run is then a fresh
forked process that sets `sys.argv` and calls `run_classification.cli()`, exactly what
`python run_classification.py ...` does after its imports: a real exit status, its own stdout/stderr
(an uncaught exception prints its traceback there, as the interpreter would), and it can be SIGKILLed.
"""

import multiprocessing
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

TIMEOUT = 600
"""Seconds any child process of a test may run; past it the test fails with the child's last output."""


def last_lines(*texts, n=60):
    """The last `n` lines of the texts joined (for failure messages)."""
    return "\n".join("\n".join(t or "" for t in texts).strip().splitlines()[-n:])


def run_command(command, cwd=None, env=None, timeout=TIMEOUT):
    """Run `command` with captured text output and no standard input, in its own process group. A child still
    running after `timeout` seconds is killed with everything it started, and the test fails with its last lines
    of output: a test never hangs on a child."""
    command = list(map(str, command))
    with subprocess.Popen(
        command, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, start_new_session=True,
    ) as process:  # fmt: skip
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            stdout, stderr = process.communicate()
            pytest.fail(f"{' '.join(command)[:300]} did not finish in {timeout} s; its last output:\n"
                        f"{last_lines(stdout, stderr)}")  # fmt: skip
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


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

    def wait(self, timeout=TIMEOUT):
        self.process.join(timeout)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
            pytest.fail(
                f"run_classification did not finish in {timeout} s; its last output:\n"
                f"{last_lines(self.stdout, self.stderr)}"
            )
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


def run(argv, log_dir, timeout=TIMEOUT):
    return start(argv, log_dir).wait(timeout)
