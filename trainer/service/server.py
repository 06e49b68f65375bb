"""Run the trainer API until SIGTERM/SIGINT: waitress (edge.web.server), job scheduler, systemd notifications."""

from __future__ import annotations

import logging
import signal
import threading

from edge.sdnotify import notify, watchdog_interval
from edge.web.server import WebServer
from trainer.config import TrainerConfig
from trainer.service.app import SCHEDULER_KEY, create_app
from trainer.service.scheduler import Scheduler

log = logging.getLogger(__name__)

HEALTH_TIMEOUT_S = 5.0


def _api_answers(base_url: str) -> bool:
    """Whether GET /v1/health answers 200 within HEALTH_TIMEOUT_S."""
    import urllib.request

    try:
        with urllib.request.urlopen(f"{base_url}/v1/health", timeout=HEALTH_TIMEOUT_S) as resp:  # noqa: S310
            return bool(resp.status == 200)
    except OSError as err:
        log.warning("the API does not answer its health check (%s); not feeding the watchdog", err)
        return False


def serve(
    config: TrainerConfig,
    *,
    runner: str | None = None,
    host: str | None = None,
    port: int | None = None,
    stop: threading.Event | None = None,
) -> None:
    """Serve the API on host:port (default: config.server) until a signal or `stop`; running jobs then fail."""
    stop = stop or threading.Event()
    app = create_app(config, runner=runner)
    scheduler: Scheduler = app.extensions[SCHEDULER_KEY]
    server = WebServer(
        app,
        host=host if host is not None else config.server.host,
        port=port if port is not None else config.server.port,
    )

    def _on_signal(signum: int, _frame: object) -> None:
        log.info("signal %s: stopping", signal.Signals(signum).name)
        stop.set()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _on_signal)
        signal.signal(signal.SIGINT, _on_signal)
    server.start()
    log.info("trainer API listening on %s (data in %s)", server.url, config.data_dir)
    # Tests and scripts read this line to find the port when port 0 was asked for.
    print(f"listening on {server.url}", flush=True)
    notify("READY=1")
    interval = watchdog_interval()
    try:
        while not stop.wait(interval or 3600):
            # Feed systemd's watchdog only while the API really answers, so a wedged server gets restarted.
            if interval and _api_answers(server.url):
                notify("WATCHDOG=1")
    finally:
        notify("STOPPING=1")
        server.stop()
        scheduler.stop(terminate=True)
        log.info("trainer stopped")
