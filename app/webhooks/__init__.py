"""Codat webhooks: verified, stored once in the inbox, handled after the response."""
