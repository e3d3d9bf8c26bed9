"""Commands for the lifecycle around ratings: follow-up staff, reviewers, supervisors.

``hcp defaults``, ``followup``, ``appeal``, ``exclude``, ``malicious``, ``stats``, ``disclose``,
``verify`` and ``chain``. Each opens the store, calls one library method, prints the result; a refusal
is an ``HcpError`` and prints as one line (exit 2).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import date, datetime, timedelta
from pathlib import Path

from hcp.cli.central import open_store
from hcp.cli.common import add_store_flags
from hcp.cli.display import china_fields, china_time, percent, table
from hcp.domain import CST, Kind, now_cst
from hcp.exc import ConfigError, HcpError

Sub = argparse._SubParsersAction


def register(subparsers: Sub) -> None:
    _register_defaults(subparsers)
    _register_followup(subparsers)
    _register_appeal(subparsers)
    _register_exclude(subparsers)
    _register_malicious(subparsers)
    _register_stats(subparsers)
    _register_verify(subparsers)


def _parser(subparsers: Sub, name: str, help_: str, description: str) -> argparse.ArgumentParser:
    p = subparsers.add_parser(name, help=help_, description=description)
    add_store_flags(p)
    return p


def _at(p: argparse.ArgumentParser, what: str = "when it happened") -> None:
    p.add_argument("--at", type=_moment, metavar="TIME",
                   help=f"{what}, ISO 8601 (China time when no zone is given); default now")


def _moment(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a time like 2025-05-30T10:00") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=CST)


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date like 2025-05-01") from None


def _lifecycle(args: argparse.Namespace):  # -> (Store, Lifecycle)
    from hcp.collector.lifecycle import Lifecycle

    store = open_store(args)
    return store, Lifecycle(store)


# ---- defaults ------------------------------------------------------------------

def _register_defaults(subparsers: Sub) -> None:
    p = _parser(subparsers, "defaults", "run the default-rating job now",
                "Give every case still unrated after the policy's natural days (China time) the policy's default "
                "level, recorded as a system rating on the system-default channel. Safe to run any time and "
                "from several places: each case is defaulted once. The collector also runs it periodically.")
    _at(p, "the time to run as; not in the future unless --dry-run (early defaults would end periods that have not)")
    p.add_argument("--dry-run", action="store_true",
                   help="count the cases that would be defaulted at --at (may be in the future); write nothing")
    p.set_defaults(func=run_defaults)


#: How far ahead of this machine's clock --at may be (clock differences between machines).
_AT_GRACE = timedelta(minutes=5)


def run_defaults(args: argparse.Namespace) -> int:
    now = now_cst()
    if args.at and args.at > now + _AT_GRACE and not args.dry_run:
        raise HcpError(f"--at: {args.at.isoformat()} is in the future; defaults are written only once a rating "
                       "period has ended (--dry-run previews a future run)")
    store, lifecycle = _lifecycle(args)
    with store:
        started = time.perf_counter()
        run = lifecycle.run_defaults(args.at or now, dry_run=args.dry_run)
    if not run.cutoff:
        print(f"policy {store.profile.name} states no default rating; nothing to do")
    else:
        done = "would default" if args.dry_run else "defaulted"
        print(f"{done} {run.defaulted} case(s) completed before {china_time(run.cutoff)} (China time) "
              f"in {time.perf_counter() - started:.2f} s")
    return 0


# ---- follow-up -----------------------------------------------------------------

_STEP_HELP = {
    "contact": "record the first contact with the rater (回访)",
    "rectify": "record the rectification (整改)",
    "explain": "record an explanation instead of a rectification (解释说明)",
    "close": "close a rectified or explained follow-up",
    "spot-check": "record the spot check of a closed follow-up (抽查)",
}


def _register_followup(subparsers: Sub) -> None:
    p = subparsers.add_parser(
        "followup", help="差评 follow-up: list overdue, record contact, rectification, close",
        description="Every accepted 差评 opens a follow-up with the policy's deadlines: open → contacted → "
        "rectified | explained → closed (→ spot-checked). The rated clerk never sees who rated.")
    sub = p.add_subparsers(dest="followup_command", metavar="ACTION", required=True, help="what to do")
    listing = _parser(sub, "list", "list follow-ups (overdue ones with --overdue)",
                      "Follow-ups with their state and deadlines; never the rater.")
    listing.add_argument("--overdue", action="store_true", help="only those past a deadline with the step not done")
    listing.add_argument("--state", help="only those in this state, e.g. open")
    listing.add_argument("--json", action="store_true", help="JSON lines instead of a table")
    _at(listing, "the time to judge overdue at")
    listing.set_defaults(func=list_followups)
    for action, help_ in _STEP_HELP.items():
        step = _parser(sub, action, help_, f"{help_[0].upper()}{help_[1:]}; refused when the state does not allow it.")
        step.add_argument("followup_id", type=int, help="the follow-up's number")
        step.add_argument("--by", required=True, help="who did it (staff id)")
        step.add_argument("--note", default="", help="what was done (required for rectify and explain)")
        _at(step)
        step.set_defaults(func=followup_step, action=action)
    contact = _parser(sub, "set-contact", "keep the rater's contact for the follow-up staff (encrypted)",
                      "Read the rater's phone or address from standard input (never from the command line, "
                      "where it would show in the process list and shell history) and store it for the "
                      "follow-up staff, encrypted under the collector key. It is shown only by "
                      "'hcp followup show --contact'.")
    contact.add_argument("followup_id", type=int, help="the follow-up's number")
    contact.set_defaults(func=set_contact)
    show = _parser(sub, "show", "show one follow-up (the contact only with --contact)",
                   "One follow-up with its deadlines; --contact adds the rater's contact, for the follow-up "
                   "staff only.")
    show.add_argument("followup_id", type=int, help="the follow-up's number")
    show.add_argument("--contact", action="store_true", help="also show the rater's contact (follow-up role)")
    _at(show, "the time to judge overdue at")
    show.set_defaults(func=show_followup)


def list_followups(args: argparse.Namespace) -> int:
    store, lifecycle = _lifecycle(args)
    now = args.at or now_cst()
    with store:
        found = lifecycle.followups(now=now, overdue_only=args.overdue, state=args.state)
    if args.json:
        for f in found:
            print(json.dumps(china_fields({**f.__dict__, "overdue": f.overdue(now)}), ensure_ascii=False))
        return 0
    print(table(("id", "state", "hall/window", "clerk", "score", "contact due", "rectify due", "overdue"),
                [(f.id, f.state, f"{f.hall_id}/{f.window_id}", f.clerk_id, f.score, china_time(f.contact_due),
                  china_time(f.rectify_due), ",".join(f.overdue(now))) for f in found], right=(0, 4)))
    print("times in China Standard Time (UTC+8)")
    return 0


def followup_step(args: argparse.Namespace) -> int:
    store, lifecycle = _lifecycle(args)
    with store:
        done = lifecycle.step(args.followup_id, args.action, actor=args.by, note=args.note, at=args.at or now_cst())
    print(f"follow-up {done.id}: {done.state}")
    return 0


def set_contact(args: argparse.Namespace) -> int:
    contact = sys.stdin.readline().strip()
    if not contact:
        raise HcpError("contact: nothing on standard input; pipe the phone or address in "
                       "(never on the command line)")
    store, lifecycle = _lifecycle(args)
    with store:
        lifecycle.set_contact(args.followup_id, contact)
    print(f"follow-up {args.followup_id}: contact kept (encrypted)")
    return 0


def show_followup(args: argparse.Namespace) -> int:
    store, lifecycle = _lifecycle(args)
    with store:
        found = lifecycle.followup(args.followup_id)
        contact = lifecycle.contact(args.followup_id) if args.contact else None
    shown = china_fields({**found.__dict__, "overdue": found.overdue(args.at or now_cst())})
    if args.contact:
        shown["contact"] = contact
    print(json.dumps(shown, ensure_ascii=False, indent=1))
    return 0


# ---- appeals -------------------------------------------------------------------

def _register_appeal(subparsers: Sub) -> None:
    p = subparsers.add_parser(
        "appeal", help="appeals of a 差评 (申诉复核): file, decide, list",
        description="The rated unit appeals a 差评 with evidence within the policy's window; a reviewer "
        "decides. An upheld appeal marks the rating invalid or malicious; it is kept but not counted.")
    sub = p.add_subparsers(dest="appeal_command", metavar="ACTION", required=True, help="what to do")
    file_ = _parser(sub, "file", "file an appeal against a 差评", "File an appeal; refused after the window.")
    file_.add_argument("rating_id", help="the rating appealed")
    file_.add_argument("--by", required=True, help="the unit that appeals")
    file_.add_argument("--evidence", required=True, help="the evidence (text or a document reference)")
    _at(file_, "when it was filed")
    file_.set_defaults(func=file_appeal)
    decide = _parser(sub, "decide", "decide an appeal", "Uphold (--uphold --as invalid|malicious) or reject.")
    decide.add_argument("appeal_id", type=int, help="the appeal's number")
    verdict = decide.add_mutually_exclusive_group(required=True)
    verdict.add_argument("--uphold", action="store_true", help="the 差评 is found not true")
    verdict.add_argument("--reject", action="store_true", help="the 差评 stands")
    decide.add_argument("--as", dest="kind", choices=["invalid", "malicious"], help="how an upheld rating is marked")
    decide.add_argument("--by", required=True, help="the reviewer")
    decide.add_argument("--reason", required=True, help="the reason for the decision")
    _at(decide, "when it was decided")
    decide.set_defaults(func=decide_appeal)
    listing = _parser(sub, "list", "list appeals", "Every appeal with its decision and review deadline.")
    listing.set_defaults(func=list_appeals)


def file_appeal(args: argparse.Namespace) -> int:
    store, lifecycle = _lifecycle(args)
    with store:
        appeal = lifecycle.file_appeal(args.rating_id, filed_by=args.by, evidence=args.evidence,
                                       at=args.at or now_cst())
    due = f"{china_time(appeal.review_due)} (China time)" if appeal.review_due else "(no stated deadline)"
    print(f"appeal {appeal.id} filed; review due {due}")
    return 0


def decide_appeal(args: argparse.Namespace) -> int:
    store, lifecycle = _lifecycle(args)
    with store:
        appeal = lifecycle.decide_appeal(args.appeal_id, upheld=args.uphold, kind=args.kind, reviewer=args.by,
                                         reason=args.reason, at=args.at or now_cst())
    print(f"appeal {appeal.id} {'upheld' if appeal.upheld else 'rejected'}")
    return 0


def list_appeals(args: argparse.Namespace) -> int:
    store, lifecycle = _lifecycle(args)
    with store:
        for appeal in lifecycle.appeals():
            print(json.dumps(china_fields(appeal.__dict__), ensure_ascii=False))
    return 0


# ---- exclusions and the malicious list -------------------------------------------

def _register_exclude(subparsers: Sub) -> None:
    p = _parser(subparsers, "exclude", "mark a rating invalid or malicious (kept, not counted)",
                "Record that a rating is invalid (raised by the rater) or a malicious 差评. The rating stays "
                "stored; statistics leave it out. Who, when and why are recorded.")
    p.add_argument("rating_id", help="the rating")
    p.add_argument("--as", dest="kind", required=True, choices=["invalid", "malicious"], help="why it is excluded")
    p.add_argument("--by", required=True, help="who decided")
    p.add_argument("--reason", required=True, help="the reason")
    p.add_argument("--raised-by-rater", action="store_true", help="confirms the rater raised an invalid rating")
    _at(p, "when it was decided")
    p.set_defaults(func=exclude)


def exclude(args: argparse.Namespace) -> int:
    store, lifecycle = _lifecycle(args)
    with store:
        lifecycle.exclude(args.rating_id, args.kind, decided_by=args.by, reason=args.reason, at=args.at or now_cst(),
                          raised_by_rater=args.raised_by_rater)
    print(f"rating {args.rating_id} excluded as {args.kind}")
    return 0


def _register_malicious(subparsers: Sub) -> None:
    p = subparsers.add_parser(
        "malicious", help="the malicious raters' list: add, remove, list",
        description="People whose ratings are kept but not counted. The applicant id is turned into the "
        "collector's pseudonym at once and never stored.")
    sub = p.add_subparsers(dest="malicious_command", metavar="ACTION", required=True, help="what to do")
    for action, help_ in (("add", "put a person on the list"), ("remove", "take a person off the list")):
        q = _parser(sub, action, help_, f"{help_[0].upper()}{help_[1:]} (by applicant id, pseudonymized at once).")
        q.add_argument("applicant_id", help="the person's applicant id (ID card number)")
        q.add_argument("--by", required=True, help="who decided")
        q.add_argument("--reason", required=True, help="the reason")
        _at(q, "when it was decided")
        q.set_defaults(func=change_malicious, action=action)
    listing = _parser(sub, "list", "list the people on it (by pseudonym reference)",
                      "Who is on the list, by the first 12 characters of the pseudonym, with who, when and why.")
    listing.set_defaults(func=list_malicious)


def change_malicious(args: argparse.Namespace) -> int:
    store, lifecycle = _lifecycle(args)
    change = lifecycle.list_malicious if args.action == "add" else lifecycle.unlist_malicious
    with store:
        ref = change(args.applicant_id, actor=args.by, reason=args.reason, at=args.at or now_cst())
    print(f"rater {ref} {'added to' if args.action == 'add' else 'removed from'} the malicious raters' list")
    return 0


def list_malicious(args: argparse.Namespace) -> int:
    store, lifecycle = _lifecycle(args)
    with store:
        listed = [(ref, actor, china_time(at), reason) for ref, actor, at, reason in lifecycle.malicious_list()]
    print(table(("rater", "by", "added (China time)", "reason"), listed))
    return 0


# ---- statistics ----------------------------------------------------------------

def _register_stats(subparsers: Sub) -> None:
    p = _parser(subparsers, "stats", "statistics, rankings and timeliness: tables, CSV, JSON, PNG",
                "Compute statistics from the stored records: per level, 好/中/差评 rates, satisfaction score "
                "(mean level × 20), participation, default share, exclusions; rankings lowest first; "
                "follow-up and appeal timeliness. Writes <out>/stats-<by>.csv, stats.json and chart.png (daily, or "
                "monthly with --by month; one line per value of the first other --by column). --kind hall counts "
                "the hall ratings (one per person per day) instead, by hall, day or month, into "
                "hall-ratings-<by>.csv, hall-ratings.json and hall-chart.png.")
    p.add_argument("--by", help="group by hall, window, clerk, item, day or month (comma-separated for "
                   "several, e.g. day,window); hall ratings by hall, day or month. Default: window, or hall "
                   "with --kind hall")
    p.add_argument("--kind", choices=("service", "hall"), default="service",
                   help="service ratings (the default) or hall ratings")
    p.add_argument("--from", dest="start", type=_day, metavar="DATE", help="first day counted")
    p.add_argument("--to", dest="end", type=_day, metavar="DATE", help="last day counted")
    p.add_argument("-o", "--out", type=Path, metavar="DIR", help="write CSV, JSON and the PNG chart here")
    p.set_defaults(func=stats)
    d = _parser(subparsers, "disclose", "public disclosure of results per unit (no personal data)",
                "Results per hall and window for publication: ratings, 好/中/差评, rates, satisfaction, "
                "participation. No clerk, rater or rating ids.")
    d.add_argument("--from", dest="start", type=_day, metavar="DATE", help="first day counted")
    d.add_argument("--to", dest="end", type=_day, metavar="DATE", help="last day counted")
    d.add_argument("-o", "--out", type=Path, required=True, metavar="DIR", help="write disclosure.csv and .json here")
    d.set_defaults(func=disclose)


#: Column -> its heading in the printed table (CSV and JSON keep the column names).
STATS_HEADERS = {"hall": "大厅", "window": "窗口", "clerk": "工作人员", "item": "事项", "day": "日期", "month": "月份",
                 "ratings": "评价数", "l5": "非常满意", "l4": "满意", "l3": "基本满意", "l2": "不满意",
                 "l1": "非常不满意", "good_rate": "好评率", "bad_rate": "差评率", "satisfaction": "满意度",
                 "participation": "参评率", "default_share": "默认评价占比", "excluded_invalid": "无效",
                 "excluded_malicious": "恶意", "excluded_listed": "名单剔除"}
_RATES = ("good_rate", "bad_rate", "participation", "default_share")
TIMELINESS_LABELS = {
    "followups": ("差评回访与整改", {
        "opened": "差评工单", "contact_deadlines": "有回访时限", "contacted_on_time": "按时回访",
        "contacted_late": "超时回访", "contact_overdue": "回访逾期未办", "rectify_deadlines": "有整改时限",
        "resolved_on_time": "按时整改/说明", "resolved_late": "超时整改/说明", "rectify_overdue": "整改逾期未办",
        "closed": "已办结", "spot_checks_due": "应抽查", "spot_checked": "已抽查"}),
    "appeals": ("申诉复核", {
        "filed": "申诉", "decided": "已复核", "upheld": "申诉成立", "review_deadlines": "有复核时限",
        "decided_on_time": "按时复核", "decided_late": "超时复核", "review_overdue": "复核逾期未办"}),
}


def stats(args: argparse.Namespace) -> int:
    from hcp.collector import stats as st

    kind = Kind(args.kind)
    by = tuple(part.strip() for part in (args.by or ("hall" if kind is Kind.HALL else "window")).split(",")
               if part.strip())
    store = open_store(args)
    with store:
        try:
            rows = st.compute(store, store.profile, by, start=args.start, end=args.end, kind=kind)
        except ValueError as err:
            raise ConfigError(str(err)) from None
        timely = st.timeliness(store, now_cst()) if kind is Kind.SERVICE else None
        time_dim, series = _chart_axes(by)
        charted = st.compute(store, store.profile, (time_dim, *((series,) if series else ())),
                             start=args.start, end=args.end, kind=kind) if args.out else []
    _print_table(rows, by, per_case=kind is Kind.SERVICE)
    if timely is not None:
        _print_timeliness(timely)
    if args.out:
        _write_stats(args.out, store.profile.name, kind, by, rows, timely, charted)
    return 0


def _chart_axes(by: tuple[str, ...]) -> tuple[str, str | None]:
    """The chart's time axis (day, or month when grouped by month) and what its lines stand for."""
    time_dim = "month" if "month" in by else "day"
    others = [dim for dim in by if dim not in ("day", "month")]
    return time_dim, (others[0] if others else None)


def _write_stats(out: Path, policy: str, kind: Kind, by: tuple[str, ...], rows: list[dict], timely: dict | None,
                 charted: list[dict]) -> None:
    from hcp.collector import stats as st

    service = kind is Kind.SERVICE
    stem, png = ("stats", "chart.png") if service else ("hall-ratings", "hall-chart.png")  # not stats-hall-hall.csv
    name = "-".join(by)
    report = {"policy": policy, "kind": kind.value, "by": by, "rows": rows, "ranking": st.ranking(rows)}
    if timely is not None:
        report["timeliness"] = timely
    time_dim, series = _chart_axes(by)
    what = "服务评价" if service else "大厅整体评价"
    per = f"按{STATS_HEADERS[series]}" if series else "全部"
    st.write_csv(rows, out / f"{stem}-{name}.csv")
    st.write_json(report, out / f"{stem}.json")
    st.chart(charted, out / png, time=time_dim, series=series,
             title=f"{policy}: {what}，每{STATS_HEADERS[time_dim][:1]}满意度与差评（{per}）")
    print(f"wrote {out}/{stem}-{name}.csv, {stem}.json, {png}")


def _print_table(rows: list[dict], by: tuple[str, ...], *, per_case: bool = True) -> None:
    columns = (*by, "ratings", "l5", "l4", "l3", "l2", "l1", "good_rate", "bad_rate", "satisfaction",
               *(("participation", "default_share") if per_case else ()),
               "excluded_invalid", "excluded_malicious", "excluded_listed")
    shown = [[percent(row[c]) if c in _RATES else row[c] for c in columns] for row in rows]
    print(table([STATS_HEADERS[c] for c in columns], shown, right=range(len(by), len(columns))))


def _print_timeliness(timely: dict) -> None:
    for key, (title, labels) in TIMELINESS_LABELS.items():
        print(f"\n{title}")
        print(table(("项目", "件数"), [(label, timely[key][column]) for column, label in labels.items()], right=(1,)))


def disclose(args: argparse.Namespace) -> int:
    from hcp.collector import stats as st

    store = open_store(args)
    with store:
        rows = st.disclosure(store, store.profile, start=args.start, end=args.end)
    st.write_csv(rows, args.out / "disclosure.csv")
    st.write_json({"policy": store.profile.name, "from": str(args.start or ""), "to": str(args.end or ""),
                   "units": rows}, args.out / "disclosure.json")
    print(f"wrote {len(rows)} unit(s) to {args.out}/disclosure.csv and disclosure.json")
    return 0


# ---- tamper evidence -----------------------------------------------------------

def _register_verify(subparsers: Sub) -> None:
    p = _parser(subparsers, "verify", "check the records against the hash chain and signed heads",
                "Recompute the hash chain over every record (ratings, decisions, links, case records, unit "
                "claims, device registrations, follow-ups, appeals, exclusions, texts); report every edited, "
                "deleted, inserted or reordered row, any schema object (table, view, trigger) the migrations "
                "did not create that way, chain entries no signed head covers, and any signed head that does "
                "not match. Exit 1 when anything is wrong.")
    p.add_argument("--heads", type=Path, metavar="FILE",
                   help="also check the heads kept outside the database (JSON lines); default chain.heads_file")
    p.set_defaults(func=verify)
    c = subparsers.add_parser("chain", help="sign the chain head or export the signed heads",
                              description="The signed chain heads, to keep somewhere else than the database.")
    sub = c.add_subparsers(dest="chain_command", metavar="ACTION", required=True, help="what to do")
    sign = _parser(sub, "sign", "sign the current chain head now", "Sign the current chain head (Ed25519).")
    sign.set_defaults(func=sign_head)
    heads = _parser(sub, "heads", "export the signed heads as JSON lines", "Every signed head, oldest first.")
    heads.add_argument("-o", "--output", type=Path, metavar="FILE", help="write here instead of stdout")
    heads.set_defaults(func=export_heads)


def verify(args: argparse.Namespace) -> int:
    from hcp.cli.central import collector_config
    from hcp.collector.store.chain import Problem, read_heads

    trusted, heads_file = [], args.heads or collector_config(args).chain.heads_file
    # The configured file is written with the first head: before it, its absence is no finding.
    missing = heads_file is not None and not args.heads and not heads_file.exists()
    if heads_file and not missing:
        try:
            trusted = read_heads(heads_file)
        except (OSError, ValueError) as err:
            raise HcpError(f"heads file {heads_file}: cannot read the heads ({err})") from None
    with open_store(args) as store:
        problems = store.verify_chain(trusted, public_key=store.chain_public_key)
        if missing and store.heads():
            problems.append(Problem(f"heads file {heads_file}", "missing, though the database holds signed heads"))
    for problem in problems:
        print(problem)
    print(f"{len(problems)} problem(s)" if problems else "verified: records, chain and signed heads agree")
    return 1 if problems else 0


def sign_head(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        head = store.sign_head(now_cst())
    print(f"signed chain head at entry {head.seq}" if head else "nothing new to sign")
    return 0


def export_heads(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        out = args.output.open("w", encoding="utf-8") if args.output else sys.stdout
        try:
            store.export_heads(out)
        finally:
            if args.output:
                out.close()
    return 0
