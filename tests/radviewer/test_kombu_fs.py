"""The embedded broker never loses or mangles a message between a producer and a consumer.

Producer and consumer run in separate processes, as the web process and the Celery worker do
(kombu's virtual transports share broker state between connections of one process, so a
same-process test would not be the deployment's situation).
"""

import multiprocessing

from kombu import Connection, Exchange, Queue

from radviewer.lib import kombu_fs

N = 600


def _options(folder: str) -> dict:
    return {"data_folder_in": folder, "data_folder_out": folder,
            "control_folder": f"{folder}/control", "polling_interval": 0.001}


def _consume(folder: str, out: "multiprocessing.Queue") -> None:
    kombu_fs.install()
    received, error = [], None
    try:
        with Connection("filesystem://", transport_options=_options(folder)) as conn:
            queue = conn.SimpleQueue("stress")
            while len(received) < N:
                message = queue.get(timeout=20)
                received.append(message.payload["i"])
                message.ack()
    except BaseException as exc:  # reported to the test
        error = repr(exc)
    out.put((received, error))


def test_filesystem_urls_use_the_atomic_transport(tmp_path):
    kombu_fs.install()
    with Connection("filesystem://", transport_options=_options(str(tmp_path))) as conn:
        assert isinstance(conn.transport, kombu_fs.Transport)


def test_no_message_lost_between_processes(tmp_path):
    kombu_fs.install()
    ctx = multiprocessing.get_context("spawn")
    results = ctx.Queue()
    consumer = ctx.Process(target=_consume, args=(str(tmp_path), results))
    consumer.start()
    queue = Queue("stress", Exchange("stress"), routing_key="stress")
    with Connection("filesystem://", transport_options=_options(str(tmp_path))) as conn, \
            conn.Producer() as producer:
        for i in range(N):
            producer.publish({"i": i, "pad": "x" * 2048}, exchange=queue.exchange, routing_key="stress",
                             declare=[queue], serializer="json")
    received, error = results.get(timeout=90)
    consumer.join(timeout=30)
    leftover = sorted(f.name for f in tmp_path.iterdir() if f.is_file())
    missing = sorted(set(range(N)) - set(received))
    assert error is None and not missing, f"{error}; missing {missing[:10]} of {len(missing)}; left {leftover[:3]}"
    assert sorted(received) == list(range(N))
