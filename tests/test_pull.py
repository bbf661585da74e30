"""Pull sources against real servers: the machine's MariaDB as a department's database (a throwaway
database and user per session) and an OpenSSH sshd started here on a free port with throwaway keys.

Connections are Airflow connections given as AIRFLOW_CONN_<ID> (JSON), as a deployment's CLI gets them.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import threading
import time
from datetime import date
from pathlib import Path

import pytest
from helpers import defaults, header_of
from test_dags import airflow_home, crosscheck_env, dagbag  # noqa: F401 (fixtures)

from crosscheck.pipeline import ingest_department
from crosscheck.pull import PullFailed, SourceError, load_sources, pull_department
from crosscheck.settings import get_settings

MARIADB = {"host": "127.0.0.1", "port": 3306, "user": "root", "password": ""}
SSHD = shutil.which("sshd") or "/usr/sbin/sshd"
# Names and villages as a department's legacy system holds them: the names in a GBK column (the part of
# GB18030 MariaDB stores), villages in utf8mb4 with characters only GB18030 (not GBK) has.
NAMES = ["王伟", "欧阳娜", "张敏", "刘洋", "诸葛静", "赵丽"]
VILLAGES = ["坪漆村", "䶮山村", "𠮷祥村"]


def _unavailable(what: str):
    if os.environ.get("CI"):
        pytest.fail(f"{what} is required under CI (.ci/run installs/starts it)")
    pytest.skip(f"{what} not available")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------------------------
# MariaDB: a department's database
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def mariadb():
    """A throwaway database and a login that may only read it; both dropped afterwards."""
    pymysql = pytest.importorskip("pymysql")
    try:
        admin = pymysql.connect(**MARIADB, charset="utf8mb4", autocommit=True, connect_timeout=5)
    except pymysql.err.OperationalError:
        _unavailable("MariaDB at 127.0.0.1:3306")
    suffix = secrets.token_hex(4)
    db, user, password = f"crosscheck_pull_{suffix}", f"ccpull_{suffix}", secrets.token_urlsafe(12)
    try:
        with admin.cursor() as cur:
            cur.execute(f"CREATE DATABASE `{db}` CHARACTER SET utf8mb4")
            for host in ("localhost", "127.0.0.1", "%"):
                cur.execute(f"CREATE USER '{user}'@'{host.replace('%', '%%')}' IDENTIFIED BY %s", (password,))
                cur.execute(f"GRANT SELECT ON `{db}`.* TO '{user}'@'{host}'")
        yield {"db": db, "user": user, "password": password, "admin": admin}
    finally:
        with admin.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{db}`")
            for host in ("localhost", "127.0.0.1", "%"):
                cur.execute(f"DROP USER IF EXISTS '{user}'@'{host}'")
        admin.close()


def _mysql_conn(monkeypatch, conn_id: str, mariadb: dict, password: str | None = None, port: int = 3306):
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps({
        "conn_type": "mysql", "host": "127.0.0.1", "port": port, "login": mariadb["user"],
        "password": mariadb["password"] if password is None else password, "schema": mariadb["db"]}))


def _residents_table(mariadb: dict, as_of: date, n: int = 24) -> tuple[str, list[dict]]:
    """A residents table of the department's own (some columns named as the contract's headers, some by
    its canonical names, a typed DATE) holding ``n`` rows for ``as_of``; returns (table, rows)."""
    table = f"residents_{secrets.token_hex(3)}"
    rows = []
    for i in range(n):
        row = defaults("residents")
        row.update(name=NAMES[i % len(NAMES)], village=VILLAGES[i % len(VILLAGES)])
        rows.append(row)
    cur = mariadb["admin"].cursor()
    cur.execute(f"USE `{mariadb['db']}`")
    cur.execute(f"""CREATE TABLE `{table}` (
        data_date DATE NOT NULL, id_number CHAR(18) CHARACTER SET ascii NOT NULL,
        `姓名` VARCHAR(40) CHARACTER SET gbk NOT NULL, `性别` VARCHAR(4) CHARACTER SET gbk,
        birth_date DATE, `民族` VARCHAR(20), hukou_no VARCHAR(20), `与户主关系` VARCHAR(10),
        town VARCHAR(40) CHARACTER SET gbk, village VARCHAR(40) CHARACTER SET utf8mb4, `人员状态` VARCHAR(10)
    ) CHARACTER SET utf8mb4""")
    cur.executemany(
        f"INSERT INTO `{table}` VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",  # noqa: S608 (our table name)
        [(as_of, r["id_number"], r["name"], r["sex"], r["birth_date"], r["ethnicity"], r["hukou_no"],
          r["relation"], r["town"], r["village"], r["status"]) for r in rows])
    # one row of another date: the pull takes only the as-of date's rows
    copy_one = (f"INSERT INTO `{table}` SELECT DATE_SUB(data_date, INTERVAL 1 DAY), id_number, `姓名`, `性别`, "  # noqa: S608
                f"birth_date, `民族`, hukou_no, `与户主关系`, town, village, `人员状态` FROM `{table}` LIMIT 1")
    cur.execute(copy_one)
    # the names are stored as GBK bytes, i.e. GB18030's two-byte encoding of them
    cur.execute(f"SELECT HEX(`姓名`) FROM `{table}` WHERE id_number = %s", (rows[1]["id_number"],))  # noqa: S608
    assert bytes.fromhex(cur.fetchone()[0]) == rows[1]["name"].encode("gb18030")
    cur.close()
    return table, rows


def _sources(tmp_path: Path, monkeypatch, spec: dict) -> None:
    path = tmp_path / "sources.yaml"
    path.write_text(json.dumps(spec, ensure_ascii=False), encoding="utf-8")  # JSON is YAML
    monkeypatch.setenv("CROSSCHECK_SOURCES", str(path))


@pytest.fixture
def env(monkeypatch, tmp_path, fresh_warehouse):
    """Folders under tmp_path, the test warehouse, no quiet period (pulled files carry .done anyway)."""
    monkeypatch.setenv("CROSSCHECK_VAR", str(tmp_path / "var"))
    monkeypatch.setenv("CROSSCHECK_LANDING", str(tmp_path / "landing"))
    monkeypatch.setenv("CROSSCHECK_WAREHOUSE_URL", fresh_warehouse.url)
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path / "airflow"))
    get_settings.cache_clear()
    yield fresh_warehouse
    get_settings.cache_clear()


def _pulls(warehouse) -> list[tuple]:
    with warehouse.connect() as conn:
        return conn.execute("SELECT extract, status, conn_id, remote, file_name, rows_pulled, reason "
                            "FROM ingest.pulls ORDER BY pull_id").fetchall()


def _landing_files(settings, department: str) -> list[str]:
    folder = settings.landing_dir / department
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_sql_pull_lands_a_parquet_drop_that_loads_with_chinese_text_and_says_where_from(
        env, mariadb, monkeypatch, tmp_path, caplog):
    as_of = date(2026, 11, 28)
    table, rows = _residents_table(mariadb, as_of)
    _mysql_conn(monkeypatch, "civil_db", mariadb)
    _sources(tmp_path, monkeypatch, {"residents": {"source": "sql", "conn_id": "civil_db", "view": table,
                                                   "date_column": "data_date", "order_by": ["id_number"],
                                                   "batch_rows": 5}})
    settings = get_settings()
    outcomes = pull_department("civil", as_of, settings, env)
    assert [(o.extract, o.status, o.rows) for o in outcomes] == [("residents", "pulled", len(rows))]
    name = f"residents_{as_of:%Y%m%d}.parquet"
    assert _landing_files(settings, "civil") == [name, name + ".done"]  # no leftover part file

    import pyarrow.parquet as pq

    written = pq.ParquetFile(settings.landing_dir / "civil" / name)
    assert written.metadata.num_row_groups == 5  # 24 rows in batches of 5: never the whole table at once
    assert "身份证号" in written.schema_arrow.names  # canonical column names written as the contract's headers

    files = ingest_department(env, "civil", settings.landing_dir, settings)
    assert [(f.status, f.rows_loaded, f.rows_quarantined) for f in files] == [("loaded", len(rows), 0)]
    with env.connect() as conn:
        loaded = dict(conn.execute("SELECT id_number, name || '|' || village FROM core.residents "
                                   "WHERE as_of = %s", (as_of,)).fetchall())
    assert loaded == {r["id_number"]: f"{r['name']}|{r['village']}" for r in rows}

    receipt = json.loads(next((settings.outbox_dir / "civil").glob("*.receipt.json")).read_text(encoding="utf-8"))
    assert receipt["pulled_from"]["conn_id"] == "civil_db" and receipt["pulled_from"]["remote"] == table
    html = next((settings.outbox_dir / "civil").glob("*.receipt.html")).read_text(encoding="utf-8")
    assert "civil_db" in html and table in html
    everything = html + json.dumps(receipt) + caplog.text + repr(_pulls(env))
    assert mariadb["password"] not in everything


def test_sql_rerun_pulls_identical_bytes_a_duplicate_not_a_second_load(env, mariadb, monkeypatch, tmp_path):
    as_of = date(2026, 11, 27)
    table, rows = _residents_table(mariadb, as_of)
    _mysql_conn(monkeypatch, "civil_db", mariadb)
    _sources(tmp_path, monkeypatch, {"residents": {"source": "sql", "conn_id": "civil_db", "view": table,
                                                   "date_column": "data_date", "order_by": ["id_number"]}})
    settings = get_settings()
    first = pull_department("civil", as_of, settings, env)[0]
    assert [f.status for f in ingest_department(env, "civil", settings.landing_dir, settings)] == ["loaded"]
    time.sleep(0.01)
    second = pull_department("civil", as_of, settings, env)[0]
    assert second.sha256 == first.sha256  # deterministic Parquet: same rows, same bytes
    again = ingest_department(env, "civil", settings.landing_dir, settings)
    assert [f.status for f in again] == ["duplicate"]
    with env.connect() as conn:
        assert conn.execute("SELECT count(*) FROM core.residents WHERE as_of = %s", (as_of,)).fetchone()[0] == len(rows)
        assert conn.execute("SELECT count(*) FROM ingest.files WHERE status = 'loaded'").fetchone()[0] == 1


def test_sql_query_with_nothing_for_the_date_is_recorded_not_a_crash(env, mariadb, monkeypatch, tmp_path):
    as_of = date(2026, 11, 26)
    table, _ = _residents_table(mariadb, as_of)
    _mysql_conn(monkeypatch, "civil_db", mariadb)
    _sources(tmp_path, monkeypatch, {"residents": {
        "source": "sql", "conn_id": "civil_db", "name": "residents_export",
        "query": f"SELECT * FROM `{table}` WHERE data_date = :as_of ORDER BY id_number"}})  # noqa: S608
    settings = get_settings()
    empty = date(2026, 12, 20)
    outcomes = pull_department("civil", empty, settings, env)
    assert [(o.status, o.file_name) for o in outcomes] == [("empty", None)]
    assert _landing_files(settings, "civil") == []
    with env.connect() as conn:
        status = conn.execute("SELECT department, extract, as_of, status, remote, reason FROM mart.pull_status"
                              ).fetchall()
    assert [s[:5] for s in status] == [("civil", "residents", empty, "empty", "query residents_export")]
    assert "本日期尚无数据" in status[0][5]
    from crosscheck.report import gather  # the report reads it through the reporting role (mart only)

    assert [(p["extract"], p["status"]) for p in gather(env, empty)["pulls"]] == [("residents", "empty")]


def test_sql_wrong_password_fails_for_a_retry_without_showing_it(env, mariadb, monkeypatch, tmp_path, caplog):
    as_of = date(2026, 11, 25)
    table, _ = _residents_table(mariadb, as_of)
    wrong = "Wr0ng-" + secrets.token_hex(6)
    _mysql_conn(monkeypatch, "civil_db", mariadb, password=wrong)
    _sources(tmp_path, monkeypatch, {"residents": {"source": "sql", "conn_id": "civil_db", "view": table,
                                                   "date_column": "data_date"}})
    settings = get_settings()
    with pytest.raises(PullFailed) as failed:
        pull_department("civil", as_of, settings, env)
    message = str(failed.value)
    assert "civil_db" in message and "Access denied" in message and "\n" not in message
    assert _landing_files(settings, "civil") == []
    pulls = _pulls(env)
    assert [(p[0], p[1]) for p in pulls] == [("residents", "failed")]
    for secret in (wrong, mariadb["password"]):
        assert secret not in message + caplog.text + repr(pulls)


def test_sql_server_unreachable_fails_for_a_retry(env, mariadb, monkeypatch, tmp_path):
    _mysql_conn(monkeypatch, "civil_db", mariadb, port=_free_port())  # nothing listens there
    _sources(tmp_path, monkeypatch, {"residents": {"source": "sql", "conn_id": "civil_db", "view": "v",
                                                   "date_column": "d"}})
    settings = get_settings()
    with pytest.raises(PullFailed, match="Can't connect"):
        pull_department("civil", date(2026, 11, 24), settings, env)
    assert _landing_files(settings, "civil") == []
    assert [p[1] for p in _pulls(env)] == ["failed"]


def test_cli_pull_prints_one_line_and_exits_2_on_failure(env, mariadb, monkeypatch, tmp_path, capsys):
    from crosscheck.cli import main

    as_of = date(2026, 11, 23)
    table, rows = _residents_table(mariadb, as_of)
    _mysql_conn(monkeypatch, "civil_db", mariadb)
    _sources(tmp_path, monkeypatch, {"residents": {"source": "sql", "conn_id": "civil_db", "view": table,
                                                   "date_column": "data_date", "order_by": ["id_number"]}})
    assert main(["pull", "--department", "civil", "--date", as_of.isoformat()]) == 0
    assert f"pulled from {table} ({len(rows)} rows" in capsys.readouterr().out
    _mysql_conn(monkeypatch, "civil_db", mariadb, password="not-the-password")
    assert main(["pull", "--department", "civil", "--date", as_of.isoformat()]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("crosscheck: pull of civil/residents") and "拉取失败" in err and "\n" not in err
    assert main(["pull", "--department", "finance", "--date", as_of.isoformat()]) == 2
    assert "没有配置拉取来源" in capsys.readouterr().err


def test_sources_file_errors_are_clear(monkeypatch, tmp_path):
    for spec, expected in [
        ({"nosuch": {"source": "sql"}}, "no such extract"),
        ({"residents": {"source": "ftp", "conn_id": "x"}}, "source must be one of"),
        ({"residents": {"source": "sql", "view": "v", "date_column": "d"}}, "conn_id"),
        ({"residents": {"source": "sql", "conn_id": "x", "view": "v"}}, "date_column is required"),
        ({"residents": {"source": "sftp", "conn_id": "x", "path": "/out/r_{as_of:%Y%m%d}.txt"}}, ".csv, .xlsx"),
        ({"residents": {"source": "sftp", "conn_id": "x", "path": "/a.csv", "password": "p"}}, "unknown keys"),
    ]:
        _sources(tmp_path, monkeypatch, spec)
        get_settings.cache_clear()
        with pytest.raises(SourceError, match=expected):
            load_sources(get_settings())
    get_settings.cache_clear()


# --------------------------------------------------------------------------------------------
# SFTP: an exchange server (OpenSSH's sshd with its internal SFTP server)
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    """sshd on a free local port: a throwaway host key, a throwaway user key, key login only."""
    if not Path(SSHD).exists() or not shutil.which("ssh-keygen"):
        _unavailable("OpenSSH's sshd (Debian package openssh-server)")
    folder = tmp_path_factory.mktemp("sshd")
    for key in ("host", "user", "stranger"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(folder / key)], check=True)
    (folder / "authorized_keys").write_text((folder / "user.pub").read_text())
    os.chmod(folder / "authorized_keys", 0o600)
    port = _free_port()
    config = folder / "sshd_config"
    config.write_text("\n".join([
        f"Port {port}", "ListenAddress 127.0.0.1", f"HostKey {folder / 'host'}", f"PidFile {folder / 'sshd.pid'}",
        f"AuthorizedKeysFile {folder / 'authorized_keys'}", "StrictModes no", "PasswordAuthentication no",
        "KbdInteractiveAuthentication no", "UsePAM no", "PermitRootLogin prohibit-password",
        "Subsystem sftp internal-sftp", ""]))
    Path("/run/sshd").mkdir(exist_ok=True)  # privilege separation directory, when run as root
    server = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)], stderr=subprocess.PIPE)
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                server.kill()
                pytest.fail(f"sshd did not start: {server.stderr.read().decode()[-500:]}")
            time.sleep(0.1)
    import getpass

    remote = folder / "outgoing"
    remote.mkdir()
    try:
        yield {"port": port, "folder": folder, "remote": remote, "user": getpass.getuser(),
               "host_key": (folder / "host.pub").read_text().split()[:2]}
    finally:
        server.terminate()
        server.wait(10)


def _sftp_conn(monkeypatch, conn_id: str, sshd: dict, key: str = "user", port: int | None = None):
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps({
        "conn_type": "sftp", "host": "127.0.0.1", "port": port or sshd["port"], "login": sshd["user"],
        "extra": {"key_file": str(sshd["folder"] / key), "host_key": " ".join(sshd["host_key"]),
                  "look_for_keys": "false", "conn_timeout": "5"}}))


def _payments_csv(n: int = 12) -> bytes:
    rows = [defaults("payments") for _ in range(n)]
    header = header_of("payments")
    lines = [",".join(h for _, h in header)] + [",".join(r[c] for c, _ in header) for r in rows]
    return ("\r\n".join(lines) + "\r\n").encode("gb18030")


def _sftp_source(tmp_path, monkeypatch, sshd, settle: float = 0.5):
    _sources(tmp_path, monkeypatch, {"payments": {
        "source": "sftp", "conn_id": "finance_exchange", "settle_seconds": settle,
        "path": str(sshd["remote"] / "payments_{as_of:%Y%m%d}.csv")}})


def test_sftp_pull_takes_the_bytes_as_received_and_loads(env, sshd, monkeypatch, tmp_path):
    as_of = date(2026, 11, 28)
    data = _payments_csv()
    (sshd["remote"] / f"payments_{as_of:%Y%m%d}.csv").write_bytes(data)
    _sftp_conn(monkeypatch, "finance_exchange", sshd)
    _sftp_source(tmp_path, monkeypatch, sshd)
    settings = get_settings()
    outcomes = pull_department("finance", as_of, settings, env)
    name = f"payments_{as_of:%Y%m%d}.csv"
    assert [(o.status, o.file_name, o.size) for o in outcomes] == [("pulled", name, len(data))]
    assert (settings.landing_dir / "finance" / name).read_bytes() == data
    assert _landing_files(settings, "finance") == [name, name + ".done"]
    files = ingest_department(env, "finance", settings.landing_dir, settings)
    assert [(f.status, f.rows_loaded) for f in files] == [("loaded", 12)]
    receipt = json.loads(next((settings.outbox_dir / "finance").glob("*.receipt.json")).read_text(encoding="utf-8"))
    assert receipt["encoding"] == "gb18030"
    assert receipt["pulled_from"]["source"] == "sftp" and receipt["pulled_from"]["remote"].endswith(name)
    # pulled again: the same bytes, a duplicate
    pull_department("finance", as_of, settings, env)
    assert [f.status for f in ingest_department(env, "finance", settings.landing_dir, settings)] == ["duplicate"]


def test_sftp_nothing_for_the_date_is_recorded(env, sshd, monkeypatch, tmp_path):
    _sftp_conn(monkeypatch, "finance_exchange", sshd)
    _sftp_source(tmp_path, monkeypatch, sshd)
    settings = get_settings()
    outcomes = pull_department("finance", date(2026, 12, 30), settings, env)
    assert [o.status for o in outcomes] == ["empty"]
    assert _landing_files(settings, "finance") == []
    assert [p[1] for p in _pulls(env)] == ["empty"]


def test_sftp_wrong_key_fails_for_a_retry(env, sshd, monkeypatch, tmp_path):
    as_of = date(2026, 11, 27)
    (sshd["remote"] / f"payments_{as_of:%Y%m%d}.csv").write_bytes(_payments_csv())
    _sftp_conn(monkeypatch, "finance_exchange", sshd, key="stranger")
    _sftp_source(tmp_path, monkeypatch, sshd)
    settings = get_settings()
    with pytest.raises(PullFailed, match="finance_exchange.*Authentication failed"):
        pull_department("finance", as_of, settings, env)
    assert _landing_files(settings, "finance") == []
    assert [p[1] for p in _pulls(env)] == ["failed"]


def test_sftp_server_unreachable_fails_for_a_retry(env, sshd, monkeypatch, tmp_path):
    _sftp_conn(monkeypatch, "finance_exchange", sshd, port=_free_port())
    _sftp_source(tmp_path, monkeypatch, sshd)
    settings = get_settings()
    with pytest.raises(PullFailed, match="finance_exchange"):
        pull_department("finance", date(2026, 11, 26), settings, env)
    assert _landing_files(settings, "finance") == []


def test_sftp_file_still_growing_is_not_taken(env, sshd, monkeypatch, tmp_path):
    as_of = date(2026, 11, 25)
    remote = sshd["remote"] / f"payments_{as_of:%Y%m%d}.csv"
    data = _payments_csv(400)
    remote.write_bytes(data[:1000])
    stop = threading.Event()

    def keep_writing():  # the department's export still running: appends every 50 ms
        offset = 1000
        while not stop.is_set() and offset < len(data):
            with open(remote, "ab") as f:
                f.write(data[offset:offset + 200])
            offset += 200
            time.sleep(0.05)

    writer = threading.Thread(target=keep_writing)
    writer.start()
    try:
        _sftp_conn(monkeypatch, "finance_exchange", sshd)
        _sftp_source(tmp_path, monkeypatch, sshd, settle=0.5)
        settings = get_settings()
        with pytest.raises(PullFailed, match="still being written|changed during the transfer"):
            pull_department("finance", as_of, settings, env)
    finally:
        stop.set()
        writer.join()
    assert _landing_files(settings, "finance") == []
    assert [p[1] for p in _pulls(env)] == ["failed"]


# --------------------------------------------------------------------------------------------
# Airflow: the ingest DAG pulls before it waits (dag.test, real Airflow, real servers)
# --------------------------------------------------------------------------------------------


def test_ingest_dag_pulls_then_loads_and_a_failed_pull_keeps_the_drops(
        dagbag, crosscheck_env, fresh_warehouse, mariadb, monkeypatch, tmp_path):  # noqa: F811 (fixtures)
    from test_dags import night_date, run_dag, task_states, write_minimal_district

    as_of = night_date()  # the DAG pulls yesterday (Asia/Shanghai) of its run
    table, rows = _residents_table(mariadb, as_of)
    _mysql_conn(monkeypatch, "civil_db", mariadb)
    _sources(tmp_path, monkeypatch, {"residents": {"source": "sql", "conn_id": "civil_db", "view": table,
                                                   "date_column": "data_date", "order_by": ["id_number"]}})
    get_settings.cache_clear()
    run, _ = run_dag(dagbag, "crosscheck_ingest_civil")
    assert str(run.state) == "success", task_states(run)
    with fresh_warehouse.connect() as conn:
        assert conn.execute("SELECT status, rows_loaded FROM ingest.files WHERE extract = 'residents'"
                            ).fetchall() == [("loaded", len(rows))]

    # The database refuses the login: the pull task fails (Airflow retries it) while the department's
    # dropped files are still taken.
    landing = crosscheck_env.landing_dir  # a deaths file the department drops by hand the same night
    write_minimal_district(tmp_path / "other", as_of, rows=5)
    deaths = f"deaths_{as_of:%Y%m%d}.csv"
    (landing / "civil" / deaths).write_bytes((tmp_path / "other" / "civil" / deaths).read_bytes())
    with fresh_warehouse.connect() as conn:  # forget the pull so the DAG tries again
        conn.execute("DELETE FROM ingest.pulls")
    _mysql_conn(monkeypatch, "civil_db", mariadb, password="refused-" + secrets.token_hex(4))
    run, _ = run_dag(dagbag, "crosscheck_ingest_civil")
    states = task_states(run)
    assert states[("pull", -1)] == "failed", states
    with fresh_warehouse.connect() as conn:
        assert conn.execute("SELECT status FROM ingest.files WHERE file_name = %s", (deaths,)).fetchall() == [
            ("loaded",)]
        assert conn.execute("SELECT status FROM ingest.pulls").fetchall() == [("failed",)]
