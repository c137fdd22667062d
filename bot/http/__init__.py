"""The daemon's HTTP server: health, metrics, webhooks and (later) the operator API."""
