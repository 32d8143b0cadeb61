"""Wall: two rooms split by a wall with one door, a disc agent with bounded 2-D velocity actions.

The door's height is drawn per episode and is visible in the image, so a policy must look to find it.
State `[agent_x, agent_y, door_center_y]` (world units, 64x64 world, y downwards); action
`[vx, vy]` in `[-2, 2]^2` units per step. Episodes never terminate; they are truncated at
`max_episode_steps` (goal-reaching is judged from the final state by the caller, per the protocol).
"""

from __future__ import annotations

import numpy as np

from uva_plan.envs import wall_geometry as geo
from uva_plan.envs.checks import as_action, as_vector
from uva_plan.envs.pixel_env import PixelGoalEnv
from uva_plan.envs.wall_render import WallRenderer
from uva_plan.errors import UserInputError

STATE_NAMES = ("agent_x", "agent_y", "door_center_y")
STATE_LAYOUT = "[agent_x, agent_y, door_center_y]"


def sample_door_y(rng: np.random.Generator) -> float:
    return float(rng.uniform(geo.DOOR_Y_MIN, geo.DOOR_Y_MAX))


def sample_position(rng: np.random.Generator, room: int) -> tuple[float, float]:
    """A uniformly drawn agent centre strictly inside room 0 (left) or 1 (right)."""
    if room == 0:
        x = rng.uniform(geo.ARENA_MIN, geo.LEFT_ROOM_MAX_X)
    else:
        x = rng.uniform(geo.RIGHT_ROOM_MIN_X, geo.ARENA_MAX)
    y = rng.uniform(geo.ARENA_MIN, geo.ARENA_MAX)
    return float(x), float(y)


def room_of(x: float) -> int:
    """0 for the left room, 1 for the right one (a centre inside the door belongs to its nearer side)."""
    return 0 if x < geo.WALL_CENTER_X else 1


class WallEnv(PixelGoalEnv):
    """Gymnasium env `uva_plan/Wall-v0`. Observations `uint8 [S, S, 3]`, see the module docstring."""

    name = "wall"
    state_names = STATE_NAMES
    state_dim = 3
    # Proprioception (what the agent knows of itself): its position, which is also its image (x, y),
    # the world's [0, 64] being the frame's extent.
    proprio_indices = (0, 1)
    proprio_low = (0.0, 0.0)
    proprio_high = (64.0, 64.0)
    proprio_image_xy = (0, 1)  # the proprio entries that are the agent's image (x, y)
    object_pose_indices = ()  # nothing to push
    actions_image_xy = False

    def __init__(self, image_size: int = 64, max_episode_steps: int = 100, render_mode: str | None = "rgb_array"):
        speed = np.full(2, geo.MAX_SPEED, dtype=np.float32)
        self._set_spaces(image_size, max_episode_steps, render_mode, -speed, speed)
        self._renderer = WallRenderer(self.image_size)
        self._state = np.array([16.0, 32.0, 32.0])

    # -- state -------------------------------------------------------------------------------------------

    def check_state(self, state) -> np.ndarray:
        """A valid Wall state as float64 `[3]`, or a UserInputError saying what is wrong."""
        s = as_vector(state, 3, "Wall state", STATE_LAYOUT)
        x, y, door = s
        if not geo.DOOR_Y_MIN - 1e-6 <= door <= geo.DOOR_Y_MAX + 1e-6:
            raise UserInputError(
                f"Wall state has door_center_y={door:g}; expected a value in [{geo.DOOR_Y_MIN:g}, {geo.DOOR_Y_MAX:g}]"
            )
        if not geo.is_free(x, y, door, tol=1e-4):  # tolerant of float32 round-off (stored datasets)
            raise UserInputError(
                f"Wall state puts the agent at ({x:g}, {y:g}), overlapping the wall or outside the arena; expected "
                f"a centre in [{geo.ARENA_MIN:g}, {geo.ARENA_MAX:g}]^2 at least {geo.AGENT_RADIUS:g} units from the wall"
            )
        return s

    def get_state(self) -> np.ndarray:
        """Current state, float64 `[3]`."""
        return self._state.copy()

    def set_state(self, state) -> None:
        """Put the world exactly into `state` (the dynamics are Markov in it)."""
        self._state = self.check_state(state).copy()

    # -- gymnasium API -------------------------------------------------------------------------------------

    def _random_start(self) -> None:
        """A door height, then an agent centre in a room drawn at random."""
        door = sample_door_y(self.np_random)
        x, y = sample_position(self.np_random, int(self.np_random.integers(2)))
        self._state = np.array([x, y, door])

    def step_state(self, action) -> np.ndarray:
        """Dynamics only: apply `action [2]` to the current state and return the new state `[3]`.

        No image, no step counting: this is what simulators-as-models (oracles) and goal generation use.
        """
        vx, vy = as_action(action, self.action_low, self.action_high)
        x, y, door = self._state
        x, y = geo.move(float(x), float(y), float(vx), float(vy), float(door))
        self._state = np.array([x, y, door])
        return self._state.copy()

    def step(self, action):
        self.step_state(action)
        truncated = self._count_step()
        info = self._info()
        reward = float(info.get("is_success", False))
        return self._observe(), reward, False, truncated, info

    def render(self):
        return self._observe()

    def _observe(self) -> np.ndarray:
        x, y, door = self._state
        return self._renderer.render(float(x), float(y), float(door))

    def _info(self) -> dict:
        return self._with_goal({"state": self._state.copy()})

    # -- state-space queries (pure functions of their arguments) ---------------------------------------------

    def render_state(self, state) -> np.ndarray:
        """Observation of any valid state, `uint8 [S, S, 3]`; equals what `step`/`reset` return there."""
        x, y, door = self.check_state(state)
        return self._renderer.render(float(x), float(y), float(door))

    def is_success(self, state, goal_state) -> bool:
        """Agent centre within SUCCESS_RADIUS (4) units of the goal's agent centre."""
        return self.state_distance(state, goal_state) < geo.SUCCESS_RADIUS

    def state_distance(self, state, goal_state) -> float:
        """Straight-line distance between the agent centres, in world units (the tables' final distance)."""
        s = as_vector(state, 3, "Wall state", STATE_LAYOUT)
        g = as_vector(goal_state, 3, "Wall goal state", STATE_LAYOUT)
        return float(np.hypot(s[0] - g[0], s[1] - g[1]))

    def routed_distance(self, state, goal_state) -> float:
        """Length of the shortest path of the agent's centre to the goal's, through the door of `state`."""
        s = self.check_state(state)
        g = as_vector(goal_state, 3, "Wall goal state", STATE_LAYOUT)
        g = self.check_state([g[0], g[1], s[2]])  # the world's door is the one of `state`
        return geo.routed_distance(s[0], s[1], g[0], g[1], s[2])

    @staticmethod
    def hold_actions(states) -> np.ndarray:
        """The action that keeps the agent where it is in each of ``states [N, 3]``: zero velocity."""
        return np.zeros((len(states), 2), dtype=np.float32)

    def room(self, state) -> int:
        """0 if the agent is in the left room, 1 if in the right room."""
        s = as_vector(state, 3, "Wall state", STATE_LAYOUT)
        return room_of(float(s[0]))
