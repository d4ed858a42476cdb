"""Orders people read: text with numbers in it sorted by the numbers' values (member2 before member10)."""

from __future__ import annotations

import re

_PARTS = re.compile(r"(\d+)", re.ASCII)


def natural_key(text: str | None) -> tuple:
    """A sort key reading runs of ASCII digits as numbers and letters without regard to case.

    "member2" < "member10" < "Member11"; equal texts by this key keep a stable tie-break on the text itself.
    """
    parts = _PARTS.split(text or "")
    # split() alternates text and digits, starting with text: pair each text with the number after it.
    key = tuple((parts[i].casefold(), int(parts[i + 1]) if i + 1 < len(parts) else -1)
                for i in range(0, len(parts), 2))
    return (key, text or "")
