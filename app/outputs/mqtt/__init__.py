"""MQTT output: the topics (`topics`), Home Assistant discovery as pure functions (`discovery`), the broker
connection with its in-flight window (`link`), and the Publisher that uses them (`publisher`).

What other modules use is exported here, so they import from `app.outputs.mqtt`.
"""

from app.outputs.mqtt.discovery import (BIRTH_DELAY_MAX_S, TrackEntities, birth_delay, device_document, device_name,
                                        discovery_components, entity_documents)
from app.outputs.mqtt.link import TAKEOVER_SESSIONS, client_tls_context
from app.outputs.mqtt.publisher import MqttPublisher
from app.outputs.mqtt.topics import MAX_CLIENT_ID, Topics, default_client_id

__all__ = ["BIRTH_DELAY_MAX_S", "MAX_CLIENT_ID", "TAKEOVER_SESSIONS", "MqttPublisher", "Topics", "TrackEntities",
           "birth_delay", "client_tls_context", "default_client_id", "device_document", "device_name",
           "discovery_components", "entity_documents"]
