"""vigil - heartbeats from a Python worker to vigild, through libvigil.

Pure Python over ctypes: nothing to compile.  The calls are libvigil's
opaque-handle form (vigil_open, vigil_handle_beat, vigil_handle_detach,
vigil_close; contracts in vigil.h), so this module never needs the
segment's layout.

    import vigil
    with vigil.attach() as w:          # VIGIL_SHM + WORKER_ID/WORKER_TYPE/TASK_ID
        for step in range(101):
            do_work()
            w.beat(100, step)          # health 0..100, progress 0..100
    # leaving the block detaches (worker_detached), exceptions included

Errors are raised as VigilError (an OSError): .errno is the error number,
str() the sentence of vigil_strerror.

libvigil.so.1 is found through $VIGIL_LIBRARY (a path), then next to this
module's install (<prefix>/lib, <prefix>/lib/<multiarch>), then the dynamic
loader's own search (ld.so.cache, LD_LIBRARY_PATH).
"""

import ctypes
import errno as _errno
import os
import sysconfig

__all__ = ["VigilError", "Worker", "attach"]

_SONAME = "libvigil.so.1"


def _candidates():
    env = os.environ.get("VIGIL_LIBRARY")
    if env:
        yield env
    here = os.path.dirname(os.path.abspath(__file__))
    # <prefix>/lib/python3/dist-packages/vigil.py -> <prefix>/lib
    prefix_lib = os.path.normpath(os.path.join(here, "..", ".."))
    multiarch = sysconfig.get_config_var("MULTIARCH") or ""
    for d in (prefix_lib, os.path.join(prefix_lib, multiarch) if multiarch else None):
        if d:
            p = os.path.join(d, _SONAME)
            if os.path.exists(p):
                yield p
    yield _SONAME


def _load():
    tried = []
    for path in _candidates():
        try:
            # PyDLL: the calls keep the GIL.  They are short (a beat is one
            # store), and a handle must not be beaten from two threads at
            # once (its beat count is not atomic), which the GIL ensures.
            return ctypes.PyDLL(path)
        except OSError as e:
            tried.append("%s (%s)" % (path, e))
    raise ImportError("vigil: cannot load libvigil: tried " + "; ".join(tried))


_lib = _load()
_lib.vigil_open.argtypes = [ctypes.POINTER(ctypes.c_int)]
_lib.vigil_open.restype = ctypes.c_void_p
_lib.vigil_handle_beat.argtypes = [ctypes.c_void_p, ctypes.c_uint, ctypes.c_uint]
_lib.vigil_handle_beat.restype = ctypes.c_int
_lib.vigil_handle_detach.argtypes = [ctypes.c_void_p]
_lib.vigil_handle_detach.restype = ctypes.c_int
_lib.vigil_close.argtypes = [ctypes.c_void_p]
_lib.vigil_close.restype = None
_lib.vigil_strerror.argtypes = [ctypes.c_int]
_lib.vigil_strerror.restype = ctypes.c_char_p


class VigilError(OSError):
    """A libvigil call failed: errno is the error number, the message is
    vigil_strerror's sentence."""

    def __init__(self, rc, call):
        msg = _lib.vigil_strerror(rc).decode("ascii", "replace")
        super().__init__(-rc, "%s: %s" % (call, msg))


def _clamp(x):
    x = int(x)
    return 0 if x < 0 else 100 if x > 100 else x


class Worker:
    """An attached worker (made by attach()).  One thread at a time."""

    __slots__ = ("_h", "_beat")
    # Held by the class, so that a Worker collected while the interpreter
    # shuts down (module globals already cleared) can still be closed.
    _close = _lib.vigil_close
    _detach = _lib.vigil_handle_detach

    def __init__(self):
        err = ctypes.c_int(0)
        h = _lib.vigil_open(ctypes.byref(err))
        if not h:
            raise VigilError(err.value or -_errno.EIO, "vigil.attach")
        self._h = ctypes.c_void_p(h)
        self._beat = _lib.vigil_handle_beat

    def beat(self, health=100, progress=0):
        """One heartbeat: health and progress 0..100 (clamped).  Wait-free;
        raises VigilError (ENOTCONN) after detach()."""
        rc = self._beat(self._h, _clamp(health), _clamp(progress))
        if rc != 0:
            raise VigilError(rc, "vigil.beat")

    def detach(self):
        """The clean goodbye: vigild reports worker_detached and frees the
        slot.  Raises VigilError when the slot was no longer ours (ESTALE)
        or the worker is already detached (ENOTCONN)."""
        rc = self._detach(self._h)
        if rc != 0:
            raise VigilError(rc, "vigil.detach")

    def close(self):
        """Frees the handle.  Still attached, it is dropped WITHOUT a
        goodbye (vigild then reports the worker as it would one that
        stopped beating or exited); call detach() first for a clean end."""
        h, self._h = getattr(self, "_h", None), None
        if h is not None:
            self._close(h)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        # Detach on the way out, exceptions included; a detach that fails
        # during an exception must not hide that exception.
        try:
            if self._h is not None:
                rc = self._detach(self._h)
                if rc != 0 and rc != -_errno.ENOTCONN and exc_type is None:
                    raise VigilError(rc, "vigil.detach")
        finally:
            self.close()
        return False

    def __del__(self):
        self.close()


def attach():
    """Attaches this process as a worker, from the environment: a slot
    vigild prepared (VIGIL_SHM, VIGIL_SLOT, VIGIL_GEN), or self-registration
    in VIGIL_SHM with WORKER_ID, WORKER_TYPE (default "worker") and TASK_ID
    (optional).  Returns a Worker; raises VigilError (ENOENT no segment,
    ENXIO no WORKER_ID, EEXIST the id is live in another running process,
    ENOSPC full, EINVAL bad id, ...)."""
    return Worker()
