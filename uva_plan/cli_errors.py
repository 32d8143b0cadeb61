"""What every `uva-plan` command shares: the --seed and --device options, and the one-line answer to
bad input (the message, exit code 2, no traceback) for library errors and click's usage errors alike."""

from __future__ import annotations

import functools
import sys

import click


def seed_option(help_text: str):
    """Every command's --seed (an integer >= 0, default 0); ``help_text`` says what it seeds."""
    return click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, help=help_text)


def device_option(help_text: str = "Where the model runs."):
    """Every model command's --device (cpu by default; cuda refused in one line where there is none)."""
    return click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True, help=help_text)


def _is_user_error(exc: BaseException) -> bool:
    """True for the error types that mean "bad input": the composition layer's, the world model's and
    the planners'. Checked when the error is raised, so errors of packages a command imported late
    are recognised too (those packages are never imported here just to check)."""
    from uva_plan.errors import UserInputError

    kinds: list[type] = [UserInputError, FileNotFoundError]
    if "world_model.errors" in sys.modules:
        kinds.append(sys.modules["world_model.errors"].WorldModelError)
    if "planners.errors" in sys.modules:
        kinds.append(sys.modules["planners.errors"].PlannerError)
    return isinstance(exc, tuple(kinds))


def user_errors(fn):
    """Turn the library's bad-input errors into one line on stderr and exit code 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            _check_device(kwargs.get("device"))
            return fn(*args, **kwargs)
        except (ValueError, OSError) as exc:
            if not _is_user_error(exc):
                raise
            click.echo(f"Error: {exc}", err=True)
            sys.exit(2)

    return wrapper


def _check_device(device) -> None:
    """Every command's --device: a GPU that is not there is a bad input, not a traceback deep in torch."""
    if device == "cuda":
        import torch

        from uva_plan.errors import UserInputError

        if not torch.cuda.is_available():
            raise UserInputError("--device cuda was asked for but no CUDA GPU is available here; expected --device cpu")


class OneLineErrorGroup(click.Group):
    """A click group whose usage errors are ONE line ("Error: ...", exit code 2) instead of click's
    usage block, the same shape as the library's own bad-input errors."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.UsageError as exc:
            hint = f" (see `uva-plan {exc.ctx.command.name} --help`)" if exc.ctx is not None and exc.ctx.parent else ""
            click.echo(f"Error: {exc.format_message()}{hint}", err=True)
            sys.exit(exc.exit_code)
        except click.ClickException as exc:
            click.echo(f"Error: {exc.format_message()}", err=True)
            sys.exit(exc.exit_code)
        except click.Abort:
            click.echo("Aborted.", err=True)
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)
