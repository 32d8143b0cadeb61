"""The UVA model's boundary checks: every public input (frames, latents, actions, counts, sampling
settings) is turned into a tensor of the expected shape or refused with one `WorldModelError` that says
what was wrong and what was expected. A mixin, so `model.py` reads as the model."""

from __future__ import annotations

import numpy as np
import torch

from world_model.errors import WorldModelError
from world_model.heads import check_sampling


def _shape(x) -> str:
    return str(tuple(x.shape)) if hasattr(x, "shape") else type(x).__name__


class InputChecks:
    """Needs ``self.config`` (a `UVAConfig`), ``self.normalizer``, ``self.device`` and
    ``self._encode_checked`` (frames -> latents, for inputs given as frames)."""

    def _as_tensor(self, x, name: str) -> torch.Tensor:
        if isinstance(x, np.ndarray):
            x = torch.from_numpy(x)
        if not isinstance(x, torch.Tensor):
            raise WorldModelError(f"{name} is a {type(x).__name__}; expected a torch tensor or numpy array")
        return x

    def _frames(self, x, name: str, n_frames: int | None = None, single: bool = False) -> torch.Tensor:
        """Validated frames as float in [0, 1] on the model device: ``[B, T, H, W, 3]`` (or ``[B, H, W, 3]``
        when ``single``)."""
        s = self.config.image_size
        x = self._as_tensor(x, name)
        t = "" if single else (f"{n_frames}, " if n_frames is not None else "T, ")
        expected = f"[B, {t}{s}, {s}, 3]"
        ndim = 4 if single else 5
        ok = x.ndim == ndim and tuple(x.shape[-3:]) == (s, s, 3) and x.shape[0] >= 1
        if ok and not single and n_frames is not None:
            ok = x.shape[1] == n_frames
        if ok and not single and x.shape[1] < 1:
            ok = False
        if not ok:
            what = f"{n_frames} frames" if n_frames is not None and not single else ("one frame" if single else "frames")
            raise WorldModelError(f"{name} has shape {_shape(x)}; expected {expected} ({what} of {s}x{s} RGB per item)")
        if x.dtype == torch.uint8:
            return x.to(self.device).float() / 255.0
        if not x.is_floating_point():
            raise WorldModelError(f"{name} has dtype {x.dtype}; expected uint8 or float in [0, 1]")
        x = x.to(self.device, torch.float32)
        if not torch.isfinite(x).all():
            raise WorldModelError(f"{name} contains NaN or infinite values; expected finite pixel values in [0, 1]")
        if x.min() < -1e-3 or x.max() > 1.0 + 1e-3:
            raise WorldModelError(
                f"{name} has float values in [{float(x.min()):.3g}, {float(x.max()):.3g}]; expected [0, 1] "
                "(pass uint8 frames for 0..255)"
            )
        return x.clamp(0.0, 1.0)

    def _latents(self, x, name: str, n_frames: int | None = None, single: bool = False) -> torch.Tensor:
        h, c = self.config.latent_size, self.config.latent_channels
        x = self._as_tensor(x, name)
        ndim = 4 if single else 5
        ok = x.ndim == ndim and tuple(x.shape[-3:]) == (h, h, c) and x.shape[0] >= 1
        if ok and not single:
            ok = x.shape[1] >= 1 and (n_frames is None or x.shape[1] == n_frames)
        if not ok:
            t = "" if single else (f"{n_frames}, " if n_frames is not None else "T, ")
            raise WorldModelError(f"{name} has shape {_shape(x)}; expected [B, {t}{h}, {h}, {c}] (frame latents)")
        if not x.is_floating_point():
            raise WorldModelError(f"{name} has dtype {x.dtype}; expected floating-point latents")
        x = x.to(self.device, torch.float32)
        if not torch.isfinite(x).all():
            raise WorldModelError(f"{name} contains NaN or infinite values; expected finite latents")
        return x

    def _either(self, frames, latents, name: str, n_frames=None, single=False, required=True, latent_name=None):
        latent_name = latent_name or f"{name}_latents"
        if frames is not None and latents is not None:
            raise WorldModelError(f"both {name} and {latent_name} were given; expected only one of them")
        if frames is not None:
            return self._encode_checked(self._frames(frames, name, n_frames, single))
        if latents is not None:
            return self._latents(latents, latent_name, n_frames, single)
        if required:
            raise WorldModelError(f"neither {name} nor {latent_name} was given; expected one of them")
        return None

    def _actions(self, actions, name: str, normalise: bool) -> torch.Tensor:
        a = self.config.action_dim
        x = self._as_tensor(actions, name)
        if x.ndim != 3 or x.shape[-1] != a or x.shape[0] < 1 or x.shape[1] < 1:
            raise WorldModelError(f"{name} has shape {_shape(x)}; expected [B, L, {a}] ({a}-D actions)")
        if not x.is_floating_point():
            x = x.float()
        x = x.to(self.device, torch.float32)
        if not torch.isfinite(x).all():
            raise WorldModelError(f"{name} contain NaN or infinite values; expected finite actions")
        return self.normalizer.normalize(x) if normalise else x

    @staticmethod
    def _check_count(value, name: str, low: int, high: int | None = None) -> None:
        ok = isinstance(value, int) and not isinstance(value, bool) and value >= low and (high is None or value <= high)
        if not ok:
            rng = f"[{low}, {high}]" if high is not None else f">= {low}"
            raise WorldModelError(f"{name} is {value!r}; expected an integer {rng}")

    def _check_sampling(self, num_steps, temperature) -> None:
        check_sampling(self.config.sample_steps if num_steps is None else num_steps,
                       self.config.temperature if temperature is None else temperature)

    @staticmethod
    def _broadcast(x: torch.Tensor | None, b: int, name: str) -> torch.Tensor | None:
        if x is None or x.shape[0] == b:
            return x
        if x.shape[0] == 1:
            return x.expand(b, *x.shape[1:])
        raise WorldModelError(f"{name} has batch size {x.shape[0]}; expected {b} (or 1 to share it)")
