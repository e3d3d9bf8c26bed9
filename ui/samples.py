"""Sample view states of every screen, for the screenshots in ``docs/screens``, the benchmark and tests."""

from __future__ import annotations

from dataclasses import replace

from hcp.agent.events import PromptSpec, Screen, StatusLight
from hcp.ui.receipt import ReceiptMaker
from hcp.ui.screens import TECHNICIAN, Clerk, TechInfo, ViewState

#: A key for demonstrations only; real terminals read theirs from receipt.key_file.
DEMO_KEY = b"demo-key-not-for-production-use!"
DEMO_TEMPLATE = "https://hcp.example.gov.cn/r/{case_id}?t={token}"
DEMO_NOW = 1767225600  # 2026-01-01 08:00 CST

DIMENSIONS = ("承诺履行", "服务态度", "申请材料", "办事效率", "跑趟次数", "服务机制", "勤政廉洁")
PROMPT = PromptSpec(prompt_id="p-0001", case_ids=("11410100MB1234567X-2026-000123",), item_code="000201001",
                    item_name="个体工商户设立登记", clerk_id="c-0427", clerk_name="李明")


def sample_states(hall: str = "郑州市政务服务大厅", window: str = "3号窗口") -> dict[str, ViewState]:
    """One state per screen, named like the screen."""
    maker = ReceiptMaker(DEMO_TEMPLATE, DEMO_KEY, 7 * 86400)
    url = maker.url(PROMPT.case_ids[0], DEMO_NOW)
    base = ViewState(hall_name=hall, window_name=window, clerk=Clerk("李明", "0427"),
                     tech=TechInfo(device_id="hall01-w03", version="0.1.0", link="connected", outbox_depth=12))
    return {
        Screen.IDLE: base,
        Screen.PROMPT: replace(base, screen=Screen.PROMPT, prompt=PROMPT, light=StatusLight.PROMPTED),
        Screen.REASONS: replace(base, screen=Screen.REASONS, prompt=PROMPT, score=2, reasons=DIMENSIONS,
                                selected=("服务态度", "办事效率")),
        # The same screen on a terminal with star keys: keys 1-4 choose on this page, key 5 turns it.
        "reasons-keys": replace(base, screen=Screen.REASONS, prompt=PROMPT, score=2, reasons=DIMENSIONS,
                                selected=("服务态度", "办事效率"), star_keys=True),
        Screen.HALL: replace(base, screen=Screen.HALL),
        Screen.THANKS: replace(base, screen=Screen.THANKS, prompt=PROMPT, score=5, receipt_url=url),
        Screen.EXPIRED: replace(base, screen=Screen.EXPIRED, prompt=PROMPT, receipt_url=url),
        Screen.PAUSED: replace(base, screen=Screen.PAUSED),
        Screen.FAULT: replace(base, screen=Screen.FAULT, light=StatusLight.FAULT,
                              message="评价数据无法保存（存储已满），请联系技术人员"),
        TECHNICIAN: replace(base, screen=TECHNICIAN, light=StatusLight.OFFLINE,
                            detail="broker unreachable since 09:12; retrying"),
    }
