import pytest
import torch

from uva_plan.errors import UserInputError
from uva_plan.goal_costs import (
    COST_NAMES,
    LatentL2,
    MultiScaleLatent,
    PredictedPose,
    SubgoalL2,
    TemporalDistance,
    Trajectory,
    make_cost,
)


def blob_latents(positions, size=8):
    """One-hot 'agent' latents at grid cells: [M, T, size, size, 1]."""
    m, t = len(positions), len(positions[0])
    z = torch.zeros(m, t, size, size, 1)
    for i, row in enumerate(positions):
        for j, (y, x) in enumerate(row):
            z[i, j, y, x, 0] = 1.0
    return z


def test_latent_l2_is_zero_at_goal_and_flat_far_away():
    goal = blob_latents([[(0, 0)]])[:, 0]
    traj = Trajectory(latents=blob_latents([[(0, 0)], [(0, 3)], [(7, 7)]]), goal=goal.expand(3, -1, -1, -1))
    c = LatentL2("final")(traj)
    assert c[0] == 0
    # Non-overlapping blobs look equally far to a plain L2: the flatness the other costs fix.
    assert torch.isclose(c[1], c[2])


def test_multiscale_keeps_a_slope_where_plain_l2_is_flat():
    goal = blob_latents([[(0, 0)]])[:, 0].expand(3, -1, -1, -1)
    traj = Trajectory(latents=blob_latents([[(0, 0)], [(0, 3)], [(7, 7)]]), goal=goal)
    c = MultiScaleLatent(scales=(1, 2, 4, 8))(traj)
    assert c[0] == 0 and c[0] < c[1] < c[2]


def test_reductions_and_distance_cost():
    dist = torch.tensor([[5.0, 3.0, 1.0], [2.0, 2.0, 4.0]])
    z = torch.zeros(2, 3, 2, 2, 1)
    traj = Trajectory(latents=z, goal=z[:, 0], distance=dist)
    assert torch.equal(TemporalDistance("final")(traj), torch.tensor([1.0, 4.0]))
    assert torch.equal(TemporalDistance("min")(traj), torch.tensor([1.0, 2.0]))
    assert torch.allclose(TemporalDistance("sum")(traj), torch.tensor([3.0, 8.0 / 3]))
    assert not TemporalDistance().needs_latents
    traj.latent_distance = dist.flip(1)
    assert torch.equal(TemporalDistance("final", head="latent")(traj), torch.tensor([5.0, 2.0]))
    assert TemporalDistance(head="latent").needs_latents


def test_subgoal_cost_compares_aligned_frames():
    z = blob_latents([[(0, 0), (1, 1)]])
    traj = Trajectory(latents=z, goal=z[:, -1], subgoals=z.clone())
    assert SubgoalL2()(traj).item() == 0
    traj.subgoals = blob_latents([[(0, 0), (5, 5)]])
    assert SubgoalL2()(traj).item() > 0


def test_missing_inputs_and_unknown_names_are_clear_errors():
    z = torch.zeros(1, 2, 2, 2, 1)
    with pytest.raises(UserInputError, match="distance head"):
        TemporalDistance()(Trajectory(latents=z, goal=z[:, 0]))
    with pytest.raises(UserInputError, match="expected one of"):
        make_cost("nope")
    with pytest.raises(UserInputError, match="reduction"):
        LatentL2("median")


@pytest.mark.parametrize("name", COST_NAMES)
def test_every_named_cost_builds(name):
    cost = make_cost(name)
    z = torch.rand(3, 4, 8, 8, 4)
    traj = Trajectory(latents=z, goal=z[:, -1], distance=torch.rand(3, 4), subgoals=z, latent_distance=torch.rand(3, 4),
                      agent=torch.rand(3, 4, 2), goal_agent=torch.rand(3, 2), block=torch.rand(3, 4, 3),
                      goal_block=torch.rand(3, 3), frames=torch.rand(3, 4, 16, 16, 3),
                      goal_frames=torch.rand(3, 16, 16, 3), subgoal_frames=torch.rand(3, 4, 16, 16, 3),
                      agent_steps=torch.rand(3, 16, 2), block_steps=torch.rand(3, 16, 3),
                      subgoal_agent_steps=torch.rand(3, 16, 2), subgoal_block_steps=torch.rand(3, 16, 3))
    out = cost(traj)
    assert out.shape == (3,) and torch.isfinite(out).all()


def test_the_predicted_pose_cost_is_the_success_tests_terms_in_state_units_across_the_angle_seam():
    import math

    from uva_plan.envs.pusht import ANGLE_SCALE

    cost = make_cost("predicted_pose_sum")
    assert cost.needs_block and cost.needs_agent and not cost.needs_latents and not cost.needs_frames
    goal_block = torch.tensor([[100.0, 200.0, 0.05]])
    # frame 1: 3-4-5 off and 0.1 rad turned across 0 / 2 pi; frame 2: on the block, agent 0.1 board widths off
    block = torch.tensor([[[103.0, 204.0, 2 * math.pi - 0.05], [100.0, 200.0, 0.05]]])
    agent = torch.tensor([[[0.5, 0.5], [0.6, 0.5]]])
    traj = Trajectory(latents=None, goal=torch.zeros(1, 8, 8, 4), agent=agent, goal_agent=torch.tensor([[0.5, 0.5]]),
                      block=block, goal_block=goal_block)
    frame1, frame2 = 5.0 + 0.1 * ANGLE_SCALE, 0.1 * 512.0
    assert torch.allclose(cost(traj), torch.tensor([(frame1 + frame2) / 2]), atol=1e-3)
    with pytest.raises(UserInputError, match="--object-pose"):
        cost(Trajectory(latents=None, goal=torch.zeros(1, 8, 8, 4), agent=agent, goal_agent=agent[:, 0]))
    # the every-step cost is the same terms on the every-step poses, and only those
    steps = make_cost("predicted_pose_steps")
    assert steps.needs_steps and not cost.needs_steps
    every = Trajectory(latents=None, goal=torch.zeros(1, 8, 8, 4), agent=agent, goal_agent=torch.tensor([[0.5, 0.5]]),
                       block=block, goal_block=goal_block, agent_steps=agent[:, :1], block_steps=block[:, :1])
    assert torch.allclose(steps(every), torch.tensor([frame1]), atol=1e-3)
    with pytest.raises(UserInputError, match="after every env step.*proprio_object_stepwise"):
        steps(traj)
    # tracking: each step against the video's own poses at that step; a step whose video pose was not
    # found (NaN) is left out of the mean
    follow = make_cost("subgoal_pose_steps")
    assert follow.needs_subgoal_poses and follow.needs_steps and not follow.needs_subgoals and not follow.needs_latents
    want_block = torch.tensor([[[100.0, 200.0, 0.05], [100.0, 200.0, 0.05], [float("nan")] * 3]])
    want_agent = torch.tensor([[[0.5, 0.5], [0.5, 0.5], [0.1, 0.1]]])
    tracked = Trajectory(latents=None, goal=torch.zeros(1, 8, 8, 4), agent_steps=agent, block_steps=block,
                         subgoal_agent_steps=want_agent, subgoal_block_steps=want_block)
    assert torch.allclose(follow(tracked), torch.tensor([(frame1 + frame2) / 2]), atol=1e-3)
    # the block unseen at step 2: its terms are left out there, the agent's (0.1 board widths off) still count
    tracked.subgoal_block_steps = torch.tensor([[[103.0, 204.0, -0.05], [float("nan")] * 3, [0.0] * 3]])
    assert torch.allclose(follow(tracked), torch.tensor([frame2 / 2]), atol=1e-3)
    diverged = Trajectory(latents=None, goal=torch.zeros(1, 8, 8, 4), agent_steps=agent, subgoal_agent_steps=want_agent,
                          block_steps=torch.full_like(block, float("nan")), subgoal_block_steps=want_block)
    assert follow(diverged).isinf().all()  # a candidate whose predicted poses are NaN is never the best
    with pytest.raises(UserInputError, match="tracked video's poses"):
        follow(every)
    tracked.subgoal_agent_steps = want_agent[:, :1]
    with pytest.raises(UserInputError, match="cover 1 steps; the plan has 2"):
        follow(tracked)
    with pytest.raises(UserInputError, match="at every step with a mean"):
        PredictedPose("final", every_step=True, against="subgoals")


def test_the_agent_cost_is_the_agents_distance_to_its_goal_position_and_says_what_it_needs():
    from uva_plan.goal_costs import AgentDistance

    agent = torch.tensor([[[0.0, 0.0], [0.3, 0.4]], [[0.5, 0.5], [0.5, 0.5]]])
    traj = Trajectory(latents=None, goal=torch.zeros(2, 8, 8, 4), agent=agent, goal_agent=torch.tensor([[0.3, 0.4], [0.5, 0.5]]))
    assert torch.allclose(AgentDistance("sum")(traj), torch.tensor([0.25, 0.0]))
    assert torch.allclose(AgentDistance("final")(traj), torch.tensor([0.0, 0.0]))
    assert make_cost("multiscale_sum+agent").needs_agent and not make_cost("multiscale_sum").needs_agent
    with pytest.raises(UserInputError, match="--proprio"):
        AgentDistance()(Trajectory(latents=None, goal=torch.zeros(2, 8, 8, 4)))


def test_distances_of_runs_only_the_heads_the_cost_reads():
    from uva_plan.goal_costs import distances_of

    class Recorder:
        def __init__(self):
            self.heads = []

        def temporal_distance(self, latents, goal_latents, head):
            self.heads.append(head)
            return torch.zeros(latents.shape[:2])

    z, g = torch.zeros(2, 3, 8, 8, 4), torch.zeros(2, 8, 8, 4)
    for name, expected in [("latent_distance", ["latent"]), ("distance_sum", ["joint"]),
                           ("latent_l2", []), ("latent_distance+latent", ["latent"])]:
        model = Recorder()
        out = distances_of(model, make_cost(name), z, g)
        assert model.heads == expected, name
        assert (out["distance"] is None) == ("joint" not in expected)
        assert (out["latent_distance"] is None) == ("latent" not in expected)


def _pusht_frames(states):
    """``[N, 64, 64, 3]`` float frames of PushT ``states``, as the pose cost reads them."""
    import numpy as np

    from uva_plan.envs import make_env

    env = make_env("pusht", image_size=64)
    env.reset(seed=0)
    return torch.from_numpy(np.stack([env.render_state(s) for s in states])).float() / 255.0


def test_the_pose_cost_reads_the_block_and_agent_in_the_success_tests_units():
    import math

    import numpy as np

    from uva_plan.envs.pusht import ANGLE_SCALE
    from uva_plan.goal_costs import LocatedPose

    goal = np.array([200.0, 300.0, 256.0, 256.0, 0.5, 0, 0, 0, 0, 0])
    moved_block, turned, moved_agent, block_gone = goal.copy(), goal.copy(), goal.copy(), goal.copy()
    moved_block[2] += 40.0
    turned[4] += math.radians(30)
    moved_agent[1] += 40.0
    block_gone[2:4] = -400.0  # off the board: the locator finds no block
    states = [goal, moved_block, turned, moved_agent, block_gone]
    frames = _pusht_frames(states)[:, None]  # [5, T=1, S, S, 3]
    traj = Trajectory(latents=None, goal=torch.zeros(5, 8, 8, 4), frames=frames,
                      goal_frames=_pusht_frames([goal]).expand(5, -1, -1, -1))
    pose = LocatedPose("final")(traj)
    block_only = LocatedPose("final", agent=False)(traj)
    assert pose[0] < 5  # the goal itself
    assert abs(pose[1] - 40) < 8 and abs(pose[2] - ANGLE_SCALE * math.radians(30)) < 8 and abs(pose[3] - 40) < 8
    assert block_only[3] < 5  # the agent's move is not the block's
    assert pose[4] > 700 + 180  # a lost block costs the most its terms can: never a shortcut
    assert make_cost("pose_sum").needs_frames and make_cost("block_pose_sum+agent").needs_agent
    with pytest.raises(UserInputError, match="frames"):
        LocatedPose()(Trajectory(latents=None, goal=torch.zeros(1, 8, 8, 4)))


def test_the_pose_cost_is_refused_for_another_env_by_name():
    from uva_plan.plan_settings import PlanSettings

    with pytest.raises(UserInputError, match="pose_sum cost reads pusht"):
        PlanSettings(cost="pose_sum").validate(4, "wall")
    PlanSettings(cost="pose_sum").validate(4, "pusht")


def test_the_subgoal_pose_cost_compares_each_frame_with_its_own_target_frame():
    import numpy as np

    from uva_plan.goal_costs import LocatedPose

    a = np.array([200.0, 300.0, 256.0, 256.0, 0.5, 0, 0, 0, 0, 0])
    b = a.copy()
    b[2] += 40.0
    frames = torch.stack([_pusht_frames([a, b]), _pusht_frames([b, b])])  # [M=2, T=2, S, S, 3]
    traj = Trajectory(latents=None, goal=torch.zeros(2, 8, 8, 4), frames=frames,
                      subgoal_frames=_pusht_frames([a, b])[None].expand(2, -1, -1, -1, -1))
    cost = make_cost("subgoal_pose_sum")
    assert cost.needs_subgoals and cost.needs_frames
    per_pair = cost(traj)
    assert per_pair[0] < 5 and abs(per_pair[1] - 20) < 5  # on the video's way / one frame 40 units off of two
    traj.subgoal_frames = traj.subgoal_frames[:, :1]  # a shorter video: only the frames it covers count
    first_only = cost(traj)
    assert first_only[0] < 5 and abs(first_only[1] - 40) < 8
    with pytest.raises(UserInputError, match="subgoal frames"):
        cost(Trajectory(latents=None, goal=torch.zeros(2, 8, 8, 4), frames=frames))
    with pytest.raises(UserInputError, match="'goal' or 'subgoals'"):
        LocatedPose(against="video")
