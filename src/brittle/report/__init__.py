"""HTML report (all untrusted text escaped) and plots."""
