"""Why a letter could not be rendered."""

from __future__ import annotations


class LetterError(Exception):
    """A letter could not be rendered."""


class LetterDataError(LetterError, ValueError):
    """The data dict of a letter is incomplete or inconsistent (the message lists every problem).

    Not a domain ValidationFailed: the services build letter data from stored records, so invalid data is
    a fault of the program (a 500 with this message in the log), not a user's input to correct.
    """


class LetterFontMissing(LetterError):
    """The CJK font the letter templates name is not installed (the letter would show empty boxes)."""


class LetterSubsetterMissing(LetterError):
    """WeasyPrint could not load HarfBuzz-Subset (CJK letters would take seconds each)."""


class LetterURLRefused(LetterError, ValueError):
    """A letter referred to a resource outside templates/letters/ (or to the network)."""
