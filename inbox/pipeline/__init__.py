"""The pipeline: polling, ingest, the SLA sweep, the outbox, agent actions and workers, speaking to the store in domain words."""
