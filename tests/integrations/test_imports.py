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


def test_the_commands_are_wired_into_edgeseg(tmp_path):
    """`edgeseg batch`, `serve` and `serve-triton` reach their modules; a bad run is a one-line error, exit 1,
    before Ray or Triton start."""
    from tests.helpers.common import edgeseg_cli

    for command, option in (("batch", "--engine"), ("serve", "--replicas"), ("serve-triton", "--max-batch-size")):
        done = edgeseg_cli(command, "--help")
        assert done.returncode == 0 and option in done.stdout, (command, done.stderr)
    done = edgeseg_cli("batch", "--engine", "ray", "--source", tmp_path / "missing", "--out", tmp_path / "out")
    assert done.returncode == 1 and done.stderr.startswith("edgeseg: error:") and len(done.stderr.splitlines()) == 1
    assert not (tmp_path / "out").exists()
