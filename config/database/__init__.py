"""Django's PostgreSQL backend with a health check that costs no round trip while a connection is in use.

`ENGINE: "config.database"` for a PostgreSQL server of your own; the embedded server's backend
(config.embedded_db) builds on it.
"""
