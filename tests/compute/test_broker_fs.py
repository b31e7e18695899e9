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


# kombu keeps the filesystem transport's exchange state per process: each test uses its own queue name.


def _options(folder, **extra):
    return {"data_folder_in": str(folder), "data_folder_out": str(folder), "store_processed": False,
            "control_folder": str(folder / "control"), "polling_interval": 0.01, **extra}


def test_a_message_taken_by_a_process_that_died_is_delivered_again_once(tmp_path):
    """kombu's transport deleted a message as it read it: a worker killed mid-task lost it for good.
    Here the message stays claimed until acknowledged; a claim of a dead process goes back to its queue."""
    name = "died"
    import subprocess
    import sys

    with Connection("filesystem://", transport=TRANSPORT, transport_options=_options(tmp_path)) as connection:
        connection.SimpleQueue(name).put({"step": 1})
    # Another process takes the message and is killed before acknowledging it.
    taker = subprocess.run(  # noqa: S603 - fixed command line
        [sys.executable, "-c", (
            "import os, signal, sys\n"
            "from kombu import Connection\n"
            "from compute.broker_fs import TRANSPORT\n"
            f"options = {_options(tmp_path)!r}\n"
            "with Connection('filesystem://', transport=TRANSPORT, transport_options=options) as c:\n"
            f"    m = c.SimpleQueue({name!r}).get(timeout=10)\n"
            "    assert m.payload == {'step': 1}\n"
            "    os.kill(os.getpid(), signal.SIGKILL)\n"
        )], capture_output=True, timeout=60)
    assert taker.returncode == -9, taker.stderr.decode()
    assert len(list((tmp_path / "claimed").iterdir())) == 1
    with Connection("filesystem://", transport=TRANSPORT, transport_options=_options(tmp_path)) as connection:
        queue = connection.SimpleQueue(name)
        message = queue.get(timeout=10)
        assert message.payload == {"step": 1}
        message.ack()
        try:
            queue.get(timeout=1.5)
        except queue.Empty:
            pass
        else:
            raise AssertionError("delivered twice")
    assert not list((tmp_path / "claimed").iterdir())
    assert not list(tmp_path.glob("*.msg"))


def test_a_rejected_message_goes_back_and_an_acknowledged_one_is_gone(tmp_path):
    name = "rejected"
    with Connection("filesystem://", transport=TRANSPORT, transport_options=_options(tmp_path)) as connection:
        queue = connection.SimpleQueue(name)
        queue.put({"n": 1})
        first = queue.get(timeout=5)
        assert len(list((tmp_path / "claimed").iterdir())) == 1  # taken, not yet done
        first.reject(requeue=True)
        again = queue.get(timeout=5)
        assert again.payload == {"n": 1}
        again.ack()
        assert not list((tmp_path / "claimed").iterdir())
        assert not list(tmp_path.glob("*.msg"))


def test_an_unacknowledged_message_goes_back_when_its_consumer_closes(tmp_path):
    name = "closed"
    with Connection("filesystem://", transport=TRANSPORT, transport_options=_options(tmp_path)) as connection:
        queue = connection.SimpleQueue(name)
        queue.put({"n": 2})
        queue.get(timeout=5)  # taken, never acknowledged
    with Connection("filesystem://", transport=TRANSPORT, transport_options=_options(tmp_path)) as connection:
        message = connection.SimpleQueue(name).get(timeout=5)
        assert message.payload == {"n": 2}
        message.ack()
    assert not list((tmp_path / "claimed").iterdir())
