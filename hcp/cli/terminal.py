"""Commands that run on a terminal: ``hcp agent``."""

from __future__ import annotations

import argparse

from hcp.cli.common import (
    add_config_flags,
    add_print_config,
    common_overrides,
    print_config_and_exit,
    service_notifier,
    stop_on_signals,
)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "agent", help="run a window terminal's agent",
        description="Run the evaluator terminal: front ends, rating state machine, SQLite outbox and MQTT "
        "sync. Start from a config file, or from flags alone for a quick start, e.g.\n"
        "  hcp agent --device-id t1 --hall h1 --window w1 --broker 127.0.0.1:1883 --data-dir ./var/t1",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_flags(p)
    add_print_config(p)
    p.add_argument("--device-id", help="this terminal's id")
    p.add_argument("--hall", help="hall id this terminal stands in")
    p.add_argument("--window", help="window id this terminal serves")
    p.add_argument("--frontend", action="append", metavar="KIND",
                   choices=["sim", "gpio", "serial", "touch", "clerk-serial"],
                   help="front end to run (repeatable): sim (lines on stdin, see docs/sim-panel.md), gpio, "
                   "serial, touch, clerk-serial")
    p.set_defaults(func=run_agent)


def agent_config(args: argparse.Namespace):  # -> AgentConfig
    """The terminal's config from --config and the flags."""
    from hcp.config.schema import AgentConfig, load_config

    overrides = common_overrides(args)
    device = {"id": args.device_id, "hall_id": args.hall, "window_id": args.window}
    overrides["device"] = {k: v for k, v in device.items() if v is not None}
    if args.frontend:
        overrides["frontend"] = {"kinds": args.frontend}
    return load_config(AgentConfig, args.config, overrides)


def run_agent(args: argparse.Namespace) -> int:
    from hcp.agent.frontends import build_frontends
    from hcp.agent.runtime import Agent
    from hcp.instance import InstanceLock

    config = agent_config(args)
    if args.print_config:
        return print_config_and_exit(config)
    stop = stop_on_signals()
    notifier = service_notifier()
    # One agent per data directory: a second would share the outbox and fight over the MQTT session.
    with InstanceLock(config.data.dir / "agent.lock", f"terminal {config.device.id}"), \
            Agent(config, build_frontends(config)) as agent:
        notifier.ready(f"terminal {config.device.id}")
        agent.run(stop, heartbeat=notifier.watchdog)
        notifier.stopping()
    return 0
