"""The spine: inbox → dispatcher → turn → outbox."""
