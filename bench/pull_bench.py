"""Pull rate of a database source: a residents table of N rows in MariaDB/MySQL, pulled into Parquet.

    .venv/bin/python bench/pull_bench.py [--rows 1000000] [--batch 50000] [--mysql root:@127.0.0.1:3306]

Creates a throwaway database with the table (rows made by the server from its sequence engine, names in
a GBK column), pulls it with crosscheck.pull exactly as a night would (an Airflow connection from
AIRFLOW_CONN_<ID>, server-side cursor, batches into a Parquet writer), prints rows/s, the file size and
the process's peak memory (RSS sampled every 50 ms, and its baseline before the pull), then drops the
database. No warehouse is involved: this measures the pull alone.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import tempfile
import threading
import time
from datetime import date
from pathlib import Path

import psutil


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=50_000)
    parser.add_argument("--mysql", default="root:@127.0.0.1:3306", help="user:password@host:port of the server")
    args = parser.parse_args()
    credentials, _, address = args.mysql.rpartition("@")
    user, _, password = credentials.partition(":")
    host, _, port = address.partition(":")

    import pymysql

    as_of = date(2026, 11, 28)
    db = f"crosscheck_pull_bench_{secrets.token_hex(3)}"
    admin = pymysql.connect(host=host, port=int(port), user=user, password=password, charset="utf8mb4",
                            autocommit=True)
    cur = admin.cursor()
    cur.execute(f"CREATE DATABASE `{db}` CHARACTER SET utf8mb4")
    try:
        started = time.perf_counter()
        cur.execute(f"USE `{db}`")
        cur.execute("""CREATE TABLE residents (
            data_date DATE NOT NULL, id_number CHAR(18) CHARACTER SET ascii NOT NULL,
            `姓名` VARCHAR(40) CHARACTER SET gbk NOT NULL, `性别` VARCHAR(4) CHARACTER SET gbk, birth_date DATE,
            `民族` VARCHAR(20), hukou_no VARCHAR(20), `与户主关系` VARCHAR(10), town VARCHAR(40) CHARACTER SET gbk,
            village VARCHAR(40), `人员状态` VARCHAR(10), PRIMARY KEY (data_date, id_number))""")
        # the IDs are unique, not valid: the pull does not look at values
        cur.execute(f"""INSERT INTO residents
            SELECT %s, CONCAT('500151', LPAD(seq, 12, '0')),
                   ELT(1 + seq MOD 6, '王伟', '欧阳娜', '张敏', '刘洋', '诸葛静', '赵丽'), IF(seq MOD 2, '男', '女'),
                   DATE_ADD('1940-01-01', INTERVAL seq MOD 30000 DAY), '汉族', CONCAT('H', LPAD(seq DIV 3, 9, '0')),
                   ELT(1 + seq MOD 3, '户主', '配偶', '子'), ELT(1 + seq MOD 4, '巴川街道', '太平镇', '安居镇', '少云镇'),
                   ELT(1 + seq MOD 3, '坪漆村', '䶮山村', '𠮷祥村'), '正常'
            FROM seq_1_to_{args.rows}""", (as_of,))  # noqa: S608 (an int)
        print(f"table of {args.rows} rows made in {time.perf_counter() - started:.1f} s")

        with tempfile.TemporaryDirectory() as tmp:
            os.environ["CROSSCHECK_LANDING"] = str(Path(tmp) / "landing")
            os.environ["CROSSCHECK_VAR"] = str(Path(tmp) / "var")
            os.environ["AIRFLOW_HOME"] = str(Path(tmp) / "airflow")
            os.environ["AIRFLOW_CONN_BENCH_DB"] = json.dumps({
                "conn_type": "mysql", "host": host, "port": int(port), "login": user, "password": password,
                "schema": db})
            from crosscheck.pull import Source, _connection, pull_extract
            from crosscheck.settings import get_settings

            started = time.perf_counter()
            # One-off imports (seconds on a busy machine) are not the pull's rate: Airflow's SDK, and
            # pandas, which pyarrow loads to convert dates and decimals.
            _connection("bench_db")
            import pandas  # noqa: F401
            print(f"Airflow SDK and pandas imported, connection read in {time.perf_counter() - started:.1f} s")

            source = Source("residents", "civil", "sql", "bench_db", view="residents", date_column="data_date",
                            order_by=("id_number",), batch_rows=args.batch)
            settings = get_settings()
            process = psutil.Process()
            baseline = process.memory_info().rss
            peak = [baseline]
            done = threading.Event()

            def sample():
                while not done.wait(0.05):
                    peak[0] = max(peak[0], process.memory_info().rss)

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            started = time.perf_counter()
            outcome = pull_extract(source, as_of, settings)
            seconds = time.perf_counter() - started
            done.set()
            sampler.join()
            mb = 1024 * 1024
            print(f"pulled {outcome.rows} rows in {seconds:.1f} s: {outcome.rows / seconds:,.0f} rows/s; "
                  f"Parquet {outcome.size / mb:.1f} MB; batch {args.batch} rows")
            print(f"peak RSS {peak[0] / mb:.0f} MB (baseline before the pull {baseline / mb:.0f} MB, "
                  f"+{(peak[0] - baseline) / mb:.0f} MB)")
    finally:
        cur.execute(f"DROP DATABASE IF EXISTS `{db}`")
        admin.close()


if __name__ == "__main__":
    main()
