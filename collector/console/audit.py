"""The console's audit log: every login, action and contact reveal, who, when, what, from where.

Entries are rows of ``console_audit``, append-only and covered by the hash
chain (``hcp verify`` fails on an edited or deleted entry). An entry names the
account, the action, its target (a follow-up, appeal, rating or terminal id),
the hall, the client's address and a short detail; never a rater's identity,
contact or words.
"""

from __future__ import annotations

import getpass
from collections.abc import Callable
from datetime import datetime

from hcp.collector.store import Store
from hcp.domain import now_cst, utc_text

#: Action -> its name on the audit page.
ACTION_NAMES = {
    "login": "登录", "login-failed": "登录失败", "login-locked": "登录被锁定", "logout": "退出",
    "followup-contact": "已联系", "followup-rectify": "已整改", "followup-explain": "已解释说明",
    "followup-close": "办结", "followup-spot-check": "抽查", "contact-reveal": "查看联系方式",
    "appeal-file": "提出申诉", "appeal-decide": "申诉复核", "exclude": "剔除评价", "exclusion-reverse": "撤销剔除",
    "settings-push": "推送终端设置",
    "user-add": "新建账号", "user-roles": "设置角色", "user-disable": "停用账号", "user-enable": "启用账号",
    "user-reset": "重置密码",
}


class Audit:
    """Appends entries to the store's audit log."""

    def __init__(self, store: Store, clock: Callable[[], datetime] = now_cst) -> None:
        self.store = store
        self.clock = clock

    def record(self, actor: str, action: str, target: str = "", *, hall_id: str | None = None,
               address: str = "local", detail: str = "") -> None:
        """One entry; inside the caller's unit when there is one, so the action and its entry commit together."""
        self.store.add_audit(utc_text(self.clock()), actor, action, target, hall_id, address, detail[:500])


def local_actor() -> str:
    """How a command run on the collector's machine names its actor: ``cli:<os user>``."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli:unknown"
