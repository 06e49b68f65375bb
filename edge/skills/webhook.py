"""Webhook delivery that loses nothing: one durable SQLite outbox per webhook block, one sender thread each.

An event is committed to the block's outbox (edge.comms.outbox.Outbox: WAL, synchronous=FULL) before any attempt
and deleted only after the receiver answered 2xx; a failure (refused connection, timeout, non-2xx) is retried with
exponential backoff (1 s doubling to `retry_max_seconds`), always the oldest first, with the same body, so
webhooks arrive in order, at least once, with the same `id` (receivers de-duplicate on it). After a restart
(SIGKILL included) the sender resumes with what is left. A full disk (the outbox refuses the row) keeps the
event in memory, in order, and writes it when space returns, like edge.events.EventWriter.

Every POST carries `Content-Type: application/json`, `X-Shelfwatch-Event: <id>` and, with a secret,
`X-Shelfwatch-Signature: sha256=<hex HMAC-SHA256 of the exact body>`.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import logging
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from pathlib import Path
from typing import Any

from edge.comms.outbox import Outbox
from edge.events import STORAGE_ERRORS

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Shelfwatch-Signature"
EVENT_HEADER = "X-Shelfwatch-Event"
RETRY_MIN_SECONDS = 1.0


def signature(secret: str, body: bytes) -> str:
    """The header value: `sha256=<hex HMAC-SHA256 of body>`."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


class WebhookQueue:
    """One webhook block's durable queue and sender (see the module docstring)."""

    def __init__(
        self,
        path: Path,
        url: str,
        secret: str | None,
        timeout: float = 5.0,
        retry_max_seconds: float = 60.0,
        name: str = "webhook",
    ) -> None:
        self.path = path
        self.url = url
        self.secret = secret
        self.timeout = timeout
        self.retry_max_seconds = retry_max_seconds
        self.name = name
        self.outbox = Outbox(path)
        self.sent = 0
        self.failures = 0
        self.last_error: str | None = None
        self.last_sent_at: str | None = None
        self._memory: deque[tuple[str, bytes]] = deque()  # what the disk refused, oldest first
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def configure(self, url: str, secret: str | None, timeout: float, retry_max_seconds: float) -> None:
        """An edited skill kept this block: later attempts use the new settings."""
        self.url, self.secret, self.timeout, self.retry_max_seconds = url, secret, timeout, retry_max_seconds

    def start(self) -> WebhookQueue:
        """Start sending (what a previous run left first)."""
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name=f"webhook-{self.name}", daemon=True)
            self._thread.start()
        return self

    def put(self, event_id: str, payload: bytes) -> None:
        """Queue one event durably (in memory, in order, while the disk refuses it); never raises for storage."""
        with self._lock:
            self._memory.append((event_id, payload))
            self._spill()
        self._wake.set()

    def _spill(self) -> None:
        while self._memory:
            event_id, payload = self._memory[0]
            try:
                if not self.outbox.has_key(event_id):  # a re-published event is queued once
                    self.outbox.put("webhook", payload, key=event_id)
            except STORAGE_ERRORS as err:
                self.last_error = f"webhook events cannot be stored ({err}); {len(self._memory)} wait in memory"
                return
            self._memory.popleft()

    def depth(self) -> int:
        """Events not yet delivered."""
        with self._lock:
            waiting = len(self._memory)
        return self.outbox.depth() + waiting

    def _run(self) -> None:
        backoff = RETRY_MIN_SECONDS
        while not self._stop.is_set():
            with self._lock:
                self._spill()
            batch = self.outbox.peek(limit=1)
            if not batch:
                self._wake.wait(1.0)
                self._wake.clear()
                continue
            msg = batch[0]
            if self._post(msg.payload, msg.key):
                self.outbox.ack(msg.pos)
                self.sent += 1
                backoff = RETRY_MIN_SECONDS
                continue
            self.failures += 1
            if self._stop.wait(backoff):
                return
            backoff = min(backoff * 2, self.retry_max_seconds)

    def _post(self, body: bytes, event_id: str | None) -> bool:
        headers = {"Content-Type": "application/json", "User-Agent": "shelfwatch-webhook"}
        if event_id:
            headers[EVENT_HEADER] = event_id
        if self.secret:
            headers[SIGNATURE_HEADER] = signature(self.secret, body)
        req = urllib.request.Request(self.url, data=body, headers=headers, method="POST")  # noqa: S310 - http(s) only
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:  # noqa: S310
                ok = 200 <= resp.status < 300
                if not ok:
                    self.last_error = f"{self.url} answered {resp.status}"
        except urllib.error.HTTPError as err:
            ok, self.last_error = False, f"{self.url} answered {err.code}"
        except (OSError, ValueError) as err:
            ok, self.last_error = False, f"{self.url}: {err}"
        if ok:
            self.last_error = None
            self.last_sent_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        else:
            log.warning("webhook %s: %s (retrying)", self.name, self.last_error)
        return ok

    def status(self) -> dict[str, Any]:
        """JSON-ready: url, pending, sent, failures, last_error."""
        return {
            "url": self.url,
            "pending": self.depth(),
            "sent": self.sent,
            "failures": self.failures,
            "last_error": self.last_error,
            "last_sent_at": self.last_sent_at,
        }

    def stop(self) -> None:
        """Stop the sender and close the outbox (undelivered events stay for the next start)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=self.timeout + 2)
        with contextlib.suppress(Exception):
            self.outbox.close()


class WebhookHub:
    """Every webhook block's queue on this device, by (camera, skill, block); kept across skill edits."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._queues: dict[tuple[str, str, str], WebhookQueue] = {}
        self._lock = threading.Lock()
        self._started = False

    def queue(self, camera: str, skill: str, block: str, settings: Any) -> WebhookQueue:
        """The block's queue (created, or reconfigured when the skill was edited)."""
        secret = settings.secret.get_secret_value() if settings.secret is not None else None
        key = (camera, skill, block)
        with self._lock:
            q = self._queues.get(key)
            if q is None:
                self.directory.mkdir(parents=True, exist_ok=True)
                q = WebhookQueue(
                    self.directory / f"{camera}.{skill}.{block}.db",
                    settings.url,
                    secret,
                    settings.timeout_seconds,
                    settings.retry_max_seconds,
                    name=f"{camera}/{skill}/{block}",
                )
                self._queues[key] = q
                if self._started:
                    q.start()
            else:
                q.configure(settings.url, secret, settings.timeout_seconds, settings.retry_max_seconds)
            return q

    def start(self) -> None:
        """Start every sender."""
        with self._lock:
            self._started = True
            for q in self._queues.values():
                q.start()

    def pending(self) -> int:
        """Undelivered webhook events on this device."""
        with self._lock:
            queues = list(self._queues.values())
        return sum(q.depth() for q in queues)

    def stop(self) -> None:
        """Stop every sender."""
        with self._lock:
            queues = list(self._queues.values())
            self._started = False
        for q in queues:
            q.stop()


def event_body(payload: dict[str, Any]) -> bytes:
    """The exact bytes POSTed (compact JSON, the same text as the MQTT payload)."""
    return json.dumps(payload, separators=(",", ":")).encode("utf-8")
