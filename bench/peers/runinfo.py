"""Facts about the machine and the checkout, recorded with every peer benchmark."""
from __future__ import annotations

import platform
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo), or platform.processor()."""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def git(*cmd) -> str:
    """stdout of ``git -C <repo root> cmd...``, stripped."""
    return subprocess.run(["git", "-C", str(ROOT), *cmd], capture_output=True,
                          text=True).stdout.strip()
