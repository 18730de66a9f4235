"""The store: models, migrations and every SQL statement of the inbox, in functions named for what they do."""
