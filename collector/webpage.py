"""The phone rating page's HTML: one small document, styles and script inline, no framework.

Everything the page shows is escaped here. The page names the hall, the
window and the item, never the clerk or the rater. Without JavaScript the
reasons are always shown; with it they appear after a 差评, as the terminal
does. Stars are radio buttons with labels, so a screen reader reads
"5星 非常满意" and the keyboard moves between them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from html import escape

from hcp.domain import Level

_CSS = """
*{box-sizing:border-box}body{margin:0;font:17px/1.5 system-ui,-apple-system,"PingFang SC","Noto Sans CJK SC",
sans-serif;color:#1b1b1b;background:#f3f5f8}main{max-width:30rem;margin:0 auto;padding:1rem}
h1{font-size:1.25rem;margin:.25rem 0 1rem;color:#b3141b}dl{display:grid;grid-template-columns:auto 1fr;
gap:.25rem .75rem;margin:0 0 1rem;padding:.75rem 1rem;background:#fff;border-radius:.5rem}dt{color:#555}
dd{margin:0;font-weight:600}fieldset{border:0;margin:0 0 1rem;padding:.75rem 1rem;background:#fff;
border-radius:.5rem;min-width:0}legend{float:left;width:100%;padding:0;
font-weight:600;margin-bottom:.25rem}legend+*{clear:both}
.stars{display:flex;margin-top:.25rem}
.stars input,.sr{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap}
.stars label{font-size:2.6rem;line-height:1;padding:.1rem .2rem;color:#c8ccd2;cursor:pointer;min-width:44px;
text-align:center;-webkit-tap-highlight-color:transparent}
.stars:has(:checked) label{color:#e8a100}.stars input:checked+label~label{color:#c8ccd2}
.stars input:focus-visible+label{outline:3px solid #1d5fd1;border-radius:.25rem}
.level{margin:.25rem 0 0;color:#444;min-height:1.5em}.opts label{display:flex;align-items:center;
gap:.5rem;padding:.45rem 0;min-height:44px}.opts input{width:1.3rem;height:1.3rem}
textarea{width:100%;min-height:5rem;margin-bottom:1rem;
font:inherit;padding:.5rem;border:1px solid #aab;border-radius:.4rem}
label.t{display:block;font-weight:600;margin:0 0 .25rem}button{width:100%;font:inherit;font-weight:600;
padding:.8rem;border:0;border-radius:.5rem;background:#b3141b;color:#fff;margin-top:1rem;min-height:48px}
button:focus-visible,textarea:focus-visible,.opts input:focus-visible{outline:3px solid #1d5fd1;outline-offset:2px}
.err{background:#fde8e8;color:#8a1116;padding:.75rem 1rem;border-radius:.5rem;font-weight:600}
.msg{background:#fff;padding:1.25rem 1rem;border-radius:.5rem}.msg h2{margin:0 0 .5rem;font-size:1.3rem}.msg p{margin:0}
.ok h2{color:#17703a}.note{color:#555;font-size:.9rem}
"""

_JS = """
(function(){var f=document.getElementById('rate');if(!f)return;var bad=f.dataset.bad.split(','),
r=document.getElementById('reasons'),lv=document.getElementById('level');function up(){var c=f.querySelector(
'input[name=score]:checked');if(r)r.hidden=!(c&&bad.indexOf(c.value)>=0);if(c)lv.textContent=c.dataset.label;}
f.addEventListener('change',up);up();})();
"""


@dataclass(frozen=True)
class PageCase:
    """What the page may show about a case."""

    hall: str
    window: str
    item: str


@dataclass(frozen=True)
class FormState:
    """The form as the citizen left it, for showing it again with an error."""

    score: int | None = None
    reasons: tuple[str, ...] = ()
    text: str = ""
    hall_score: int | None = None
    error: str = ""
    extra: dict[str, str] = field(default_factory=dict)


def document(title: str, body: str, nonce: str) -> str:
    """A whole page around ``body``."""
    return (f'<!doctype html><html lang="zh-CN"><head><meta charset="utf-8"><meta name="viewport" '
            f'content="width=device-width,initial-scale=1"><meta name="referrer" content="no-referrer">'
            f'<title>{escape(title)}</title><style nonce="{nonce}">{_CSS}</style></head><body><main>'
            f'<h1>政务服务“好差评”</h1>{body}</main><script nonce="{nonce}">{_JS}</script></body></html>')


def message(title: str, text: str, *, ok: bool = False, case: PageCase | None = None) -> str:
    """A state page: thanks, already rated, expired, invalid …"""
    role = "status" if ok else "alert"
    return (f'{_case(case) if case else ""}<section class="msg{" ok" if ok else ""}" role="{role}">'
            f'<h2>{escape(title)}</h2><p>{escape(text)}</p></section>')


def form(case: PageCase, token: str, *, bad: list[int], reasons: list[str], hall_question: bool,
         state: FormState = FormState()) -> str:
    """The rating form for one case."""
    error = f'<p class="err" role="alert" id="err">{escape(state.error)}</p>' if state.error else ""
    described = ' aria-describedby="err"' if state.error else ""
    parts = [error, _case(case),
             f'<form id="rate" method="post" data-bad="{",".join(map(str, bad))}"{described}>',
             f'<input type="hidden" name="t" value="{escape(token)}">',
             _stars("score", "您对本次服务的评价", state.score, required=True),
             _reasons(reasons, state.reasons) if reasons else "",
             '<label class="t" for="text">意见建议（选填）</label>',
             f'<textarea id="text" name="text" maxlength="500" placeholder="请写下您的意见">{escape(state.text)}'
             '</textarea>']
    if hall_question:
        parts.append(_stars("hall_score", "您对大厅整体的评价（选填）", state.hall_score, required=False))
    parts.append('<button type="submit">提交评价</button></form>')
    return "".join(parts)


def _case(case: PageCase) -> str:
    return (f'<dl aria-label="办件信息"><dt>大厅</dt><dd>{escape(case.hall)}</dd><dt>窗口</dt>'
            f'<dd>{escape(case.window)}</dd><dt>事项</dt><dd>{escape(case.item)}</dd></dl>')


def _stars(name: str, legend: str, chosen: int | None, *, required: bool) -> str:
    items = []
    # Ascending, so the arrow keys move the way the stars run; CSS :has() fills the stars up to the chosen one.
    for level in sorted(Level):
        ident = f"{name}-{level.value}"
        checked = " checked" if chosen == level.value else ""
        need = " required" if required else ""
        items.append(f'<input type="radio" id="{ident}" name="{name}" value="{level.value}" '
                     f'data-label="{level.value}星 {level.label}"{checked}{need}>'
                     f'<label for="{ident}" title="{level.label}"><span aria-hidden="true">★</span>'
                     f'<span class="sr">{level.value}星 {level.label}</span></label>')
    level_line = '<p class="level" id="level" aria-live="polite"></p>' if name == "score" else ""
    return (f'<fieldset><legend id="{name}-legend">{escape(legend)}</legend><div class="stars" role="radiogroup" '
            f'aria-labelledby="{name}-legend">{"".join(items)}</div>{level_line}</fieldset>')


def _reasons(reasons: list[str], chosen: tuple[str, ...]) -> str:
    boxes = "".join(f'<label><input type="checkbox" name="reasons" value="{escape(r)}"'
                    f'{" checked" if r in chosen else ""}>{escape(r)}</label>' for r in reasons)
    return (f'<fieldset id="reasons" class="opts"><legend>不满意的方面（差评请至少选一项或填写意见）</legend>'
            f'<div>{boxes}</div></fieldset>')
