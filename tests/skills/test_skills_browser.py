"""The skills page in Chromium: a camera without skills shows its built-in default skill live; the chain with each
block's last output, live; a broken edit is refused with the block and the reason while the running skills go on;
a good edit runs from the next frame."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import pytest
import yaml

from edge.comms.base import NullCommunicator
from edge.config.model import EventsConfig
from edge.events import EventLog, SnapshotStore
from edge.pipeline.camera_pipeline import CameraPipeline
from edge.pipeline.model_slot import ModelSlot
from edge.pipeline.reporter import Reporter
from edge.runtime.wrappers import load_model
from edge.skills.config import SKILLS_ADAPTER
from edge.web import WebServer
from tests.helpers.browser import chromium_browser
from tests.skills.conftest import ShelfPhotos
from tests.skills.test_web import WHOLE, example_skill, rig  # noqa: F401 - the fixture
from tests.web.conftest import CAMERA_ID
from tests.web.live_rig import signed_in

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    yield from chromium_browser()


def show_the_default_skill(page: Any, url: str, studio: Any, hub: Any, tmp_path: Path) -> None:
    """A camera without skills: its real pipeline runs the built-in default skill, drawn block by block, live."""
    slot = ModelSlot(lambda path: load_model(path, "onnxruntime", 1))
    slot.load(tmp_path / "bundles" / "gaps-1")
    events = EventLog(tmp_path / "default-events.db", "dev1")
    reporter = Reporter(NullCommunicator(), events, SnapshotStore(tmp_path / "default-snapshots", 5))
    capture = studio.hub.require(CAMERA_ID)
    pipeline = CameraPipeline(
        CAMERA_ID, capture, slot, lambda: [], EventsConfig(), reporter, fps=4, skills=hub.runners[CAMERA_ID]
    )
    studio.services.pipelines = {CAMERA_ID: pipeline}
    pipeline.start()
    try:
        page.goto(f"{url}/skills/{CAMERA_ID}")
        page.wait_for_selector("#skills-default:has-text('built-in default skill')")
        for block in ("score", "low"):
            page.wait_for_selector(f".skill[data-skill='default'] .block[data-block='{block}'] pre:has-text('zone')")
        page.wait_for_selector(".block[data-block='event'] .meta:has-text('from low')")
        meta = page.text_content(".block[data-block='score'] .meta") or ""
        runs = int(re.search(r"(\d+) runs", meta).group(1))  # type: ignore[union-attr]
        page.wait_for_function(  # live: the block's run count keeps moving
            """old => Number((document.querySelector(".block[data-block='score'] .meta").textContent
                .match(/(\\d+) runs/) || [0, 0])[1]) > old""",
            arg=runs,
        )
    finally:
        pipeline.stop()
        studio.services.pipelines = {}
        reporter.writer.stop()
        events.close()


def test_the_skills_page_shows_each_block_live_and_edits_without_restart(
    rig: Any,  # noqa: F811
    shelf_photos: ShelfPhotos,
    browser: Any,
    tmp_path: Path,
) -> None:
    studio, hub = rig
    server = WebServer(studio.app, host="127.0.0.1", port=0).start()
    context, page = signed_in(browser, server.url, {"width": 1280, "height": 900}, studio.services.users)
    try:
        show_the_default_skill(page, server.url, studio, hub, tmp_path)
    except BaseException:
        server.stop()
        raise
    runner = hub.runner(CAMERA_ID, SKILLS_ADAPTER.validate_python([example_skill(0)]))
    image = cv2.imread(str(shelf_photos.gap[0]))
    stop = threading.Event()

    def frames() -> None:  # what the camera's pipeline does, at 4 fps
        while not stop.wait(0.25):
            hub.runners[CAMERA_ID].run(image, [WHOLE])

    worker = threading.Thread(target=frames, daemon=True)
    worker.start()
    errors: list[str] = []
    try:
        page.on("pageerror", lambda err: errors.append(str(err)))
        page.goto(f"{server.url}/skills/{CAMERA_ID}")
        page.wait_for_selector(".skill[data-skill='gaps'] .block[data-block='det'] pre:has-text('empty_shelf')")
        assert page.is_hidden("#skills-default") and page.locator(".skill[data-skill='default']").count() == 0
        page.wait_for_selector(".block[data-block='low'] pre:has-text('low_stock')")
        assert "'on': 0.2" in page.input_value("#skills-yaml")

        broken = [example_skill(0)]
        broken[0]["blocks"][1]["input"] = "nowhere"
        page.fill("#skills-yaml", yaml.safe_dump(broken, sort_keys=False))
        page.click("#skills-save")
        page.wait_for_selector("#skills-error:has-text(\"block 'cov': unknown input 'nowhere'\")")
        assert [s.id for s in hub.runners[CAMERA_ID].skills] == ["gaps"]  # still running the old skill
        assert hub.runners[CAMERA_ID] is runner

        page.fill("#skills-yaml", yaml.safe_dump([example_skill(0), example_skill(1)], sort_keys=False))
        page.click("#skills-save")
        page.wait_for_selector(".skill[data-skill='which'] .block[data-block='kind'] pre:has-text('zone')")
        assert [s.id for s in runner.skills] == ["gaps", "which"]
        assert errors == []
        context.close()
    finally:
        stop.set()
        worker.join()
        server.stop()
