"""The central fleet console: MQTT ingest, store, alerts, dashboard, commands, provisioning."""
