"""The lab's host-side programs (the demos, the autoscaler), run by the thin scripts in scripts/."""
