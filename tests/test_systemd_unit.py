"""docs/ipytwist.service: the unit the README tells users to install.

systemd itself parses it (``systemd-analyze verify``: any warning fails), the
command it runs is one ``twistd ipytwist`` accepts, and it keeps the settings
that make a restart keep kernels.
"""

from __future__ import annotations

import configparser
import shlex
import subprocess
from pathlib import Path

from ipytwist.tap import Options

UNIT = Path(__file__).resolve().parent.parent / "docs" / "ipytwist.service"


def _service() -> configparser.SectionProxy:
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keys keep their case
    parser.read_string(UNIT.read_text())
    return parser["Service"]


def test_systemd_parses_the_unit_without_a_warning() -> None:
    done = subprocess.run(
        ["systemd-analyze", "verify", str(UNIT)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""


def test_the_unit_runs_options_that_ipytwist_accepts(tmp_path: Path) -> None:
    argv = shlex.split(_service()["ExecStart"])
    assert argv[:2] == ["/usr/bin/env", "twistd"]
    assert "--nodaemon" in argv and "--pidfile=" in argv  # systemd supervises, no pid file
    options = Options()
    options.parseOptions([*argv[argv.index("ipytwist") + 1 :], "--state-dir", str(tmp_path)])
    assert options["keep-kernels"]
    assert options["orphan-timeout"] == 3600


def test_stopping_the_unit_signals_twistd_alone_and_an_oom_kill_does_not_stop_it() -> None:
    service = _service()
    # control-group (the default) or mixed would kill every keeper and interpreter.
    assert service["KillMode"] == "process"
    # stop (the default) would stop the service when one user's cell is OOM-killed.
    assert service["OOMPolicy"] == "continue"
    assert service["UMask"] == "0077"
