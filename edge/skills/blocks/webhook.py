"""`webhook`: an HTTP POST of the event JSON (the same JSON and `id` as an mqtt_event on the same input) for every
firing upstream item, signed `X-Shelfwatch-Signature: sha256=<HMAC-SHA256 of the body>` with `secret`.

Durable: the event goes into this block's SQLite outbox (edge.skills.webhook) before it is sent, and leaves it
only on a 2xx answer; until then it is retried with backoff, in order, with the same body.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from edge.config.secrets import Secret
from edge.skills.blocks.mqtt_event import EventSink, EventSinkSettings
from edge.skills.registry import block_type


class WebhookSettings(EventSinkSettings):
    type: Literal["webhook"] = "webhook"
    url: str = Field(description="http:// or https:// URL the event JSON is POSTed to.")
    secret: Secret | None = Field(None, description="HMAC key of the signature: literal, ${ENV} or a credential.")
    event: str | None = Field(
        None, description="The event's `type`; default: that of an mqtt_event on the same input, else the skill id."
    )
    timeout_seconds: float = Field(5.0, gt=0, le=120, description="Timeout of one POST.")
    retry_max_seconds: float = Field(60.0, gt=0, le=3600, description="Longest wait between two retries.")

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not v.startswith(("http://", "https://")) or len(v) > 2000:
            raise ValueError(f"webhook url {v!r} must be an http:// or https:// URL")
        return v


@block_type(WebhookSettings)
class Webhook(EventSink):
    settings: WebhookSettings
