"""Text that must stay on one line: a name, a subject, any value written into a header."""

import re

# C0 and C1 control characters (CR, LF and tab among them) and the Unicode line and paragraph
# separators: each of them may end a line for some reader (a mail header, a log, a CSV cell).
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
# The same set for an OpenAPI `pattern` (ECMA 262 syntax, which Python's `re` reads too).
NO_CONTROL_PATTERN = r"^[^\u0000-\u001f\u007f-\u009f\u2028\u2029]*$"


def one_line(text: str) -> str:
    """`text` with its control characters made spaces and every run of white space one."""
    return " ".join(CONTROL.sub(" ", text).split())
