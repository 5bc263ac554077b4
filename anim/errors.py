"""One user-facing error type per layer; the CLI prints them in one or two lines, exit code 2."""


class AnimError(Exception):
    """Base of every error the user can fix: the message says what and where."""


class PresetError(AnimError):
    """Bad preset: names the key path and the YAML line (or the CLI override)."""


class ScheduleError(AnimError):
    """Bad schedule, prompt or seed text: names the text and the column or frame."""


class InputError(AnimError):
    """Missing or unreadable input file (init image, video, audio, folder): names the path."""


class ModelError(AnimError):
    """A model that cannot be found, read or trusted: names the source and the way out."""


def one_line(text: str) -> str:
    """`text` on one line: control characters a user's input may carry (a newline in a key) shown escaped."""
    return "".join(ch if ch.isprintable() or ch == " " else ascii(ch)[1:-1] for ch in str(text).strip())
