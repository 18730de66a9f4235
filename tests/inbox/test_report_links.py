"""Signed links to the reports page: what opens it and what is refused."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl, urlsplit

import pytest

from inbox.reports.links import LINK_LIFETIME, LinkRefused, LinkSigner
from inbox.settings import ConfigError
from tests.conftest import make_settings

NOW = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)


def query(link: str) -> list[tuple[str, str]]:
    return parse_qsl(urlsplit(link).query, keep_blank_values=True)


def test_a_signed_link_opens_with_its_parameters_until_it_expires():
    signer = LinkSigner.from_secret("slack-signing-secret", "https://inbox.example.com/")
    link = signer.sign("/reports", {"since": "7d", "by": "channel"}, NOW + LINK_LIFETIME)
    assert link.startswith("https://inbox.example.com/reports?")
    assert signer.check("/reports", query(link), NOW) == {"since": "7d", "by": "channel"}
    assert signer.check("/reports", query(link), NOW + LINK_LIFETIME - timedelta(seconds=1))
    with pytest.raises(LinkRefused, match="expired"):
        signer.check("/reports", query(link), NOW + LINK_LIFETIME)


@pytest.mark.parametrize(
    "change",
    [
        lambda q: [(k, "30d" if k == "since" else v) for k, v in q],  # a longer window
        lambda q: [(k, str(int(v) + 3600) if k == "exp" else v) for k, v in q],  # a later expiry
        lambda q: [*q, ("by", "agent")],  # a parameter added
        lambda q: [(k, v) for k, v in q if k != "since"],  # a parameter dropped
        lambda q: [(k, v[:-1] + ("0" if v[-1] != "0" else "1") if k == "sig" else v) for k, v in q],
    ],
)
def test_a_changed_link_is_refused(change):
    signer = LinkSigner.from_secret("secret")
    link = signer.sign("/reports", {"since": "7d"}, NOW + LINK_LIFETIME)
    with pytest.raises(LinkRefused):
        signer.check("/reports", change(query(link)), NOW)


def test_unsigned_other_key_other_path_and_repeated_parameters_are_refused():
    signer = LinkSigner.from_secret("secret")
    link = signer.sign("/reports", {"since": "7d"}, NOW + LINK_LIFETIME)
    with pytest.raises(LinkRefused, match="not signed"):
        signer.check("/reports", [("since", "7d")], NOW)
    with pytest.raises(LinkRefused, match="signature"):
        LinkSigner.from_secret("another secret").check("/reports", query(link), NOW)
    with pytest.raises(LinkRefused, match="signature"):
        signer.check("/reports/breaches", query(link), NOW)  # a link opens the page it was made for only
    with pytest.raises(LinkRefused, match="repeats"):
        signer.check("/reports", [*query(link), ("since", "7d")], NOW)
    # The key is derived: the Slack secret itself is not what signs links.
    assert signer.key != b"secret" and len(signer.key) == 32


def test_public_url_is_checked_by_key_path(tmp_path):
    assert make_settings(tmp_path, server={"public_url": "https://inbox.example.com/"}).server.public_url == (
        "https://inbox.example.com"
    )
    for bad, says in [
        ("inbox.example.com", "http(s)"),
        ("ftp://x.example", "http(s)"),
        ("https://x.example/?a=1", "query"),
    ]:
        with pytest.raises(ConfigError) as caught:
            make_settings(tmp_path, server={"public_url": bad})
        [problem] = caught.value.problems
        assert problem.startswith("server.public_url: ") and says in problem
