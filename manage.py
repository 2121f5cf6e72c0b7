#!/usr/bin/env python
import os
import sys

# Commands that work without a database, or that report its absence themselves.
WITHOUT_DATABASE = {"help", "version", "check", "makemigrations", "collectstatic", "dbserver"}


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.base")
    from django.core.management import execute_from_command_line

    command = sys.argv[1] if len(sys.argv) > 1 else "help"
    if command not in WITHOUT_DATABASE and not command.startswith("-"):
        from config.startup import exit_unless_database_answers

        exit_unless_database_answers()
    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
