"""Event triggers (being built)."""


def event_triggers_fire(*, run_id: str) -> None:
    return None
