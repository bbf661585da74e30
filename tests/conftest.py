"""Shared fixtures: a throwaway warehouse database per test session, per backend.

Every test that takes ``warehouse`` runs against the embedded PostgreSQL and, when
CROSSCHECK_TEST_PG_URL is set (CI sets it to the machine's server), against that server too.
"""

from __future__ import annotations

import os

import pytest
from helpers import throwaway_warehouse

from crosscheck import warehouse as wh

BACKENDS = ["embedded"] + (["external"] if os.environ.get("CROSSCHECK_TEST_PG_URL") else [])


def _server_url(backend: str) -> str:
    if backend == "external":
        return os.environ["CROSSCHECK_TEST_PG_URL"]
    return wh.embedded_server().get_uri("postgres")


@pytest.fixture(scope="session", params=BACKENDS)
def warehouse_server(request) -> str:
    """URL of a PostgreSQL server (its postgres database)."""
    return _server_url(request.param)


@pytest.fixture(scope="session")
def warehouse(warehouse_server) -> wh.Warehouse:
    """A migrated throwaway database shared by the session's tests."""
    with throwaway_warehouse(warehouse_server) as w:
        yield w


@pytest.fixture
def fresh_warehouse(warehouse_server) -> wh.Warehouse:
    """A migrated database of its own for one test (for tests that compare whole contents)."""
    with throwaway_warehouse(warehouse_server) as w:
        yield w

@pytest.fixture
def settings(tmp_path):
    """Settings whose folders are all under this test's tmp_path."""
    from helpers import make_settings

    return make_settings(tmp_path)


@pytest.fixture
def as_of():
    """A drop date no other test of this process uses."""
    from helpers import unique_as_of

    return unique_as_of()
