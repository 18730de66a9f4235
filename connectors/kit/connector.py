"""The base of a connector built on the kit's HTTP clients: closing it closes every client it holds."""

from __future__ import annotations

from inbox.connector import C, Connector, S
from inbox.connectors.kit.http import LibraryTransport, VendorClient


class HttpConnector(Connector[S, C]):
    """A connector holding kit HTTP clients (`VendorClient`, `LibraryTransport`) as attributes."""

    async def close(self) -> None:
        """Close the HTTP session of every client the connector holds."""
        for value in list(vars(self).values()):
            if isinstance(value, VendorClient | LibraryTransport):
                await value.close()
