"""The catalogue: rules and departments are data (sql/rules front matter, include/departments.yaml),
and everything listing them derives from there; contracts, ingest and warehouse tables agree."""

from __future__ import annotations

from datetime import date

import pyarrow as pa
import pytest

from crosscheck import catalogue, contracts
from crosscheck.ingest import ARROW_TYPES
from crosscheck.night import setup_night


def _rule_file(folder, name: str, front: str, body: str = "SELECT 1") -> None:
    (folder / name).write_text(front + body + "\n", encoding="utf-8")


FRONT_SS10 = """-- ---
-- SS10:
--   severity: low
--   group: pension
--   title: 测试规则
--   explanation: 仅用于测试的说明。
-- ---
"""


@pytest.fixture
def rules_dir(tmp_path, monkeypatch):
    monkeypatch.setattr(catalogue, "RULES_DIR", tmp_path)
    catalogue.rules.cache_clear()
    yield tmp_path
    catalogue.rules.cache_clear()


def test_a_rule_is_its_sql_file(rules_dir):
    _rule_file(rules_dir, "SS10_new_rule.sql", FRONT_SS10)
    _rule_file(rules_dir, "ID03_name_mismatch.sql", FRONT_SS10.replace("SS10", "ID03").replace("pension", "identity"))
    found = catalogue.rules()
    assert list(found) == ["ID03", "SS10"]  # group order, then code
    ss10 = found["SS10"]
    assert (ss10.severity, ss10.group, ss10.title, ss10.explanation) == ("low", "pension", "测试规则", "仅用于测试的说明。")
    assert ss10.sql_file == rules_dir / "SS10_new_rule.sql"


@pytest.mark.parametrize(("name", "front", "message"), [
    ("SS10_x.sql", "", "front matter"),
    ("SS10_x.sql", FRONT_SS10.replace("SS10:", "SS11:"), "front matter ['SS11']"),
    ("SS10_x.sql", FRONT_SS10.replace("severity: low", "severity: urgent"), "severity 'urgent'"),
    ("SS10_x.sql", FRONT_SS10.replace("group: pension", "group: other"), "group 'other'"),
    ("SS10_x.sql", FRONT_SS10.replace("--   explanation: 仅用于测试的说明。\n", ""), "lacks explanation"),
    ("SS10_x.sql", FRONT_SS10.rsplit("-- ---", 1)[0], "not closed"),
])
def test_a_bad_rule_file_is_named(rules_dir, name, front, message):
    _rule_file(rules_dir, name, front)
    with pytest.raises(ValueError, match=name.replace(".", r"\.")) as caught:
        catalogue.rules()
    assert message in str(caught.value)


def test_every_rule_lists_derive_from_the_catalogue():
    from crosscheck.generate import RULE_CODES
    from crosscheck.worklists import EXPLANATIONS

    codes = [code for path in catalogue.rule_files() for code in catalogue.rule_codes(path)]
    assert sorted(RULE_CODES) == sorted(codes) and len(codes) == len(set(codes))
    for code in codes:
        front = catalogue.front_matter(catalogue.RULES[code].sql_file)[code]
        assert EXPLANATIONS[code] == front["explanation"]


def test_departments_come_from_their_file(tmp_path, monkeypatch):
    from crosscheck import receipts, settings

    assert settings.DEPARTMENTS == ("civil", "poverty", "finance", "hrss")
    assert receipts.DEPARTMENT_ZH["poverty"] == "区扶贫办（乡村振兴局）"
    (tmp_path / "departments.yaml").write_text(
        "departments:\n  - {code: hrss, short: 人社, full: 人社局}\n  - {code: civil, short: 民政, full: 民政局}\n",
        encoding="utf-8")
    monkeypatch.setattr(catalogue, "INCLUDE_DIR", tmp_path)
    catalogue.departments.cache_clear()
    contracts.contracts.cache_clear()
    try:
        assert list(catalogue.departments()) == ["hrss", "civil"]
        assert catalogue.full_name("civil") == "民政局" and catalogue.short_name("xyz") == "xyz"
        with pytest.raises(ValueError, match="department '(poverty|finance)' is not in include/departments.yaml"):
            contracts.contracts()
    finally:
        catalogue.departments.cache_clear()
        contracts.contracts.cache_clear()


def test_findings_list_departments_in_the_files_order(fresh_warehouse, settings, tmp_path, monkeypatch):
    def dept_list(yaml_text):
        (tmp_path / "departments.yaml").write_text(yaml_text, encoding="utf-8")
        monkeypatch.setattr(catalogue, "INCLUDE_DIR", tmp_path)
        catalogue.departments.cache_clear()
        try:
            with fresh_warehouse.transaction() as conn:
                setup_night(conn, date(2026, 11, 28), settings)
                return conn.execute("SELECT night.dept_list(ARRAY['人社', '民政', NULL, '人社', '财政'])").fetchone()[0]
        finally:
            catalogue.departments.cache_clear()

    usual = (catalogue.INCLUDE_DIR / "departments.yaml").read_text(encoding="utf-8")
    assert dept_list(usual) == "民政,财政,人社"
    lines = usual.splitlines()
    entries = [line for line in lines if line.startswith("  - ")]
    reordered = "\n".join([line for line in lines if not line.startswith("  - ")] + entries[::-1]) + "\n"
    assert dept_list(reordered) == "人社,财政,民政"


PG_TYPES = {pa.string(): "text", pa.date32(): "date", pa.decimal128(14, 2): "numeric(14,2)", pa.int32(): "integer",
            pa.bool_(): "boolean"}
LOADER_COLUMNS = {"as_of": "date", "file_id": "bigint", "row_number": "integer"}


def test_every_contract_matches_its_warehouse_tables(warehouse):
    """Contract YAML, the loader's Arrow types and the migrations' tables say the same columns."""
    with warehouse.connect() as conn:
        for extract, contract in contracts.contracts().items():
            expected = dict(LOADER_COLUMNS)
            for column in contract.columns:
                expected[column.name] = PG_TYPES[ARROW_TYPES[column.type]]
                if column.type in ("id_number", "name"):
                    expected[column.name + "_raw"] = "text"
            for schema in ("core",):  # a file's staging table is created LIKE its core table
                actual = dict(conn.execute(
                    "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a "
                    "WHERE a.attrelid = to_regclass(%s) AND a.attnum > 0 AND NOT a.attisdropped",
                    (f"{schema}.{extract}",)).fetchall())
                assert actual == expected, f"{schema}.{extract} differs from include/contracts/{extract}.yaml"
