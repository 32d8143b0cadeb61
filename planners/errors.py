"""Errors planners raise for bad arguments (bounds, sizes, budgets)."""


class PlannerError(ValueError):
    """A planner argument is out of range: the message says what was wrong and what was expected."""
