"""What the benchmarks run on: the project, a PostgreSQL database and a Redis database on localhost
(BENCH_DATABASE_URL and BENCH_REDIS_URL override them), and the settings their processes read.

A script run as a file has bench/ on sys.path, not the project: it puts the project there before
importing this module.
"""

import os
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent


def configure(*, database: str = "dwc_bench", redis_db: int = 8) -> tuple[str, str]:
    """Point this process, and the processes it starts, at the benchmark's database and Redis.

    `database` and `redis_db` are the script's defaults: benchmarks that must not share data with the
    others use names of their own. Returns the database and Redis URLs.
    """
    database_url = os.environ.get("BENCH_DATABASE_URL", f"postgres://postgres@127.0.0.1:5432/{database}")
    redis_url = os.environ.get("BENCH_REDIS_URL", f"redis://127.0.0.1:6379/{redis_db}")
    os.environ.update(DJANGO_SETTINGS_MODULE="config.settings.base", DATABASE_URL=database_url, REDIS_URL=redis_url)
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    return database_url, redis_url


def create_database(database_url: str) -> None:
    """Create the database of `database_url` on its server if it is not there yet."""
    import psycopg

    name = database_url.rsplit("/", 1)[1]
    with psycopg.connect(database_url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as connection:
        if not connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            connection.execute(f'CREATE DATABASE "{name}"')


def recreate_database(database_url: str) -> None:
    """Drop the database of `database_url` if it exists, and create it empty."""
    import psycopg

    server, name = database_url.rsplit("/", 1)
    with psycopg.connect(server + "/postgres", autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}"')
        connection.execute(f'CREATE DATABASE "{name}"')
