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


@main.command()
@click.option("--data", type=click.Path(), required=True, help="Replay buffer PATH.zarr (from `uva-plan collect`).")
@click.option(
    "--config", "config_name", type=click.Choice(["tiny", "small", "base"]), default="small", show_default=True,
    help="Model size: tiny (tests), small (CPU), base (GPU).",
)
@click.option("--steps", type=click.IntRange(min=1), required=True, help="World-model optimizer steps (total).")
@click.option("--out", type=click.Path(file_okay=False), required=True, help="Run directory (new or empty).")
@click.option("--resume", is_flag=True, help="Continue the run in --out from its last saved state.")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default=None, help="Default: cuda if available, else cpu.")
@click.option("--tokenizer-steps", type=click.IntRange(min=0), default=None, help="Tokenizer steps (preset default).")
@click.option("--batch-size", type=click.IntRange(min=1), default=None, help="Windows per process per step (preset default).")
@click.option("--lr", type=click.FloatRange(min=0, max=1, min_open=True), default=None, help="Peak learning rate (preset default).")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--val-every", type=click.IntRange(min=1), default=200, show_default=True, help="Validate every N steps.")
@click.option("--save-every", type=click.IntRange(min=1), default=500, show_default=True, help="Checkpoint every N steps.")
@click.option("--replica-digest-dir", type=click.Path(file_okay=False), default=None, hidden=True)
@user_errors
def train(data, config_name, steps, out, resume, device, tokenizer_steps, batch_size, lr, seed, val_every, save_every,
          replica_digest_dir):
    """Train the world model on a replay buffer: the frame tokenizer, then UVA's masked multi-task
    training. Runs as is under `accelerate launch --multi_gpu --num_processes N -m uva_plan.cli train`
    and `torchrun --nproc_per_node N -m uva_plan.cli train`."""
    import os

    # Before torch loads OpenMP: idle OpenMP threads spin by default, and on a shared CPU that is busy
    # with other work, spinning threads made training ~20x slower here (11 vs 183 samples/s, tiny).
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from uva_plan.errors import UserInputError
    from uva_plan.training import TrainConfig
    from uva_plan.training import train as run_training
    from world_model.errors import WorldModelError

    try:
        result = run_training(
            TrainConfig(
                data=data, out=out, config=config_name, steps=steps, resume=resume, device=device,
                tokenizer_steps=tokenizer_steps, batch_size=batch_size, lr=lr, seed=seed, val_every=val_every,
                save_every=save_every, replica_digest_dir=replica_digest_dir,
            )
        )
    except WorldModelError as exc:
        # user_errors decides which errors it handles before this command has imported world_model.
        raise UserInputError(str(exc)) from None
    if result.is_main_process:
        val = ", ".join(f"{k} {v:.4f}" for k, v in result.val_losses.items())
        click.echo(f"Trained {result.step} steps ({result.samples_per_second:.1f} samples/s on {result.num_processes} "
                   f"process(es)); validation loss per mode: {val}")
        click.echo(f"Checkpoint: {result.run_dir} (load with world_model.load)")


if __name__ == "__main__":
    main()
