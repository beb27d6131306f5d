"""Evaluations that measure fncall against its targets and its peers (`fncall eval ...`)."""
