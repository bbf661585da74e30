"""The clean world model: residents in hukou households, poverty households, deaths, assistance
cases, jobs and training, all as numpy arrays (one entry per person or per record).

Nothing here breaks a rule of rules.md; plant.py adds the findings. Derived records (enrolment,
pension and finance payments) are computed from these facts by ledger.py, after the plants that
change facts have run, so the clean part stays consistent whatever the plants did.
"""

from __future__ import annotations

import zlib
from datetime import date

import numpy as np

from crosscheck.generate import geo, ids

# Relation codes (与户主关系) as in the residents contract.
RELATIONS = np.array(["户主", "配偶", "子", "女", "父母", "孙子女", "其他"])
REL_HEAD, REL_SPOUSE, REL_SON, REL_DAU, REL_PARENT, REL_GRAND, REL_OTHER = range(7)

# Household roles used by the templates (mapped to relations once sexes are known).
HEAD, SPOUSE, CHILD, PARENT, GRAND, INLAW = range(6)
NONE = -1

# Household templates: (weight, head age low, head age high, roles).
TEMPLATES = (
    (0.15, 20, 92, (HEAD,)),
    (0.22, 24, 88, (HEAD, SPOUSE)),
    (0.15, 24, 58, (HEAD, SPOUSE, CHILD)),
    (0.10, 32, 58, (HEAD, SPOUSE, CHILD, CHILD)),
    (0.09, 48, 80, (HEAD, SPOUSE, CHILD, GRAND)),
    (0.09, 50, 82, (HEAD, SPOUSE, CHILD, INLAW, GRAND, GRAND)),
    (0.06, 26, 56, (HEAD, SPOUSE, CHILD, PARENT)),
    (0.06, 28, 54, (HEAD, SPOUSE, CHILD, CHILD, PARENT, PARENT)),
    (0.08, 52, 84, (HEAD, GRAND)),
)
MAX_SIZE = max(len(t[3]) for t in TEMPLATES)

SURNAMES = (
    "李王张刘陈杨黄周吴徐赵何罗胡谢唐邓冉彭曾谭蒋廖余文田袁向龚熊朱马郭黎秦雷付杜蔡魏程钟姚邹万夏汪任梁"
    "冯肖陶郑游苏邱卢贺沈石潘江严范颜傅孙林龙谷吕宋韩税敖蒲兰甘"
)
MALE_CHARS = "国建明华军平勇强伟林成志永德兵富贵福海波春光文学刚东祥荣洪金忠新朝杰浩宇鑫俊涛磊超鹏飞阳龙江川山云长友发中元银树松"
FEMALE_CHARS = "秀英芳兰琼玉梅丽娟敏静燕霞红华萍珍凤莲群淑素桂琴慧婷雪倩欣怡佳雨思梦瑶颖蓉春碧琳"
# Uyghur names are written with a dot between the parts (the canonical dot is U+00B7).
DOTTED_FIRST = (
    "买买提",
    "艾力",
    "阿不都",
    "热合曼",
    "吐尔逊",
    "依明",
    "努尔",
    "阿迪力",
    "阿依古丽",
    "古丽娜尔",
    "帕提曼",
    "米娜",
)
DOTTED_SECOND = ("艾买提", "吐尔洪", "阿布拉", "卡德尔", "司马义", "托乎提", "玉素甫", "亚森", "肉孜", "伊明")

ETHNICITIES = ("汉族", "土家族", "苗族", "回族", "维吾尔族")
ETHNIC_P = (0.973, 0.015, 0.008, 0.002, 0.002)
UYGHUR = 4

STATUS = np.array(["正常", "死亡", "迁出"])
ST_NORMAL, ST_DEAD, ST_MOVED = range(3)

HH_TYPES = np.array(["一般贫困户", "低保贫困户", "特困供养贫困户"])
LABOUR = np.array(["无劳动能力", "弱劳动能力", "普通劳动力", "技能劳动力"])

CASE_CATS = np.array(["城乡低保", "特困供养", "临时救助"])
CAT_DIBAO, CAT_TEKUN, CAT_LINSHI = range(3)
GRADES = np.array(["", "一级", "二级", "三级", "四级"])

JOB_TYPES = np.array(["扶贫公益性岗位", "临时公益性岗位", "扶贫车间", "企业就业", "灵活就业"])
JOB_FP, JOB_LS, JOB_WS, JOB_ENT, JOB_FLEX = range(5)

DEATH_SOURCES = np.array(["火化", "医学死亡证明", "户籍注销"])

NAT = np.datetime64("NaT", "D")


def crc(name: str) -> int:
    return zlib.crc32(name.encode("utf-8"))


# ---------------------------------------------------------------- date helpers (vectorised)


def ymd(d: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    y = d.astype("datetime64[Y]").astype(np.int64) + 1970
    m = d.astype("datetime64[M]").astype(np.int64) % 12 + 1
    dd = (d - d.astype("datetime64[M]").astype("datetime64[D]")).astype(np.int64) + 1
    return y, m, dd


def make_date(y, m, d) -> np.ndarray:
    y = np.asarray(y, dtype=np.int64)
    m = np.asarray(m, dtype=np.int64)
    d = np.asarray(d, dtype=np.int64)
    months = (y - 1970) * 12 + (m - 1)
    return (
        months.astype("datetime64[M]").astype("datetime64[D]")
        + d.astype("timedelta64[D]")
        - np.timedelta64(1, "D")
    )


def add_years(d, k) -> np.ndarray:
    """Same month and day k years later (29 Feb becomes 28 Feb in a common year)."""
    y, m, dd = ymd(np.asarray(d, dtype="datetime64[D]"))
    y2 = y + np.asarray(k, dtype=np.int64)
    leap = (y2 % 4 == 0) & ((y2 % 100 != 0) | (y2 % 400 == 0))
    dd = np.where((m == 2) & (dd == 29) & ~leap, 28, dd)
    return make_date(y2, m, dd)


def age_at(birth: np.ndarray, when) -> np.ndarray:
    """Whole years at `when` (a date or an array of dates)."""
    by, bm, bd = ymd(birth)
    wy, wm, wd = ymd(np.asarray(when, dtype="datetime64[D]"))
    return wy - by - ((wm * 100 + wd) < (bm * 100 + bd))


def rand_dates(rng: np.random.Generator, lo, hi) -> np.ndarray:
    """Uniform dates in [lo, hi] (inclusive); hi < lo gives lo."""
    lo = np.asarray(lo, dtype="datetime64[D]")
    hi = np.asarray(hi, dtype="datetime64[D]")
    span = np.maximum((hi - lo).astype(np.int64), 0) + 1
    n = max(lo.size, hi.size)
    off = np.floor(rng.random(n) * span).astype(np.int64)
    return lo + off.astype("timedelta64[D]")


def months_of(d: np.ndarray) -> np.ndarray:
    return d.astype("datetime64[M]")


def month_day(m: np.ndarray, day: int) -> np.ndarray:
    return m.astype("datetime64[D]") + np.timedelta64(day - 1, "D")


def weighted_order(rng: np.random.Generator, weights: np.ndarray) -> np.ndarray:
    """A random order where heavier items tend to come first (Efraimidis-Spirakis keys)."""
    keys = rng.random(len(weights)) ** (1.0 / np.maximum(weights, 1e-9))
    return np.argsort(-keys, kind="stable")


def pick(rng: np.random.Generator, mask: np.ndarray, k: int, weights: np.ndarray | None = None) -> np.ndarray:
    """Up to k distinct indices where mask is true, random (weighted), sorted."""
    cand = np.flatnonzero(mask)
    if len(cand) == 0 or k <= 0:
        return np.array([], dtype=np.int64)
    if weights is None:
        chosen = rng.permutation(cand)[:k]
    else:
        chosen = cand[weighted_order(rng, weights[cand])[:k]]
    return np.sort(chosen)


class World:
    """Everything about the synthetic district. Attributes are filled by the build steps."""

    def __init__(self, persons: int, seed: int, as_of: date, districts: tuple[str, ...] = ("500151",)):
        if persons < 500:
            raise ValueError("generate at least 500 persons")
        self.N = persons
        self.seed = seed
        self.as_of = as_of
        self.D = np.datetime64(as_of, "D")
        self.Y = as_of.year
        self.M_D = np.datetime64(as_of, "M")
        self.LFM = self.M_D - np.timedelta64(1, "M")  # last full month
        self.W0 = np.datetime64(f"{self.Y - 1}-01", "M")  # first month of the transaction window
        self.Y0 = np.datetime64(f"{self.Y}-01-01", "D")  # first day of this year
        self.WD0 = np.datetime64(f"{self.Y - 1}-01-01", "D")  # first day of the window
        self.scale = persons / 850_000
        self.vill = geo.villages(districts)
        self.truth: list[tuple[str, str, str, str, str, str]] = []

    def rng(self, stage: str) -> np.random.Generator:
        return np.random.default_rng([self.seed, crc(stage)])

    # ------------------------------------------------------------------ convenience
    @property
    def alive(self) -> np.ndarray:
        return np.isnat(self.death) & (self.status != ST_DEAD)

    def age(self, idx=None) -> np.ndarray:
        b = self.birth if idx is None else self.birth[idx]
        return age_at(b, self.D)


# ====================================================================== persons and households


def build_persons(w: World) -> None:
    rng = w.rng("persons")
    N = w.N
    weights = np.array([t[0] for t in TEMPLATES])
    weights = weights / weights.sum()
    lens = np.array([len(t[3]) for t in TEMPLATES])
    roles = np.full((len(TEMPLATES), MAX_SIZE), NONE, dtype=np.int8)
    for i, t in enumerate(TEMPLATES):
        roles[i, : len(t[3])] = t[3]
    mean = float((weights * lens).sum())
    guess = int(N / mean * 1.2) + 50
    tmpl = rng.choice(len(TEMPLATES), guess, p=weights)
    sizes = lens[tmpl]
    cum = np.cumsum(sizes)
    nh = int(np.searchsorted(cum, N)) + 1
    tmpl = tmpl[:nh]
    sizes = sizes[:nh].copy()
    sizes[-1] -= int(cum[nh - 1] - N)
    hh = np.repeat(np.arange(nh), sizes)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    pos = np.arange(N) - starts[hh]
    role = roles[tmpl[hh], pos]

    lo = np.array([t[1] for t in TEMPLATES])[tmpl]
    hi = np.array([t[2] for t in TEMPLATES])[tmpl]
    # head ages: a little skewed towards older heads (ageing rural population)
    u = rng.random(nh)
    head_age = (lo + np.floor(u * (hi - lo + 1))).astype(np.int64)
    H = head_age[hh]
    r = rng.random(N)
    age = H.copy()
    m = role == SPOUSE
    age[m] = np.clip(H[m] + rng.integers(-6, 5, m.sum()), 18, 99)
    m = role == CHILD
    three_gen = np.isin(tmpl[hh], [4, 5])
    off_hi = np.where(three_gen, 30, np.minimum(38, H))
    off_lo = np.where(three_gen, 23, 22)
    off = off_lo + np.floor(r * (np.maximum(off_hi - off_lo, 0) + 1)).astype(np.int64)
    age[m] = np.maximum(H[m] - off[m], 0)
    m = role == INLAW
    age[m] = np.maximum(H[m] - off[m] + rng.integers(-3, 4, m.sum()), 18)
    m = role == PARENT
    age[m] = np.minimum(H[m] + rng.integers(22, 35, m.sum()), 99)
    m = role == GRAND
    goff = 46 + np.floor(r * 15).astype(np.int64)
    age[m] = np.clip(H[m] - goff[m], 0, 30)

    # sexes: heads mostly men, spouses the other sex, daughters-in-law women
    sex = (rng.random(N) < 0.5).astype(np.int8)
    head_sex = (rng.random(nh) < 0.8).astype(np.int8)
    sex[role == HEAD] = head_sex[hh[role == HEAD]]
    sex[role == SPOUSE] = 1 - head_sex[hh[role == SPOUSE]]
    sex[role == INLAW] = (rng.random((role == INLAW).sum()) < 0.15).astype(np.int8)
    # the two parents of template 7 are a couple
    m = role == PARENT
    second_parent = m & (np.concatenate([[NONE], role[:-1]]) == PARENT)
    sex[second_parent] = 1 - sex[np.flatnonzero(second_parent) - 1]

    relation = np.select(
        [
            role == HEAD,
            role == SPOUSE,
            (role == CHILD) & (sex == 1),
            role == CHILD,
            role == PARENT,
            role == GRAND,
        ],
        [REL_HEAD, REL_SPOUSE, REL_SON, REL_DAU, REL_PARENT, REL_GRAND],
        REL_OTHER,
    ).astype(np.int8)

    # birth dates: uniform within the year of age
    upper = add_years(np.full(N, w.D), -age)
    lower = add_years(np.full(N, w.D), -(age + 1)) + np.timedelta64(1, "D")
    birth = rand_dates(rng, lower, upper)

    # places: streets (街道) are bigger
    vill = w.vill
    vweight = np.array([3.0 if v.town.endswith("街道") else 1.0 for v in vill])
    district = np.array([v.town_code[:6] for v in vill])
    if len(set(district)) > 1:  # several districts: each gets an equal share of the households
        for code in set(district):
            vweight[district == code] /= vweight[district == code].sum()
    hh_village = rng.choice(len(vill), nh, p=vweight / vweight.sum())
    ethnic = rng.choice(len(ETHNICITIES), nh, p=ETHNIC_P)
    few = max(4, int(nh * ETHNIC_P[UYGHUR])) - int((ethnic == UYGHUR).sum())
    if few > 0:  # a few dotted names even in a small district
        ethnic[rng.choice(nh, few, replace=False)] = UYGHUR

    w.n_hh = nh
    w.hh = hh
    w.hh_start = starts
    w.hh_size = sizes
    w.hh_village = hh_village
    w.hh_ethnic = ethnic
    w.role = role
    w.relation = relation
    w.sex = sex
    w.birth = birth
    w.village = hh_village[hh]
    w.status = np.zeros(N, dtype=np.int8)
    w.death = np.full(N, NAT)
    w.in_res = np.ones(N, dtype=bool)
    w.protected = np.zeros(N, dtype=bool)  # near-miss persons: never used by plants or deaths
    w.used = np.zeros(N, dtype=bool)  # persons already carrying a planted finding
    _names(w, rng)


def _names(w: World, rng: np.random.Generator) -> None:
    N = w.N
    sur_p = 1.0 / np.arange(1, len(SURNAMES) + 1) ** 0.9
    sur_p /= sur_p.sum()
    surnames = np.array(list(SURNAMES))
    hh_sur = rng.choice(len(SURNAMES), w.n_hh, p=sur_p)
    own_sur = rng.choice(len(SURNAMES), N, p=sur_p)
    family = (w.role == HEAD) | (w.role == CHILD) | (w.role == GRAND) | ((w.role == PARENT) & (w.sex == 1))
    sur = np.where(family, hh_sur[w.hh], own_sur)
    male = np.array(list(MALE_CHARS))
    female = np.array(list(FEMALE_CHARS))
    g1 = np.where(w.sex == 1, male[rng.integers(0, len(male), N)], female[rng.integers(0, len(female), N)])
    g2 = np.where(w.sex == 1, male[rng.integers(0, len(male), N)], female[rng.integers(0, len(female), N)])
    two = rng.random(N) < 0.75
    given = np.where(two, np.char.add(g1, g2), g1)
    names = np.char.add(surnames[sur], given).astype("U12")
    uy = w.hh_ethnic[w.hh] == UYGHUR
    if uy.any():
        k = int(uy.sum())
        first = np.array(DOTTED_FIRST)[rng.integers(0, len(DOTTED_FIRST), k)]
        second = np.array(DOTTED_SECOND)[rng.integers(0, len(DOTTED_SECOND), k)]
        names[uy] = np.char.add(np.char.add(first, "·"), second)
    w.name = names
    w.ethnic = w.hh_ethnic[w.hh].astype(np.int8)


# ====================================================================== poverty registry


def build_poverty(w: World) -> None:
    rng = w.rng("poverty")
    N, nh = w.N, w.n_hh
    kind_cun = np.array([v.kind == "村" for v in w.vill])
    age = w.age()
    has_old = np.zeros(nh, dtype=bool)
    has_old[w.hh[age >= 60]] = True
    weight = np.where(has_old, 2.0, 1.0) * kind_cun[w.hh_village]
    cand = np.flatnonzero(kind_cun[w.hh_village])
    order = cand[weighted_order(rng, weight[cand])]
    target = max(0.035 * N, min(150.0, 0.15 * N))
    cum = np.cumsum(w.hh_size[order])
    k = int(np.searchsorted(cum, target)) + 1
    phh = np.sort(order[:k])  # hukou households that are poverty households
    npoor = len(phh)

    hh_poor_idx = np.full(nh, -1, dtype=np.int64)
    hh_poor_idx[phh] = np.arange(npoor)
    w.p_hh = phh  # poverty household -> hukou household
    w.phh_of = hh_poor_idx[w.hh]  # person -> poverty household (-1)
    w.poor = w.phh_of >= 0

    size = w.hh_size[phh]
    head_age = age[w.hh_start[phh]]
    single_old = (size == 1) & (head_age >= 60)
    u = rng.random(npoor)
    htype = np.where(single_old & (u < 0.5), 2, np.where(u < 0.3, 1, 0)).astype(np.int8)
    v = rng.random(npoor)
    # 未脱贫 (monitoring households) ~8%; exit this year ~5%; the rest left poverty 2015-2020
    status = np.where(v < 0.08, 0, 1).astype(np.int8)  # 0 未脱贫, 1 已脱贫
    exit_year = np.where(status == 1, rng.integers(2015, 2021, npoor), 0)
    exit_year = np.where((v >= 0.08) & (v < 0.13), w.Y, exit_year)
    reg_year = np.where(status == 0, rng.integers(2014, w.Y + 1, npoor), rng.integers(2014, 2016, npoor))
    reg_year = np.where(exit_year > 0, np.minimum(reg_year, exit_year), reg_year)
    w.p_type = htype
    w.p_status = status
    w.p_exit = exit_year.astype(np.int64)
    w.p_reg = reg_year.astype(np.int64)
    town_code = np.array([int(v.town_code) for v in w.vill])
    w.p_no = town_code[w.hh_village[phh]] * 10**5 + np.arange(1, npoor + 1)  # 户编号 (15 digits)

    # students and labour ability per poor person
    r = rng.random(N)
    student = w.poor & (((age >= 6) & (age <= 15)) | ((age >= 16) & (age <= 22) & (r < 0.6)))
    w.student = student
    lab = np.full(N, 2, dtype=np.int8)
    r2 = rng.random(N)
    lab = np.where(r2 < 0.12, 3, np.where(r2 < 0.25, 1, np.where(r2 < 0.3, 0, 2))).astype(np.int8)
    lab[(age < 16) | student] = 0
    lab[age >= 65] = np.where(r2[age >= 65] < 0.5, 0, 1)
    w.labour = lab

    # poor elderly: draw their pension from the month after their 60th birthday; make sure it has
    # started before the last full month (else the clean world would already be a SS05 finding)
    bday60 = add_years(w.birth, 60)
    late = w.poor & (age >= 60) & (months_of(bday60) > w.LFM - np.timedelta64(1, "M"))
    w.birth[late] = w.birth[late] - np.timedelta64(92, "D")

    # near misses, clean by the letter of the rules: poor non-students aged exactly 16 today and 15
    # (16 tomorrow); non-poor aged exactly 60 today and 59 (60 tomorrow)
    nm16 = pick(rng, w.poor & (age >= 14) & (age <= 18) & (w.relation != REL_HEAD), 3)
    for j, p in enumerate(nm16):
        w.birth[p] = add_years(np.array([w.D]), -16)[0] + np.timedelta64(1 if j == 2 else 0, "D")
        w.student[p] = False
        w.labour[p] = 2
    nm60 = pick(rng, ~w.poor & (age >= 57) & (age <= 63), 3)
    for j, p in enumerate(nm60):
        w.birth[p] = add_years(np.array([w.D]), -60)[0] + np.timedelta64(1 if j == 2 else 0, "D")
    w.protected[nm16] = True
    w.protected[nm60] = True
    w.near_miss = np.concatenate([nm16, nm60])


# ====================================================================== ID numbers


def build_ids(w: World) -> None:
    rng = w.rng("ids")
    N = w.N
    by = w.birth.astype("datetime64[Y]").astype(np.int64) + 1970
    region = ids.home_region(by)
    other = rng.random(N) < 0.03
    codes = np.array([c for c, _ in ids.OTHER_REGIONS])
    cw = np.array([x for _, x in ids.OTHER_REGIONS], dtype=float)
    region = np.where(other, codes[rng.choice(len(codes), N, p=cw / cw.sum())], region)
    uy = w.ethnic == UYGHUR
    xj = np.array(ids.XINJIANG_REGIONS)
    region = np.where(uy, xj[rng.integers(0, len(xj), N)], region)
    seq = ids.unique_sequences(region, w.birth, w.sex, rng)
    w.region = region.astype(np.int64)
    w.seq = seq
    w.id18 = ids.build_ids(region, w.birth, seq)


def add_external_persons(w: World, k: int, rng: np.random.Generator) -> np.ndarray:
    """Persons unknown to civil affairs (not in residents): for ID07. Returns their indices."""
    age = rng.integers(20, 55, k)
    sex = (rng.random(k) < 0.5).astype(np.int8)
    upper = add_years(np.full(k, w.D), -age)
    lower = add_years(np.full(k, w.D), -(age + 1)) + np.timedelta64(1, "D")
    birth = rand_dates(rng, lower, upper)
    codes = np.array([c for c, _ in ids.OTHER_REGIONS])
    by = birth.astype("datetime64[Y]").astype(np.int64) + 1970
    region = np.where(rng.random(k) < 0.5, codes[rng.integers(0, len(codes), k)], ids.home_region(by))
    taken = ids.id_keys(w.region, w.birth, w.seq)
    seq = ids.unique_sequences(region, birth, sex, rng, taken=taken)
    id18 = ids.build_ids(region, birth, seq)
    surnames = np.array(list(SURNAMES))
    g = np.where(
        sex == 1,
        np.array(list(MALE_CHARS))[rng.integers(0, len(MALE_CHARS), k)],
        np.array(list(FEMALE_CHARS))[rng.integers(0, len(FEMALE_CHARS), k)],
    )
    g2 = np.array(list(MALE_CHARS + FEMALE_CHARS))[rng.integers(0, len(MALE_CHARS) + len(FEMALE_CHARS), k)]
    names = np.char.add(np.char.add(surnames[rng.integers(0, len(surnames), k)], g), g2)
    start = len(w.birth)
    new = np.arange(start, start + k)

    def ext(name, values):
        setattr(w, name, np.concatenate([getattr(w, name), values]))

    ext("birth", birth)
    ext("sex", sex)
    ext("region", region.astype(np.int64))
    ext("seq", seq)
    ext("id18", id18)
    ext("name", names.astype(w.name.dtype))
    ext("in_res", np.zeros(k, dtype=bool))
    ext("status", np.zeros(k, dtype=np.int8))
    ext("death", np.full(k, NAT))
    ext("poor", np.zeros(k, dtype=bool))
    ext("phh_of", np.full(k, -1, dtype=np.int64))
    ext("student", np.zeros(k, dtype=bool))
    ext("protected", np.zeros(k, dtype=bool))
    ext("used", np.ones(k, dtype=bool))
    ext("village", rng.integers(0, len(w.vill), k))
    ext("hh", np.full(k, -1, dtype=np.int64))
    ext("relation", np.full(k, REL_OTHER, dtype=np.int8))
    ext("ethnic", np.zeros(k, dtype=np.int8))
    ext("elig", np.zeros(k, dtype=bool))
    ext("elig_cat", np.zeros(k, dtype=np.int8))
    ext("death_record", np.zeros(k, dtype=bool))
    ext("death_source", np.zeros(k, dtype=np.int8))
    ext("death_reg", np.full(k, NAT))
    ext("labour", np.zeros(k, dtype=np.int8))
    ext("force_enrol", np.zeros(k, dtype=bool))
    ext("no_enrol", np.zeros(k, dtype=bool))
    return new


# ====================================================================== deaths and moves


def build_deaths(w: World) -> None:
    rng = w.rng("deaths")
    N = w.N
    age = w.age()
    window_years = (w.D - w.WD0).astype(np.int64) / 365.25
    q = 0.0003 * np.exp(0.09 * (age - 30.0))
    p = np.minimum(0.9, q * window_years)
    dead = (rng.random(N) < p) & (age >= 2) & ~w.protected
    death = np.full(N, NAT)
    death[dead] = rand_dates(
        rng, np.full(dead.sum(), w.WD0), np.full(dead.sum(), w.D - np.timedelta64(1, "D"))
    )
    # a few older deaths (before the window), some without a death record
    old = (rng.random(N) < 0.0015) & (age >= 50) & ~dead & ~w.protected
    death[old] = rand_dates(
        rng,
        np.full(old.sum(), np.datetime64(f"{w.Y - 3}-01-01")),
        np.full(old.sum(), w.WD0 - np.timedelta64(1, "D")),
    )
    w.death = death
    w.status[~np.isnat(death)] = ST_DEAD
    record = ~np.isnat(death) & ~(old & (rng.random(N) < 0.5))
    w.death_record = record
    n = len(record)
    w.death_source = rng.choice(3, n, p=[0.6, 0.25, 0.15]).astype(np.int8)
    reg = death + rng.integers(0, 21, n).astype("timedelta64[D]")
    w.death_reg = np.where(reg > w.D, w.D, reg)
    moved = (rng.random(N) < 0.004) & ~w.poor & np.isnat(death) & ~w.protected
    w.status[moved] = ST_MOVED


# ====================================================================== assistance cases


class Records:
    """Column arrays of a record table, appended to in blocks."""

    def __init__(self, **dtypes):
        self.dtypes = dtypes
        self.parts: dict[str, list[np.ndarray]] = {k: [] for k in dtypes}

    def add(self, **cols) -> None:
        sized = [np.size(v) for v in cols.values() if np.ndim(v) > 0]
        n = max(sized) if sized else 1
        for k, dt in self.dtypes.items():
            v = cols.get(k)
            if v is None:
                v = np.full(n, _default(dt), dtype=dt)
            self.parts[k].append(np.broadcast_to(np.asarray(v, dtype=dt), (n,)).copy())

    def done(self) -> dict[str, np.ndarray]:
        return {
            k: (np.concatenate(v) if v else np.array([], dtype=self.dtypes[k])) for k, v in self.parts.items()
        }


def _default(dt):
    dt = np.dtype(dt)
    if dt.kind == "M":
        return NAT
    if dt.kind in "U":
        return ""
    if dt.kind == "O":
        return ""
    if dt.kind == "b":
        return False
    return -1


CASE_DTYPES = dict(
    person=np.int64,
    cat=np.int8,
    grade=np.int8,
    start=np.dtype("datetime64[D]"),
    end=np.dtype("datetime64[D]"),
    amount=np.int64,
)


def build_cases(w: World) -> None:
    rng = w.rng("cases")
    N = w.N
    age = w.age()
    rec = Records(**CASE_DTYPES)
    usable = w.in_res[:N] & (w.status[:N] != ST_MOVED)
    t2012 = np.datetime64("2012-01-01")
    # poverty households of type 低保 / 特困: every member has a case
    for htype, cat in ((1, CAT_DIBAO), (2, CAT_TEKUN)):
        persons = np.flatnonzero(w.poor[:N] & usable & (w.p_type[np.maximum(w.phh_of[:N], 0)] == htype))
        lo = np.maximum(np.datetime64("2014-01-01"), w.birth[persons])
        start = rand_dates(rng, lo, np.full(len(persons), np.datetime64("2019-12-31")))
        rec.add(person=persons, cat=cat, start=start)
    # non-poor 低保 households (~0.5% of households), a quarter of them ended
    hh_pick = rng.random(w.n_hh) < 0.005
    persons = np.flatnonzero(hh_pick[w.hh[:N]] & ~w.poor[:N] & usable)
    hh_start = rand_dates(rng, np.full(w.n_hh, t2012), np.full(w.n_hh, w.D - np.timedelta64(120, "D")))
    hh_end = np.where(
        rng.random(w.n_hh) < 0.25, hh_start + rng.integers(180, 2000, w.n_hh).astype("timedelta64[D]"), NAT
    )
    hh_end = np.where(hh_end > w.D - np.timedelta64(75, "D"), NAT, hh_end)
    start = np.maximum(hh_start[w.hh[persons]], w.birth[persons])
    rec.add(person=persons, cat=CAT_DIBAO, start=start, end=hh_end[w.hh[persons]])
    # non-poor 特困供养: old people living alone
    m = (
        ~w.poor[:N]
        & usable
        & (w.hh_size[w.hh[:N]] == 1)
        & (age >= 60)
        & (rng.random(N) < 0.03)
        & ~hh_pick[w.hh[:N]]
    )
    persons = np.flatnonzero(m)
    rec.add(
        person=persons,
        cat=CAT_TEKUN,
        start=rand_dates(
            rng, np.full(len(persons), t2012), np.full(len(persons), w.D - np.timedelta64(120, "D"))
        ),
    )
    # 临时救助: short, ended cases
    persons = np.flatnonzero(usable & (rng.random(N) < 0.003))
    start = rand_dates(
        rng, np.full(len(persons), w.WD0), np.full(len(persons), w.D - np.timedelta64(75, "D"))
    )
    rec.add(
        person=persons,
        cat=CAT_LINSHI,
        start=start,
        end=start + rng.integers(0, 46, len(persons)).astype("timedelta64[D]"),
    )
    c = rec.done()
    # deaths end cases
    death = w.death[c["person"]]
    keep = np.isnat(death) | (c["start"] < death)
    c = {k: v[keep] for k, v in c.items()}
    death = w.death[c["person"]]
    ends_after = ~np.isnat(death) & (np.isnat(c["end"]) | (c["end"] > death))
    c["end"][ends_after] = death[ends_after]
    n = len(c["person"])
    # monthly amounts (yuan per person)
    c["amount"] = np.where(
        c["cat"] == CAT_TEKUN,
        rng.integers(80, 101, n) * 10,
        np.where(c["cat"] == CAT_DIBAO, rng.integers(40, 66, n) * 10, rng.integers(5, 31, n) * 100),
    )
    # disability grades on 低保/特困 cases covering this year only
    covers_y = np.isnat(c["end"]) | (c["end"] >= w.Y0)
    g = (c["cat"] != CAT_LINSHI) & covers_y & (rng.random(n) < 0.12)
    c["grade"] = np.where(g, rng.choice([1, 2, 3, 4], n, p=[0.2, 0.3, 0.3, 0.2]), 0).astype(np.int8)
    w.cases = c


def case_open_at_D(w: World) -> np.ndarray:
    """Per person: a 城乡低保 or 特困供养 case open at D."""
    c = w.cases
    m = (c["cat"] != CAT_LINSHI) & (c["start"] <= w.D) & (np.isnat(c["end"]) | (c["end"] >= w.D))
    out = np.zeros(len(w.birth), dtype=bool)
    out[c["person"][m]] = True
    return out


def has_case(w: World, cats=(CAT_DIBAO, CAT_TEKUN, CAT_LINSHI)) -> np.ndarray:
    out = np.zeros(len(w.birth), dtype=bool)
    out[w.cases["person"][np.isin(w.cases["cat"], cats)]] = True
    return out


# ====================================================================== jobs and training

JOB_DTYPES = dict(
    person=np.int64,
    type=np.int8,
    employer=object,
    position=object,
    start=np.dtype("datetime64[D]"),
    end=np.dtype("datetime64[D]"),
    pay=np.int64,
    town=object,
)


def _job_rows(
    w: World,
    rec: Records,
    rng,
    persons,
    jtype,
    employers,
    positions,
    pay_lo,
    pay_hi,
    ended_share,
    towns=None,
    employer_values=None,
):
    k = len(persons)
    if k == 0:
        return
    death = w.death[persons]
    last = np.where(np.isnat(death), w.D - np.timedelta64(30, "D"), death - np.timedelta64(30, "D"))
    start = rand_dates(rng, np.full(k, np.datetime64(f"{w.Y - 2}-01-01")), last)
    end = np.where(
        rng.random(k) < ended_share, start + rng.integers(60, 500, k).astype("timedelta64[D]"), NAT
    )
    end = np.where(end > w.D - np.timedelta64(40, "D"), NAT, end)
    end = np.where(~np.isnat(death) & (np.isnat(end) | (end > death)), death, end)
    emp = np.array(employers, dtype=object)[rng.integers(0, len(employers), k)]
    if employer_values is not None:
        emp = employer_values
    if towns is None:
        towns = np.array([v.town for v in w.vill], dtype=object)[w.village[persons]]
    rec.add(
        person=persons,
        type=jtype,
        employer=emp,
        position=np.array(positions, dtype=object)[rng.integers(0, len(positions), k)],
        start=start,
        end=end,
        pay=rng.integers(pay_lo // 10, pay_hi // 10 + 1, k) * 10,
        town=towns,
    )


def build_jobs(w: World) -> None:
    rng = w.rng("jobs")
    N = w.N
    s = w.scale
    age = w.age()
    res = w.in_res[:N] & (w.status[:N] != ST_MOVED) & ~w.used[:N]
    alive = w.alive[:N]
    poor = w.poor[:N]
    workable = res & alive & (age >= 19) & (age <= 64) & ~w.student[:N]
    taken = np.zeros(N, dtype=bool)
    rec = Records(**JOB_DTYPES)
    open_case = case_open_at_D(w)[:N]

    n_pw = max(6, round(415 * s))
    n_fp = round(0.7 * n_pw)
    n_ls = n_pw - n_fp
    # 扶贫公益性岗位: poor people (a few deceased, ended at death) and non-poor people with an open case
    fp_poor = pick(rng, workable & poor & alive, round(n_fp * 0.9))
    fp_case = pick(rng, workable & ~poor & alive & open_case, n_fp - len(fp_poor))
    fp_dead = pick(
        rng,
        res
        & poor
        & ~alive
        & (age >= 19)
        & (age <= 64)
        & ~w.student[:N]
        & (w.death[:N] > np.datetime64(f"{w.Y - 1}-03-01")),
        max(1, n_fp // 20),
    )
    fp = np.concatenate([fp_poor, fp_case, fp_dead])
    taken[fp] = True
    _job_rows(w, rec, rng, fp, JOB_FP, ["镇人民政府"], geo.PUBLIC_WELFARE_POSITIONS, 600, 1000, 0.0)
    # some of them had an earlier job of the same kind that ended
    prev = fp[rng.random(len(fp)) < 0.15]
    _prev_jobs(w, rec, rng, prev, JOB_FP)
    # 临时公益性岗位: poor and non-poor
    ls = np.concatenate(
        [
            pick(rng, workable & poor & alive & ~taken, round(n_ls * 0.8)),
            pick(rng, workable & ~poor & alive & ~taken, n_ls - round(n_ls * 0.8)),
        ]
    )
    taken[ls] = True
    _job_rows(w, rec, rng, ls, JOB_LS, ["镇人民政府"], geo.PUBLIC_WELFARE_POSITIONS, 500, 900, 0.2)
    # poverty-relief workshops: 160 people, 70 of them poor, in 11 workshops
    n_ws = max(11, round(160 * s))
    n_wsp = round(n_ws * 70 / 160)
    ws = np.concatenate(
        [pick(rng, workable & poor & ~taken, n_wsp), pick(rng, workable & ~poor & ~taken, n_ws - n_wsp)]
    )
    taken[ws] = True
    wsi = rng.integers(0, len(geo.WORKSHOPS), len(ws))
    names = np.array([x[0] for x in geo.WORKSHOPS], dtype=object)
    towns = np.array([x[1] for x in geo.WORKSHOPS], dtype=object)
    _job_rows(
        w,
        rec,
        rng,
        ws,
        JOB_WS,
        ["x"],
        geo.WORKSHOP_POSITIONS,
        1800,
        3200,
        0.1,
        towns=towns[wsi],
        employer_values=names[wsi],
    )
    # other poor people employed: enterprise and flexible jobs, to reach 5,632 per 850,000
    target = round(5632 * s)
    have = int((taken & poor).sum())
    avail = workable & poor & ~taken
    k = max(0, min(target - have, int(avail.sum() * 0.6)))
    other = pick(rng, avail, k)
    taken[other] = True
    ent = other[rng.random(len(other)) < 0.6]
    flex = np.setdiff1d(other, ent)
    _job_rows(w, rec, rng, ent, JOB_ENT, geo.SYNTHETIC_EMPLOYERS, geo.ENTERPRISE_POSITIONS, 2500, 6000, 0.15)
    _job_rows(w, rec, rng, flex, JOB_FLEX, ["个体经营", ""], geo.FLEXIBLE_POSITIONS, 1500, 4000, 0.15)
    # non-poor people with registered employment
    np_emp = pick(rng, workable & ~poor & ~taken & (age <= 55), int(0.012 * N))
    ent = np_emp[rng.random(len(np_emp)) < 0.65]
    flex = np.setdiff1d(np_emp, ent)
    _job_rows(w, rec, rng, ent, JOB_ENT, geo.SYNTHETIC_EMPLOYERS, geo.ENTERPRISE_POSITIONS, 2500, 8000, 0.2)
    _job_rows(w, rec, rng, flex, JOB_FLEX, ["个体经营", ""], geo.FLEXIBLE_POSITIONS, 1500, 5000, 0.2)
    w.jobs = rec.done()


def _prev_jobs(w, rec, rng, persons, jtype):
    """An earlier, ended job of the same kind, before the person's current one."""
    if len(persons) == 0:
        return
    j = rec.done()
    first_start = {}
    for p, s0 in zip(j["person"].tolist(), j["start"], strict=True):
        if p not in first_start or s0 < first_start[p]:
            first_start[p] = s0
    starts = np.array([first_start[p] for p in persons.tolist()], dtype="datetime64[D]")
    end = starts - rng.integers(31, 200, len(persons)).astype("timedelta64[D]")
    start = end - rng.integers(90, 400, len(persons)).astype("timedelta64[D]")
    ok = start >= np.datetime64(f"{w.Y - 3}-01-01")
    persons, start, end = persons[ok], start[ok], end[ok]
    towns = np.array([v.town for v in w.vill], dtype=object)[w.village[persons]]
    rec.add(
        person=persons,
        type=jtype,
        employer="镇人民政府",
        position=np.array(geo.PUBLIC_WELFARE_POSITIONS, dtype=object)[rng.integers(0, 7, len(persons))],
        start=start,
        end=end,
        pay=rng.integers(60, 101, len(persons)) * 10,
        town=towns,
    )


TRAIN_DTYPES = dict(
    person=np.int64,
    trade=np.int8,
    institution=np.int8,
    done=np.dtype("datetime64[D]"),
    qualified=np.int8,
    subsidy=np.int64,
    travel=np.int64,
)


def build_training(w: World) -> None:
    rng = w.rng("training")
    N = w.N
    s = w.scale
    age = w.age()
    ok = w.in_res[:N] & (w.status[:N] != ST_MOVED) & w.alive[:N] & (age >= 18) & (age <= 60) & ~w.used[:N]
    n_p = max(5, round(703 * s))
    people = np.concatenate([pick(rng, ok & w.poor[:N], n_p), pick(rng, ok & ~w.poor[:N], n_p)])
    k = len(people)
    lo = np.maximum(np.datetime64("2016-01-01"), add_years(w.birth[people], 16) + np.timedelta64(30, "D"))
    done = rand_dates(rng, lo, np.full(k, w.D - np.timedelta64(1, "D")))
    trade = rng.integers(0, len(geo.TRADES), k).astype(np.int8)
    inst = rng.integers(0, len(geo.SYNTHETIC_INSTITUTIONS), k).astype(np.int8)
    qualified = (rng.random(k) < 0.92).astype(np.int8)
    subsidy = np.where(qualified == 1, rng.integers(8, 25, k) * 100, 0)
    travel = np.where((qualified == 1) & (rng.random(k) < 0.54), rng.integers(12, 33, k) * 50, 0)
    rec = Records(**TRAIN_DTYPES)
    rec.add(
        person=people,
        trade=trade,
        institution=inst,
        done=done,
        qualified=qualified,
        subsidy=subsidy,
        travel=travel,
    )
    # near miss for EM04: failed once, passed the same trade later (only the second is subsidised)
    again = (rng.random(k) < 0.06) & (qualified == 1)
    first = done[again] - rng.integers(60, 200, int(again.sum())).astype("timedelta64[D]")
    fine = first >= lo[again]
    rec.add(
        person=people[again][fine],
        trade=trade[again][fine],
        institution=inst[again][fine],
        done=first[fine],
        qualified=0,
        subsidy=0,
        travel=0,
    )
    w.training = rec.done()
