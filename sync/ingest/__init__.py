"""The real-time path: a Segment-compatible ingest endpoint, the inbox, and `serve`."""
