"""Schedules (being built)."""


def schedule_fire(*, schedule_id: str) -> None:
    raise NotImplementedError
