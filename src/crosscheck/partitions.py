"""Partitions of a night: the share of the night's rows one task evaluates (the whole night, a
district's or a town's rows); the nightly DAG maps the comparison over them, work lists are cut by them."""

from __future__ import annotations

from dataclasses import dataclass

from psycopg import sql


@dataclass(frozen=True)
class Partition:
    """A share of the night: the rule rows and indicator rows whose ``town`` is one of ``towns``, or,
    for the first partition of a plan, whose town is none of ``excluding`` (the other partitions'
    towns): it also takes the towns the reference data does not know and rows without a town.

    With neither, the whole night (what ``crosscheck run`` evaluates in one go). Together the
    partitions of a plan take every row exactly once, so the partitioned night equals the
    unpartitioned one. A partition is plain JSON for XCom (``as_dict`` / ``from_dict``).
    """

    key: str
    towns: tuple[str, ...] | None = None
    excluding: tuple[str, ...] | None = None

    def where(self, column: sql.Composable) -> sql.Composable:
        if self.towns is not None:
            return sql.SQL("{} = ANY({}::text[])").format(column, sql.Literal(list(self.towns)))
        if self.excluding is not None:
            return sql.SQL("({c} IS NULL OR NOT {c} = ANY({t}::text[]))").format(
                c=column, t=sql.Literal(list(self.excluding)))
        return sql.SQL("true")

    def as_dict(self) -> dict:
        return {"key": self.key, "towns": None if self.towns is None else list(self.towns),
                "excluding": None if self.excluding is None else list(self.excluding)}

    @classmethod
    def from_dict(cls, value: dict) -> Partition:
        def _tuple(key):
            return None if value.get(key) is None else tuple(value[key])

        return cls(value["key"], _tuple("towns"), _tuple("excluding"))


WHOLE_NIGHT = Partition("全部")
PARTITION_BY = ("none", "district", "town")


def plan_partitions(conn, by: str) -> list[Partition]:
    """The partitions of tonight's rows: one (``none``, or a single district), one per district, or
    one per town. Towns are those of tonight's people (``night.towns``), districts those of the
    reference data (``night.town_districts``); the first partition also takes whatever town the
    reference data does not know, so there is no partition of leftovers costing a whole night."""
    if by not in PARTITION_BY:
        raise ValueError(f"night_partitions must be one of {PARTITION_BY}, not {by!r}")
    rows = conn.execute("SELECT t.town, d.district_code, d.district FROM night.towns t "
                        "JOIN night.town_districts d USING (town) ORDER BY d.district_code, d.town_code").fetchall()
    groups: dict[str, list[str]] = {}
    for town, code, district in rows:
        groups.setdefault(town if by == "town" else f"{district}（{code}）", []).append(town)
    if by == "none" or len(groups) < 2:
        return [WHOLE_NIGHT]
    (first, _), *others = groups.items()
    return [Partition(first, excluding=tuple(t for _, towns in others for t in towns))] + [
        Partition(key, tuple(towns)) for key, towns in others]
