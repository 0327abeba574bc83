#!/usr/bin/env python3
"""Regenerates engine/src/schedule/testdata/croniter.json: next fire times computed by Python's
croniter (an independent cron implementation), which `schedule::croniter_tests` compares
against dagforge::schedule.

    pip install croniter==7.0.0 && python3 scripts/croniter-fixture.py

Only cases where the two implementations are meant to agree are generated:
- in UTC, Europe/Paris and America/New_York, but no case whose fires reach a fall-back day
  (croniter fires a repeated wall time twice; dagforge fires it once); spring-forward days are
  kept;
- no day-of-month/day-of-week field starting with `*/` (croniter applies the OR rule to
  `*/n`; dagforge, like Vixie cron and cronie, treats a field starting with `*` as
  unrestricted);
- no one-value range such as `5-5` (croniter 7.0.0 expands it to every value: a croniter bug).
"""
import json
import random
from datetime import datetime, timezone
from pathlib import Path

from zoneinfo import ZoneInfo

from croniter import croniter

MONTHS = "jan feb mar apr may jun jul aug sep oct nov dec".split()
DAYS = "sun mon tue wed thu fri sat".split()


def element(rng, lo, hi, names, base):
    def val(v):
        if names and rng.random() < 0.4:
            return names[v - base].upper()
        return str(v)

    kind = rng.choice(["one", "one", "range", "rangestep", "step"])
    a, b = sorted(rng.sample(range(lo, hi + 1), 2))
    if kind == "one":
        return val(a)
    if kind == "range":
        return f"{val(a)}-{val(b)}"
    if kind == "rangestep":
        return f"{a}-{b}/{rng.randint(1, hi - lo + 1)}"
    return f"*/{rng.randint(1, hi - lo + 1)}"


def field(rng, lo, hi, names=None, base=0, star=0.3, day=False):
    if rng.random() < star:
        return "*"
    while True:
        items = [element(rng, lo, hi, names, base) for _ in range(rng.randint(1, 3))]
        if day and any(i.startswith("*") for i in items):
            continue
        return ",".join(items)


def expression(rng):
    return " ".join(
        [
            field(rng, 0, 59, star=0.1),
            field(rng, 0, 23, star=0.3),
            field(rng, 1, 31, star=0.6, day=True),
            field(rng, 1, 12, MONTHS, 1, star=0.6),
            # day-of-week 0-6 only: croniter reads 7 as Sunday too, but keep to the common part
            field(rng, 0, 6, DAYS, 0, star=0.6, day=True),
        ]
    )


FIXED = [
    "0 0 31 * *",
    "0 0 29 2 *",
    "59 23 31 12 *",
    "0 9 * * MON-FRI",
    "0 0 * * 1-5",
    "0 0 * * 7",
    "*/15 * * * *",
    "5-20/5 * * * *",
    "0 0 13 * FRI",
    "0 0 1,15 * 3",
    "0 0 1 jan,Jul *",
    "0 0 1 FEB-apr/2 *",
    "0 8,12-13 * * *",
    "@weekly",
    "@monthly",
    "@yearly",
    "@daily",
    "@hourly",
]


def fall_back(tz, a, b):
    """Whether the clock goes back between a and b (extended by a day on each side)."""
    t = a.timestamp() - 86400
    end = b.timestamp() + 86400
    prev = datetime.fromtimestamp(t, tz).utcoffset()
    while t < end:
        t += 3600
        off = datetime.fromtimestamp(t, tz).utcoffset()
        if off < prev:
            return True
        prev = off
    return False


def main():
    rng = random.Random(20261129)
    cases = []
    for zone in ["UTC", "Europe/Paris", "America/New_York"]:
        tz = ZoneInfo(zone)
        exprs = FIXED + [expression(rng) for _ in range(300 if zone == "UTC" else 150)]
        for expr in exprs:
            start = datetime(2026, 1, 1, tzinfo=timezone.utc).timestamp() + rng.randint(
                0, 3 * 365 * 86400
            )
            after = datetime.fromtimestamp(start, timezone.utc)
            try:
                it = croniter(expr, after.astimezone(tz))
                fires = [it.get_next(datetime) for _ in range(5)]
            except Exception as e:  # croniter rejects it (never fires, …): not compared
                print(f"skipped `{expr}`: {e}")
                continue
            if zone != "UTC" and any(
                fall_back(tz, after, f.astimezone(timezone.utc)) for f in fires[-1:]
            ):
                continue
            cases.append(
                {
                    "cron": expr,
                    "time_zone": zone,
                    "after": after.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "next": [
                        f.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ") for f in fires
                    ],
                }
            )
    out = Path(__file__).resolve().parent.parent / "engine/src/schedule/testdata/croniter.json"
    out.write_text("[\n" + ",\n".join(json.dumps(c) for c in cases) + "\n]\n")
    print(f"{len(cases)} cases → {out}")


if __name__ == "__main__":
    main()
