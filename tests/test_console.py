"""The web console as IT admins and auditors use it: a real `corridor serve` with its HTTP
component, people and messages made with the `corridor` command, and the pages driven in Debian's
chromium with Playwright (one browser for the module). The refusals — a plain user, a POST
without the CSRF token or from another origin, an expired session — are checked with raw HTTPS
requests, which is how an attacker would send them."""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import os
import re
import shutil
import ssl
import time
import urllib.parse
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from .cli_helpers import RunningServer, admin, employee, free_port, run

playwright = pytest.importorskip("playwright.sync_api")

ROOT = Path(__file__).resolve().parent.parent
CONSOLE = ROOT / "server" / "http" / "console"
CHROMIUM = "/usr/bin/chromium"
WAIT_MS = 15_000
PASSWORD = "long-enough-pw"


def enroll(invite: str, profile: Path) -> None:
    enrolled = run("enroll", invite, "--password-stdin", "--profile", str(profile), stdin=PASSWORD + "\n")
    assert enrolled.returncode == 0, enrolled.stderr


def serve(tmp: Path, *config: str) -> tuple[RunningServer, Path, int]:
    """An initialised data dir (with extra `config` lines) served with the HTTP component."""
    data, port, http_port = tmp / "data", free_port(), free_port()
    init = run("init", str(data), "--org", "控制台测试", "--listen", f"127.0.0.1:{port}", "--json")
    assert init.returncode == 0, init.stderr
    if config:
        with (data / "corridor.toml").open("a") as file:
            file.write("\n" + "\n".join(config) + "\n")
    return RunningServer(data, "--no-advertise", "--http-listen", f"127.0.0.1:{http_port}"), data, http_port


def staff(data: Path, tmp: Path, username: str, name: str, role: str) -> None:
    """An enrolled account with a password (what the console's sign-in checks)."""
    enroll(admin(data, "user", "add", username, "--name", name, "--role", role)["invite"], tmp / f"profile-{username}")


@pytest.fixture(scope="module")
def office(tmp_path_factory):
    """A served organisation: 研发部 (department 1) with 张伟 (alice) and 李娜 (bob), who have
    talked about a reimbursement; an IT admin and an auditor."""
    tmp = tmp_path_factory.mktemp("console")
    server, data, port = serve(tmp)
    try:
        admin(data, "department", "add", "研发部")
        admin(data, "department", "add", "财务部")
        profiles = {user: employee(data, tmp, user, name) for user, name in (("alice", "张伟"), ("bob", "李娜"))}
        for user in profiles:
            admin(data, "user", "set", user, "--department", "1")
        staff(data, tmp, "itadmin", "王强", "admin")
        staff(data, tmp, "audrey", "审计员刘芳", "auditor")
        for sender, to, text in (
            ("alice", "bob", "明天上午十点开会，讨论下个季度的预算"),  # noqa: RUF001 (Chinese punctuation)
            ("bob", "alice", "好的。另外我的差旅报销审批还没通过，能帮忙催一下吗？"),  # noqa: RUF001
            ("alice", "bob", "我下午去财务部问一下"),
        ):
            sent = run("send", to, text, "--profile", profiles[sender])
            assert sent.returncode == 0, sent.stderr
        yield {"data": data, "port": port, "server": server, "tmp": tmp, **profiles}
    finally:
        server.kill()


def spki_pin(certificate: Path) -> str:
    """The base64 SHA-256 of a certificate's public key, as chromium's pin list takes it."""
    cert = x509.load_pem_x509_certificate(certificate.read_bytes())
    spki = cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(spki).digest()).decode()


@pytest.fixture(scope="module")
def browser(office):
    """Chromium that trusts only this server's key. Headless chromium has no flag to trust a
    private CA without a certificate database tool, so it is pinned to the server certificate's
    key instead (any other certificate still fails); `test_tls_is_1_3_with_the_organisations_ca`
    checks the chain to the CA with Python's ssl."""
    with playwright.sync_playwright() as p:
        pin = spki_pin(office["data"] / "tls" / "server.pem")
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[f"--ignore-certificate-errors-spki-list={pin}"])
        try:
            yield browser
        finally:
            browser.close()


def base(office) -> str:
    return f"https://127.0.0.1:{office['port']}"


def sign_in(page, office, username: str) -> None:
    page.goto(base(office) + "/console/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    with page.expect_navigation():
        page.click("form[action='/console/signin'] button[type=submit]")


def assert_self_contained(html: str, port: int) -> None:
    """Nothing on the page points to another host (nothing may leave the premises)."""
    for url in re.findall(r"https?://[^\s\"'<>]+", html):
        assert urllib.parse.urlsplit(url).netloc == f"127.0.0.1:{port}", url


def screenshot(page, name: str) -> None:
    """Saved into $CORRIDOR_SCREENSHOTS (docs/images) when set: how the committed pictures are
    made. Written here rather than by Playwright, whose file writes start a worker thread that
    outlives the test."""
    folder = os.environ.get("CORRIDOR_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        (Path(folder) / name).write_bytes(page.screenshot(full_page=True))


def new_page(browser, office, locale: str = "en-US"):
    context = browser.new_context(locale=locale, ignore_https_errors=False, accept_downloads=True)
    context.set_default_timeout(WAIT_MS)
    return context, context.new_page()


def test_admin_creates_a_user_in_a_department_and_the_invite_enrolls(browser, office):
    context, page = new_page(browser, office)
    try:
        answer = page.goto(base(office) + "/console/signin")
        headers = answer.headers
        assert headers["content-security-policy"].startswith("default-src 'self'")
        assert (headers["x-frame-options"], headers["referrer-policy"], headers["cache-control"]) == (
            "DENY",
            "no-referrer",
            "no-store",
        )
        sign_in(page, office, "itadmin")
        assert page.url.endswith("/console/status"), page.inner_text("main")
        assert "控制台测试" in page.inner_text("h1")
        [cookie] = [c for c in context.cookies() if c["name"] == "corridor_console"]
        assert (cookie["secure"], cookie["httpOnly"], cookie["sameSite"], cookie["path"]) == (True, True, "Strict", "/console")

        page.click("nav >> text=People")
        page.click("aside >> text=研发部")
        assert "张伟" in page.inner_text("table") and "李娜" in page.inner_text("table")
        page.fill("#add-user input[name=username]", "carol")
        page.fill("#add-user input[name=display_name]", "陈静")
        page.select_option("#add-user select[name=department]", label="研发部")
        page.click("#add-user button[type=submit]")
        invite = page.input_value("textarea#invite")
        assert invite.startswith("corridor://127.0.0.1:")
        assert_self_contained(page.content(), office["port"])
        enroll(invite, office["tmp"] / "profile-carol")

        page.goto(base(office) + "/console/users?department=1")
        assert "陈静" in page.inner_text("table")
        screenshot(page, "console-admin.png")
        for path in ("/console/policies", "/console/integrations", "/console/admin-log", "/console/audit-log"):
            assert page.goto(base(office) + path).status == 200, path
            assert_self_contained(page.content(), office["port"])
        assert page.goto(base(office) + "/console/audit").status == 403  # admins do not read the archive
    finally:
        context.close()


def test_auditor_searches_chinese_opens_the_hit_and_exports_a_file_that_verifies(browser, office):
    context, page = new_page(browser, office, locale="zh-CN")
    try:
        page.goto(base(office) + "/console/")
        assert page.inner_text("h1") == "登录"  # the browser asked for Chinese
        sign_in(page, office, "audrey")
        assert page.url.endswith("/console/audit")
        page.fill("#search input[name=q]", "报销审批")
        page.click("#search button[type=submit]")
        hits = page.locator("ol.hits a.hit")
        assert hits.count() == 1 and "报销审批" in hits.first.inner_text()
        hits.first.click()
        page.wait_for_selector("ol.thread")
        thread = page.inner_text("ol.thread")
        assert "预算" in thread and "报销审批" in thread and "财务部" in thread  # the neighbours, in order
        assert thread.index("预算") < thread.index("报销审批") < thread.index("财务部")
        assert "报销审批" in page.inner_text("ol.thread li.here")
        assert_self_contained(page.content(), office["port"])
        screenshot(page, "console-auditor.png")

        page.go_back()
        with page.expect_download(timeout=WAIT_MS) as download:
            page.click("#export")
        exported = office["tmp"] / "console-export.jsonl"
        shutil.copyfile(download.value.path(), exported)  # not save_as: see screenshot()
        checked = run("audit", "verify", str(exported), "--public-key", str(office["data"] / "tls" / "archive.pub"))
        assert checked.returncode == 0, checked.stdout + checked.stderr
        lines = [json.loads(line) for line in exported.read_text(encoding="utf-8").splitlines()]
        assert lines[0]["type"] == "manifest" and lines[0]["exporter"] == "audrey"
        assert any("报销审批" in line.get("text", "") for line in lines[1:])

        page.goto(base(office) + "/console/audit/verify")
        page.click("#verify-now")
        assert "完整" in page.inner_text("#verdict")
        page.goto(base(office) + "/console/audit-log")
        queries = page.inner_text("table")
        assert "audit_search" in queries and "audit_export" in queries and "报销审批" in queries
        assert page.goto(base(office) + "/console/users").status == 403  # auditors do not manage people
    finally:
        context.close()


def test_a_plain_user_is_refused_the_console(browser, office):
    context, page = new_page(browser, office)
    try:
        sign_in(page, office, "alice")
        assert "The console is for IT admins and auditors" in page.inner_text("main")
        assert not [c for c in context.cookies() if c["name"] == "corridor_console"]
        assert page.goto(base(office) + "/console/status").url.endswith("/console/signin?next=/console/status")
    finally:
        context.close()


class Raw:
    """HTTPS requests by hand, verified against the organisation's CA, keeping cookies."""

    def __init__(self, data: Path, port: int):
        self.port, self.cookies = port, {}
        self.context = ssl.create_default_context(cafile=str(data / "tls" / "ca.pem"))

    def request(self, method: str, path: str, form: dict | None = None, headers: dict | None = None):
        connection = http.client.HTTPSConnection("127.0.0.1", self.port, context=self.context, timeout=15)
        sent = {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items()), **(headers or {})}
        body = urllib.parse.urlencode(form).encode() if form is not None else None
        if body is not None:
            sent["Content-Type"] = "application/x-www-form-urlencoded"
        try:
            connection.request(method, path, body=body, headers=sent)
            response = connection.getresponse()
            for header, value in response.getheaders():
                if header.lower() == "set-cookie":
                    name, _, rest = value.partition("=")
                    self.cookies[name] = rest.split(";", 1)[0]
            return response.status, dict(response.getheaders()), response.read().decode()
        finally:
            connection.close()

    def sign_in(self, username: str) -> str:
        """Sign in as a browser would; returns the CSRF token of the first page."""
        _, _, form = self.request("GET", "/console/signin")
        token = re.search(r'name="csrf" value="([^"]+)"', form).group(1)
        status, _, _ = self.request("POST", "/console/signin", {"csrf": token, "username": username, "password": PASSWORD})
        assert status == 303, status
        status, _, page = self.request("GET", "/console/users")
        return re.search(r'name="csrf" value="([^"]+)"', page).group(1)


def test_tls_is_1_3_with_the_organisations_ca(office):
    context = ssl.create_default_context(cafile=str(office["data"] / "tls" / "ca.pem"))
    connection = http.client.HTTPSConnection("127.0.0.1", office["port"], context=context, timeout=15)
    try:
        connection.request("GET", "/console/signin")
        assert connection.getresponse().status == 200
        assert connection.sock.version() == "TLSv1.3"
    finally:
        connection.close()


def test_posts_without_the_csrf_token_or_from_another_origin_change_nothing(office):
    raw = Raw(office["data"], office["port"])
    token = raw.sign_in("itadmin")
    forged = {"username": "mallory", "display_name": "Mallory"}
    status, _, page = raw.request("POST", "/console/users", forged)
    assert status == 403 and "not sent from this console" in page
    status, _, _ = raw.request("POST", "/console/users", {**forged, "csrf": "guess"})
    assert status == 403
    status, _, _ = raw.request("POST", "/console/users", {**forged, "csrf": token}, {"Origin": "https://evil.example"})
    assert status == 403
    cross_site = {"Origin": "null", "Sec-Fetch-Site": "cross-site"}  # a sandboxed or no-referrer page elsewhere
    status, _, _ = raw.request("POST", "/console/users", {**forged, "csrf": token}, cross_site)
    assert status == 403
    status, _, people = raw.request("GET", "/console/users")
    assert status == 200 and "mallory" not in people
    # The same form with the token and from this origin does work: the refusals were the checks.
    origin = f"https://127.0.0.1:{office['port']}"
    status, _, page = raw.request("POST", "/console/users", {**forged, "csrf": token}, {"Origin": origin})
    assert status == 200 and "corridor://" in page


def test_an_expired_session_is_refused(tmp_path):
    # console_idle_minutes = 0.02: a session unused for 1.2 s ends (30 minutes in production,
    # which limits what a browser left signed in on an unattended desk can do).
    server, data, port = serve(tmp_path, "[http]", "console_idle_minutes = 0.02")
    try:
        staff(data, tmp_path, "itadmin", "王强", "admin")
        raw = Raw(data, port)
        token = raw.sign_in("itadmin")
        assert raw.request("GET", "/console/status")[0] == 200
        time.sleep(1.5)
        status, headers, _ = raw.request("GET", "/console/status")
        assert status == 303 and headers["location"].startswith("/console/signin")
        status, _, page = raw.request("POST", "/console/users", {"csrf": token, "username": "late", "display_name": "Late"})
        assert status == 403 and "session has ended" in page
    finally:
        server.kill()


def test_every_string_the_console_shows_has_a_chinese_translation():
    catalog = json.loads((CONSOLE / "zh.json").read_text(encoding="utf-8"))
    sources = [*CONSOLE.glob("templates/*.html"), *CONSOLE.glob("*.py")]
    used = {
        text
        for source in sources
        for double, single in re.findall(r"""_\(\s*(?:"([^"]+)"|'([^']+)')""", source.read_text(encoding="utf-8"))
        for text in (double or single,)
    }
    assert len(used) > 100
    assert sorted(used - catalog.keys()) == []
    assert sorted(catalog.keys() - used) == []  # no stale entries either
