"""Shared fixtures of the composition-layer tests."""

import pytest
import torch


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch thread for a module: on a shared 2-core machine two busy-waiting threads ran these
    small models ~20x slower than one. Modules opt in with ``pytestmark``."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_wall_run(root):
    """``(run_dir, data)``: 6 mixed Wall episodes and an untrained tiny Wall checkpoint (extra_state
    ``{"step": 7}``), the input of the post-training stages (fit-distance, extract-policy)."""
    import world_model
    from uva_plan.collection import collect_dataset
    from uva_plan.envs import make_env

    data = root / "wall.zarr"
    collect_dataset(env_name="wall", episodes=6, max_steps=40, policy="mixed", image_size=64, seed=0, out=str(data))
    env = make_env("wall")
    torch.manual_seed(0)
    ckpt = root / "run"
    model = world_model.UVA(world_model.make_config("tiny", env.action_low, env.action_high, env_name="wall"))
    world_model.save_checkpoint(model, ckpt, extra_state={"step": 7})
    return ckpt, data


def pusher_states(env, seed: int, steps: int):
    """``[steps + 1, 10]`` PushT states of the scripted pusher from ``env.reset(seed=seed)``."""
    import numpy as np

    from uva_plan.envs.policies import make_policy

    env.reset(seed=seed)
    state = env.get_state()
    policy = make_policy("pusht", "pusher", seed=seed)
    policy.reset(state)
    states = [state]
    for _ in range(steps):
        state = env.step_state(policy(state))
        states.append(state)
    return np.array(states)
