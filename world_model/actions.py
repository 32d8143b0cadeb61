"""The model's action contract: limits normalisation to [-1, 1] and rotation codecs for 3-D end-effectors.

UVA's diffusion heads work on actions in [-1, 1]; the limits that map env units there are stored next to
the data (replay-buffer attrs) and inside checkpoints (`to_dict`), so a model never guesses them.

The rotation codec replaces pytorch3d (which UVA used and which cannot be installed here) with roma.
6-D rotations follow pytorch3d's convention, the first two ROWS of the rotation matrix, so data written
for UVA keeps its meaning. Quaternions are xyzw (roma's and scipy's order).

Works on numpy arrays and torch tensors alike: numpy in, numpy out; tensor in, tensor out (same device).
torch and roma are imported only by the rotation functions, so normalising actions stays light.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from world_model.errors import WorldModelError

__all__ = [
    "ActionNormalizer",
    "RotationCodec",
    "axis_angle_to_matrix",
    "axis_angle_to_quaternion",
    "axis_angle_to_rotation_6d",
    "matrix_to_axis_angle",
    "matrix_to_quaternion",
    "matrix_to_rotation_6d",
    "quaternion_to_axis_angle",
    "quaternion_to_matrix",
    "quaternion_to_rotation_6d",
    "rotation_6d_to_axis_angle",
    "rotation_6d_to_matrix",
    "rotation_6d_to_quaternion",
]


def _is_tensor(x: Any) -> bool:
    return type(x).__module__.startswith("torch")


class ActionNormalizer:
    """Affine map from per-dimension limits `[low, high]` to `[-1, 1]`.

    `low`, `high`: `[A]`. `normalize(a [..., A]) -> [..., A]` in [-1, 1] for actions inside the limits.
    """

    def __init__(self, low, high):
        low_arr = np.asarray(low, dtype=np.float64).reshape(-1)
        high_arr = np.asarray(high, dtype=np.float64).reshape(-1)
        if low_arr.shape != high_arr.shape or low_arr.size == 0:
            raise WorldModelError(
                f"action limits have shapes {low_arr.shape} and {high_arr.shape}; expected two equal, "
                "non-empty [A] vectors (low, high)"
            )
        if not (np.all(np.isfinite(low_arr)) and np.all(np.isfinite(high_arr))):
            raise WorldModelError(f"action limits low={low_arr.tolist()} high={high_arr.tolist()}; expected finite values")
        if np.any(high_arr <= low_arr):
            raise WorldModelError(
                f"action limits low={low_arr.tolist()} high={high_arr.tolist()}; expected high > low in every dimension"
            )
        self.low = low_arr.astype(np.float32)
        self.high = high_arr.astype(np.float32)
        self._scale64 = (high_arr - low_arr) / 2.0
        self._center64 = (high_arr + low_arr) / 2.0

    @property
    def action_dim(self) -> int:
        return int(self.low.shape[0])

    @classmethod
    def from_data(cls, actions) -> ActionNormalizer:
        """Limits from the data's min/max: for foreign replay buffers that carry no bounds.

        A dimension that never varies gets a unit-wide range around its value, so it maps to 0 instead
        of dividing by zero.
        """
        arr = np.asarray(actions, dtype=np.float64)
        if arr.ndim != 2 or arr.shape[0] == 0:
            raise WorldModelError(f"actions have shape {arr.shape}; expected [N, A] with N >= 1")
        if not np.all(np.isfinite(arr)):
            raise WorldModelError("actions contain NaN or infinite values; expected finite actions")
        low, high = arr.min(axis=0), arr.max(axis=0)
        flat = high - low < 1e-6
        low = np.where(flat, low - 0.5, low)
        high = np.where(flat, high + 0.5, high)
        return cls(low, high)

    def _check(self, x) -> None:
        shape = tuple(x.shape)
        if len(shape) == 0 or shape[-1] != self.action_dim:
            raise WorldModelError(
                f"actions have shape {shape}; expected [..., {self.action_dim}] ({self.action_dim}-D actions)"
            )

    def _constants(self, x):
        if _is_tensor(x):
            import torch

            dtype = x.dtype if x.is_floating_point() else torch.float32
            scale = torch.as_tensor(self._scale64, dtype=dtype, device=x.device)
            center = torch.as_tensor(self._center64, dtype=dtype, device=x.device)
            return x.to(dtype), scale, center
        arr = np.asarray(x)
        dtype = arr.dtype if np.issubdtype(arr.dtype, np.floating) else np.float32
        return arr.astype(dtype, copy=False), self._scale64.astype(dtype), self._center64.astype(dtype)

    def normalize(self, actions):
        """Env units `[..., A]` -> `[-1, 1]` (not clipped: out-of-range actions stay out of range)."""
        self._check(actions)
        x, scale, center = self._constants(actions)
        return (x - center) / scale

    def unnormalize(self, x, clip: bool = False):
        """`[-1, 1]` -> env units `[..., A]`; `clip=True` also clips into `[low, high]` (model samples may
        overshoot)."""
        self._check(x)
        x, scale, center = self._constants(x)
        if clip:
            x = x.clamp(-1.0, 1.0) if _is_tensor(x) else np.clip(x, -1.0, 1.0)
        return x * scale + center

    def to_dict(self) -> dict:
        return {"low": [float(v) for v in self.low], "high": [float(v) for v in self.high]}

    @classmethod
    def from_dict(cls, data: dict) -> ActionNormalizer:
        if not isinstance(data, dict) or "low" not in data or "high" not in data:
            raise WorldModelError(f"action normalizer data is {data!r}; expected a dict with 'low' and 'high' lists")
        return cls(data["low"], data["high"])

    def __eq__(self, other) -> bool:
        return (
            isinstance(other, ActionNormalizer)
            and np.array_equal(self.low, other.low)
            and np.array_equal(self.high, other.high)
        )

    def __repr__(self) -> str:
        return f"ActionNormalizer(low={self.low.tolist()}, high={self.high.tolist()})"


# ---------------------------------------------------------------------------------------------------------
# Rotation codec (roma does the maths; these wrappers fix conventions, shapes and errors).


def _to_torch(x, last_dims: tuple[int, ...], what: str):
    """Validate the trailing shape and return (tensor float64-or-float32, back-converter)."""
    import torch

    if _is_tensor(x):
        tensor = x if x.is_floating_point() else x.to(torch.float32)

        def back(y):
            return y
    else:
        arr = np.asarray(x)
        if not np.issubdtype(arr.dtype, np.floating):
            arr = arr.astype(np.float64)
        tensor = torch.from_numpy(np.ascontiguousarray(arr))

        def back(y):
            return y.detach().cpu().numpy()

    shape = tuple(tensor.shape)
    if len(shape) < len(last_dims) or shape[len(shape) - len(last_dims) :] != last_dims:
        want = ", ".join(str(d) for d in last_dims)
        raise WorldModelError(f"{what} has shape {shape}; expected [..., {want}]")
    if not bool(torch.isfinite(tensor).all()):
        raise WorldModelError(f"{what} contains NaN or infinite values; expected finite numbers")
    return tensor, back


def axis_angle_to_matrix(axis_angle):
    """Axis-angle (rotation vector, radians) `[..., 3]` -> rotation matrix `[..., 3, 3]`."""
    import roma

    t, back = _to_torch(axis_angle, (3,), "axis-angle")
    return back(roma.rotvec_to_rotmat(t))


def matrix_to_axis_angle(matrix):
    """Rotation matrix `[..., 3, 3]` -> axis-angle `[..., 3]` (angle in [0, pi])."""
    import roma

    t, back = _to_torch(matrix, (3, 3), "rotation matrix")
    return back(roma.rotmat_to_rotvec(t))


def matrix_to_rotation_6d(matrix):
    """Rotation matrix `[..., 3, 3]` -> 6-D rotation `[..., 6]`: its first two rows (pytorch3d's layout)."""
    t, back = _to_torch(matrix, (3, 3), "rotation matrix")
    return back(t[..., :2, :].reshape(*t.shape[:-2], 6))


def rotation_6d_to_matrix(rotation_6d):
    """6-D rotation `[..., 6]` -> rotation matrix `[..., 3, 3]` by Gram-Schmidt (pytorch3d's layout: the
    two 3-vectors become the first two rows). Any non-degenerate 6-vector gives a valid rotation, which
    is why networks predict this form."""
    import roma

    t, back = _to_torch(rotation_6d, (6,), "6-D rotation")
    rows = t.reshape(*t.shape[:-1], 2, 3)
    norms = rows.norm(dim=-1)
    cross = rows[..., 0, :].cross(rows[..., 1, :], dim=-1).norm(dim=-1)
    if bool((norms < 1e-8).any()) or bool((cross < 1e-8 * norms.prod(dim=-1).clamp_min(1e-30)).any()):
        raise WorldModelError(
            "6-D rotation has a zero or two parallel 3-vectors; expected two non-parallel, non-zero vectors"
        )
    # roma orthonormalises COLUMNS; pytorch3d's 6-D vectors are ROWS, hence the transposes.
    return back(roma.special_gramschmidt(rows.transpose(-1, -2)).transpose(-1, -2))


def quaternion_to_matrix(quaternion):
    """Quaternion xyzw `[..., 4]` (normalised here) -> rotation matrix `[..., 3, 3]`."""
    import roma

    t, back = _to_torch(quaternion, (4,), "quaternion")
    if bool((t.norm(dim=-1) < 1e-8).any()):
        raise WorldModelError("quaternion has zero norm; expected a non-zero xyzw quaternion")
    return back(roma.unitquat_to_rotmat(roma.quat_normalize(t)))


def matrix_to_quaternion(matrix):
    """Rotation matrix `[..., 3, 3]` -> unit quaternion xyzw `[..., 4]`."""
    import roma

    t, back = _to_torch(matrix, (3, 3), "rotation matrix")
    return back(roma.rotmat_to_unitquat(t))


def axis_angle_to_rotation_6d(axis_angle):
    """Axis-angle `[..., 3]` -> 6-D rotation `[..., 6]`."""
    return matrix_to_rotation_6d(axis_angle_to_matrix(axis_angle))


def rotation_6d_to_axis_angle(rotation_6d):
    """6-D rotation `[..., 6]` -> axis-angle `[..., 3]`."""
    return matrix_to_axis_angle(rotation_6d_to_matrix(rotation_6d))


def axis_angle_to_quaternion(axis_angle):
    """Axis-angle `[..., 3]` -> unit quaternion xyzw `[..., 4]`."""
    import roma

    t, back = _to_torch(axis_angle, (3,), "axis-angle")
    return back(roma.rotvec_to_unitquat(t))


def quaternion_to_axis_angle(quaternion):
    """Quaternion xyzw `[..., 4]` -> axis-angle `[..., 3]`."""
    return matrix_to_axis_angle(quaternion_to_matrix(quaternion))


def quaternion_to_rotation_6d(quaternion):
    """Quaternion xyzw `[..., 4]` -> 6-D rotation `[..., 6]`."""
    return matrix_to_rotation_6d(quaternion_to_matrix(quaternion))


def rotation_6d_to_quaternion(rotation_6d):
    """6-D rotation `[..., 6]` -> unit quaternion xyzw `[..., 4]`."""
    return matrix_to_quaternion(rotation_6d_to_matrix(rotation_6d))


_TO_6D = {"axis_angle": (3, axis_angle_to_rotation_6d), "quaternion": (4, quaternion_to_rotation_6d)}
_FROM_6D = {"axis_angle": rotation_6d_to_axis_angle, "quaternion": rotation_6d_to_quaternion}


class RotationCodec:
    """Re-encodes the rotation part of 3-D end-effector actions as 6-D rotations for the model, and back.

    UVA feeds rotations to its action head as 6-D vectors because they are continuous (axis-angle and
    quaternions have wrap-arounds and double covers). An action `[..., A]` holds `rotation_size` numbers
    (3 for axis-angle, 4 for xyzw quaternions) starting at `rotation_start`; `encode` gives
    `[..., A - rotation_size + 6]` with the 6-D rotation in the same place, `decode` inverts it.
    """

    def __init__(self, rotation_start: int = 3, source: str = "axis_angle"):
        if source not in _TO_6D:
            raise WorldModelError(f"rotation source is {source!r}; expected one of {sorted(_TO_6D)}")
        if not isinstance(rotation_start, int) or rotation_start < 0:
            raise WorldModelError(f"rotation_start is {rotation_start!r}; expected an integer >= 0")
        self.rotation_start = rotation_start
        self.source = source
        self.rotation_size = _TO_6D[source][0]

    def encoded_dim(self, action_dim: int) -> int:
        return action_dim - self.rotation_size + 6

    def _split(self, actions, size: int):
        a = actions
        dim = a.shape[-1]
        if self.rotation_start + size > dim:
            raise WorldModelError(
                f"actions have {dim} dimensions; expected at least {self.rotation_start + size} "
                f"(rotation of {size} numbers starting at index {self.rotation_start})"
            )
        s, e = self.rotation_start, self.rotation_start + size
        return a[..., :s], a[..., s:e], a[..., e:]

    def _join(self, parts, like):
        if _is_tensor(like):
            import torch

            return torch.cat([p.to(parts[1].dtype) for p in parts], dim=-1)
        return np.concatenate([np.asarray(p, dtype=parts[1].dtype) for p in parts], axis=-1)

    def encode(self, actions):
        """`[..., A]` with a `source` rotation -> `[..., A - rotation_size + 6]` with a 6-D rotation."""
        before, rot, after = self._split(actions, self.rotation_size)
        return self._join([before, _TO_6D[self.source][1](rot), after], actions)

    def decode(self, encoded):
        """Inverse of `encode`: `[..., A']` with a 6-D rotation -> the `source` rotation."""
        before, rot6, after = self._split(encoded, 6)
        return self._join([before, _FROM_6D[self.source](rot6), after], encoded)
