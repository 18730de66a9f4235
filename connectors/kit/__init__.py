"""The connector kit: what every connector shares, so a connector module only declares its platform.

- `http`: the vendor HTTP client (one session pool, status codes to the three errors, rate budgets)
- `auth`: bearer tokens renewed before they expire, token endpoints, Basic credentials
- `google`: Google OAuth (refresh token, service account) for the two Google connectors
- `parse`: payloads parsed with pydantic; a misshapen page refused whole, a misshapen entry skipped and logged
- `paging`: the pagination guard (a page token seen twice is a loop)
- `sse`: server-sent events (Mastodon streaming)
- `threads`: the cache of which conversation a post belongs to
- `text`: HTML to text, and the one test of "is this posted reply the one we sent"
- `reviews`: the review-site base (newest-first walk against a time cursor, reviewer names, the base class)

The channel registry (display name, reply limits, kinds, reply window) and the injected clock are in
`inbox.connector`, beside the interface, because the core reads them too.
"""
