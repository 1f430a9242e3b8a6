"""Key/value caches of self-attention, all behind one interface (:class:`KVCache`).

Owns every kind of cache a :class:`~seqagents.models.transformer.SelfAttention` layer continues
from, and the split-softmax arithmetic the shared kinds need (:func:`attention_with_lse`,
:func:`merge_attention`). Attention only calls ``cache.attend``; a planner asks a cache its
``length``, for its rows (``select``, ``expand``) and for what it holds (``dense``), never for
its internals. A cache holds one layer's keys/values ``(R, n_head, length, head_dim)`` for ``R``
rows (sequences):

- :class:`ConcatKV`: plain tensors, what a forward without a cache returns; continuing from it
  concatenates (copies every held key per call).
- :class:`KVBuffer`: preallocated, appended in place.
- :class:`SharedPrefixKV`: a prefix stored once per env plus a small buffer per row (TT beam
  search: the beams of an env share the context window); the two partial attentions are merged
  exactly with their log-sum-exps.
- :class:`SiblingKV`: the ``n`` copies of each row of a :class:`SharedPrefixKV` that beam search
  makes before sampling actions, sharing their parent's keys instead of copying them.

The shared kinds are for inference (no attention dropout).

Modules: :mod:`~seqagents.models.kv_cache.own` (the interface and the caches whose rows attend
over their own keys), :mod:`~seqagents.models.kv_cache.shared` (the shared-prefix caches and
their log-sum-exp arithmetic).
"""

from seqagents.models.kv_cache.own import ConcatKV, KVBuffer, KVCache
from seqagents.models.kv_cache.shared import (
    PrefixMask,
    SharedPrefixKV,
    SiblingKV,
    attention_with_lse,
    merge_attention,
)

__all__ = [
    "KVCache",
    "ConcatKV",
    "KVBuffer",
    "PrefixMask",
    "SharedPrefixKV",
    "SiblingKV",
    "attention_with_lse",
    "merge_attention",
]
