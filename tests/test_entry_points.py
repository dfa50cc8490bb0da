"""Command-line entry points: install-kernel, a terminal client, an orphaned kernel."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pexpect

from ipytwist import kernelspec


def run_install(*args: str, env: dict[str, str] | None = None) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "ipytwist", "install-kernel", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=True,
    )
    return out.stdout


def test_install_kernel_prefix_writes_a_launchable_spec(tmp_path: Path) -> None:
    """--prefix DIR --name NAME writes DIR/share/jupyter/kernels/NAME/kernel.json launching
    this interpreter's ipytwist.kernel with signal interrupts."""
    run_install("--prefix", str(tmp_path), "--name", "twisty")
    spec = json.loads((tmp_path / "share/jupyter/kernels/twisty/kernel.json").read_text())
    assert spec["argv"] == [sys.executable, "-m", "ipytwist.kernel", "-f", "{connection_file}"]
    assert spec["display_name"] == "Python 3 (ipytwist)"
    assert spec["interrupt_mode"] == "signal"
    assert spec["language"] == "python"


def test_install_kernel_user_goes_to_the_jupyter_data_dir(tmp_path: Path) -> None:
    """--user installs the spec named ipytwist under the user's Jupyter data directory."""
    env = {**os.environ, "JUPYTER_DATA_DIR": str(tmp_path)}
    run_install("--user", env=env)
    assert (tmp_path / "kernels/ipytwist/kernel.json").exists()


def test_sys_prefix_is_the_default_location() -> None:
    """Without --user or --prefix the spec goes under sys.prefix, as --sys-prefix does."""
    expected = os.path.join(sys.prefix, "share", "jupyter", "kernels")
    assert kernelspec.kernels_dir() == expected


def test_jupyter_console_runs_code_on_an_installed_ipytwist(tmp_path: Path) -> None:
    """`jupyter console --kernel ipytwist` with a spec from install-kernel: code runs, output
    shows, and leaving the console leaves no kernel behind."""
    run_install("--prefix", str(tmp_path), "--name", "ipytwist")
    env = {
        **os.environ,
        "JUPYTER_PATH": str(tmp_path / "share/jupyter"),
        "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
        "JUPYTER_CONFIG_DIR": str(tmp_path / "config"),
    }
    child = pexpect.spawn(
        "jupyter",
        ["console", "--kernel", "ipytwist", "--simple-prompt"],
        env=env,
        encoding="utf-8",
        timeout=60,
    )
    try:
        child.expect(r"In \[1\]: ")
        child.sendline("print(6 * 7)")
        child.expect("42")
        child.expect(r"In \[2\]: ")
        child.sendline("import os; os.getppid()")
        child.expect(r"Out\[2\]: (\d+)")
        kernel_pid = int(child.match.group(1))
        child.expect(r"In \[3\]: ")
        child.sendline("exit")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    assert _gone_within(kernel_pid, 15)


def _gone_within(pid: int, timeout: float) -> bool:
    """Wait (on a pidfd, an event) until ``pid`` has exited; False on timeout."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        ready, _, _ = select.select([fd], [], [], timeout)
        return bool(ready) or not _alive(pid)
    finally:
        os.close(fd)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False


def test_kernel_whose_client_is_killed_shuts_down(tmp_path: Path) -> None:
    """A kernel started by a Jupyter client (JPY_PARENT_PID set) ends, with its worker,
    when that client is killed outright."""
    script = tmp_path / "client.py"
    pids = tmp_path / "pids.json"
    script.write_text(
        "import json, sys\n"
        "from jupyter_client.manager import KernelManager\n"
        "km = KernelManager(kernel_name='ipytwist')\n"
        "km.start_kernel()\n"
        "kc = km.client(); kc.start_channels(); kc.wait_for_ready(timeout=30)\n"
        "r = kc.execute_interactive('import os; print(os.getpid())', timeout=30,\n"
        "    output_hook=lambda m: m['msg_type'] == 'stream' and print(m['content']['text'],\n"
        "    end='', file=sys.stderr))\n"
        f"open({str(pids)!r}, 'w').write(json.dumps(km.provisioner.process.pid))\n"
        "sys.stdout.write('ready\\n'); sys.stdout.flush()\n"
        "sys.stdin.read()\n"
    )
    worker_log = tmp_path / "client.err"
    with open(worker_log, "w") as err:
        client = subprocess.Popen(
            [sys.executable, str(script)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
        )
    try:
        assert client.stdout is not None
        assert client.stdout.readline().strip() == "ready"
        kernel_pid = json.loads(pids.read_text())
        worker_pid = int(worker_log.read_text().split()[-1])
        assert _alive(kernel_pid) and _alive(worker_pid)
        client.send_signal(signal.SIGKILL)
        client.wait(timeout=10)
        assert _gone_within(kernel_pid, 15)
        assert _gone_within(worker_pid, 15)
    finally:
        if client.poll() is None:
            client.kill()
        _kill_quietly(locals().get("kernel_pid"))


def _kill_quietly(pid: Any) -> None:
    if isinstance(pid, int):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_the_kernels_rooms_load_no_tls_stack() -> None:
    """The kernel, its debugger included, imports no TLS library: Twisted's endpoints
    pull in cryptography (14 MiB of every kernel process) and are imported only when a
    debugger session connects.  (The standalone kernel keeps the ZeroMQ room's from
    loading pyOpenSSL by itself.)"""
    code = (
        "import sys, ipytwist.kernel.core, ipytwist.kernel.debugger;"
        "print(sorted(m for m in ('cryptography', 'OpenSSL', 'twisted.internet.endpoints')"
        " if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout
