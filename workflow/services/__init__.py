"""Service layer: one verb per user action. Services flush and never commit."""
