"""Who calls the tile functions: here at once (LocalRunner), or a Dask cluster (magc_plugin.distributed)."""
from collections import deque

from ..codec.errors import MAGCError


class CancelledByUser(MAGCError):
    """The cancel callback asked to stop; nothing was written."""


def check_cancel(cancel):
    if cancel is not None and cancel():
        raise CancelledByUser("Canceled: nothing was written.")


def report(progress, fraction, message):
    """Hand progress(fraction in 0..1, message) its figures, if there is a progress callback."""
    if progress is not None:
        progress(min(1.0, max(0.0, fraction)), message)


def load_model(model, rate=None, device="auto"):
    """A MAGCModel from a loaded model, a model folder or a shipped preset name."""
    from ..codec.model import MAGCModel
    if isinstance(model, MAGCModel):
        return model
    return MAGCModel.from_pretrained(model or "default", rate=rate, device=device)


class LocalRunner:
    """Calls the tile functions in this process, at once, when they are submitted (the single-machine path).

    A runner's protocol: ``identity()`` of its model; ``submit(fn, *args)`` -> a handle on
    ``fn(model, *args)`` (handles may be passed as, or inside a list as, later arguments);
    ``result(handle, cancel)``; ``cancel(handles)``; ``lookahead``, how many tasks the
    driver may submit before it waits for the oldest; ``runs_here``, whether callbacks
    (progress per diffusion step, cancel) can be handed to the functions.
    """
    lookahead = 0
    runs_here = True

    def __init__(self, model):
        self.model = model

    def identity(self):
        return self.model.identity()

    def submit(self, fn, *args):
        return fn(self.model, *args)

    def result(self, value, cancel=None):
        return value

    def cancel(self, handles):
        pass


def runner_for(engine, model, rate, device):
    """The runner of `engine` (None: this process) for a model at a rate on a device."""
    if engine is None:
        return LocalRunner(load_model(model, rate, device))
    return engine.runner(model, rate, device)


def in_order(runner, fn, tasks, cancel=None):
    """fn(model, *args) for each args of `tasks`, yielded in order, with up to runner.lookahead submitted ahead.

    Use it in ``closing()``: stopping early (an error, a cancel) cancels what is still pending.
    """
    pending = deque()
    try:
        for args in tasks:
            pending.append(runner.submit(fn, *args))
            if len(pending) > runner.lookahead:
                yield runner.result(pending.popleft(), cancel)
        while pending:
            yield runner.result(pending.popleft(), cancel)
    finally:
        runner.cancel(pending)
