"""PushT with pixels and exact state restore, composed around gym-pusht's simulator.

Why a wrapper and not gym-pusht as is:
- its reset-to-state sets the block's position before its angle; the T turns about its centre of
  gravity, so the restored block lands elsewhere. Here the angle is set first, then the position.
- its 5-number state has no velocities; here the state also holds both bodies' velocities.
- pymunk keeps hidden solver state between steps (cached contact impulses used for warm starting,
  the order of contacts), so a restored state replays differently once the bodies touch (measured:
  errors of 1e-3 to hundreds of px after 10 steps). Every step here therefore starts from a fresh
  pymunk space built from the state vector: the dynamics are a function of the 10 numbers, and
  `set_state` then 10 actions reproduce a rollout exactly.

State `[agent_x, agent_y, block_x, block_y, block_angle, agent_vx, agent_vy, block_vx, block_vy,
block_angular_velocity]` (px, rad, px/s, rad/s; angle wrapped to [0, 2 pi)); action: the agent's
target `(x, y)` in `[0, 512]^2`. Pixels: the 512x512 drawing reduced with an area filter (cv2 INTER_AREA).
"""

from __future__ import annotations

import math
import os
import sys

import numpy as np

from uva_plan.envs.checks import as_action, as_vector
from uva_plan.envs.pixel_env import PixelGoalEnv
from uva_plan.errors import UserInputError

STATE_NAMES = (
    "agent_x",
    "agent_y",
    "block_x",
    "block_y",
    "block_angle",
    "agent_vx",
    "agent_vy",
    "block_vx",
    "block_vy",
    "block_angular_velocity",
)
STATE_LAYOUT = "[agent_x, agent_y, block_x, block_y, block_angle, agent_vx, agent_vy, block_vx, block_vy, block_angular_velocity]"
WORKSPACE = 512.0
POSITION_TOLERANCE = 20.0  # px: summed agent + block position error for success
ANGLE_TOLERANCE = math.pi / 9  # rad: block angle error for success
# `state_distance` counts one degree of block angle error as one pixel, so the two success thresholds
# (20 px, pi/9 = 20 degrees) weigh the same: scale = 20 px / (pi/9 rad) = 180/pi px per rad.
ANGLE_SCALE = POSITION_TOLERANCE / ANGLE_TOLERANCE
AGENT_RADIUS = 15.0
# The T's centre of gravity in the block's own frame (mean of its two bars' centroids, as gym-pusht sets it).
BLOCK_CENTER_LOCAL = (0.0, 45.0)


def _rgb_byte_order(surface) -> list[int]:
    """Byte positions of R, G, B inside one pixel of a 32-bit pygame surface."""
    shifts = surface.get_shifts()[:3]
    if sys.byteorder == "little":
        return [s // 8 for s in shifts]
    return [3 - s // 8 for s in shifts]


def wrap_angle(angle):
    """Angle difference wrapped to (-pi, pi]."""
    return (np.asarray(angle) + math.pi) % (2 * math.pi) - math.pi


def block_center(state) -> np.ndarray:
    """World position of the T's centre of gravity, `[2]` (where a pusher should aim)."""
    x, y, angle = state[2], state[3], state[4]
    c, s = math.cos(angle), math.sin(angle)
    lx, ly = BLOCK_CENTER_LOCAL
    return np.array([x + c * lx - s * ly, y + s * lx + c * ly])


class PushTEnv(PixelGoalEnv):
    """Gymnasium env `uva_plan/PushT-v0`. Observations `uint8 [S, S, 3]`, see the module docstring."""

    name = "pusht"
    state_names = STATE_NAMES
    state_dim = 10
    # Proprioception (DINO-WM's PushT proprio): the agent's position, which is also its image (x, y) on
    # the [0, 512] workspace, and its velocity (99% of the data's within +-930 units/s).
    proprio_indices = (0, 1, 5, 6)
    proprio_low = (0.0, 0.0, -1000.0, -1000.0)
    proprio_high = (WORKSPACE, WORKSPACE, 1000.0, 1000.0)
    proprio_image_xy = (0, 1)  # the proprio entries that are the agent's image (x, y)
    # The T's pose (`uva-plan train --object-pose`): x, y on the board and its angle, unwrapped to within a
    # half turn of the current one (so [0, 2 pi) widens to [-pi, 3 pi)). The actions are board positions.
    object_pose_indices = (2, 3, 4)
    object_pose_low = (0.0, 0.0, -math.pi)
    object_pose_high = (WORKSPACE, WORKSPACE, 3.0 * math.pi)
    actions_image_xy = True

    def __init__(self, image_size: int = 64, max_episode_steps: int = 300, render_mode: str | None = "rgb_array"):
        os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
        from gym_pusht.envs.pusht import PushTEnv as Simulator

        low, high = np.zeros(2, dtype=np.float32), np.full(2, WORKSPACE, dtype=np.float32)  # target (x, y) in px
        self._set_spaces(image_size, max_episode_steps, render_mode, low, high)
        self._sim = Simulator(obs_type="state", render_mode="rgb_array")
        self._state = np.array([256.0, 400.0, 256.0, 300.0, 0.0, 0, 0, 0, 0, 0])
        self._loaded = False  # whether the simulator's space holds exactly self._state

    # -- state -------------------------------------------------------------------------------------------

    def check_state(self, state) -> np.ndarray:
        """A valid PushT state as float64 `[10]` (angle wrapped), or a UserInputError."""
        s = as_vector(state, 10, "PushT state", STATE_LAYOUT).copy()
        # A loose sanity bound (wrong units, garbage): pushes can squeeze the T a little past the thin walls.
        if np.any(s[:4] < -WORKSPACE) or np.any(s[:4] > 2 * WORKSPACE):
            raise UserInputError(
                f"PushT state has positions {s[:4].tolist()}; expected agent and block positions in px, within "
                "[-512, 1024] (the workspace is [0, 512])"
            )
        s[4] = s[4] % (2 * math.pi)
        return s

    def _load(self, state: np.ndarray) -> None:
        """Build a fresh pymunk space holding exactly `state` (see the module docstring for why)."""
        sim = self._sim
        sim._setup()
        sim.agent.position = (state[0], state[1])
        sim.agent.velocity = (state[5], state[6])
        sim.block.angle = state[4]  # angle BEFORE position: the T turns about its centre of gravity
        sim.block.position = (state[2], state[3])
        sim.block.velocity = (state[7], state[8])
        sim.block.angular_velocity = state[9]
        # pymunk refreshes a shape's world-space vertices only when the space steps; drawing right after a
        # restore would show the old pose, so refresh them now.
        for shape in (*sim.agent.shapes, *sim.block.shapes):
            shape.cache_bb()

    def _read(self) -> np.ndarray:
        a, b = self._sim.agent, self._sim.block
        return np.array(
            [a.position.x, a.position.y, b.position.x, b.position.y, b.angle % (2 * math.pi),
             a.velocity.x, a.velocity.y, b.velocity.x, b.velocity.y, b.angular_velocity]
        )

    def get_state(self) -> np.ndarray:
        """Current state, float64 `[10]`."""
        return self._state.copy()

    def set_state(self, state) -> None:
        """Put the world exactly into `state` (positions and velocities of both bodies)."""
        self._state = self.check_state(state)
        self._load(self._state)
        self._loaded = True

    # -- gymnasium API -------------------------------------------------------------------------------------

    def _random_start(self) -> None:
        self.set_state(self._random_state())

    def _random_state(self) -> np.ndarray:
        """gym-pusht's start distribution, redrawn while the agent overlaps the block (an overlap would
        make the first step a violent push-out)."""
        from gym_pusht.envs.pusht import pymunk_to_shapely
        from shapely.geometry import Point

        rng = self.np_random
        for _ in range(100):
            s = np.zeros(10)
            s[0:2] = rng.integers(50, 450, size=2)
            s[2:4] = rng.integers(100, 400, size=2)
            s[4] = rng.uniform(-math.pi, math.pi) % (2 * math.pi)
            self._load(s)
            block = pymunk_to_shapely(self._sim.block, self._sim.block.shapes)
            if block.distance(Point(s[0], s[1])) > AGENT_RADIUS + 2:
                break
        return s

    def _advance(self, action) -> None:
        """One control step (0.1 s) of gym-pusht's dynamics from a fresh space holding `self._state`."""
        action = as_action(action, self.action_low, self.action_high)
        if not self._loaded:
            self._load(self._state)
        sim = self._sim
        # gym-pusht's PushTEnv.step without its reward: the same PD tracking of the target by the
        # kinematic agent, 10 physics sub-steps. Its shapely coverage costs as much as the physics and
        # is computed only where a reward is wanted (`step`).
        for _ in range(int(1 / (sim.dt * sim.control_hz))):
            acceleration = sim.k_p * (action - sim.agent.position) + sim.k_v * (0.0 - np.asarray(sim.agent.velocity))
            sim.agent.velocity += acceleration * sim.dt
            sim.space.step(sim.dt)
        self._state = self._read()
        self._load(self._state)  # the space now holds exactly the state vector (rounded angle included)
        self._loaded = True

    def step_state(self, action) -> np.ndarray:
        """Dynamics only: apply `action [2]` and return the new state `[10]`; no image, no reward, no step
        counting (for simulators used as models, and goal generation)."""
        self._advance(action)
        return self._state.copy()

    def step(self, action):
        self._advance(action)
        coverage = float(self._sim._get_coverage())
        truncated = self._count_step()
        info = self._info(coverage)
        reward = float(np.clip(coverage / self._sim.success_threshold, 0.0, 1.0))  # gym-pusht's reward
        return self._draw(), reward, False, truncated, info

    def render(self):
        if not self._loaded:
            self._load(self._state)
            self._loaded = True
        return self._draw()

    def _draw(self) -> np.ndarray:
        import cv2

        screen = self._sim._draw()
        # Read the 32-bit surface in place (no RGB conversion copy) and reduce all 4 bytes at once; this
        # halves the cost of pygame's tobytes("RGB") route and gives identical pixels.
        pixels = np.frombuffer(screen.get_buffer(), dtype=np.uint8).reshape(512, 512, 4)
        if self.image_size != 512:
            pixels = cv2.resize(pixels, (self.image_size, self.image_size), interpolation=cv2.INTER_AREA)
        return np.ascontiguousarray(pixels[..., _rgb_byte_order(screen)])

    def _info(self, coverage: float | None = None) -> dict:
        """coverage: gym-pusht's goal-region coverage of the current state, when the caller has it."""
        coverage = self._sim._get_coverage() if coverage is None else coverage
        return self._with_goal({"state": self._state.copy(), "coverage": coverage})

    # -- state-space queries -----------------------------------------------------------------------------------

    def render_state(self, state) -> np.ndarray:
        """Observation of any state, `uint8 [S, S, 3]`; equals what `step`/`reset` return there."""
        self._load(self.check_state(state))
        self._loaded = False
        return self._draw()

    @staticmethod
    def hold_actions(states) -> np.ndarray:
        """The action that keeps the agent where it is in each of ``states [N, 10]``: its own position as
        the PD controller's target."""
        return np.asarray(states, dtype=np.float32)[:, 0:2].copy()

    def coverage(self, state) -> float:
        """gym-pusht's own figure: the fraction of its fixed goal region covered by the block."""
        self._load(self.check_state(state))
        self._loaded = False
        return float(self._sim._get_coverage())

    @staticmethod
    def _errors(state, goal_state) -> tuple[float, float]:
        s = as_vector(state, 10, "PushT state", STATE_LAYOUT)
        g = as_vector(goal_state, 10, "PushT goal state", STATE_LAYOUT)
        position = float(np.hypot(*(s[0:2] - g[0:2])) + np.hypot(*(s[2:4] - g[2:4])))
        return position, float(abs(wrap_angle(s[4] - g[4])))

    def is_success(self, state, goal_state) -> bool:
        """Goal protocol: agent + block position error < 20 px AND |block angle error| < pi/9."""
        position, angle = self._errors(state, goal_state)
        return position < POSITION_TOLERANCE and angle < ANGLE_TOLERANCE

    def state_distance(self, state, goal_state) -> float:
        """Summed agent + block position error (px) + ANGLE_SCALE * |angle error| (1 degree = 1 px)."""
        position, angle = self._errors(state, goal_state)
        return position + ANGLE_SCALE * angle
