"""The integrations stay optional: importing edgeseg, and the modules the CLI loads for `batch` and `serve`, never
imports Ray (with or without it installed)."""

from __future__ import annotations

import subprocess
import sys


def test_import_edgeseg_and_the_cli_commands_does_not_import_ray():
    code = ("import sys, argparse, edgeseg, edgeseg.app.cli, edgeseg.integrations, edgeseg.integrations.ray, "
            "edgeseg.integrations.serve; "
            "sub = argparse.ArgumentParser().add_subparsers(); "
            "edgeseg.integrations.ray.add_command(sub); edgeseg.integrations.serve.add_command(sub); "
            "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('ray', 'pyarrow', 'starlette')); "
            "assert not heavy, heavy")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
