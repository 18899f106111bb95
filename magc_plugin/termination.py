"""SIGTERM ends a run as Ctrl-C does: an exception unwinds the writers' ``with`` blocks, which delete their
temporary files, so a terminated run leaves no partial output behind."""
import os
import signal
import threading
from contextlib import contextmanager


class Terminated(BaseException):
    """SIGTERM arrived during a run. A BaseException, as KeyboardInterrupt, so that no ``except Exception`` stops it."""


_terminated = threading.Event()


def terminating():
    """Whether SIGTERM arrived during the run: the cancel callback of its other threads, which Terminated does not
    reach (a batch's threads, each writing one file)."""
    return _terminated.is_set()


def _raise_terminated(signum, frame):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second SIGTERM must not cut the clean-up short
    _terminated.set()
    raise Terminated


@contextmanager
def sigterm_unwinds(then_terminate=False):
    """Within the block, SIGTERM raises Terminated in the main thread; afterwards SIGTERM has its default action.

    then_terminate: once unwound, end the process as SIGTERM's default action would have (a run hosted by an
    application, such as qgis_process); else Terminated propagates (the CLI reports it). Does nothing outside
    the main thread (QGIS desktop runs tools in worker threads) or where SIGTERM is not at its default action
    (an application's own handler keeps its say on quitting).
    """
    if threading.current_thread() is not threading.main_thread() \
            or signal.getsignal(signal.SIGTERM) != signal.SIG_DFL:
        yield
        return
    _terminated.clear()
    signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        try:
            yield
        finally:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)  # runs a SIGTERM still pending first: Terminated
    except Terminated:
        if then_terminate:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)
        raise
