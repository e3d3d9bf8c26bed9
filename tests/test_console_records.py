"""The console's records: accounts by `hcp users`, the chained audit log under `hcp verify`, exclusion reversals."""

from __future__ import annotations

import io
import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest

from hcp.cli import main
from hcp.collector.console.accounts import Accounts
from hcp.collector.console.auth import password_matches
from hcp.collector.exc import MessageFailed, NotFound, Refused
from hcp.collector.lifecycle import Lifecycle
from hcp.collector.stats import compute
from hcp.collector.store.schema import MIGRATIONS
from hcp.db import migrate, open_db
from tests.channel_support import NOW, case, open_store, window_rating

PASSWORD = "correct-horse-42"


@pytest.fixture
def folder(tmp_path) -> Path:
    """A collector folder with an Ordos database, its key, and collector.toml naming both."""
    (tmp_path / "collector.toml").write_text(f'[data]\ndir = "{tmp_path}"\n[policy]\npreset = "ordos"\n', "utf-8")
    with open_store(tmp_path, "ordos") as store:
        store.add_cases([case("C1"), case("C2")], NOW)
        window_rating(store, "C1", 1)
    return tmp_path


def _hcp(folder: Path, *args: str, stdin: str = "", monkeypatch=None) -> int:
    if monkeypatch is not None:
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    return main([*args, "--config", str(folder / "collector.toml")])


def test_users_add_roles_disable_reset_list(folder, capsys, monkeypatch):
    assert _hcp(folder, "users", "add", "wang", "--role", "manager:hall01", "--role", "followup:hall01",
                "--password-stdin", stdin=PASSWORD + "\n", monkeypatch=monkeypatch) == 0
    assert "added wang: followup:hall01, manager:hall01" in capsys.readouterr().out
    assert _hcp(folder, "users", "roles", "wang", "--role", "supervisor") == 0
    assert _hcp(folder, "users", "disable", "wang") == 0
    assert _hcp(folder, "users", "reset", "wang", "--password-stdin", stdin="another-pass-99\n",
                monkeypatch=monkeypatch) == 0
    capsys.readouterr()
    assert _hcp(folder, "users", "list") == 0
    listing = capsys.readouterr().out
    assert "wang" in listing and "disabled" in listing and "supervisor:*" in listing
    with open_store(folder, "ordos") as store:
        account = store.account("wang")
        assert account is not None and account.disabled and account.roles == (("supervisor", "*"),)
        assert account.password_hash.startswith("$argon2id$") and password_matches(account.password_hash,
                                                                                   "another-pass-99")
        actions = [e.action for e in reversed(store.audit_log())]
    assert actions == ["user-add", "user-roles", "user-disable", "user-reset"]


@pytest.mark.parametrize(("args", "stdin", "message"), [
    (["users", "add", "li", "--role", "boss:hall01", "--password-stdin"], PASSWORD, "unknown role 'boss'"),
    (["users", "add", "li", "--role", "manager:hall 1", "--password-stdin"], PASSWORD, "hall 'hall 1'"),
    (["users", "add", "li", "--role", "manager", "--password-stdin"], "short\n", "at least 10 characters"),
    (["users", "add", "li", "--role", "manager"], "", "--password-stdin"),  # no terminal to ask on
    (["users", "disable", "nobody"], "", "no account 'nobody'"),
])
def test_users_errors_are_one_line(folder, capsys, monkeypatch, args, stdin, message):
    assert _hcp(folder, *args, stdin=stdin, monkeypatch=monkeypatch) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and "Traceback" not in err


def test_a_password_is_never_taken_from_the_command_line(folder, capsys):
    with pytest.raises(SystemExit):
        main(["users", "add", "li", "--role", "manager", "--password", PASSWORD, "--config",
              str(folder / "collector.toml")])
    assert "unrecognized arguments" in capsys.readouterr().err


def test_an_edited_or_deleted_audit_entry_fails_verify(folder, capsys):
    with open_store(folder, "ordos") as store:
        Accounts(store, actor="cli:test").add("wang", PASSWORD, [("manager", "hall01")])
        store.add_audit("2026-03-10T02:00:00Z", "wang", "contact-reveal", "followup:1", "hall01", "10.0.0.5", "shown")
    assert main(["verify", "--config", str(folder / "collector.toml")]) == 0
    capsys.readouterr()
    conn = sqlite3.connect(folder / "collector.sqlite", isolation_level=None)
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        conn.execute("UPDATE console_audit SET actor = 'someone-else' WHERE action = 'contact-reveal'")
    triggers = conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'trigger' "
                            "AND tbl_name = 'console_audit'").fetchall()
    for name, _sql in triggers:
        conn.execute(f"DROP TRIGGER {name}")
    conn.execute("UPDATE console_audit SET actor = 'someone-else' WHERE action = 'contact-reveal'")
    for _name, sql in triggers:
        conn.execute(sql)
    conn.close()
    assert main(["verify", "--config", str(folder / "collector.toml")]) == 1
    out = capsys.readouterr().out
    assert "console_audit" in out


def test_the_chained_audit_columns_match_the_migrated_table():
    db = open_db(":memory:")
    migrate(db, MIGRATIONS)
    from hcp.collector.store.chain_rows import BY_NAME

    for table in ("console_audit", "exclusion_reversals"):
        columns = tuple(row[1] for row in db.conn.execute(f"PRAGMA table_info({table})"))
        assert BY_NAME[table].columns == columns


# -- exclusion reversals --------------------------------------------------------------------------------------------

def _counted(store, day) -> tuple[int, int]:
    """(bad ratings counted, excluded as malicious) on ``day`` at hall01."""
    [row] = compute(store, store.profile, ("hall",), start=day, end=day)
    return row["bad"], row["excluded_malicious"]


def test_an_exclusion_is_reversed_by_a_new_record_and_the_rating_counts_again(tmp_path):
    with open_store(tmp_path, "ordos") as store:
        store.add_cases([case("C1")], NOW)
        window_rating(store, "C1", 1)
        [rating_id] = store.ratings_of_case("C1", None)
        life = Lifecycle(store)
        day = NOW.date()
        assert _counted(store, day) == (1, 0)
        life.exclude(rating_id, "malicious", decided_by="rev", reason="同一人反复差评", at=NOW + timedelta(hours=1))
        assert _counted(store, day) == (0, 1)
        with pytest.raises(Refused, match="before the exclusion"):
            life.reverse_exclusion(rating_id, decided_by="rev", reason="复核有误", at=NOW)
        life.reverse_exclusion(rating_id, decided_by="rev", reason="复核有误", at=NOW + timedelta(hours=2))
        assert _counted(store, day) == (1, 0)
        exclusion = store.exclusion_view(rating_id)
        assert exclusion is not None and not exclusion.in_force and exclusion.kind == "malicious"
        assert exclusion.reversed_by == "rev" and exclusion.reason == "同一人反复差评"  # the exclusion kept as it was
        with pytest.raises(Refused, match="already reversed"):
            life.reverse_exclusion(rating_id, decided_by="rev", reason="again", at=NOW + timedelta(hours=3))
        with pytest.raises(Refused, match="reversed; it cannot be excluded again"):
            life.exclude(rating_id, "malicious", decided_by="rev", reason="again", at=NOW + timedelta(hours=3))
        with pytest.raises(NotFound):
            life.reverse_exclusion("no-such-rating", decided_by="rev", reason="x", at=NOW + timedelta(hours=3))
        with pytest.raises(MessageFailed, match="append-only"):
            store._conn.execute("DELETE FROM exclusion_reversals")
        life.sign_head(NOW + timedelta(hours=4))
        assert life.verify() == []


def test_hcp_console_serves_the_collector_database_until_stopped(folder, capsys):
    import http.client
    import threading

    from hcp.cli import build_parser
    from hcp.cli.central import collector_config
    from hcp.cli.common import fill_shared_flags
    from hcp.collector.console.app import serve
    from sim.broker import free_port

    port = free_port()
    assert main(["console", "--config", str(folder / "collector.toml"), "--listen", f"127.0.0.1:{port}",
                 "--print-config"]) == 0
    assert f'listen = "127.0.0.1:{port}"' in capsys.readouterr().out
    args = fill_shared_flags(build_parser().parse_args(["console", "--config", str(folder / "collector.toml")]))
    config = collector_config(args)
    config = config.model_copy(update={"console": config.console.model_copy(update={"listen": f"127.0.0.1:{port}"})})
    stop = threading.Event()
    thread = threading.Thread(target=serve, args=(config, stop), daemon=True)
    thread.start()
    try:
        for _attempt in range(100):
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                conn.request("GET", "/login")
                response = conn.getresponse()
                break
            except ConnectionRefusedError:
                threading.Event().wait(0.1)
        assert response.status == 200 and "登录好差评管理平台" in response.read().decode()
    finally:
        stop.set()
        thread.join(15)
    assert not thread.is_alive()
    assert main(["console", "--config", str(folder / "collector.toml"), "--listen", "nowhere"]) == 2
    assert "--listen: expected HOST:PORT" in capsys.readouterr().err


def test_the_demo_console_prints_an_account_that_logs_in(folder):
    import io
    import threading

    from hcp.cli.console import demo_console
    from sim.broker import free_port
    from tests.console_support import Client

    port, out, stop = free_port(), io.StringIO(), threading.Event()
    thread = threading.Thread(target=demo_console, args=(folder, f"127.0.0.1:{port}", "ordos", stop, out),
                              daemon=True)
    thread.start()
    try:
        for _attempt in range(100):
            if "password:" in out.getvalue():
                try:
                    Client(port).get("/login")
                    break
                except ConnectionRefusedError:
                    pass
            threading.Event().wait(0.1)
        password = out.getvalue().split("password: ")[1].split()[0]
        assert Client(port).login("demo", password).status == 303
    finally:
        stop.set()
        thread.join(15)
