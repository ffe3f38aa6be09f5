"""The atheris target `tests/fuzz/atheris_frames.py`, run without atheris (hypothesis and the seed
corpus feed it), so CI exercises it everywhere; and a short real atheris run where it is installed."""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from corridor.protocol.errors import RequestError
from corridor.protocol.invites import Invite
from corridor.protocol.messages import REQUESTS

from .fuzz.atheris_frames import TARGETS, FuzzBug, _check_message, _serve, fuzz_one, seed_inputs

SCRIPT = Path(__file__).parent / "fuzz" / "atheris_frames.py"
SEEDS = seed_inputs()


def test_every_seed_runs_clean_and_reaches_its_request_type():
    """The seeds are what the campaign starts from: each request type's frame must get through
    framing and validation, or the fuzzer would start outside every handler's decoder."""
    for data in SEEDS:
        fuzz_one(data)
    reached = set()
    for data in SEEDS:
        if data[0] == TARGETS.index("stream"):
            for entry in _serve(data[2:], 1024 * 1024, []):
                if entry[0] == "request":
                    reached.add(type(entry[2]).TYPE)
    assert reached == set(REQUESTS)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.sampled_from(SEEDS), st.integers(min_value=0, max_value=4096), st.binary(max_size=64), st.integers(0, 8))
def test_mutated_seeds_break_no_property(data, at, insert, cut):
    """Seeds with bytes spliced in and cut out, much as libFuzzer mutates them."""
    at %= len(data) + 1
    fuzz_one(data[:at] + insert + data[at + cut :])


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.integers(0, len(TARGETS) - 1), st.binary(max_size=2000))
def test_random_inputs_break_no_property(target, data):
    fuzz_one(bytes([target]) + data)


def test_the_oracles_bite(monkeypatch):
    """Each property the target checks fails on a protocol that breaks it."""
    with pytest.raises(FuzzBug):  # an error quoting 600 characters of the peer's input
        _check_message(RequestError("unknown request type '" + "t" * 600 + "'"))
    invite = next(data for data in SEEDS if data[0] == TARGETS.index("invite"))
    fuzz_one(invite)
    monkeypatch.setattr(
        Invite, "__str__", lambda self: f"corridor://{self.host}:{self.port + 1}/enroll?token=x&ca=sha256:{self.ca_sha256}"
    )
    with pytest.raises(FuzzBug):  # an invite that prints as another one
        fuzz_one(invite)


def test_a_short_atheris_campaign_runs_and_counts_its_inputs(tmp_path):
    """The script as a real libFuzzer campaign: instrumented, fed its seeds, stopping by itself."""
    if importlib.util.find_spec("atheris") is None:
        if os.environ.get("CI"):
            pytest.fail("atheris is in the test extra but not installed")
        pytest.skip("atheris is not installed (pip install atheris): the campaign itself is not run")
    run = subprocess.run(
        [sys.executable, str(SCRIPT), "-atheris_runs=3000", f"-artifact_prefix={tmp_path}/"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert "Done 3000 in" in run.stderr or "Done 3000 runs in" in run.stderr, run.stderr[-2000:]
    assert not list(tmp_path.glob("crash-*"))
