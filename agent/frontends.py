"""Choosing the front ends a terminal runs, from ``frontend.kinds``.

Each kind is imported only when configured: the GPIO, serial and touchscreen
drivers pull in hardware libraries that a laptop or a test run lacks.
"""

from __future__ import annotations

import importlib
from typing import Any

from hcp.agent.events import FrontEnd
from hcp.config.schema import AgentConfig
from hcp.exc import ConfigError

#: kind -> "module:Class"; every class has ``from_config(config: AgentConfig)``.
KINDS: dict[str, str] = {
    "sim": "hcp.device.sim_panel:SimPanel",
    "gpio": "hcp.device.gpio_panel:GpioPanel",
    "serial": "hcp.device.serial_board:SerialBoard",
    "clerk-serial": "hcp.device.clerk_link:ClerkLink",
    "touch": "hcp.ui.touch:TouchScreen",
}
#: Kinds that show the reasons screen (the others have keys and lights at most).
SHOW_REASONS = frozenset({"sim", "touch"})
#: Kinds with star keys, which choose reasons on the reasons screen.
STAR_KEYS = frozenset({"gpio", "serial"})


def shows_reasons(kinds: list[str]) -> bool:
    """Whether a terminal with these front ends can show the reasons screen at all."""
    return bool(SHOW_REASONS.intersection(kinds))


def has_star_keys(kinds: list[str]) -> bool:
    """Whether a terminal with these front ends has physical star keys."""
    return bool(STAR_KEYS.intersection(kinds))


def frontend_class(kind: str) -> Any:
    """The class implementing ``kind``; ConfigError naming frontend.kinds when it cannot be had."""
    target = KINDS.get(kind)
    if target is None:
        raise ConfigError(f"frontend.kinds: unknown kind {kind!r}; expected one of {', '.join(KINDS)}")
    module_name, _, class_name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise ConfigError(f"frontend.kinds: {kind!r} is not available here ({err})") from None
    try:
        return getattr(module, class_name)
    except AttributeError:
        raise ConfigError(f"frontend.kinds: {kind!r}: {module_name} has no {class_name}") from None


def build_frontends(config: AgentConfig, **overrides: Any) -> list[FrontEnd]:
    """One front end per configured kind, in order.

    ``overrides`` maps a kind to a ready-made front end (tests pass a SimPanel
    on pipes as ``sim=panel``); other kinds are built by ``from_config``. If
    one kind fails, those already built are closed before the error goes up.
    """
    built: list[FrontEnd] = []
    try:
        for kind in config.frontend.kinds:
            ready = overrides.get(kind) or overrides.get(kind.replace("-", "_"))
            built.append(ready if ready is not None else frontend_class(kind).from_config(config))
    except BaseException:
        for frontend in built:
            frontend.close()
        raise
    return built
