"""Statistics computed from the stored records, never kept as totals that could be edited.

A rating counts when its current outcome is accepted and it is a service
rating; it is *excluded* (kept, counted apart) when an exclusion record names
it or when a case it rates belongs to a person now on the malicious raters'
list. The satisfaction score is the mean level scaled to 100 (5 → 100,
4 → 80, 3 → 60, 2 → 40, 1 → 20). Participation is rated cases over
completed, ratable cases (defaults do not count as rated).

Hall ratings (one per person per day, on the hall overall) are counted the
same way but apart: ``compute(..., kind=Kind.HALL)`` groups them by hall, day
or month, without the per-case figures (participation, defaults), which have no
meaning for them.

Nothing here reads the rater's pseudonym beyond the list check, nor a contact.
"""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from hcp.config.policy import Profile
from hcp.domain import Channel, Grade, Kind

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from hcp.collector.store.stats import StatsQueries

DIMENSIONS = ("hall", "window", "clerk", "item", "day", "month")
HALL_DIMENSIONS = ("hall", "day", "month")
_PER_CASE = ("defaults", "default_share", "completed", "rated", "participation")
LEVEL_COLUMNS = ("l5", "l4", "l3", "l2", "l1")


@dataclass
class _Tally:
    levels: list[int] = field(default_factory=lambda: [0] * 6)
    defaults: int = 0
    excluded: dict[str, int] = field(default_factory=lambda: {"invalid": 0, "malicious": 0, "listed": 0})
    completed: int = 0
    rated: int = 0

    def row(self, profile: Profile) -> dict:
        counted = sum(self.levels)
        grades = {g.value: sum(self.levels[s] for s in range(1, 6) if profile.grade(s) is g) for g in Grade}
        mean = sum(s * self.levels[s] for s in range(1, 6)) / counted if counted else None
        return {"ratings": counted, **{f"l{s}": self.levels[s] for s in range(5, 0, -1)}, **grades,
                "good_rate": _rate(grades["good"], counted), "neutral_rate": _rate(grades["neutral"], counted),
                "bad_rate": _rate(grades["bad"], counted),
                "satisfaction": None if mean is None else round(mean * 20, 2),
                "defaults": self.defaults, "default_share": _rate(self.defaults, counted),
                "excluded_invalid": self.excluded["invalid"], "excluded_malicious": self.excluded["malicious"],
                "excluded_listed": self.excluded["listed"], "completed": self.completed, "rated": self.rated,
                "participation": _rate(self.rated, self.completed)}


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def compute(store: StatsQueries, profile: Profile, by: Sequence[str], *, start: date | None = None,
            end: date | None = None, kind: Kind = Kind.SERVICE) -> list[dict]:
    """One row per group of ``by`` (e.g. ``("window",)`` or ``("day", "window")``), sorted by group.

    ``kind=Kind.HALL`` counts the hall ratings instead, by hall, day or month.
    """
    allowed = DIMENSIONS if kind is Kind.SERVICE else HALL_DIMENSIONS
    for dim in by:
        if dim not in allowed:
            raise ValueError(f"--by: {dim!r} is not one of {', '.join(allowed)}"
                             + ("" if kind is Kind.SERVICE else " for hall ratings"))
    span = ((start or date.min).isoformat(), (end or date.max).isoformat())
    tallies: dict[tuple, _Tally] = defaultdict(_Tally)
    for hall, window, clerk, item, day, score, channel, excluded, listed in store.stats_ratings(kind.value, *span):
        tally = tallies[_group(by, hall, window, clerk, item, day)]
        if excluded or listed:
            tally.excluded[excluded or "listed"] += 1
            continue
        tally.levels[score] += 1
        tally.defaults += channel == Channel.SYSTEM_DEFAULT.value
    if kind is Kind.SERVICE:
        for hall, window, clerk, item, day, rated in store.stats_cases(*span, profile.failed_intake_ratable):
            tally = tallies[_group(by, hall, window, clerk, item, day)]
            tally.completed += 1
            tally.rated += rated
    dropped = () if kind is Kind.SERVICE else _PER_CASE
    return [{**dict(zip(by, key, strict=True)),
             **{k: v for k, v in tallies[key].row(profile).items() if k not in dropped}}
            for key in sorted(tallies, key=_order)]


def _order(key: tuple) -> tuple:
    return tuple("" if part is None else part for part in key)


def _group(by: Sequence[str], hall: str, window: str, clerk: str | None, item: str | None, day: str) -> tuple:
    values = {"hall": hall, "window": f"{hall}/{window}", "clerk": clerk, "item": item, "day": day,
              "month": day[:7]}
    return tuple(values[dim] for dim in by)


def ranking(rows: list[dict]) -> list[dict]:
    """Groups with ratings, lowest satisfaction first (then the most 差评), as supervision asks."""
    rated = [row for row in rows if row["ratings"]]
    return sorted(rated, key=lambda row: (row["satisfaction"], -(row["bad_rate"] or 0)))


def timeliness(store: StatsQueries, now: datetime) -> dict:
    """差评 follow-up and appeal timeliness, from the records as of ``now``."""
    followups, appeals = store.followup_timeliness(now), store.appeal_timeliness(now)
    return {"followups": {k: v or 0 for k, v in followups.items()}, "appeals": {k: v or 0 for k, v in appeals.items()}}


def disclosure(store: StatsQueries, profile: Profile, *, start: date | None = None,
               end: date | None = None) -> list[dict]:
    """Results per hall and window for the public: counts, rates, score. No clerk, rater or rating ids."""
    keep = ("window", "ratings", "good", "neutral", "bad", "good_rate", "bad_rate", "satisfaction", "participation")
    return [{k: row[k] for k in keep} for row in compute(store, profile, ("window",), start=start, end=end)]


def write_csv(rows: list[dict], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as out:
        if not rows:
            return
        writer = csv.DictWriter(out, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def write_json(data: object, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")


def chart(rows: list[dict], path: Path, *, title: str, time: str = "day", series: str | None = None,
          limit: int = 8) -> None:
    """Satisfaction (lines) and 差评 (stacked bars) per ``time`` for each ``series`` value, into ``path``.

    ``rows`` are grouped by ``(time, series)`` (or ``(time,)`` for one line); the
    ``limit`` lowest-scoring series are drawn, named in the legend in sorted order.
    """
    from matplotlib import pyplot as plt

    fig = figure(rows, title=title, time=time, series=series, limit=limit)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def figure(rows: list[dict], *, title: str, time: str = "day", series: str | None = None,
           limit: int = 8) -> Figure:
    """The matplotlib figure :func:`chart` saves (tests look at its axes)."""
    import matplotlib

    matplotlib.use("Agg")  # no display on a server
    from matplotlib import pyplot as plt
    from matplotlib.ticker import MaxNLocator

    plt.rcParams["font.family"] = ["Noto Sans CJK SC", "sans-serif"]
    plt.rcParams["axes.unicode_minus"] = False
    groups: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        groups[str(row[series]) if series else "全部"].append(row)
    # The lowest-scoring ones are what supervision looks for; the legend lists them by name.
    shown = sorted(sorted(groups, key=lambda name: _mean_score(groups[name]))[:limit])
    ticks = sorted({row[time] for row in rows})
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(11, 7), sharex=True)
    stacked = [0] * len(ticks)
    for name in shown:
        at = {row[time]: row for row in groups[name]}
        xs = [i for i, tick in enumerate(ticks) if tick in at and at[tick]["satisfaction"] is not None]
        (line,) = top.plot(xs, [at[ticks[i]]["satisfaction"] for i in xs], marker="o", label=name)
        bad = [at[tick]["bad"] if tick in at else 0 for tick in ticks]
        # Stacked, so each bar stands on its own tick whatever the number of series.
        bottom.bar(range(len(ticks)), bad, bottom=stacked, width=0.6, label=name, color=line.get_color())
        stacked = [a + b for a, b in zip(stacked, bad, strict=True)]
    top.set_ylabel("满意度 (0-100)")
    top.set_ylim(0, 105)
    top.set_title(title)
    top.legend(loc="lower left", fontsize=8, ncol=4)
    bottom.set_ylabel("差评 (件)")
    bottom.yaxis.set_major_locator(MaxNLocator(integer=True))
    labels = [tick[5:] if time == "day" else tick for tick in ticks]
    bottom.set_xticks(range(len(ticks)), labels, rotation=90, fontsize=7)
    bottom.set_xlabel("日期" if time == "day" else "月份")
    fig.tight_layout()
    return fig


def _mean_score(rows: list[dict]) -> float:
    scores = [row["satisfaction"] for row in rows if row["satisfaction"] is not None]
    return sum(scores) / len(scores) if scores else 101.0


def tally_row(profile: Profile, levels: dict[int, int], *, defaults: int = 0, excluded: dict[str, int] | None = None,
              completed: int = 0, rated: int = 0) -> dict:
    """The figures :func:`compute` gives one group, from counts already added up (the console counts in SQL).

    ``levels`` maps a score (1-5) to its counted ratings; ``excluded`` the kinds invalid, malicious, listed.
    """
    tally = _Tally(levels=[0] + [levels.get(score, 0) for score in range(1, 6)], defaults=defaults,
                   completed=completed, rated=rated)
    tally.excluded.update(excluded or {})
    return tally.row(profile)
