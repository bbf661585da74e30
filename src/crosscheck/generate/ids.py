"""GB 11643-1999 citizen ID numbers, vectorised: region(6) + birth date(8) + sequence(3) + check char.

The check character is ISO 7064 MOD 11-2: ``crosscheck.normalise.check_char`` (python-stdnum's) and,
vectorised, ``check_chars``.
"""

from __future__ import annotations

import numpy as np

from crosscheck.normalise import check_char, check_chars

# Region codes in force when a Tongliang number was issued (extracts.md; python-stdnum's cn/loc.dat,
# against which tests/test_generate.py checks them): (first year, code), in order.
TONGLIANG_REGIONS = (
    (0, 512124),  # 铜梁县, Sichuan, before 1983
    (1983, 510228),  # 铜梁县, Sichuan, 1983-1997
    (1997, 500224),  # 铜梁县, Chongqing, 1997-2014
    (2014, 500151),  # 铜梁区, since 2014
)

# Real region codes of other places people moved in from (~3%), nearby places weighted higher.
OTHER_REGIONS = (
    (500103, 3),
    (500106, 3),
    (500112, 3),
    (500117, 6),
    (500118, 4),
    (500120, 5),
    (500152, 5),
    (500153, 3),
    (500113, 2),
    (510104, 2),
    (510107, 2),
    (510722, 2),
    (511302, 2),
    (511621, 2),
    (520102, 1),
    (530102, 1),
    (420106, 1),
    (440304, 1),
    (441900, 1),
    (330106, 1),
    (320106, 1),
    (110105, 1),
)
XINJIANG_REGIONS = (650102, 653101)


def home_region(birth_year: np.ndarray) -> np.ndarray:
    """The Tongliang region code in force in the birth year (numbers are issued at birth registration)."""
    starts = np.array([start for start, _ in TONGLIANG_REGIONS[1:]])
    codes = np.array([code for _, code in TONGLIANG_REGIONS])
    return codes[np.searchsorted(starts, birth_year, side="right")]


def build_ids(region: np.ndarray, birth: np.ndarray, seq: np.ndarray) -> np.ndarray:
    """18-character IDs as a numpy 'S18' array."""
    n = len(region)
    y = birth.astype("datetime64[Y]").astype(np.int64) + 1970
    m = birth.astype("datetime64[M]").astype(np.int64) % 12 + 1
    d = (birth - birth.astype("datetime64[M]").astype("datetime64[D]")).astype(np.int64) + 1
    digits = np.empty((n, 18), dtype=np.uint8)
    for pos, (val, width) in enumerate(((region, 6), (y, 4), (m, 2), (d, 2), (seq, 3))):
        start = sum((6, 4, 2, 2, 3)[:pos])
        v = np.asarray(val, dtype=np.int64)
        for k in range(width):
            digits[:, start + width - 1 - k] = v % 10
            v = v // 10
    out = digits + ord("0")
    out[:, 17] = check_chars(digits[:, :17])
    return np.ascontiguousarray(out).view("S18").ravel()


def unique_sequences(
    region: np.ndarray,
    birth: np.ndarray,
    sex: np.ndarray,
    rng: np.random.Generator,
    taken: np.ndarray | None = None,
) -> np.ndarray:
    """Sequence numbers (000-999, parity = sex: odd male) that make every (region, birth, seq) unique.

    ``taken`` holds keys already used (region * 10**11 + days * 10**3 + seq) to stay unique against.
    """
    n = len(region)
    days = birth.astype("datetime64[D]").astype(np.int64) + 100_000  # positive
    base = region.astype(np.int64) * 10**11 + days * 1000
    seq = rng.integers(0, 500, n) * 2 + sex.astype(np.int64)
    todo = np.arange(n)
    taken_keys = np.asarray(taken if taken is not None else [], dtype=np.int64)
    for _ in range(100):
        keys = base + seq
        allkeys = np.concatenate([taken_keys, keys])
        _, first, counts = np.unique(allkeys, return_index=True, return_counts=True)
        dup = np.ones(len(allkeys), dtype=bool)
        dup[first] = False  # first occurrence of every key is fine
        dup_own = dup[len(taken_keys) :]
        # a key equal to one in `taken` is a duplicate even when it is the first in `keys`
        if len(taken_keys):
            dup_own |= np.isin(keys, taken_keys)
        todo = np.flatnonzero(dup_own)
        if len(todo) == 0:
            return seq
        seq[todo] = rng.integers(0, 500, len(todo)) * 2 + sex[todo].astype(np.int64)
    raise RuntimeError("could not make ID numbers unique")


def id_keys(region: np.ndarray, birth: np.ndarray, seq: np.ndarray) -> np.ndarray:
    days = birth.astype("datetime64[D]").astype(np.int64) + 100_000
    return region.astype(np.int64) * 10**11 + days * 1000 + seq.astype(np.int64)


def to15(id18: str) -> str:
    """The legacy 15-digit form (region + yymmdd + seq); only meaningful for people born 19xx."""
    return id18[:6] + id18[8:17]


def upgrade15(id15: str) -> str:
    first17 = id15[:6] + "19" + id15[6:]
    return first17 + check_char(first17)


def is_valid18(s: str) -> bool:
    if len(s) != 18 or not s[:17].isdigit():
        return False
    import datetime as _dt

    try:
        _dt.date(int(s[6:10]), int(s[10:12]), int(s[12:14]))
    except ValueError:
        return False
    return check_char(s[:17]) == s[17]
