"""The embedded broker never hands a consumer a half-written message."""

import threading

from kombu import Connection, Exchange, Queue

from radviewer.lib import kombu_fs


def test_filesystem_urls_use_the_atomic_transport():
    kombu_fs.install()
    with Connection("filesystem://", transport_options={"data_folder_in": "/tmp", "data_folder_out": "/tmp"}) as c:
        assert isinstance(c.transport, kombu_fs.Transport)


def test_no_message_lost_under_concurrent_put_and_get(tmp_path):
    kombu_fs.install()
    options = {"data_folder_in": str(tmp_path), "data_folder_out": str(tmp_path),
               "control_folder": str(tmp_path / "control"), "polling_interval": 0.001}
    n = 600
    received: list[int] = []
    errors: list[BaseException] = []

    def consume():
        try:
            with Connection("filesystem://", transport_options=options) as conn:
                queue = conn.SimpleQueue("stress")
                while len(received) < n:
                    message = queue.get(timeout=20)
                    received.append(message.payload["i"])
                    message.ack()
        except BaseException as exc:  # reported below
            errors.append(exc)

    consumer = threading.Thread(target=consume)
    consumer.start()
    # A producer only (SimpleQueue would also register a consumer on this connection).
    queue = Queue("stress", Exchange("stress"), routing_key="stress")
    with Connection("filesystem://", transport_options=options) as conn, conn.Producer() as producer:
        for i in range(n):
            producer.publish({"i": i, "pad": "x" * 2048}, exchange=queue.exchange, routing_key="stress",
                             declare=[queue], serializer="json")
    consumer.join(timeout=60)
    assert not errors, errors[0]
    assert sorted(received) == list(range(n))
