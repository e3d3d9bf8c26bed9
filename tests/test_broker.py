import socket

from hcp.sim.broker import Broker


def test_broker_restarts_on_same_port(tmp_path):
    with Broker(tmp_path) as broker:
        port = broker.port
        broker.stop()
        assert not broker.running
        broker.start()
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            pass
    assert (tmp_path / "mosquitto.db").exists()
