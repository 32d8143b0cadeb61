"""The `uva-plan` command line: thin click commands over the library.

Heavy libraries (torch, diffusers, gymnasium, zarr) are imported inside the commands, never at module
level, so `uva-plan --help` answers at once. Every error a user can fix is printed as one line and the
process exits with code 2, without a traceback.
"""

from __future__ import annotations

import functools
import sys

import click

ENV_CHOICES = click.Choice(["wall", "pusht"])


def user_errors(fn):
    """Turn the library's bad-input errors into one line on stderr and exit code 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from uva_plan.errors import UserInputError

        handled: tuple[type[BaseException], ...] = (UserInputError, FileNotFoundError)
        if "world_model" in sys.modules or "world_model.errors" in sys.modules:
            from world_model.errors import WorldModelError

            handled += (WorldModelError,)
        if "planners" in sys.modules or "planners.errors" in sys.modules:
            from planners.errors import PlannerError

            handled += (PlannerError,)
        try:
            return fn(*args, **kwargs)
        except handled as exc:
            click.echo(f"Error: {exc}", err=True)
            sys.exit(2)

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="uva-plan")
def main():
    """Plan with a learned video-action world model (UVA): collect data, train, plan to goal images,
    and imitate action-free videos."""


@main.command()
@click.option("--env", "env_name", type=ENV_CHOICES, required=True, help="Environment to collect from.")
@click.option("--episodes", type=click.IntRange(min=1), required=True, help="Number of episodes.")
@click.option("--max-steps", type=click.IntRange(min=2), default=100, show_default=True, help="Steps per episode.")
@click.option(
    "--policy",
    type=click.Choice(["random", "expert", "pusher", "mixed"]),
    default="mixed",
    show_default=True,
    help="Scripted policy: random, expert (Wall), pusher (PushT) or a per-episode mix.",
)
@click.option("--image-size", type=click.IntRange(min=16, max=512), default=64, show_default=True)
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, help="First episode seed.")
@click.option("--out", type=click.Path(dir_okay=True, file_okay=False), required=True, help="Output PATH.zarr.")
@click.option("--overwrite", is_flag=True, help="Replace an existing output.")
@user_errors
def collect(env_name, episodes, max_steps, policy, image_size, seed, out, overwrite):
    """Roll out a scripted policy and store a Diffusion-Policy replay buffer (zarr)."""
    from uva_plan.collection import collect_dataset

    summary = collect_dataset(
        env_name=env_name,
        episodes=episodes,
        max_steps=max_steps,
        policy=policy,
        image_size=image_size,
        seed=seed,
        out=out,
        overwrite=overwrite,
        progress=True,
    )
    click.echo(
        f"Wrote {summary['episodes']} episodes, {summary['steps']} steps to {out} "
        f"({summary['steps_per_second']:.0f} steps/s)"
    )


if __name__ == "__main__":
    main()
