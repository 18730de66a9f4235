"""Wire formats the kit reads for connectors: JSON:API documents, Link headers and next links, PEM keys."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from pydantic import BaseModel, ValidationError

from inbox.connectors.kit.auth import pem_private_key
from inbox.connectors.kit.http import link_param, path_of
from inbox.connectors.kit.jsonapi import Document, Listing, Resource, creating


class Named(BaseModel):
    name: str | None = None


def test_json_api_documents_hold_a_resource_or_none_and_listings_their_next_link() -> None:
    app = Document[Resource[Named]].model_validate({"data": {"id": "1", "type": "apps", "attributes": {"name": "A"}}})
    assert (app.data.id, app.data.attributes.name) == ("1", "A")
    assert Document[Resource[Named] | None].model_validate({"data": None}).data is None
    with pytest.raises(ValidationError):
        Document[Resource[Named]].model_validate({"data": {"id": "", "attributes": {}}})
    page = Listing.model_validate({"data": [{"id": "r1"}, "odd"], "links": {"next": "https://x/v1?cursor=a"}})
    assert page.data == [{"id": "r1"}, "odd"] and page.links.next == "https://x/v1?cursor=a"
    assert Listing.model_validate({"data": []}).links.next is None
    assert creating("responses", {"body": "hi"}, review=("reviews", "r1")) == {
        "data": {
            "type": "responses",
            "attributes": {"body": "hi"},
            "relationships": {"review": {"data": {"type": "reviews", "id": "r1"}}},
        }
    }


def test_links_become_paths_under_our_base_and_link_headers_give_their_parameters() -> None:
    assert path_of("https://api.appstoreconnect.apple.com/v1/apps/1/customerReviews?cursor=Ab&limit=200") == (
        "/v1/apps/1/customerReviews?cursor=Ab&limit=200"
    )
    header = '<https://m.example/api/v1/notifications?max_id=7>; rel="next", <https://m.example/api/v1/notifications?min_id=9>; rel="prev"'
    assert (link_param(header, "next", "max_id"), link_param(header, "prev", "min_id")) == ("7", "9")
    assert link_param(header, "prev", "max_id") is None and link_param(None, "next", "max_id") is None
    assert link_param('<https://m.example/?max_id=abc>; rel="next"', "next", "max_id") is None  # not an id


def test_a_pem_key_is_read_even_with_flattened_newlines_and_anything_else_is_named() -> None:
    pem = (
        ec.generate_private_key(ec.SECP256R1())
        .private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
        .decode()
    )
    text, key = pem_private_key(pem.replace("\n", "\\n"), "the .p8 file")
    assert text == pem.strip() and isinstance(key, ec.EllipticCurvePrivateKey)
    with pytest.raises(ValueError, match=r"is not a PEM private key \(paste the \.p8 file"):
        pem_private_key("-----BEGIN PRIVATE KEY-----", "the .p8 file")
