"""Tongliang District geography for the generator: 28 towns, their villages, and named places.

Real names come from include/reference/tongliang_divisions.csv. Every name that is NOT from that
file is synthetic and is listed here explicitly (SYNTHETIC_* constants), so nobody mistakes a made-up
village, workshop or company for a real one.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from crosscheck.reference import division_rows

# Villages per town the generator aims for (the district has 333 村/社区 in 28 towns: ~12 each).
VILLAGES_PER_TOWN = 12

# SYNTHETIC: stems for made-up village/community names, used only where the reference file has fewer
# than VILLAGES_PER_TOWN villages for a town. Plausible for rural Chongqing; not real divisions.
SYNTHETIC_VILLAGE_STEMS = (
    "青龙",
    "白果",
    "黄桷",
    "石坝",
    "新民",
    "高峰",
    "桂花",
    "五星",
    "龙门",
    "双江",
    "金龙",
    "长岭",
    "三合",
    "双桥",
    "永胜",
    "红岩",
    "凤凰",
    "梨园",
    "大坪",
    "太和",
    "莲花",
    "石桥",
    "新桥",
    "柏林",
    "复兴",
    "联合",
    "玉皇",
    "檬子",
    "天星",
    "河坝",
    "观音",
    "石牛",
    "马鞍",
    "铁炉",
    "响水",
    "团结",
    "兴隆",
    "清平",
    "古佛",
    "龙滩",
    "峰山",
    "荷花",
    "土地",
    "松林",
    "回龙",
    "新华",
    "安乐",
    "三星",
)


@dataclass(frozen=True)
class Village:
    town: str
    town_code: str
    name: str
    kind: str  # 村 or 社区
    synthetic: bool


def _synthetic_names(town: str, taken: set[str], count: int, street: bool) -> list[str]:
    """Deterministic made-up names for one town (same for every seed: geography is fixed)."""
    out: list[str] = []
    start = sum(map(ord, town)) % len(SYNTHETIC_VILLAGE_STEMS)
    i = 0
    while len(out) < count:
        stem = SYNTHETIC_VILLAGE_STEMS[(start + 7 * i) % len(SYNTHETIC_VILLAGE_STEMS)]
        i += 1
        # streets (街道) are urban: mostly 社区; towns: mostly 村 with one 社区 (the town seat)
        suffix = "社区" if street and len(out) % 4 != 3 else ("社区" if not street and not out else "村")
        name = stem + suffix
        if name in taken or stem + "村" in taken or stem + "社区" in taken:
            continue
        taken.add(name)
        out.append(name)
    return out


@cache
def villages(districts: tuple[str, ...] = ("500151",)) -> tuple[Village, ...]:
    """All villages of the districts, real ones first within each town, towns in division-code order."""
    rows = division_rows(districts)
    towns: dict[str, tuple[str, list[tuple[str, str]]]] = {}
    for r in rows:
        entry = towns.setdefault(r["town"], (r["town_code"], []))
        if r["village"]:
            entry[1].append((r["village"], r["kind"] or ("社区" if r["village"].endswith("社区") else "村")))
    out: list[Village] = []
    for town, (code, real) in sorted(towns.items(), key=lambda kv: kv[1][0]):
        for name, kind in real:
            out.append(Village(town, code, name, kind, False))
        missing = max(0, VILLAGES_PER_TOWN - len(real))
        taken = {n for n, _ in real}
        for name in _synthetic_names(town, taken, missing, town.endswith("街道")):
            out.append(Village(town, code, name, "社区" if name.endswith("社区") else "村", True))
    return tuple(out)


def synthetic_villages() -> list[tuple[str, str]]:
    """SYNTHETIC: the (town, village) pairs made up by the generator."""
    return [(v.town, v.name) for v in villages() if v.synthetic]


# Poverty-relief workshops (扶贫车间). The first is the example in the contract (extracts.md); the
# others are SYNTHETIC, placed in villages named in the source article or the reference file.
WORKSHOPS = (
    ("坪漆村龙灯彩扎基地扶贫车间", "太平镇"),
    ("文曲村竹编扶贫车间", "侣俸镇"),  # SYNTHETIC
    ("大滩村服装加工扶贫车间", "水口镇"),  # SYNTHETIC
    ("紫极村电子元件扶贫车间", "安居镇"),  # SYNTHETIC
    ("金竹村农产品分拣扶贫车间", "平滩镇"),  # SYNTHETIC
    ("黄升村鞋服加工扶贫车间", "大庙镇"),  # SYNTHETIC
    ("双河社区来料加工扶贫车间", "双山镇"),  # SYNTHETIC
    ("龙桥社区灯具组装扶贫车间", "蒲吕街道"),  # SYNTHETIC
    ("新华村蔬菜加工扶贫车间", "平滩镇"),  # SYNTHETIC
    ("临江社区手工编织扶贫车间", "安居镇"),  # SYNTHETIC
    ("石兴村食品包装扶贫车间", "大庙镇"),  # SYNTHETIC
)

# SYNTHETIC employer names (企业就业).
SYNTHETIC_EMPLOYERS = (
    "重庆铜梁恒达机械有限公司",
    "重庆巴川电子科技有限公司",
    "铜梁区金龙食品有限公司",
    "重庆蒲吕建材有限公司",
    "重庆安居物流有限公司",
    "铜梁区东城物业管理有限公司",
    "重庆龙乡服饰有限公司",
    "重庆铜梁高新区汽配有限公司",
    "铜梁区南城餐饮管理有限公司",
    "重庆西河农业开发有限公司",
)

# SYNTHETIC training institutions.
SYNTHETIC_INSTITUTIONS = (
    "铜梁区就业训练中心",
    "铜梁区职业教育中心",
    "重庆龙乡职业培训学校",
    "铜梁区巴川技工培训学校",
)

PUBLIC_WELFARE_POSITIONS = (
    "护路员",
    "护林员",
    "保洁员",
    "护河员",
    "治安巡逻员",
    "公共设施管护员",
    "养老服务员",
)
WORKSHOP_POSITIONS = ("彩扎工", "缝纫工", "编织工", "包装工", "分拣工")
ENTERPRISE_POSITIONS = ("普工", "操作工", "电焊工", "厨师", "保安", "销售员", "仓管员")
FLEXIBLE_POSITIONS = ("快递员", "网约车司机", "家政服务员", "零工", "种养殖")
TRADES = (
    "焊工",
    "车工",
    "厨师",
    "龙灯彩扎",
    "电子商务",
    "家政服务员",
    "育婴员",
    "中式面点师",
    "电工",
    "养老护理员",
    "农业实用技术",
)
