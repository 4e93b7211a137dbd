"""The outputs `config.yaml` turns on, built in one place. Each kind is imported only when enabled, so a
camera without MQTT never imports paho."""

from __future__ import annotations

from app.config import Settings
from app.outputs.base import Output, PublishContext, Publisher

__all__ = ["Output", "PublishContext", "Publisher", "build_publishers"]


def build_publishers(settings: Settings) -> list[Publisher]:
    device = settings.device
    publishers: list[Publisher] = []
    if device.jsonl.enabled:
        from app.outputs.jsonl import JsonLines
        publishers.append(JsonLines(device.jsonl))
    if device.mqtt.enabled:
        from app.outputs.mqtt import MqttPublisher
        publishers.append(MqttPublisher(device.mqtt))
    if device.http.enabled:
        from app.outputs.http import HttpPublisher
        publishers.append(HttpPublisher(device.http))
    if device.snapshots.enabled:
        from app.outputs.snapshots import SnapshotPublisher
        publishers.append(SnapshotPublisher(device.snapshots))
    if device.webhooks.enabled:
        from app.outputs.webhooks import WebhookPublisher
        publishers.append(WebhookPublisher(device.webhooks))
    if device.clips.enabled:
        from app.outputs.clips import ClipPublisher
        publishers.append(ClipPublisher(device.clips))
    return publishers
