"""The host's durable state: one SQLite database (reservations, temporary pins,
memory moves) shared by every xapi-numa process on the host."""
