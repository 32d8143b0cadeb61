"""The one progress bar of the CLI jobs (collect, train, fit-distance, extract-policy, plan, imitate):
rich's bar with the same columns everywhere, imported lazily so `--help` stays instant."""

from __future__ import annotations


def progress_bar(enabled: bool = True, *, unit: str | None = None, remaining: bool = False, fields: tuple[str, ...] = (),
                 console=None, transient: bool = False):
    """A `rich.progress.Progress`: description, bar, done/total [unit], elapsed [, remaining] and one text
    column per task field in ``fields`` (e.g. the running losses). Disabled (no output) when not enabled."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = [TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn()]
    if unit:
        columns.append(TextColumn(unit))
    columns.append(TimeElapsedColumn())
    if remaining:
        columns.append(TimeRemainingColumn())
    columns += [TextColumn(f"{{task.fields[{name}]}}") for name in fields]
    kwargs = {"console": console} if console is not None else {}
    return Progress(*columns, disable=not enabled, transient=transient, **kwargs)
