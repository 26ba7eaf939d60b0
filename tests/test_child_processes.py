"""A test's child process past its time limit fails the test with its output; it never hangs the suite."""

import os
import sys
import time
from pathlib import Path

import pytest

from .cli_runner import run_command

SLEEPER = """
import subprocess, sys, time
grandchild = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
print("started", grandchild.pid, flush=True)
print("still waiting", file=sys.stderr, flush=True)
time.sleep(120)
"""


def test_child_past_its_limit_fails_with_its_output_and_is_killed_with_its_children():
    start = time.monotonic()
    with pytest.raises(pytest.fail.Exception) as failure:
        run_command([sys.executable, "-c", SLEEPER], timeout=5)
    assert time.monotonic() - start < 60
    message = str(failure.value)
    assert "did not finish in 5 s" in message and "still waiting" in message
    grandchild = int(message.split("started ")[1].split()[0])
    assert not alive(grandchild)  # killed with its parent's process group


def alive(pid):
    """Running, not gone nor a zombie (a killed orphan waits for a reaper that a container may lack)."""
    time.sleep(0.5)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = f"/proc/{pid}/stat"
    return not (os.path.exists(stat) and Path(stat).read_text().rsplit(")", 1)[1].split()[0] == "Z")


def test_child_within_its_limit_returns_its_output():
    result = run_command([sys.executable, "-c", "import sys; print('out'); print('err', file=sys.stderr); sys.exit(3)"])
    assert (result.returncode, result.stdout.strip(), result.stderr.strip()) == (3, "out", "err")
