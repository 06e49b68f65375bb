"""The webhook outbox on its own: signature, order, retries, and a real full disk that loses nothing."""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path

from edge.skills.webhook import WebhookQueue, event_body, signature
from tests.helpers.broker import free_port
from tests.helpers.waiting import wait_until
from tests.helpers.webhook_receiver import WebhookReceiver


def body(n: int) -> bytes:
    return event_body({"id": f"id-{n}", "seq": n, "type": "low_stock"})


def test_signature_is_the_hmac_sha256_of_the_body() -> None:
    raw = body(1)
    assert signature("k", raw) == "sha256=" + hmac.new(b"k", raw, hashlib.sha256).hexdigest()


def test_a_full_disk_keeps_webhooks_in_memory_in_order_and_delivers_them_later(tmp_path: Path) -> None:
    from tests.helpers.disk import fill, small_filesystem

    port = free_port()
    receiver = WebhookReceiver(port)
    with small_filesystem(tmp_path / "disk", "2m") as disk:
        queue = WebhookQueue(disk / "hook.db", f"http://127.0.0.1:{port}/h", "k", timeout=2, retry_max_seconds=1)
        queue.put("id-0", body(0))  # on disk before the disk fills
        filler = fill(disk)
        for n in range(1, 40):
            queue.put(f"id-{n}", body(n) + b" " * 4000)  # never raises; the disk refuses them
        assert queue.depth() == 40
        assert queue.last_error is not None and "cannot be stored" in queue.last_error
        filler.unlink()  # space returns
        receiver.start()
        queue.start()
        try:
            assert wait_until(lambda: len(receiver.received()) >= 40, timeout=60)
        finally:
            queue.stop()
            receiver.stop()
    ids = [json.loads(d.body)["id"] for d in receiver.received()]
    assert ids == [f"id-{n}" for n in range(40)]  # in order, once each
    assert all(d.headers["X-Shelfwatch-Signature"] == signature("k", d.body) for d in receiver.received())


def test_a_non_2xx_answer_is_retried_with_the_same_body(tmp_path: Path) -> None:
    port = free_port()  # nothing listens: refused, retried
    queue = WebhookQueue(tmp_path / "hook.db", f"http://127.0.0.1:{port}/h", None, timeout=1, retry_max_seconds=0.5)
    queue.put("id-1", body(1))
    queue.start()
    try:
        assert wait_until(lambda: queue.failures >= 2, timeout=20)
        receiver = WebhookReceiver(port).start()
        assert wait_until(lambda: len(receiver.received()) == 1, timeout=20)
        assert receiver.received()[0].body == body(1) and "X-Shelfwatch-Signature" not in receiver.received()[0].headers
        assert wait_until(lambda: queue.depth() == 0, timeout=5)
        receiver.stop()
    finally:
        queue.stop()
