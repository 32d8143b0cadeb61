"""The checkpoint shipped inside the package must load with the code beside it (a model change that
forgets to retrain it breaks `uva-plan demo`), stay small, say how it was made, and imagine what the
simulator does: the agent present where the true actions take it (issue 10's regression guard)."""

import json
import runpy
from pathlib import Path

import numpy as np
import pytest
import torch

from uva_plan.envs.wall_locate import locate_agent
from uva_plan.imagination import heldout_episodes
from uva_plan.model_loading import DEFAULT_CHECKPOINTS, load_model_for_env
from uva_plan.proprio import history_proprio

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def model():
    return load_model_for_env(None, "wall")


def test_shipped_wall_checkpoint_loads_and_answers(model):
    folder = DEFAULT_CHECKPOINTS / "wall"
    total = sum(p.stat().st_size for p in folder.iterdir())
    assert total <= 20 * 2**20, f"shipped checkpoint is {total / 2**20:.1f} MB; the budget is 20 MB"
    recipe = json.loads((folder / "train_config.json").read_text())["train_config"]
    assert recipe["config"] in ("tiny", "small") and recipe["steps"] > 0
    history = torch.zeros(1, model.config.n_history, 64, 64, 3, dtype=torch.uint8)
    actions = model.policy(history, goal=history[:, 0], num_samples=2, num_steps=1)
    assert actions.shape == (1, 2, model.config.chunk_len, 2)
    assert torch.isfinite(actions).all()


def test_shipped_model_imagines_the_agent_where_the_simulator_puts_it(model):
    """Held-out expert windows, the true action chunk, temperature 0: the agent is in the imagined
    frames and near the simulator's (the old checkpoint had it in 0% of these frames)."""
    episodes = heldout_episodes(kinds=("expert",), n_per_kind=4, steps=40)
    stride = model.config.frame_stride
    hist, hist_states, acts, true_xy = [], [], [], []
    for ep in episodes:
        for t in (12, 20):
            hist.append(ep.frames[t - stride * np.arange(3, -1, -1)])
            hist_states.append(ep.states[t - stride * np.arange(3, -1, -1)])
            acts.append(ep.actions[t : t + model.config.chunk_len])
            true_xy.append(ep.states[t + stride * np.arange(1, 5), :2])
    gen = torch.Generator().manual_seed(0)
    res = model.forward_dynamics(torch.from_numpy(np.stack(hist)), torch.from_numpy(np.stack(acts)), decode=True,
                                 num_steps=2, temperature=0.0, generator=gen,
                                 history_proprio=history_proprio(model, np.stack(hist_states)))
    xy, present, _ = locate_agent(res.frames.numpy())
    assert present.mean() >= 0.95
    err = np.hypot(*(xy - np.stack(true_xy)).transpose(2, 0, 1))
    assert np.nanmedian(err) <= 2.5
    # the agent's own predicted position (the model was trained with --proprio) agrees with the drawn one
    predicted = np.hypot(*(res.proprio.numpy() - np.stack(true_xy)).transpose(2, 0, 1))
    assert np.median(predicted) <= 2.5


def test_the_shipped_model_example_runs(capsys):
    runpy.run_path(str(Path(__file__).parents[2] / "examples" / "shipped_world_model.py"), run_name="__main__")
    out = capsys.readouterr().out
    assert "imagined agent" in out and "inverse dynamics" in out


def test_shipped_pusht_checkpoint_keeps_agent_and_block_through_its_tokenizer():
    """The PushT checkpoint loads for `uva-plan demo --env pusht`, stays small, and its tokenizer keeps
    what planning must see (600 tokenizer steps lost the agent in every round trip; 3,000 keep it)."""
    from uva_plan.envs.pusht_locate import locate_pusht

    pusht = load_model_for_env(None, "pusht")
    folder = DEFAULT_CHECKPOINTS / "pusht"
    assert sum(p.stat().st_size for p in folder.iterdir()) <= 20 * 2**20
    episodes = heldout_episodes(kinds=("pusher",), n_per_kind=2, steps=24, env_name="pusht")
    frames = np.concatenate([ep.frames[::4] for ep in episodes])
    states = np.concatenate([ep.states[::4] for ep in episodes])
    back = pusht.decode(pusht.encode(torch.from_numpy(frames))).numpy()
    found = locate_pusht(back)
    assert found.agent_present.mean() >= 0.9 and found.block_present.mean() >= 0.9
    assert np.nanmedian(np.hypot(*(found.agent_xy - states[:, :2]).T)) <= 12.0  # state units, 8 = 1 px
    history = torch.from_numpy(frames[None, :pusht.config.n_history])
    assert pusht.policy(history, goal=history[:, 0], num_samples=1, num_steps=1).shape == (1, 1, pusht.config.chunk_len, 2)


def test_shipped_model_stops_the_agent_at_walls_and_edges(model):
    """An agent resting against an edge or the wall, pushed into it at full speed for a chunk, stays in
    place (the simulator's answer): the dynamics prior's gain over the warp model, which kept 54%."""
    from uva_plan.imagination import SamplingSettings, pressed_test

    results = pressed_test(model, n_starts=3, speed_fractions=(1.0,), settings=SamplingSettings("T=0", temperature=0.0))
    assert {r.place for r in results} >= {"wall", "left edge", "right edge"}
    assert np.mean([r.held for r in results]) >= 0.9
