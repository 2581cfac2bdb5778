"""Stage: labels."""
