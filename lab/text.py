"""Text from the network (task text, names) as a terminal may show it: control characters
(escape sequences that clear the screen, retitle the window, make links) and the
bidirectional controls (which reverse what follows them) written as \\xNN / \\uNNNN."""

import re

UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def terminal_text(text, limit=None):
    """TEXT with its unsafe characters escaped, clipped to LIMIT characters (… at the end)."""
    shown = UNSAFE.sub(lambda match: f"\\x{ord(match[0]):02x}" if ord(match[0]) < 0x100 else f"\\u{ord(match[0]):04x}",
                       str(text))  # fmt: skip
    return shown if limit is None or len(shown) <= limit else shown[: limit - 1] + "…"
