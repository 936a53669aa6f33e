"""Output files and termination for the command-line scripts rsi runs (`rsi model convert`,
`rsi model quantize`), with the rules of the C++ commands: an output appears whole or not at all,
an existing file is replaced only when asked, and Ctrl-C or SIGTERM ends the run with one line and
exit status 130, leaving no temporary file behind.
"""
import contextlib
import errno
import os
import signal
import sys
import tempfile
from typing import Iterator

INTERRUPTED_EXIT = 130
_command = ""         # set by handle_termination: the name error lines start with
_raising = False      # inside raising_on_termination(): signals raise Interrupted
_received = ""        # the signal that arrived inside it, remembered: the raise can be lost (see below)


class Interrupted(Exception):
    """SIGINT or SIGTERM arrived; raised where Python next runs, so `finally` blocks clean up."""


class OutputExists(Exception):
    """The output exists at the start and overwriting was not asked for (a usage error)."""


class AppearedMeanwhile(OSError):
    """Another process wrote the output while this run worked; it was left as it is (a runtime error)."""


def _on_signal(signum, frame):
    global _received
    if _raising:
        _received = signal.Signals(signum).name
        raise Interrupted(_received)
    sys.stderr.write("%s: interrupted\n" % _command)  # nothing written yet (e.g. still importing torch)
    sys.stderr.flush()
    os._exit(INTERRUPTED_EXIT)


def handle_termination(command: str) -> None:
    """Called first by a script run as a command: SIGINT and SIGTERM end it with "<command>:
    interrupted" and exit status 130 (SIGTERM's default skips the clean-up of temporaries, SIGINT's
    prints a traceback). Inside raising_on_termination() they raise Interrupted instead."""
    global _command
    _command = command
    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)


@contextlib.contextmanager
def raising_on_termination() -> Iterator[None]:
    """The work of a command: a signal raises Interrupted where Python next runs, so `finally`
    blocks (atomic_output's) remove what was half written; the caller reports it."""
    global _raising, _received
    _raising, _received = True, ""
    try:
        yield
    finally:
        _raising = False


def raise_if_interrupted() -> None:
    """Raises Interrupted when a signal arrived inside raising_on_termination(). The handler's own raise
    can vanish: one that lands while an extension module initialises (`from osgeo import gdal`) is
    swallowed by C code, and the run went on to write its output and exit 0. Stage lines and
    atomic_output's commit call this, so such a run still ends interrupted, leaving nothing."""
    if _raising and _received:
        raise Interrupted(_received)


@contextlib.contextmanager
def atomic_output(path: str, overwrite: bool) -> Iterator[str]:
    """Yields a temporary path beside ``path``; when the block completes, the file is moved to
    ``path`` (replacing an existing one only with ``overwrite``; without it, a file another process
    wrote meanwhile is kept and AppearedMeanwhile raised). The temporary file is removed on any failure,
    interruption included."""
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise OSError(errno.ENOENT, "output folder does not exist", folder)
    if os.path.exists(path) and not overwrite:
        raise OutputExists("%s exists (use --overwrite)" % path)
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=folder)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes it private; the output gets the usual permissions
    try:
        yield tmp
        raise_if_interrupted()  # a signal whose raise was lost: not committed
        if overwrite:
            os.replace(tmp, path)
        else:
            try:
                os.link(tmp, path)  # fails when the path exists: never replaces a concurrent run's file
            except FileExistsError:
                raise AppearedMeanwhile("%s appeared while this run was writing it (another run?); left as it is" % path)
            except OSError:  # a file system without hard links: check, then rename
                if os.path.exists(path):
                    raise AppearedMeanwhile("%s appeared while this run was writing it (another run?); left as it is" % path)
                os.replace(tmp, path)
            if os.path.exists(tmp):
                os.remove(tmp)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def probe_output_folder(out: str) -> None:
    """Create and remove a temporary file beside ``out``, as atomic_output will: raises the OSError of
    a folder that cannot be written before any work is done."""
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(out) + ".", suffix=".tmp",
                               dir=os.path.dirname(os.path.abspath(out)))
    os.close(fd)
    os.remove(tmp)
