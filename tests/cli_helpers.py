"""Running the `corridor` command as users do: real processes against a real `corridor serve`."""

import json
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CORRIDOR = str(Path(sys.executable).parent / "corridor")


def run(*args: str, stdin: str | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([CORRIDOR, *args], input=stdin, capture_output=True, text=True, timeout=timeout)


def admin(data: Path, *args: str) -> dict:
    """`corridor admin --data DATA ARGS… --json`, which must succeed; its JSON result."""
    result = run("admin", "--data", str(data), *args, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def employee(data: Path, tmp_path: Path, user: str, name: str) -> str:
    """A new account with an enrolled profile; returns the profile dir."""
    invite = admin(data, "user", "add", user, "--name", name)["invite"]
    profile = str(tmp_path / f"profile-{user}")
    enrolled = run("enroll", invite, "--password-stdin", "--profile", profile, stdin="long-enough-pw\n")
    assert enrolled.returncode == 0, enrolled.stderr
    return profile


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RunningServer:
    """`corridor serve DATA EXTRA…` as a real process, started and ready to serve.

    Its output goes to files, never to pipes nobody reads: a server that logs more than a pipe
    holds (64 KiB) would block in its logger and hang the test instead of failing it.
    """

    def __init__(self, data: Path, *extra: str, ready_within: float = 60):
        self._output = tempfile.TemporaryDirectory(prefix="corridor-serve-")
        self._stdout = Path(self._output.name) / "stdout"
        self._stderr = Path(self._output.name) / "stderr"
        with open(self._stdout, "wb") as out, open(self._stderr, "wb") as err:
            self.process = subprocess.Popen([CORRIDOR, "serve", str(data), *extra], stdout=out, stderr=err)
        deadline = time.monotonic() + ready_within
        while "\n" not in self.output() and self.process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        self.ready = self.output().partition("\n")[0]
        if "serving" not in self.ready:
            self.kill()
            raise AssertionError(f"the server did not start: {self.ready!r}\n{self.log()}")

    def output(self) -> str:
        """What the server printed on stdout so far."""
        return self._stdout.read_text(errors="replace")

    def log(self) -> str:
        """What the server logged on stderr so far."""
        return self._stderr.read_text(errors="replace")

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=20)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
