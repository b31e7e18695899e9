"""The embedded broker writes each message whole: a consumer polling the folder while messages are written
never reads a partial file (kombu's own transport could, and the worker then stopped for good)."""
import threading

from kombu import Connection

from compute.broker_fs import TRANSPORT


def test_a_consumer_never_sees_a_partial_message(tmp_path):
    options = {"data_folder_in": str(tmp_path), "data_folder_out": str(tmp_path), "store_processed": False,
               "control_folder": str(tmp_path / "control")}
    body = {"payload": "x" * 200_000}
    sent, received, errors = 200, [], []

    def consume() -> None:
        with Connection("filesystem://", transport=TRANSPORT, transport_options=options) as connection:
            queue = connection.SimpleQueue("q")
            try:
                while len(received) < sent:
                    message = queue.get(timeout=20)
                    received.append(message.payload == body)
                    message.ack()
            except Exception as error:  # noqa: BLE001 - report what stopped the consumer
                errors.append(error)

    reader = threading.Thread(target=consume)
    with Connection("filesystem://", transport=TRANSPORT, transport_options=options) as connection:
        queue = connection.SimpleQueue("q")  # declared before the consumer starts polling
        reader.start()
        for _ in range(sent):
            queue.put(body)
    reader.join(timeout=60)
    assert not errors and received == [True] * sent
    assert not list(tmp_path.glob("*.part"))
