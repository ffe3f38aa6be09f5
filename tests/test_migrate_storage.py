"""`corridor migrate-storage` as IT admins run it: an organisation made with the real CLI on a
running `corridor serve`, copied into a real PostgreSQL database (tests/pg.py), and checked there
table by table; an older, stopped data dir; and what is refused with nothing changed."""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

from corridor.server import migrate_storage, migrate_storage_cli
from corridor.server.app import MIGRATIONS
from corridor.server.features.archive.checkpoints import PUBLIC_KEY, load_public_key
from corridor.server.features.archive.text import token_line
from corridor.server.features.archive.verify import verify_chain
from corridor.server.storage.migrations import apply_migrations
from corridor.server.storage.postgres import Connection, PostgresDatabase

from .cli_helpers import RunningServer, admin, employee, free_port, run
from .pg import pg_dsn_fixture, postgres_cluster_fixture  # noqa: F401

OLD_DATA_DIR = Path(__file__).parent / "fixtures" / "datadir-0.1.0" / "data"
INDEX_BEHIND = "SELECT (SELECT indexed_through FROM archive_index_state) < (SELECT max(seq) FROM archive)"
MESSAGES = (("alice", "bob", "请把合同发我"), ("bob", "alice", "The contract is attached"), ("alice", "carol", "hi"))


def url(conninfo: str, password: str = "") -> str:
    """The test database's conninfo as the postgresql:// URL the command takes."""
    parts = conninfo_to_dict(conninfo)
    secret = f":{password}" if password else ""
    return f"postgresql://{parts['user']}{secret}@{parts['host']}:{parts['port']}/{parts['dbname']}"


@contextmanager
def live(data: Path) -> Iterator[sqlite3.Connection]:
    """The data dir's database, read-only (its server may be running)."""
    conn = sqlite3.connect(f"file:{data / 'corridor.sqlite'}?mode=ro", uri=True)
    try:
        yield conn
    finally:
        conn.close()


def counts(conn, tables) -> dict[str, int]:
    return {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in tables}


def in_process(capsys, *args: str) -> tuple[int, str]:
    """`corridor migrate-storage ARGS…` run in this process: its exit code and stderr."""
    try:
        code = migrate_storage_cli.main(list(args))
    except SystemExit as exit:  # argparse's usage errors
        code = exit.code
    return code, capsys.readouterr().err


def old_data_dir(tmp_path: Path) -> Path:
    """A copy of the data dir Corridor 0.1.0 left (tests/fixtures), server stopped."""
    data = tmp_path / "old"
    shutil.copytree(OLD_DATA_DIR, data)
    return data


@pytest.fixture(scope="module")
def organisation(tmp_path_factory):
    """A data dir made with the real CLI, its server still running: a department, three enrolled
    people, direct and group messages (Chinese among them), a notice, a file, admin changes.
    Yields the data dir and each person's profile."""
    tmp = tmp_path_factory.mktemp("org")
    data = tmp / "data"
    init = run("init", str(data), "--org", "Migrating Ltd", "--listen", f"127.0.0.1:{free_port()}", "--json")
    assert init.returncode == 0, init.stderr
    server = RunningServer(data, "--no-advertise")
    try:
        sales = admin(data, "department", "add", "Sales")["id"]
        people = {name: employee(data, tmp, name, name.title()) for name in ("alice", "bob", "carol")}
        admin(data, "user", "set", "alice", "--department", str(sales), "--title", "Lead")
        admin(data, "policy", "set", "broadcast", "--allow", "user:alice")
        for sender, to, text in MESSAGES:
            assert run("send", to, text, "--profile", people[sender]).returncode == 0
        group = run("group", "create", "Launch", "--member", "bob", "--member", "carol", "--json", "--profile", people["alice"])
        assert group.returncode == 0, group.stderr
        assert run("group", "send", "Launch", "发布会在周五", "--profile", people["bob"]).returncode == 0
        assert run("notice", "send", "Office move", "Monday", "--everyone", "--profile", people["alice"]).returncode == 0
        report = tmp / "report.txt"
        report.write_text("quarterly numbers\n" * 50)
        assert run("file", "send", "bob", str(report), "--profile", people["alice"]).returncode == 0
        deadline = time.monotonic() + 10  # the search index follows appends within a second (archive/indexer.py)
        with live(data) as conn:
            while conn.execute(INDEX_BEHIND).fetchone()[0]:
                assert time.monotonic() < deadline, "the archive's search index did not catch up"
                time.sleep(0.05)
        yield data, people
    finally:
        server.kill()


def test_a_running_servers_organisation_reaches_postgresql_whole_and_verified(organisation, pg_dsn):
    data, _ = organisation
    started = time.monotonic()
    done = run("migrate-storage", str(data), "--to", url(pg_dsn), "--json")
    seconds = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    assert f"a server is running on {data}" in done.stderr and "stop the server first" in done.stderr
    report = json.loads(done.stdout)
    assert report["ok"] and report["server_running"] and report["source"] == str(data)
    assert report["dsn"] == url(pg_dsn) and not report["password_left_out"]
    assert "schema_migrations" in report["skipped"] and "archive_text_data" in report["skipped"]
    assert "archive_text" in report["tables"] and "directory_log" in report["tables"]
    assert not list(data.glob(".migrate-storage-*"))  # the snapshot is gone

    pg = Connection(pg_dsn)
    with live(data) as sqlite:
        # The server wrote nothing since, but for a checkpoint it may sign (once a minute at most).
        quiet = [t for t in report["tables"] if t != "archive_checkpoints"]
        assert counts(pg, report["tables"]) == report["tables"]
        assert counts(sqlite, quiet) == {t: report["tables"][t] for t in quiet}
        assert min(report["tables"][t] for t in ("users", "messages", "groups", "notices", "files", "departments")) > 0
        for query in (
            "SELECT id, kind, direct_key, last_seq FROM conversations ORDER BY id",
            "SELECT conversation_id, seq, sender_id, msg_id, text, ts FROM messages ORDER BY conversation_id, seq",
            "SELECT version, kind, entity_id FROM directory_log ORDER BY version",
            "SELECT id, username, active, bot, created_at FROM users ORDER BY id",
            "SELECT id, user_id, token_hash FROM devices ORDER BY id",
            "SELECT seq, hash FROM archive ORDER BY seq",
        ):
            assert pg.execute(query).fetchall() == sqlite.execute(query).fetchall(), query
        indexed = dict(sqlite.execute("SELECT rowid, body FROM archive_text").fetchall())
        assert dict(pg.execute("SELECT seq, body FROM archive_text").fetchall()) == {s: token_line(b) for s, b in indexed.items()}
        assert pg.execute("SELECT count(*) FROM archive_text WHERE body LIKE '% 合 同 %'").fetchone()[0] == 1
        verdict = verify_chain(pg, load_public_key(data / PUBLIC_KEY))
        (head,) = sqlite.execute("SELECT max(seq) FROM archive").fetchone()
        assert verdict.intact and verdict.verified == report["archive_entries"] == head

        # New rows get fresh ids: every identity sequence moved past the copied ids.
        (user,) = pg.execute(
            "INSERT INTO users (username, display_name, role, created_at) VALUES ('dave', 'Dave', 'user', 1) RETURNING id"
        ).fetchone()
        (department,) = pg.execute("INSERT INTO departments (name, created_at) VALUES ('Ops', 1) RETURNING id").fetchone()
        assert user == report["next_ids"]["users.id"] == counts(sqlite, ["users"])["users"] + 1
        assert department == report["next_ids"]["departments.id"] == 2
        assert "conversations.id" in report["next_ids"] and "notices.id" in report["next_ids"]

    before = counts(pg, report["tables"])
    again = run("migrate-storage", str(data), "--to", url(pg_dsn), "--json")
    assert again.returncode == 2 and again.stdout == ""
    assert "already holds Corridor data (in users" in again.stderr and "nothing was changed" in again.stderr
    assert counts(pg, report["tables"]) == before
    pg.close()
    print(f"\nmigrated {report['rows']} rows of a running server in {seconds:.2f} s (the command itself: {report['seconds']} s)")


def test_the_words_say_how_to_switch_and_a_server_switched_so_carries_on(organisation, pg_dsn, tmp_path):
    data, people = organisation
    target = PostgresDatabase(pg_dsn, readers=0)
    apply_migrations(target, MIGRATIONS)  # a schema without data is no obstacle
    target.close()
    done = run("migrate-storage", str(data), "--to", url(pg_dsn, password="not-needed") + "?sslmode=disable")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith(f"copied {data} (snapshot of ") and " tables, in " in lines[0]
    assert lines[1].startswith("verified: row counts and conversation sequences match; archive intact, ")
    assert "Writes made after the snapshot are not copied" in done.stdout
    storage = f'[storage]\nbackend = "postgresql"\ndsn = "{url(pg_dsn)}?sslmode=disable"\n'
    assert storage in done.stdout and "the password is left out" in done.stdout

    # The cut-over: the data dir's files with those lines in its config, served from PostgreSQL.
    switched = tmp_path / "switched"
    shutil.copytree(data, switched, ignore=shutil.ignore_patterns("corridor.sqlite*", "*.lock", "*.sock"))
    with open(switched / "corridor.toml", "a") as config:
        config.write("\n" + storage)
    port = free_port()
    server = RunningServer(switched, "--no-advertise", "--listen", f"127.0.0.1:{port}")
    try:
        at = ("--server", f"127.0.0.1:{port}")
        history = run("history", "alice", "--profile", people["bob"], *at)
        assert history.returncode == 0 and "alice → bob: 请把合同发我" in history.stdout, history.stdout + history.stderr
        sent = run("send", "alice", "from PostgreSQL", "--profile", people["bob"], "--json", *at)
        assert sent.returncode == 0, sent.stderr
        with live(data) as sqlite:  # the conversation's sequence goes on from where the copy left it
            query = "SELECT last_seq FROM conversations WHERE id = ?"
            (copied,) = sqlite.execute(query, (json.loads(sent.stdout)["conversation"],)).fetchone()
        assert json.loads(sent.stdout)["seq"] == copied + 1
    finally:
        assert server.stop() == 0
    verified = run("audit", "verify", str(switched), "--json")
    assert verified.returncode == 0 and json.loads(verified.stdout)["ok"], verified.stdout + verified.stderr


def test_an_older_stopped_data_dir_is_upgraded_in_its_copy_only(tmp_path, pg_dsn):
    data = old_data_dir(tmp_path)
    with sqlite3.connect(data / "corridor.sqlite") as db:  # a team moved under a department made after it
        db.execute("INSERT INTO departments (id, parent_id, name, created_at) VALUES (7, 9, 'Team', 1), (9, NULL, 'Later', 2)")
    db.close()
    original = hashlib.sha256((data / "corridor.sqlite").read_bytes()).hexdigest()
    done = run("migrate-storage", str(data), "--to", url(pg_dsn), "--json")
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""  # no server running: no warning
    report = json.loads(done.stdout)
    assert not report["server_running"] and report["checkpoints"] > 0
    assert report["tables"]["legal_holds"] == report["tables"]["retention_rules"] == 1
    assert report["tables"]["integrations"] == 0  # a table 0.1.0 did not have yet
    assert hashlib.sha256((data / "corridor.sqlite").read_bytes()).hexdigest() == original
    with psycopg.connect(pg_dsn) as pg:
        assert pg.execute("SELECT count(*) FROM schema_migrations").fetchone()[0] == len(MIGRATIONS)
        assert pg.execute("SELECT count(*) FROM legal_holds").fetchone()[0] == 1
        assert pg.execute("SELECT id, parent_id FROM departments WHERE id > 1 ORDER BY id").fetchall() == [(7, 9), (9, None)]


def test_a_table_nobody_decided_on_stops_the_copy_with_nothing_copied(tmp_path, pg_dsn, capsys):
    data = old_data_dir(tmp_path)
    with sqlite3.connect(data / "corridor.sqlite") as db:
        db.execute("CREATE TABLE scratch (note TEXT)")
        db.execute("INSERT INTO scratch VALUES ('kept by hand')")
    db.close()
    code, err = in_process(capsys, str(data), "--to", url(pg_dsn))
    assert code == 1 and "the table scratch has no counterpart in PostgreSQL's schema" in err and err.count("\n") == 1
    with psycopg.connect(pg_dsn) as pg:
        assert pg.execute("SELECT count(*) FROM users").fetchone()[0] == 0


def test_a_copy_that_does_not_match_is_undone_leaving_the_schema_only(tmp_path, pg_dsn, capsys, monkeypatch):
    data = old_data_dir(tmp_path)
    moved = migrate_storage._move_sequences

    def and_lose_a_table(pg, tables):  # as if rows went missing on the way
        pg.execute("DELETE FROM archive_people")
        return moved(pg, tables)

    monkeypatch.setattr(migrate_storage, "_move_sequences", and_lose_a_table)
    code, err = in_process(capsys, str(data), "--to", url(pg_dsn))
    assert code == 1 and err.count("\n") == 1, err
    assert "the copy does not match the snapshot: archive_people has 0 rows, the snapshot " in err
    assert "the copy was undone: postgresql://127.0.0.1:" in err and "holds the schema only" in err
    with psycopg.connect(pg_dsn) as pg:
        assert pg.execute("SELECT count(*) FROM users").fetchone()[0] == 0
        assert pg.execute("SELECT count(*) FROM schema_migrations").fetchone()[0] == len(MIGRATIONS)
    monkeypatch.undo()
    assert in_process(capsys, str(data), "--to", url(pg_dsn)) == (0, "")  # the schema alone is no obstacle


def test_a_broken_archive_is_refused_before_postgresql_is_touched(tmp_path, pg_dsn, capsys):
    data = old_data_dir(tmp_path)
    with sqlite3.connect(data / "corridor.sqlite") as db:
        db.execute("DROP TRIGGER archive_no_update")
        db.execute("UPDATE archive SET actor = 'mallory' WHERE seq = 2")
    db.close()
    code, err = in_process(capsys, str(data), "--to", url(pg_dsn))
    assert code == 1 and "the data dir's archive is broken at entry 2" in err and "nothing copied" in err
    with psycopg.connect(pg_dsn) as pg:
        assert pg.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone()[0] == 0
    assert not list(data.glob(".migrate-storage-*"))


def test_bad_input_is_one_clear_line_and_changes_nothing(tmp_path, pg_dsn, capsys):
    data = old_data_dir(tmp_path)
    nowhere = f"postgresql://corridor@127.0.0.1:{free_port()}/corridor"
    for args, code, message in (
        ((str(tmp_path / "nowhere"), "--to", url(pg_dsn)), 2, "corridor.toml: not found"),
        ((str(data), "--to", pg_dsn), 2, "--to takes a postgresql:// URL"),
        ((str(data), "--to", "mysql://corridor@127.0.0.1/corridor"), 2, "--to takes a postgresql:// URL"),
        ((str(data), "--to", nowhere), 1, "Connection refused"),
    ):
        got, err = in_process(capsys, *args)
        assert (got, err.count("\n")) == (code, 1) and err.startswith("corridor migrate-storage: ") and message in err, err
    assert in_process(capsys, str(data))[0] == 2  # --to is required
    switched = tmp_path / "switched"
    shutil.copytree(data, switched)
    with open(switched / "corridor.toml", "a") as config:
        config.write(f'\n[storage]\nbackend = "postgresql"\ndsn = "{url(pg_dsn)}"\n')
    got, err = in_process(capsys, str(switched), "--to", url(pg_dsn))
    assert got == 2 and "corridor.toml already stores in PostgreSQL: its corridor.sqlite is not in use" in err, err
    assert sorted(p.name for p in data.iterdir()) == sorted(p.name for p in OLD_DATA_DIR.iterdir())
    with psycopg.connect(pg_dsn) as pg:
        assert pg.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone()[0] == 0
