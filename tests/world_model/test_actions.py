"""Action normalisation and the roma-based rotation codec, checked against scipy."""

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from world_model.actions import (
    ActionNormalizer,
    RotationCodec,
    axis_angle_to_matrix,
    axis_angle_to_quaternion,
    axis_angle_to_rotation_6d,
    matrix_to_axis_angle,
    matrix_to_rotation_6d,
    quaternion_to_axis_angle,
    quaternion_to_rotation_6d,
    rotation_6d_to_axis_angle,
    rotation_6d_to_matrix,
    rotation_6d_to_quaternion,
)
from world_model.errors import WorldModelError


def rotvecs(n=200, seed=0):
    """Random rotation vectors plus the hard cases: zero, tiny and near-pi angles."""
    rng = np.random.default_rng(seed)
    axes = rng.normal(size=(n, 3))
    axes /= np.linalg.norm(axes, axis=1, keepdims=True)
    angles = rng.uniform(0, np.pi - 1e-3, size=n)
    angles[:3] = [0.0, 1e-7, np.pi - 1e-4]
    return axes * angles[:, None]


# ---------------------------------------------------------------------------------------------- normaliser


def test_normalizer_maps_limits_to_unit_box_and_back():
    norm = ActionNormalizer([0.0, -2.0], [512.0, 2.0])
    a = np.array([[0.0, -2.0], [512.0, 2.0], [256.0, 0.0], [128.0, 1.0]])
    x = norm.normalize(a)
    np.testing.assert_allclose(x, [[-1, -1], [1, 1], [0, 0], [-0.5, 0.5]])
    np.testing.assert_allclose(norm.unnormalize(x), a, atol=1e-9)
    np.testing.assert_allclose(norm.unnormalize(np.array([[3.0, -3.0]]), clip=True), [[512.0, -2.0]])


def test_normalizer_keeps_torch_tensors_and_dtype():
    norm = ActionNormalizer([-2.0, -2.0], [2.0, 2.0])
    t = torch.tensor([[[1.0, -2.0]]], dtype=torch.float32)
    x = norm.normalize(t)
    assert isinstance(x, torch.Tensor) and x.dtype == torch.float32 and x.shape == (1, 1, 2)
    torch.testing.assert_close(norm.unnormalize(x), t)


def test_normalizer_serialises_and_rejects_bad_limits():
    norm = ActionNormalizer([0.0, 1.0], [1.0, 3.0])
    assert ActionNormalizer.from_dict(norm.to_dict()) == norm
    with pytest.raises(WorldModelError, match="expected high > low"):
        ActionNormalizer([0.0, 1.0], [1.0, 1.0])
    with pytest.raises(WorldModelError, match="finite"):
        ActionNormalizer([0.0, np.nan], [1.0, 1.0])
    with pytest.raises(WorldModelError, match=r"expected \[\.\.\., 2\]"):
        norm.normalize(np.zeros((4, 3)))


def test_normalizer_from_data_handles_constant_dimensions():
    data = np.array([[0.0, 5.0], [10.0, 5.0], [4.0, 5.0]])
    norm = ActionNormalizer.from_data(data)
    x = norm.normalize(data)
    np.testing.assert_allclose(x[:, 0], [-1.0, 1.0, -0.2])
    np.testing.assert_allclose(x[:, 1], 0.0)


# ---------------------------------------------------------------------------------------------- rotations


def test_axis_angle_to_matrix_and_quaternion_match_scipy():
    rv = rotvecs()
    ref = Rotation.from_rotvec(rv)
    np.testing.assert_allclose(axis_angle_to_matrix(rv), ref.as_matrix(), atol=1e-10)
    q = axis_angle_to_quaternion(rv)
    q_ref = ref.as_quat()  # scipy is xyzw like roma
    same_sign = np.sign(np.sum(q * q_ref, axis=1, keepdims=True))
    np.testing.assert_allclose(q * same_sign, q_ref, atol=1e-10)
    np.testing.assert_allclose(matrix_to_axis_angle(ref.as_matrix()), rv, atol=1e-6)
    np.testing.assert_allclose(quaternion_to_axis_angle(q_ref), rv, atol=1e-6)


def test_rotation_6d_is_the_first_two_rows_and_round_trips():
    rv = rotvecs()
    mats = Rotation.from_rotvec(rv).as_matrix()
    six = axis_angle_to_rotation_6d(rv)
    np.testing.assert_allclose(six, mats[:, :2, :].reshape(-1, 6), atol=1e-10)  # pytorch3d's layout
    np.testing.assert_allclose(rotation_6d_to_matrix(six), mats, atol=1e-10)
    np.testing.assert_allclose(rotation_6d_to_axis_angle(six), rv, atol=1e-6)
    q = rotation_6d_to_quaternion(quaternion_to_rotation_6d(Rotation.from_rotvec(rv).as_quat()))
    np.testing.assert_allclose(Rotation.from_quat(q).as_matrix(), mats, atol=1e-10)
    np.testing.assert_allclose(matrix_to_rotation_6d(mats), six, atol=1e-12)


def test_noisy_6d_gives_the_gram_schmidt_rotation():
    rng = np.random.default_rng(1)
    six = rng.normal(size=(50, 6)) * 3
    mats = rotation_6d_to_matrix(six)
    np.testing.assert_allclose(mats @ np.swapaxes(mats, 1, 2), np.broadcast_to(np.eye(3), mats.shape), atol=1e-10)
    np.testing.assert_allclose(np.linalg.det(mats), 1.0, atol=1e-10)
    a1 = six[:, :3] / np.linalg.norm(six[:, :3], axis=1, keepdims=True)
    np.testing.assert_allclose(mats[:, 0, :], a1, atol=1e-10)  # first row = normalised first vector
    a2 = six[:, 3:]
    assert np.all(np.einsum("ni,ni->n", mats[:, 1, :], a2) > 0)  # second row on a2's side
    np.testing.assert_allclose(mats[:, 2, :], np.cross(mats[:, 0, :], mats[:, 1, :]), atol=1e-10)


def test_rotations_accept_torch_and_batch_dims():
    rv = torch.from_numpy(rotvecs(24).reshape(2, 12, 3)).float()
    six = axis_angle_to_rotation_6d(rv)
    assert isinstance(six, torch.Tensor) and six.shape == (2, 12, 6) and six.dtype == torch.float32
    ref = Rotation.from_rotvec(rv.reshape(-1, 3).double().numpy()).as_matrix()
    np.testing.assert_allclose(rotation_6d_to_matrix(six).reshape(-1, 3, 3).numpy(), ref, atol=1e-5)


def test_rotation_codec_round_trips_end_effector_actions():
    rng = np.random.default_rng(2)
    actions = np.concatenate([rng.normal(size=(3, 5, 3)), rotvecs(15).reshape(3, 5, 3), rng.uniform(size=(3, 5, 1))], -1)
    codec = RotationCodec(rotation_start=3, source="axis_angle")
    enc = codec.encode(actions)
    assert enc.shape == (3, 5, codec.encoded_dim(7)) == (3, 5, 10)
    np.testing.assert_allclose(enc[..., :3], actions[..., :3])
    np.testing.assert_allclose(enc[..., 9], actions[..., 6])
    np.testing.assert_allclose(codec.decode(enc), actions, atol=1e-6)

    quat = RotationCodec(rotation_start=0, source="quaternion")
    q = Rotation.from_rotvec(rotvecs(8)).as_quat()
    back = quat.decode(quat.encode(np.concatenate([q, np.ones((8, 1))], -1)))
    np.testing.assert_allclose(np.abs(np.sum(back[:, :4] * q, axis=1)), 1.0, atol=1e-10)


def test_rotation_bad_input_raises_one_clear_error():
    with pytest.raises(WorldModelError, match=r"shape \(4, 2\); expected \[\.\.\., 3\]"):
        axis_angle_to_matrix(np.zeros((4, 2)))
    with pytest.raises(WorldModelError, match="NaN"):
        axis_angle_to_rotation_6d(np.array([np.nan, 0.0, 0.0]))
    with pytest.raises(WorldModelError, match="parallel"):
        rotation_6d_to_matrix(np.array([1.0, 0, 0, 2.0, 0, 0]))
    with pytest.raises(WorldModelError, match="at least 7"):
        RotationCodec(rotation_start=4).encode(np.zeros((2, 6)))
    with pytest.raises(WorldModelError, match="rotation source"):
        RotationCodec(source="euler")
