"""The one error type the codec raises for bad input or a bad model folder."""


class MAGCError(ValueError):
    """A problem the caller can fix; the message says what to do."""
