"""Pure domain code: no Flask, no SQL."""
