"""Pushing remote settings to terminals: what ``hcp push-settings`` and the console's fleet page do.

A push is a retained, versioned settings message on ``{prefix}/dev/{id}/config``.
It must be newer than what the terminal runs (its last status says) and than
what the broker retains for it: an older one would replace newer settings.
"""

from __future__ import annotations

import queue
import time
import uuid
from collections.abc import Mapping, Sequence

from hcp.collector.exc import Refused
from hcp.config.schema import BrokerSection
from hcp.exc import HcpError, ProtocolError
from hcp.protocol import SettingsMessage, Topics, decode, encode

#: Seconds to collect the retained settings after subscribing.
RETAINED_WAIT_S = 1.5


def not_newer_than_running(devices: Sequence[str], version: int,
                           running: Mapping[str, int | None]) -> list[tuple[str, int]]:
    """(device, the version it runs) of each device whose last status reports ``version`` or a newer one."""
    return [(d, running[d] or 0) for d in devices if (running.get(d) or 0) >= version]


def push_settings(broker: BrokerSection, devices: Sequence[str], message: SettingsMessage) -> list[str]:
    """Publish ``message`` retained to each device, after checking the broker retains nothing as new; the devices."""
    from hcp.sync.mqtt import LinkSettings, MqttLink, tls_from

    settings = LinkSettings(broker.host, broker.port, f"hcp-push-{uuid.uuid4().hex[:8]}", clean_start=True,
                            session_expiry_s=0, tls=tls_from(broker.ca_file, broker.cert_file, broker.key_file))
    topics = Topics(broker.prefix)
    retained: queue.Queue = queue.Queue()
    with MqttLink(settings, retained.put) as link:
        for device in devices:
            link.subscribe(topics.config(device))
        link.start()
        if not link.wait_connected(10):
            raise HcpError(f"cannot connect to the broker at {broker.host}:{broker.port}")
        refuse_older(topics, devices, message.version, retained_versions(retained))
        for device in devices:
            link.publish(topics.config(device), encode(message), retain=True, wait_s=10)
    return list(devices)


def retained_versions(retained: queue.Queue) -> dict[str, int]:
    """Topic -> the version of the settings retained on it (unreadable ones are left out)."""
    found: dict[str, int] = {}
    deadline = time.monotonic() + RETAINED_WAIT_S
    while (left := deadline - time.monotonic()) > 0:
        try:
            incoming = retained.get(timeout=left)
        except queue.Empty:
            break
        try:
            found[incoming.topic] = decode(SettingsMessage, incoming.payload).version
        except ProtocolError:
            continue
    return found


def refuse_older(topics: Topics, devices: Sequence[str], version: int, retained: dict[str, int]) -> None:
    """A push must be newer than what is retained: an older one would replace newer settings."""
    stale = [f"{d} has {retained[topics.config(d)]}" for d in devices
             if retained.get(topics.config(d), 0) >= version]
    if stale:
        raise Refused(f"--version {version}: not newer than the settings on the broker ({', '.join(stale)}); "
                      "push a higher version")
