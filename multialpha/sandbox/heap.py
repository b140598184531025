"""Give the sandbox's freed heap back to the system (glibc), so its RSS is what it holds.

Why: a Historical answer for a worker's warmup is built from a few MB of numpy arrays
(every day's bars, the selection, the sort, the DBN bytes, the zstd frame) in the request's
handler thread. glibc serves each thread from its own malloc arena and keeps what is freed
there; after the three cold warmups of `multialpha up` the sandbox held ~90 MB more RSS than
the ~35 MB of live Python objects it kept (measured with tracemalloc). Two arenas for the
whole process and a ``malloc_trim(0)`` after each answer bring that back (docs/sandbox.md).

Elsewhere (no glibc: macOS, musl) both calls do nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util

M_ARENA_MAX = -8  # glibc's mallopt parameter number (malloc.h)
_libc: ctypes.CDLL | None = None
_loaded = False


def _glibc() -> ctypes.CDLL | None:
    global _libc, _loaded
    if not _loaded:
        _loaded = True
        try:
            lib = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            _libc = lib if hasattr(lib, "malloc_trim") and hasattr(lib, "mallopt") else None
        except OSError:
            _libc = None
    return _libc


def limit_arenas(n: int = 2) -> bool:
    """At most ``n`` malloc arenas for the process (call before the server threads start)."""
    lib = _glibc()
    return bool(lib and lib.mallopt(M_ARENA_MAX, n))


def trim() -> bool:
    """Return the free memory at the top and inside the arenas to the system; True if any was."""
    lib = _glibc()
    return bool(lib and lib.malloc_trim(0))
