"""The error for a mistake in the user's input, and the one-line exit every entry point uses for it."""

import sys


class ScreeningInputError(ValueError):
    """A user's input is wrong; the message is one line naming the file and column, row or flag."""


def exit_on_input_error(main):
    """Call an entry point's `main`; a mistake in the input ends it with `error: ...` on stderr and exit status 2."""
    try:
        main()
    except ScreeningInputError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
