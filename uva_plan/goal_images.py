"""Goal images from users: files or arrays of any reasonable layout, brought to the model's frame format
(uint8 ``[S, S, 3]``) only when that is unambiguous."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from uva_plan.errors import UserInputError


def to_frame(image, size: int) -> np.ndarray:
    """Bring an image to uint8 ``[size, size, 3]``.

    Accepts uint8 (0..255) or float (0..1) pixels, ``[H, W, 3]``, ``[H, W, 4]`` (only fully opaque: the
    alpha is then dropped) or ``[3, H, W]``. Greyscale is rejected: the frames are in colour and a grey
    picture cannot say where a red agent is. A square image of another size is resized with an area filter. A non-square image is
    rejected: cropping or padding would silently move the goal.
    """
    arr = np.asarray(image)
    if arr.ndim != 3:
        raise UserInputError(f"goal image has shape {arr.shape}; expected [H, W, 3] or [3, H, W]")
    if arr.shape[-1] not in (3, 4) and arr.shape[0] == 3:
        arr = np.moveaxis(arr, 0, -1)
    if arr.dtype != np.uint8 and not np.issubdtype(arr.dtype, np.floating):
        raise UserInputError(f"goal image has dtype {arr.dtype}; expected uint8 (0..255) or float (0..1)")
    if arr.shape[-1] == 4:
        opaque = 255 if arr.dtype == np.uint8 else 1.0
        if not np.all(arr[..., 3] == opaque):
            raise UserInputError("goal image has transparent pixels (RGBA with alpha < max); expected an opaque RGB "
                                 "image like the env's frames (what is behind a transparent pixel is unknown)")
        arr = arr[..., :3]
    if arr.shape[-1] != 3:
        raise UserInputError(f"goal image has shape {np.asarray(image).shape}; expected 3 colour channels "
                             "([H, W, 3] or [3, H, W])")
    if not np.all(np.isfinite(arr)):
        raise UserInputError("goal image contains NaN or inf values; expected finite pixels")
    if arr.dtype != np.uint8:  # float, checked above
        if arr.min() < 0 or arr.max() > 1:
            raise UserInputError(f"float goal image has values in [{arr.min():.3g}, {arr.max():.3g}]; expected [0, 1]")
        arr = np.round(arr * 255).astype(np.uint8)
    h, w = arr.shape[:2]
    if h != w:
        raise UserInputError(f"goal image is {w}x{h}; expected a square image (the model sees {size}x{size})")
    if h != size:
        import cv2

        arr = cv2.resize(arr, (size, size), interpolation=cv2.INTER_AREA if h > size else cv2.INTER_LINEAR)
    return np.ascontiguousarray(arr)


def load_goal_image(path: str | Path, size: int) -> np.ndarray:
    """Read a PNG/JPEG goal image and bring it to uint8 ``[size, size, 3]``."""
    path = Path(path)
    if not path.is_file():
        raise UserInputError(f"goal image {path} does not exist; expected a PNG or JPEG file")
    import imageio.v3 as iio

    try:
        image = iio.imread(path)
    except Exception:  # imageio raises many types (and install hints) for files that are no image
        raise UserInputError(f"cannot read goal image {path}: it is not a readable image file; expected a PNG or "
                             "JPEG file") from None
    if image.ndim == 2 or (image.ndim == 3 and image.shape[-1] in (1, 2)):
        raise UserInputError(f"goal image {path} is greyscale; expected an RGB image like the env's frames "
                             "(e.g. saved from env.render_state(state))")
    return to_frame(image, size)
