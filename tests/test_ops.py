"""What IT admins run to keep a server healthy, as real processes: `corridor check-config`
naming a bad key with its line, `corridor status DIR` on a serving server, the Prometheus
endpoint, and JSON log lines."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request

from .cli_helpers import RunningServer, employee, free_port, run


def add_config(data, text: str) -> None:
    (data / "corridor.toml").write_text((data / "corridor.toml").read_text() + "\n" + text + "\n")


def test_check_config_passes_a_good_data_dir_and_names_a_bad_key_with_its_line(served, tmp_path):
    data, _, server = served
    server.stop()
    good = run("check-config", str(data))
    assert good.returncode == 0 and "is valid" in good.stdout and "TLS files match" in good.stdout
    lines = (data / "corridor.toml").read_text().count("\n")
    add_config(data, "[limits]\nmax_frame_bytes = 1048576\nmax_frme_bytes = 10")
    bad = run("check-config", str(data))
    assert bad.returncode == 1
    assert f"corridor.toml line {lines + 4}: unknown key 'limits.max_frme_bytes'" in bad.stderr, bad.stderr
    refused = run("serve", str(data))  # the server refuses it the same way, before starting
    assert refused.returncode == 2 and "unknown key 'limits.max_frme_bytes'" in refused.stderr
    text = (data / "corridor.toml").read_text().replace("max_frme_bytes = 10", "idle_timeout = -5")
    (data / "corridor.toml").write_text(text)
    verdict = json.loads(run("check-config", str(data), "--json").stdout)
    assert not verdict["ok"] and "line" in verdict["problems"][0] and "limits.idle_timeout" in verdict["problems"][0]
    assert run("check-config", str(tmp_path / "nowhere")).returncode == 2


def test_check_config_finds_a_key_that_is_not_the_certificates(served, tmp_path):
    data, _, server = served
    server.stop()
    other = tmp_path / "other"
    assert run("init", str(other), "--org", "Other").returncode == 0
    (data / "tls" / "server.key").write_bytes((other / "tls" / "server.key").read_bytes())
    bad = run("check-config", str(data))
    assert bad.returncode == 1 and "is not the key of" in bad.stderr


def test_status_shows_a_serving_servers_health(served, tmp_path):
    data, _, _ = served
    alice = employee(data, tmp_path, "alice", "Alice")
    employee(data, tmp_path, "bob", "Bob")
    for text in ("one", "two", "three"):
        assert run("send", "bob", text, "--profile", alice).returncode == 0
    shown = run("status", str(data))
    assert shown.returncode == 0, shown.stderr
    assert "messages today   3" in shown.stdout and "certificate      expires" in shown.stdout
    status = json.loads(run("status", str(data), "--json").stdout)
    assert status["ok"] and status["messages_today"] == 3 and status["database_bytes"] > 0
    assert status["archive_entries"] >= 5 and status["warnings"] == []
    # The employee's own `corridor status show` is still there.
    assert run("status", "show", "bob", "--profile", alice).returncode == 0


def test_status_of_a_stopped_server_is_an_error(served):
    data, _, server = served
    server.stop()
    stopped = run("status", str(data))
    assert stopped.returncode == 5 and "is 'corridor serve' running?" in stopped.stderr


def test_metrics_endpoint_serves_prometheus_text_and_a_busy_port_does_not_stop_the_server(tmp_path):
    data = tmp_path / "data"
    port, metrics = free_port(), free_port()
    assert run("init", str(data), "--org", "Metrics Org", "--listen", f"127.0.0.1:{port}").returncode == 0
    add_config(data, f'[metrics]\nlisten = "127.0.0.1:{metrics}"')
    server = RunningServer(data, "--no-advertise")
    try:
        body = urllib.request.urlopen(f"http://127.0.0.1:{metrics}/metrics", timeout=10).read().decode()
        values = dict(line.rsplit(" ", 1) for line in body.splitlines() if not line.startswith("#"))
        assert values["corridor_archive_entries"] == "1" and float(values["corridor_certificate_expiry_seconds"]) > 86400
        assert values['corridor_info{version="0.1.0"}'] == "1"
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{metrics}/other", timeout=10)
        except urllib.error.HTTPError as exc:
            assert exc.code == 404
        else:
            raise AssertionError("/other answered")
    finally:
        assert server.stop() == 0
    with socket.socket() as busy:
        busy.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        busy.bind(("127.0.0.1", metrics))
        busy.listen()
        server = RunningServer(data, "--no-advertise", "--log-format", "json")
        try:
            assert run("status", str(data)).returncode == 0  # serving without metrics
        finally:
            assert server.stop() == 0
        logged = [json.loads(line) for line in server.log().splitlines()]
    assert any(e["logger"] == "corridor.metrics" and "cannot listen" in e["message"] for e in logged)
    assert all({"ts", "level", "logger", "message"} <= set(e) for e in logged)


def test_a_bad_metrics_address_is_a_config_error(served):
    data, _, server = served
    server.stop()
    add_config(data, '[metrics]\nlisten = "localhost"')
    bad = run("check-config", str(data))
    assert bad.returncode == 1 and "metrics.listen" in bad.stderr
