"""Integrations with serving platforms. Each lives in its own subpackage and needs its own extra, so importing
fncall never pulls in a platform's dependencies."""
