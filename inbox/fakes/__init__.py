"""Local fakes of the services the inbox talks to (Slack, vendors), over real HTTP: for tests, `inbox bench` and demos."""
