"""Running the `corridor` command as users do: real processes against a real `corridor serve`."""

import json
import signal
import socket
import subprocess
import sys
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
    def __init__(self, data: Path, *extra: str):
        self.process = subprocess.Popen(
            [CORRIDOR, "serve", str(data), *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        self.ready = self.process.stdout.readline()
        assert "serving" in self.ready, self.process.stderr.read()

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=20)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
