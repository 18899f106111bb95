"""Output files appear by rename from a temporary file; this gives them the permissions an ordinary write would."""
import os


def _umask():
    try:  # Linux reports it without changing it
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)  # elsewhere: read by setting it, at once restored
    os.umask(mask)
    return mask


def give_ordinary_permissions(fd):
    """mkstemp creates files only their owner may read (0600): an output gets 0666 less the umask instead."""
    os.fchmod(fd, 0o666 & ~_umask())
