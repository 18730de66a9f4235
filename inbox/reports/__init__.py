"""Team leads' reports: the figures' windows and formats, the page, its signed links."""
