"""Connectors: one module per channel, each speaking its platform; imported only when configured.

This module is the registry, an `inbox.connector.ConnectorTypes`: the app hands it to what needs the types.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from inbox.connector import Connector, ConnectorSettings

# type -> "module:Class"; a module is imported only when its type is used, so an unused
# platform's client library is never loaded.
REGISTRY: dict[str, str] = {
    "x": "inbox.connectors.x:XConnector",
    "mastodon": "inbox.connectors.mastodon:MastodonConnector",
    "reddit": "inbox.connectors.reddit:RedditConnector",
    "bluesky": "inbox.connectors.bluesky:BlueskyConnector",
    "google_reviews": "inbox.connectors.google_reviews:GoogleReviewsConnector",
    "trustpilot": "inbox.connectors.trustpilot:TrustpilotConnector",
    "app_store": "inbox.connectors.app_store:AppStoreConnector",
    "google_play": "inbox.connectors.google_play:GooglePlayConnector",
    "facebook": "inbox.connectors.facebook:FacebookConnector",
    "instagram": "inbox.connectors.instagram:InstagramConnector",
    "whatsapp": "inbox.connectors.whatsapp:WhatsAppConnector",
    "jsonl": "inbox.connectors.jsonl:JsonlConnector",
    "webhook": "inbox.connectors.webhook:WebhookConnector",
}


def known_types() -> list[str]:
    """Connector types this installation knows."""
    return sorted(REGISTRY)


def connector_class(type_: str) -> type[Connector[Any, Any]]:
    """The connector class for a config `type`."""
    module_name, _, class_name = REGISTRY[type_].partition(":")
    cls: type[Connector[Any, Any]] = getattr(import_module(module_name), class_name)
    return cls


def settings_model_for(type_: str) -> type[ConnectorSettings] | None:
    """The settings model for a config `type`, or None when the type is unknown."""
    if type_ not in REGISTRY:
        return None
    return connector_class(type_).settings_model


def build(settings: ConnectorSettings) -> Connector[Any, Any]:
    """A connector instance for one `[[connectors]]` table."""
    return connector_class(settings.type)(settings)
