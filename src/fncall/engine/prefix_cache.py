"""KV snapshots of earlier sequences, so a prompt that shares a long prefix with one the model evaluated
before the last request starts from there instead of from nothing.

The context holds one sequence: whatever the last request left. A client's tool round alternates two
prompts (the call, with the system text and every tool schema, then a short tools-free answer step), so by
the next question the tools prefix is gone and its 300-700 tokens are evaluated again, the largest part of
a request on a CPU. Before a request cuts the sequence it diverges from, the sequence's KV (only sequence
0's cells, about 12 KB a token on Qwen 0.5B, never the 300 MB logits buffer of `Llama.save_state`) is kept
here; a later prompt restores the snapshot it shares the most with. Snapshots live in an LRU bounded by
bytes, and their buffers are reused, since writing into fresh memory costs ten times more.
"""

from __future__ import annotations

import ctypes
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import llama_cpp


@dataclass
class _Snapshot:
    tokens: tuple[int, ...]
    buffer: ctypes.Array[ctypes.c_uint8]
    size: int


class PrefixCache:
    """Snapshots of sequence 0, keyed by their tokens. `min_tokens`: shorter sequences are cheaper to
    evaluate again than to keep. `max_bytes` bounds the snapshots together (least recently used go first)."""

    def __init__(self, max_bytes: int, *, min_tokens: int = 128) -> None:
        self.max_bytes = max_bytes
        self.min_tokens = min_tokens
        self._snapshots: OrderedDict[tuple[int, ...], _Snapshot] = OrderedDict()
        self._spare: list[ctypes.Array[ctypes.c_uint8]] = []
        self.bytes = 0

    def __len__(self) -> int:
        return len(self._snapshots)

    def best(self, prompt: Sequence[int]) -> tuple[int, tuple[int, ...] | None]:
        """The longest prefix of `prompt` a snapshot holds, and that snapshot's key."""
        best_length, best_key = 0, None
        for key in self._snapshots:
            length = common_prefix_length(key, prompt)
            if length > best_length:
                best_length, best_key = length, key
        return best_length, best_key

    def save(
        self, ctx: llama_cpp.llama_context_p, tokens: Sequence[int], *, keep: tuple[int, ...] | None = None
    ) -> bool:
        """Keep the context's sequence 0, which holds `tokens`, never evicting the snapshot `keep` for it;
        False when it is too short or does not fit."""
        key = tuple(tokens)
        if len(key) < self.min_tokens:
            return False
        if key in self._snapshots:
            self._snapshots.move_to_end(key)
            return True
        size = llama_cpp.llama_state_seq_get_size(ctx, 0)
        kept = self._snapshots[keep].size if keep in self._snapshots else 0
        if size + kept > self.max_bytes:
            return False
        while self.bytes + size > self.max_bytes:
            self._drop(next(key for key in self._snapshots if key != keep))
        buffer = self._buffer(size)
        written = llama_cpp.llama_state_seq_get_data(ctx, buffer, size, 0)
        if written != size:
            self._spare.append(buffer)
            return False
        self._snapshots[key] = _Snapshot(key, buffer, size)
        self.bytes += size
        return True

    def restore(self, ctx: llama_cpp.llama_context_p, key: tuple[int, ...]) -> bool:
        """Replace the context's sequence 0 with a snapshot; False (and an empty sequence) if llama.cpp
        refuses it, e.g. when the context has no room left."""
        snapshot = self._snapshots[key]
        self._snapshots.move_to_end(key)
        llama_cpp.llama_memory_seq_rm(llama_cpp.llama_get_memory(ctx), 0, -1, -1)
        if llama_cpp.llama_state_seq_set_data(ctx, snapshot.buffer, snapshot.size, 0) == 0:
            self._drop(key)
            return False
        return True

    def _drop(self, key: tuple[int, ...]) -> None:
        snapshot = self._snapshots.pop(key)
        self.bytes -= snapshot.size
        self._spare.append(snapshot.buffer)
        del self._spare[:-_SPARE_BUFFERS]

    def _buffer(self, size: int) -> ctypes.Array[ctypes.c_uint8]:
        """A buffer of at least `size` bytes, reusing a spare one where one is big enough."""
        fitting = [buffer for buffer in self._spare if len(buffer) >= size]
        if fitting:
            buffer = min(fitting, key=len)
            self._spare.remove(buffer)
            return buffer
        self._spare.clear()  # none fits: let the smaller ones go rather than hold memory no one uses
        return (ctypes.c_uint8 * size)()


_SPARE_BUFFERS = 2


def common_prefix_length(cached: Sequence[int], tokens: Sequence[int]) -> int:
    length = 0
    for left, right in zip(cached, tokens, strict=False):
        if left != right:
            break
        length += 1
    return length
