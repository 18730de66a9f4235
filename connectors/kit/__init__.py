"""The connector kit: what every connector shares, so a connector module only declares its platform.

- `connector`: `HttpConnector`, the base of a connector over kit clients (closes them; the reply limit, `streaming`
  and the first poll's reach from the usual settings)
- `http`: the vendor HTTP client (one session pool, status codes to the three errors, rate budgets, answers parsed as
  a model), `next` links and `Link` headers, waits said in words; `LibraryTransport` for a vendor's own client library
  (its calls paged and parsed as models, the budgets of the endpoints polls read)
- `auth`: bearer tokens renewed before they expire (and, for a vendor that revokes them early, renewed at once),
  token endpoints and the password grant, self-signed JWTs, PEM keys, Basic credentials
- `account`: the brand's own account, configured or looked up once; a check refuses another account's credentials
- `xapi`: the X API v2 as a client over tweepy (payload shapes, the calls, paging, X's ids, twitter-text weights), no
  mapping
- `redditapi`: Reddit's API as a client (a script app's token, listings, lookups, comments posted and their refusals,
  the account; payload shapes), no mapping
- `push`: the base of a connector whose items only arrive by push (nothing to poll, no cursor)
- `windows`: a channel's reply window read from the registry, and what goes out after it (chosen by language)
- `meta`: Meta's webhooks (handshake, signature, envelope, one field's changes, the errors Meta reports) and the Graph
  API client; `meta_social`: what the facebook and instagram connectors share (`SocialConnector`: the webhook read
  into items, comments polled post by post, comment replies sent and looked up, Messenger-style DMs), so each declares
  its edges, payload shapes, permissions and mapping
- `google`: Google OAuth (refresh token, service account), the base of the two Google connectors, Google's times
- `jsonapi`: JSON:API documents (App Store Connect)
- `parse`: payloads parsed with pydantic; a misshapen page refused whole, a misshapen entry skipped and logged
- `paging`: the pagination guard (a page token seen twice is a loop)
- `sse`: server-sent events and their JSON payloads (Mastodon streaming)
- `threads`: the cache of which conversation a post belongs to, and conversations kept per customer
  (`CustomerThreads`: a post joins its parent's only when the parent is the same customer's or the brand's answer)
- `watermark`: where a newest-first listing resumes (the newest time read and the ids read at it), the read back to
  it (`ReadBack`), and the chunks of new entries, each page's cursor past it
- `seal`: a secret kept in the cursor store (a session), sealed with a key derived from the account's password
- `xrpc`: the AT Protocol over the `atproto` library: the account's session (kept sealed, renewed, logged in again
  once when refused), calls mapped to the three errors with the server's rate budget, cursor-paged listings
- `bsky`: the Bluesky app's lexicons as a client over `xrpc` (payload shapes, notifications and DMs read back to a
  watermark, threads, profiles, posts and messages sent with their facets, the text limits), no mapping
- `jetstream`: Jetstream, Bluesky's JSON firehose: the records created in one collection, resuming after a drop
- `text`: HTML to text, the one test of "is this posted reply the one we sent", idempotency keys
- `reviews`: the review-site base (newest-first walk against a time cursor, reviewer names, owner replies, the base
  class)

The channel registry (display name, reply limits, kinds, reply window) and the injected clock are in
`inbox.connector`, beside the interface, because the core reads them too.
"""
