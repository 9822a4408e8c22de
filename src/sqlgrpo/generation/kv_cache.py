"""A key/value cache layer with room reserved for the tokens still to decode.

transformers' ``DynamicLayer.update`` concatenates the whole cache with each new token: a
copy of every key and value of every layer per decoding step, measured at a third of a
step on a CPU (BENCHMARKS.md, "Evaluation throughput"). :func:`reserve_room` swaps the
layers of a plain cache for :class:`RoomyLayer`, which writes each token into space
reserved up front and hands the attention views of the filled part: the same keys and
values, no per-step copy.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers.cache_utils import DynamicLayer


class RoomyLayer(DynamicLayer):
    """A full-attention cache layer that grows in place into reserved room."""

    def __init__(self, keys: torch.Tensor, values: torch.Tensor, room: int) -> None:
        super().__init__()
        batch, heads, length, dim = keys.shape
        self._keys = keys.new_empty((batch, heads, length + room, dim))
        self._values = values.new_empty((batch, heads, length + room, values.shape[-1]))
        self._keys[:, :, :length] = keys
        self._values[:, :, :length] = values
        self._length = length
        self.device = keys.device
        self.is_initialized = True
        self._expose()

    def _expose(self) -> None:
        self.keys = self._keys[:, :, : self._length]
        self.values = self._values[:, :, : self._length]

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Append the new keys and values; return all of them (views)."""
        end = self._length + key_states.shape[-2]
        if end > self._keys.shape[-2]:  # out of room: grow by concatenation, like DynamicLayer
            self._keys = torch.cat([self.keys, key_states], dim=-2)
            self._values = torch.cat([self.values, value_states], dim=-2)
        else:
            self._keys[:, :, self._length : end] = key_states
            self._values[:, :, self._length : end] = value_states
        self._length = end
        self._expose()
        return self.keys, self.values

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        """Keep only the rows ``indices`` (room included)."""
        self._keys = self._keys[indices]
        self._values = self._values[indices]
        self._expose()

    def batch_repeat_interleave(self, repeats: int) -> None:
        """Repeat every row ``repeats`` times (room included)."""
        self._keys = self._keys.repeat_interleave(repeats, dim=0)
        self._values = self._values.repeat_interleave(repeats, dim=0)
        self._expose()

    def crop(self, tokens_to_remove: int) -> None:
        """Drop the last ``-tokens_to_remove`` tokens (their room is reused)."""
        super().crop(tokens_to_remove)
        self._length = self.keys.shape[-2]


def reserve_room(cache: Any, room: int) -> bool:
    """Give every layer of a plain key/value cache room for ``room`` more tokens, in place.

    Returns False (and leaves the cache as it is) when some layer is not a plain
    ``DynamicLayer`` (sliding-window, quantized, static, ... caches keep their own update).
    """
    layers = getattr(cache, "layers", None)
    if not layers or not all(type(layer) is DynamicLayer for layer in layers):
        return False
    cache.layers = [RoomyLayer(layer.keys, layer.values, room) for layer in layers]
    return True
